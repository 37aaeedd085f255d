// Package edge is the public listener: redirects, health, and the routes of the conversion
// intake (served by package intake).
// The redirect hot path is in redirect.go; everything it records is in click.go.
package edge

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/proxy/metrics"
	"github.com/clickgate/clickgate/proxy/preflight"
	"github.com/clickgate/clickgate/storage"
)

const (
	// CookieName is the visitor cookie.
	CookieName = "cg_vid"
	// CookieMaxAge is 400 days, the longest lifetime browsers accept.
	CookieMaxAge = 400 * 24 * time.Hour
	// CheckHeader marks a preflight request (clickgate links check): it is redirected
	// and recorded as a test click, never counted as a human or bot click. Anyone may
	// send it; doing so only keeps their own tap out of the counts.
	CheckHeader = preflight.CheckHeader
)

// Committer makes a click durable; *storage.Committer is the real one.
type Committer interface {
	CommitClick(rec []byte, c *storage.Counters, kind storage.ClickKind) error
}

// Edge serves the public listener.
type Edge struct {
	Index  *links.Index
	Clicks Committer
	IDs    *ids.ClickIDs
	NodeID string
	// ClickParam is the query parameter carrying the click ID (CLICKGATE_CLICK_PARAM).
	ClickParam string
	// CookieDomain, when set (e.g. ".brand.com"), is the Domain of the visitor cookie for
	// hosts inside it, so the cookie is first-party to the brand's site. Empty: host-only.
	CookieDomain string
	// ClientIPHeader names a header holding the client address (e.g. X-Forwarded-For)
	// when a trusted proxy sits in front. Empty: the peer address.
	ClientIPHeader string
	Hasher         *identity.Hasher
	// ClickSealer, when set, keeps an identity parameter's plain value sealed with the
	// click, for click events (the operator opted in to identifiers at clicks).
	ClickSealer *identity.Sealer
	Region      string
	// Conversions and Postback handle the conversion intake; nil answers 404.
	Conversions, Postback fasthttp.RequestHandler
	// Ready reports readiness details for /readyz; ok false answers 503.
	Ready func() (ok bool, body []byte)
	Log   *slog.Logger
}

var (
	hdrLocation     = []byte("Location")
	hdrCacheControl = []byte("Cache-Control")
	hdrRobots       = []byte("X-Robots-Tag")
	valNoStore      = []byte("private, no-store")
	valNoIndex      = []byte("noindex, nofollow")
)

// Handler is the fasthttp handler of the public listener. It recovers panics, since
// fasthttp does not: a panic is answered with 500 and counted, never a dead process.
func (e *Edge) Handler(ctx *fasthttp.RequestCtx) {
	defer func() {
		if r := recover(); r != nil {
			metrics.Panics.WithLabelValues("public").Inc()
			e.Log.Error("panic in handler", "panic", fmt.Sprint(r), "path", string(ctx.Path()), "stack", string(debug.Stack()))
			ctx.Response.Reset()
			ctx.Error("internal error\n", fasthttp.StatusInternalServerError)
		}
	}()
	e.route(ctx)
}

func (e *Edge) route(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	case "/readyz":
		ok, body := true, []byte(`{"status":"ready"}`)
		if e.Ready != nil {
			ok, body = e.Ready()
		}
		ctx.SetContentType("application/json")
		if !ok {
			ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		}
		ctx.SetBody(body)
		return
	case "/v1/conversions", "/v1/postback":
		h := e.Conversions
		if string(path) == "/v1/postback" {
			h = e.Postback
		}
		if h == nil {
			page(ctx, fasthttp.StatusNotFound, notFoundPage)
			return
		}
		h(ctx)
		return
	case "/robots.txt":
		// Short links are not content; asking crawlers to stay away saves bot clicks.
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("User-agent: *\nDisallow: /\n")
		return
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		page(ctx, fasthttp.StatusMethodNotAllowed, methodPage)
		return
	}
	slug, token, ok := splitPath(path)
	if !ok {
		metrics.RedirectNotFound.Inc()
		page(ctx, fasthttp.StatusNotFound, notFoundPage)
		return
	}
	e.redirect(ctx, slug, token)
}

