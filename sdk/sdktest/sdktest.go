// Package sdktest tests a forwarder without a subprocess: Connect runs it behind the
// real protocol-v1 gRPC server over a local socket (go-plugin's test connection), and
// Recorder stands in for the destination's HTTP API.
package sdktest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/hashicorp/go-plugin"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/host"
	"github.com/clickgate/clickgate/sdk/internal/glue"
)

// Connect serves f in-process over gRPC and returns the host-side client.
func Connect(tb testing.TB, f sdk.Forwarder) *host.Plugin {
	tb.Helper()
	client, _ := plugin.TestPluginGRPCConn(tb, false, glue.Set(sdk.NewServer(f)))
	tb.Cleanup(func() { client.Close() })
	p, err := host.Connect(context.Background(), client)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Request is one request the recorder received.
type Request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// Reply is what the recorder answers.
type Reply struct {
	Status int
	Header http.Header
	Body   string
}

// Recorder is a local HTTP server that records every request and answers with a
// handler the test controls (by default 200 with an empty JSON object).
type Recorder struct {
	*httptest.Server
	mu      sync.Mutex
	reqs    []Request
	respond func(Request) Reply
}

// NewRecorder starts a recorder; respond may be nil.
func NewRecorder(tb testing.TB, respond func(Request) Reply) *Recorder {
	r := &Recorder{respond: respond}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	tb.Cleanup(r.Close)
	return r
}

// Respond replaces the answer function.
func (r *Recorder) Respond(f func(Request) Reply) {
	r.mu.Lock()
	r.respond = f
	r.mu.Unlock()
}

// Requests returns what was received so far.
func (r *Recorder) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

func (r *Recorder) serve(w http.ResponseWriter, hr *http.Request) {
	body, _ := io.ReadAll(hr.Body)
	req := Request{Method: hr.Method, Path: hr.URL.Path, Query: hr.URL.RawQuery, Header: hr.Header.Clone(), Body: body}
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	respond := r.respond
	r.mu.Unlock()
	rep := Reply{Status: 200, Body: "{}"}
	if respond != nil {
		rep = respond(req)
	}
	for k, vs := range rep.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	if rep.Status == 0 {
		rep.Status = 200
	}
	w.WriteHeader(rep.Status)
	io.WriteString(w, rep.Body)
}
