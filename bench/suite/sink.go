package suite

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/valyala/fasthttp"
)

// Sink is the webhook plugin's destination in the plugin scenarios: it answers every
// POST with 204 at once and counts requests and events, so the plugin delivers at full
// speed and the suite can check that it did. It runs as its own process (clickbench
// sink) on the generator's CPUs, where its CPU time is measured apart from the server's.
type Sink struct {
	requests, events atomic.Int64
}

var eventField = []byte(`"event_id"`)

// Handler answers the webhook plugin (any POST) and GET /stats.
func (k *Sink) Handler(ctx *fasthttp.RequestCtx) {
	if ctx.IsGet() && string(ctx.Path()) == "/stats" {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"requests":` + strconv.FormatInt(k.requests.Load(), 10) + `,"events":` + strconv.FormatInt(k.events.Load(), 10) + `}`)
		return
	}
	k.requests.Add(1)
	// Every event the webhook sends carries one event_id: counting the field is enough,
	// and far cheaper than decoding the batch.
	k.events.Add(int64(bytes.Count(ctx.PostBody(), eventField)))
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// Serve serves the sink on ln until ctx ends.
func (k *Sink) Serve(ctx context.Context, ln net.Listener) error {
	s := &fasthttp.Server{Handler: k.Handler, Name: "clickbench-sink", MaxRequestBodySize: 64 << 20}
	go func() {
		<-ctx.Done()
		s.Shutdown()
	}()
	if err := s.Serve(ln); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	return nil
}
