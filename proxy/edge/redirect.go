package edge

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/bot"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/metrics"
	"github.com/clickgate/clickgate/storage"
)

// redirect answers GET|HEAD /{slug} and /{slug}/{token}: one index lookup, one durable
// click commit shared with every click in flight, then a 302 whose Location is written
// byte for byte (never ctx.Redirect, which re-escapes and rewrites URLs).
func (e *Edge) redirect(ctx *fasthttp.RequestCtx, slug, token []byte) {
	start := time.Now()
	var hostBuf [256]byte
	entry := e.Index.Lookup(requestHost(hostBuf[:0], ctx.Host()), slug)
	if entry == nil {
		metrics.RedirectNotFound.Inc()
		page(ctx, fasthttp.StatusNotFound, notFoundPage)
		return
	}
	s := acquireScratch()
	defer releaseScratch(s)
	link := entry.LinkInto(&s.link)
	if why := link.Gone(start); why != "" {
		metrics.RedirectGone.Inc()
		page(ctx, fasthttp.StatusGone, gonePages[why])
		return
	}
	verdict := bot.Classify(bot.Request{
		Method: ctx.Method(), UserAgent: ctx.UserAgent(),
		Purpose: ctx.Request.Header.Peek("Purpose"), SecPurpose: ctx.Request.Header.Peek("Sec-Purpose"),
		XPurpose: ctx.Request.Header.Peek("X-Purpose"), XMoz: ctx.Request.Header.Peek("X-Moz"),
	})
	c := &s.click
	c.Test = len(ctx.Request.Header.Peek(CheckHeader)) > 0
	c.Bot = verdict.Bot()
	kind := c.Kind()
	if kind == storage.KindHuman && !entry.Reserve(link) {
		metrics.RedirectUsedUp.Inc()
		page(ctx, fasthttp.StatusGone, gonePages["max_clicks"])
		return
	}

	vid, isNew := e.visitor(ctx, s, start)
	target := link.Pick(vid)
	id := e.IDs.New(start)
	s.id = id.Append(s.id[:0])
	s.loc = link.AppendLocation(s.loc[:0], target, ctx.URI().QueryString(), e.ClickParam, s.id)

	c.ID, c.Time, c.NewVisitor = id, start, isNew // fillClick seals for this click ID
	e.fillClick(ctx, s, link, target, verdict, token)
	c.VisitorID, c.Destination = b2s(vid), b2s(s.loc)
	s.rec = storage.AppendClick(s.rec[:0], c)
	if err := e.Clicks.CommitClick(s.rec, entry.Counters, kind); err != nil {
		// The recipient still lands; the click is not claimed, so no click ID goes out.
		if kind == storage.KindHuman {
			entry.Release(link)
		}
		metrics.RedirectUnstored.Inc()
		e.Log.Error("click not stored; redirected without a click ID", "slug", string(slug), "err", err)
		s.loc = link.AppendLocation(s.loc[:0], target, ctx.URI().QueryString(), e.ClickParam, nil)
	} else {
		countClick(kind)
		metrics.RedirectOK.Inc()
	}

	h := &ctx.Response.Header
	h.SetCanonical(hdrLocation, s.loc)
	h.SetCanonical(hdrCacheControl, valNoStore)
	h.SetCanonical(hdrRobots, valNoIndex)
	// A returning human visitor's cookie is set again, so its lifetime runs from the
	// last tap (browsers cap some to days: Safari keeps those a server on another
	// address than the site sets for seven) and a CLICKGATE_COOKIE_DOMAIN set since
	// reaches it.
	if isNew || kind == storage.KindHuman {
		e.setVisitorCookie(ctx, vid)
	}
	ctx.SetStatusCode(fasthttp.StatusFound)
	metrics.RedirectSeconds.Observe(time.Since(start).Seconds())
}

func countClick(k storage.ClickKind) {
	switch k {
	case storage.KindHuman:
		metrics.ClicksHuman.Inc()
	case storage.KindBot:
		metrics.ClicksBot.Inc()
	default:
		metrics.ClicksTest.Inc()
	}
}

// visitor returns the visitor ID from a valid cg_vid cookie, or a new one.
func (e *Edge) visitor(ctx *fasthttp.RequestCtx, s *scratch, now time.Time) ([]byte, bool) {
	if v := ctx.Request.Header.Cookie(CookieName); len(v) == ids.ClickIDLen {
		if _, err := ids.ParseVisitorID(v); err == nil {
			s.vid = append(s.vid[:0], v...)
			return s.vid, false
		}
	}
	s.vid = ids.NewVisitorID(now).Append(s.vid[:0])
	return s.vid, true
}