// ErrorHandler answers requests fasthttp refuses before the handler runs, with the
// status a client can act on: 431 for headers over CLICKGATE_MAX_HEADER_BYTES, 413 for
// bodies over the limit, 408 for timeouts, 400 otherwise.
func ErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var ne *net.OpError
	switch {
	case errors.As(err, &small):
		ctx.Error("request headers too large\n", fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		ctx.Error("request body too large\n", fasthttp.StatusRequestEntityTooLarge)
	case errors.As(err, &ne) && ne.Timeout():
		ctx.Error("request timeout\n", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("malformed request\n", fasthttp.StatusBadRequest)
	}
}

// tokenTrailers are what may follow a slug or a recipient token that is no part of it.
const tokenTrailers = "/.,;:!?)'\""

// splitPath splits "/slug" or "/slug/token"; anything else is not a link path.
func splitPath(p []byte) (slug, token []byte, ok bool) {
	if len(p) < 2 || p[0] != '/' {
		return nil, nil, false
	}
	p = p[1:]
	if i := bytes.IndexByte(p, '/'); i >= 0 {
		// Messaging apps that turn text into links take trailing punctuation with the URL
		// ("…/spring/Ab3k9xQz."), and URL builders add a '/': the token is what is left.
		slug, token = p[:i], bytes.TrimRight(p[i+1:], tokenTrailers)
		switch {
		case len(token) == 0:
			token = nil // "/slug/" is the link itself
		case !links.ValidToken(token):
			// Not a token (a scanner's /slug/.env, a deeper path): no link's, and no click.
			return nil, nil, false
		}
	} else {
		slug = bytes.TrimRight(p, tokenTrailers) // "…/spring." is /spring
	}
	if len(slug) == 0 || len(slug) > links.MaxSlugLen || !links.SlugChars(slug) {
		return nil, nil, false
	}
	return slug, token, true
}

func (e *Edge) setVisitorCookie(ctx *fasthttp.RequestCtx, vid []byte) {
	c := fasthttp.AcquireCookie()
	c.SetKey(CookieName)
	c.SetValueBytes(vid)
	c.SetPath("/")
	c.SetMaxAge(int(CookieMaxAge / time.Second))
	c.SetSecure(true)
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteLaxMode)
	if e.CookieDomain != "" && hostInDomain(ctx.Host(), e.CookieDomain) {
		c.SetDomain(e.CookieDomain)
	}
	ctx.Response.Header.SetCookie(c)
	fasthttp.ReleaseCookie(c)
}

// hostInDomain reports whether a browser would accept a cookie for domain on host: a
// cookie for ".brand.com" set by "link.other.com" is dropped, so it is not sent.
func hostInDomain(host []byte, domain string) bool {
	var buf [256]byte
	h := requestHost(buf[:0], host)
	d := []byte(domain)
	if len(d) > 0 && d[0] == '.' {
		d = d[1:]
	}
	return bytes.Equal(h, d) || (len(h) > len(d) && bytes.HasSuffix(h, d) && h[len(h)-len(d)-1] == '.')
}

func page(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetCanonical(hdrCacheControl, valNoStore)
	ctx.Response.Header.SetCanonical(hdrRobots, valNoIndex)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(body)
}

func htmlPage(title, text string) []byte {
	return []byte(`<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>` +
		title + `</title><body style="font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222"><h1 style="font-size:1.4rem">` +
		title + `</h1><p>` + text + "</p></body></html>\n")
}

var (
	notFoundPage = htmlPage("Link not found", "This link does not exist. Check that it was copied completely.")
	methodPage   = htmlPage("Method not allowed", "Short links answer GET and HEAD only.")
	gonePages    = map[string][]byte{
		"archived":   htmlPage("Link no longer available", "This link has been retired."),
		"paused":     htmlPage("Link paused", "This link is paused. Please try again later."),
		"expired":    htmlPage("Link expired", "This link has expired."),
		"max_clicks": htmlPage("Link no longer available", "This link has reached its limit."),
	}
)
