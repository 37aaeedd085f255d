package edge

import (
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
)

const benchUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"

// BenchmarkRedirect is one handler at a time: every click pays a whole commit.
func BenchmarkRedirect(b *testing.B) {
	e := newEdge(b)
	ctx := request("GET", "/s", benchUA)
	ctx.Request.Header.SetCookie(CookieName, ids.NewVisitorID(time.Now()).String())
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		e.Handler(ctx)
	}
}

// BenchmarkRedirectParallel runs many handlers at once, as a loaded edge does: clicks
// share group commits.
func BenchmarkRedirectParallel(b *testing.B) {
	e := newEdge(b)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := request("GET", "/s", benchUA)
		ctx.Request.Header.SetCookie(CookieName, ids.NewVisitorID(time.Now()).String())
		for pb.Next() {
			ctx.Response.Reset()
			e.Handler(ctx)
		}
	})
}
