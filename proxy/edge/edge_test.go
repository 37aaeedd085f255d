package edge

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/proxy/metrics"
	"github.com/clickgate/clickgate/storage"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newEdge returns an Edge over a real Badger store in a temp dir, with its committer
// running, and one link "s" to https://shop.example.com/p?ref=x.
func newEdge(tb testing.TB) *Edge {
	tb.Helper()
	db, err := storage.Open(storage.Options{Dir: tb.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done; db.Close() })
	ix := links.NewIndex()
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://shop.example.com/p?ref=x", ForwardQuery: true, Status: storage.StatusActive,
		UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026", Content: "version_a"}})
	return &Edge{
		Index: ix, Clicks: db.Committer(), IDs: ids.NewClickIDs(1), NodeID: "n1", ClickParam: "cgid",
		Hasher: identity.NewHasher([]byte("secret-secret-secret")), Region: "US",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func request(method, uri, ua string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetHost("go.example.com")
	if ua != "" {
		req.Header.SetUserAgent(ua)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, nil)
	return ctx
}

func TestPanicAnswered500AndCounted(t *testing.T) {
	e := newEdge(t)
	e.Index = nil // the lookup dereferences it: a panic inside the handler
	before := testutil.ToFloat64(metrics.Panics.WithLabelValues("public"))
	ctx := request("GET", "/s", "Mozilla/5.0")
	e.Handler(ctx)
	if ctx.Response.StatusCode() != 500 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	if got := testutil.ToFloat64(metrics.Panics.WithLabelValues("public")); got != before+1 {
		t.Fatalf("panics counter %v -> %v", before, got)
	}
}

type nopCommitter struct{}

func (nopCommitter) CommitClick([]byte, *storage.Counters, storage.ClickKind) error { return nil }

// The handler itself allocates nothing; the commit's cost is shared by its batch and
// measured in storage's benchmarks.
func TestRedirectAllocations(t *testing.T) {
	e := newEdge(t)
	e.Clicks = nopCommitter{}
	ctx := request("GET", "/s", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1")
	ctx.Request.Header.SetCookie(CookieName, ids.NewVisitorID(time.Now()).String())
	e.Handler(ctx)
	if ctx.Response.StatusCode() != 302 {
		t.Fatalf("status %d", ctx.Response.StatusCode())
	}
	n := testing.AllocsPerRun(200, func() {
		ctx.Response.Reset()
		e.Handler(ctx)
	})
	if n != 0 {
		t.Fatalf("redirect handler allocates %.1f times", n)
	}
	// Behind a proxy, whatever form its header takes.
	e.ClientIPHeader = "X-Forwarded-For"
	for _, v := range []string{"", "203.0.113.7", "6.6.6.6, 203.0.113.7:4711", "[2001:db8::1]:443", "[2001:db8::1]", "2001:db8::1"} {
		ctx.Request.Header.Del("X-Forwarded-For")
		if v != "" {
			ctx.Request.Header.Set("X-Forwarded-For", v)
		}
		if n := testing.AllocsPerRun(100, func() {
			ctx.Response.Reset()
			e.Handler(ctx)
		}); n != 0 {
			t.Errorf("X-Forwarded-For %q: the redirect handler allocates %.1f times", v, n)
		}
	}
}

func TestSplitPath(t *testing.T) {
	cases := []struct {
		in, slug, token string
		ok              bool
	}{
		{"/abc", "abc", "", true},
		{"/abc/", "abc", "", true},
		{"/abc/tok123", "abc", "tok123", true},
		{"/", "", "", false},
		{"", "", "", false},
		{"abc", "", "", false},
		// What a messaging app or a URL builder adds after a token is not the token.
		{"/abc/tok123/", "abc", "tok123", true},
		{"/abc/tok123.", "abc", "tok123", true},
		{"/abc/tok123).", "abc", "tok123", true},
		// Anything else after a slug is not a token, and not the link.
		{"/abc/tok/extra", "", "", false},
		{"/abc/tok.x", "", "", false},
		{"/abc/.env", "", "", false},
		{"/abc/" + strings.Repeat("t", 33), "", "", false},
		{"/abc.", "abc", "", true},
		{"/abc!)", "abc", "", true},
		{"//evil.example", "", "", false},
		{"/" + strings.Repeat("a", 65), "", "", false},
		{"/0#", "", "", false},
		{"/a%20b", "", "", false},
	}
	for _, c := range cases {
		s, tk, ok := splitPath([]byte(c.in))
		if ok != c.ok || string(s) != c.slug || string(tk) != c.token {
			t.Errorf("splitPath(%q) = %q %q %v", c.in, s, tk, ok)
		}
	}
}

func FuzzSplitPath(f *testing.F) {
	for _, s := range []string{"/abc", "/abc/tok", "//x", "/a/b/c", "/\\x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		slug, tok, ok := splitPath([]byte(p))
		if !ok {
			return
		}
		if len(slug) == 0 || bytes.ContainsAny(slug, "?#") || (tok != nil && !links.ValidToken(tok)) {
			t.Fatalf("accepted %q as slug %q token %q", p, slug, tok)
		}
	})
}

func TestRequestHost(t *testing.T) {
	for in, want := range map[string]string{"Go.Example.COM": "go.example.com", "x.io:8080": "x.io", "[::1]:80": "[::1]", "[::1]": "[::1]", "": ""} {
		if got := string(requestHost(make([]byte, 0, 256), []byte(in))); got != want {
			t.Errorf("requestHost(%q) = %q", in, got)
		}
	}
}
