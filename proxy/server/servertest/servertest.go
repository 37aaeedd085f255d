// Package servertest starts a real clickgate in-process for tests: real 127.0.0.1
// listeners, a real Badger directory, and helpers for the admin API and taps.
package servertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/config"
	"github.com/clickgate/clickgate/proxy/server"
)

// Token is the admin token of every test gate.
const Token = "test-admin-token-0123456789"

// Gate is a clickgate started in-process.
type Gate struct {
	t testing.TB
	// S is the running server; Pub and Adm are the base URLs of its listeners.
	S      *server.Server
	Pub    string
	Adm    string
	cancel context.CancelFunc
	done   chan error
	client *http.Client
}

// Start runs clickgate on dir with extra CLICKGATE_* settings; it stops at test cleanup.
func Start(t testing.TB, dir string, env ...string) *Gate {
	t.Helper()
	base := []string{
		"CLICKGATE_LISTEN=127.0.0.1:0", "CLICKGATE_ADMIN_LISTEN=127.0.0.1:0",
		"CLICKGATE_DATA_DIR=" + dir, "CLICKGATE_ADMIN_TOKEN=" + Token,
		"CLICKGATE_NODE_ID=test-node", "CLICKGATE_PUBLIC_URL=https://go.example.com",
		"CLICKGATE_LOG_LEVEL=error",
	}
	cfg, err := config.LoadFrom(append(base, env...))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	s, err := server.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gate{t: t, S: s, Pub: "http://" + s.PublicAddr(), Adm: "http://" + s.AdminAddr(), cancel: cancel, done: make(chan error, 1)}
	g.client = &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	go func() { g.done <- s.Run(ctx) }()
	t.Cleanup(g.Stop)
	return g
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Stop shuts the gate down gracefully (idempotent).
func (g *Gate) Stop() {
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	if err := <-g.done; err != nil {
		g.t.Errorf("server stopped with %v", err)
	}
}

// API calls the admin API with the admin token and decodes the JSON answer.
func (g *Gate) API(method, path string, body any) (int, map[string]any) {
	return g.APIAuth(method, path, body, "Bearer "+Token)
}

// APIAuth calls the admin API with the given Authorization header.
func (g *Gate) APIAuth(method, path string, body any, auth string) (int, map[string]any) {
	g.t.Helper()
	return g.call(g.Adm, method, path, body, auth)
}

// Ingest calls the public listener's conversion intake (POST /v1/conversions, GET
// /v1/postback) with an ingest token ("" sends none) and decodes the JSON answer.
func (g *Gate) Ingest(method, path string, body any, token string) (int, map[string]any) {
	g.t.Helper()
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return g.call(g.Pub, method, path, body, auth)
}

// call sends a request to base+path, body as JSON (a string or []byte as it is), and
// decodes the JSON answer.
func (g *Gate) call(base, method, path string, body any, auth string) (int, map[string]any) {
	g.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			g.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 && json.Unmarshal(raw, &out) != nil {
		g.t.Fatalf("%s %s answered non-JSON %d: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// MustCreate creates a link and returns the answer.
func (g *Gate) MustCreate(spec map[string]any) map[string]any {
	g.t.Helper()
	st, out := g.API("POST", "/api/v1/links", spec)
	if st != http.StatusCreated {
		g.t.Fatalf("create %v: %d %v", spec, st, out)
	}
	return out
}

// Tap requests a public path without following redirects.
func (g *Gate) Tap(method, path string, hdr map[string]string) *http.Response {
	g.t.Helper()
	req, err := http.NewRequest(method, g.Pub+path, nil)
	if err != nil {
		g.t.Fatal(err)
	}
	if _, ok := hdr["User-Agent"]; !ok {
		req.Header.Set("User-Agent", IPhone)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// Counts returns a link's click counters.
func (g *Gate) Counts(slug string) (human, bot, test int) {
	g.t.Helper()
	st, out := g.API("GET", "/api/v1/links/"+slug, nil)
	if st != 200 {
		g.t.Fatalf("get link %s: %d %v", slug, st, out)
	}
	c := out["clicks"].(map[string]any)
	return int(c["human"].(float64)), int(c["bot"].(float64)), int(c["test"].(float64))
}

// User agents of ordinary phones.
const (
	IPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
	Android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
