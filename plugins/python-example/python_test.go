// Package pythonexample_test drives the Python forwarder through clickgate's real plugin
// host, the way the proxy does: launch (handshake, mTLS), Configure, Forward, shutdown.
package pythonexample_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/clickgate/clickgate/proxy/server/servertest"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/host"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

const (
	token = "py-token-5f1e9c3a7b20d4e6"
	// hookPath is where the receiver listens; the plugin must keep the query too.
	hookPath  = "/hooks/clickgate"
	hookQuery = "src=cg"
	// The handshake values of sdk/internal/glue, which the Python plugin repeats.
	cookieKey   = "CLICKGATE_PLUGIN"
	cookieValue = "forwarder-7f3c2a91e4b8"
)

// plugin is the Python forwarder as the host runs it: the launcher and its environment.
type plugin struct {
	launcher string
	venv     string
}

// env is what the plugins file's "env" would give the plugin.
func (p plugin) env() []string { return []string{"CLICKGATE_PYTHON_VENV=" + p.venv} }

// setup finds the virtualenv setup.sh makes, and skips the test without one, unless
// CLICKGATE_REQUIRE_PYTHON_PLUGIN=1 (CI) makes that a failure.
func setup(tb testing.TB) plugin {
	tb.Helper()
	venv := os.Getenv("CLICKGATE_PYTHON_VENV")
	if venv == "" {
		venv = "../../bin/python-plugin-venv"
	}
	venv, err := filepath.Abs(venv)
	if err != nil {
		tb.Fatal(err)
	}
	launcher, err := filepath.Abs("python-example")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(venv, "bin", "python3")); err != nil {
		msg := "no Python plugin virtualenv at " + venv + ": run plugins/python-example/setup.sh"
		if os.Getenv("CLICKGATE_REQUIRE_PYTHON_PLUGIN") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	// The generated stubs must come from this checkout's .proto files.
	if out, err := exec.Command("bash", "setup.sh", "--check", venv).CombinedOutput(); err != nil {
		tb.Fatalf("%v: %s", err, out)
	}
	return plugin{launcher: launcher, venv: venv}
}

// logBuf collects the host's log of the plugin (which includes the plugin's own lines).
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// records decodes the log's JSON lines.
func (l *logBuf) records() []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			out = append(out, rec)
		}
	}
	return out
}

// waitFor polls the log until a record satisfies ok.
func (l *logBuf) waitFor(t *testing.T, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, rec := range l.records() {
			if ok(rec) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log record %s in:\n%s", what, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// launch starts the plugin through clickgate's host; it is closed at cleanup. Its sockets
// go in the test's directory, so that even a killed plugin leaves nothing behind.
func launch(t testing.TB, pl plugin) (*host.Plugin, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("plugin", "py")
	env := append(pl.env(), "PLUGIN_UNIX_SOCKET_DIR="+t.TempDir())
	p, err := host.Launch(context.Background(), host.Config{Path: pl.launcher, Env: env, Logger: log})
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p, logs
}

// shared is one plugin process for the tests that only configure and forward: Python's
// start-up is most of a test's time. Those tests run one after another.
var shared struct {
	once sync.Once
	p    *host.Plugin
	logs *logBuf
	err  error
}

func sharedPlugin(t *testing.T, pl plugin) (*host.Plugin, *logBuf) {
	t.Helper()
	shared.once.Do(func() {
		shared.logs = &logBuf{}
		log := slog.New(slog.NewJSONHandler(shared.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("plugin", "py")
		shared.p, shared.err = host.Launch(context.Background(), host.Config{Path: pl.launcher, Env: pl.env(), Logger: log})
	})
	if shared.err != nil {
		t.Fatalf("launch: %v", shared.err)
	}
	return shared.p, shared.logs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.p != nil {
		shared.p.Close(context.Background())
		// Every test that used it checked its own part; the log as a whole must not
		// show the token either.
		if strings.Contains(shared.logs.String(), token) {
			fmt.Fprintf(os.Stderr, "the token reached the shared plugin's log:\n%s", shared.logs.String())
			code = 1
		}
	}
	os.Exit(code)
}

func configure(t *testing.T, p *host.Plugin, url string) {
	t.Helper()
	cfg, _ := json.Marshal(map[string]string{"url": url, "token": token, "timeout": "5s"})
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func clickEvent(t testing.TB, id string) sdk.Event {
	doc, err := json.Marshal(sdk.ClickEvent{
		SchemaVersion: 1, EventType: sdk.TypeClick, EventID: id, ClickID: id, Time: t0, Node: "n1",
		Slug: "spring", Campaign: "spring_sale", UTM: sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale"},
		Destination: "https://shop.example.com/spring", VisitorID: "0" + strings.Repeat("7", 25), NewVisitor: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Event{ID: id, Type: sdk.TypeClick, Time: t0, JSON: doc}
}

func conversionEvent(t testing.TB, id string) sdk.Event {
	v := 49.9
	doc, err := json.Marshal(sdk.ConversionEvent{
		SchemaVersion: 1, EventType: sdk.TypeConversion, EventID: id, ConversionID: "cv-" + id, SourceEventID: id,
		Type: "purchase", Status: "completed", Value: &v, Currency: "USD", OccurredAt: t0, ReceivedAt: t0,
		User:        &sdk.User{Email: "jane.doe@example.com", Phone: "+14155550100"},
		Attribution: &sdk.Touch{ClickID: "06j0000000000000000000001", Slug: "spring", Campaign: "spring_sale", ClickTime: t0, Credit: 1},
		Source:      "api",
	})
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Event{ID: id, Type: sdk.TypeConversion, Time: t0, JSON: doc}
}

// receiver is the destination: it enforces what the plugin promises to send (one POST
// of the event document per event, to the configured path and query, JSON, the bearer
// token, the event ID as Idempotency-Key) and answers by Idempotency-Key.
type receiver struct {
	*sdktest.Recorder
	t       *testing.T
	mu      sync.Mutex
	replies map[string]sdktest.Reply
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, replies: map[string]sdktest.Reply{}}
	r.Recorder = sdktest.NewRecorder(t, func(req sdktest.Request) sdktest.Reply {
		if err := check(req); err != nil {
			t.Errorf("receiver: %s %s?%s breaks the contract: %v", req.Method, req.Path, req.Query, err)
			return sdktest.Reply{Status: 400, Body: err.Error()}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if rep, ok := r.replies[req.Header.Get("Idempotency-Key")]; ok {
			return rep
		}
		return sdktest.Reply{Status: 200, Body: `{"ok":true}`}
	})
	return r
}

func (r *receiver) reply(id string, rep sdktest.Reply) {
	r.mu.Lock()
	r.replies[id] = rep
	r.mu.Unlock()
}

func check(req sdktest.Request) error {
	if req.Method != http.MethodPost {
		return fmt.Errorf("method %s, want POST", req.Method)
	}
	if req.Path != hookPath || req.Query != hookQuery {
		return fmt.Errorf("target %s?%s, want %s?%s", req.Path, req.Query, hookPath, hookQuery)
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fmt.Errorf("content type %q", req.Header.Get("Content-Type"))
	}
	if got := req.Header.Get("Authorization"); got != "Bearer "+token {
		return fmt.Errorf("authorization %q, want the bearer token", got)
	}
	if req.Header.Get("Idempotency-Key") == "" {
		return errors.New("no Idempotency-Key")
	}
	if !json.Valid(req.Body) {
		return errors.New("body is not JSON")
	}
	return nil
}

// byKey indexes the received requests by Idempotency-Key.
func (r *receiver) byKey() map[string][]sdktest.Request {
	out := map[string][]sdktest.Request{}
	for _, req := range r.Requests() {
		k := req.Header.Get("Idempotency-Key")
		out[k] = append(out[k], req)
	}
	return out
}

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// Every outcome of one batch: each event gets its own result from its own response, and
// one refusal never holds back the others.
func TestForwardResults(t *testing.T) {
	pl := setup(t)
	p, logs := sharedPlugin(t, pl)
	rec := newReceiver(t)
	configure(t, p, rec.URL+hookPath+"?"+hookQuery)

	type want struct {
		status sdk.Status
		after  time.Duration // approximate for HTTP dates
		reason string        // a substring
	}
	cases := []struct {
		id    string
		conv  bool
		reply *sdktest.Reply // nil: 200
		want  want
	}{
		{id: "c-ok", want: want{status: sdk.StatusDelivered}},
		{id: "v-ok", conv: true, reply: &sdktest.Reply{Status: 202}, want: want{status: sdk.StatusDelivered}},
		{id: "c-204", reply: &sdktest.Reply{Status: 204}, want: want{status: sdk.StatusDelivered}},
		{id: "c-429", reply: &sdktest.Reply{Status: 429, Header: http.Header{"Retry-After": {"7"}}, Body: "slow down"},
			want: want{sdk.StatusRetry, 7 * time.Second, "429 slow down"}},
		{id: "v-503-date", conv: true, reply: &sdktest.Reply{Status: 503, Header: http.Header{"Retry-After": {httpDate(time.Now().Add(90 * time.Second))}}},
			want: want{sdk.StatusRetry, 90 * time.Second, "503"}},
		{id: "c-500", reply: &sdktest.Reply{Status: 500, Body: "  boom\n\tagain "}, want: want{sdk.StatusRetry, 0, "500 boom again"}},
		{id: "c-502-huge", reply: &sdktest.Reply{Status: 502, Header: http.Header{"Retry-After": {"99999999999999999999"}}},
			want: want{sdk.StatusRetry, time.Hour, "502"}},
		{id: "c-503-junk", reply: &sdktest.Reply{Status: 503, Header: http.Header{"Retry-After": {"soon"}}}, want: want{sdk.StatusRetry, 0, "503"}},
		{id: "v-400", conv: true, reply: &sdktest.Reply{Status: 400, Body: `{"error":"unknown campaign"}`},
			want: want{sdk.StatusFailed, 0, `400 {"error":"unknown campaign"}`}},
		{id: "c-404", reply: &sdktest.Reply{Status: 404}, want: want{sdk.StatusFailed, 0, "404"}},
		{id: "c-408", reply: &sdktest.Reply{Status: 408}, want: want{sdk.StatusFailed, 0, "408"}},
		{id: "c-302", reply: &sdktest.Reply{Status: 302, Header: http.Header{"Location": {"/elsewhere"}}}, want: want{sdk.StatusFailed, 0, "302"}},
		{id: "c-after-refusals", want: want{status: sdk.StatusDelivered}},
	}
	var evs []sdk.Event
	for _, c := range cases {
		if c.reply != nil {
			rec.reply(c.id, *c.reply)
		}
		if c.conv {
			evs = append(evs, conversionEvent(t, c.id))
		} else {
			evs = append(evs, clickEvent(t, c.id))
		}
	}
	// Two events that must fail alone, without a request, amid the others.
	bad := sdk.Event{ID: "c-not-json", Type: sdk.TypeClick, JSON: json.RawMessage(`{"click_id":`)}
	badID := clickEvent(t, "c-bad\r\nX-Injected: 1")
	evs = append(evs[:2], append([]sdk.Event{bad, badID}, evs[2:]...)...)

	res, err := p.Forward(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]sdk.Result{}
	for i, e := range evs {
		got[e.ID] = res[i]
	}
	if r := got["c-not-json"]; r.Status != sdk.StatusFailed || !strings.Contains(r.Reason, "not valid JSON") {
		t.Errorf("invalid JSON: %+v", r)
	}
	if r := got[badID.ID]; r.Status != sdk.StatusFailed || !strings.Contains(r.Reason, "Idempotency-Key") {
		t.Errorf("an ID that is no header value: %+v", r)
	}
	sent := rec.byKey()
	if _, ok := sent["c-not-json"]; ok {
		t.Error("an invalid document was sent")
	}
	for _, c := range cases {
		r := got[c.id]
		if r.Status != c.want.status || !strings.Contains(r.Reason, c.want.reason) {
			t.Errorf("%s: got %+v, want %+v", c.id, r, c.want)
		}
		if d := r.RetryAfter - c.want.after; d < -3*time.Second || d > time.Second {
			t.Errorf("%s: retry after %v, want about %v", c.id, r.RetryAfter, c.want.after)
		}
		reqs := sent[c.id]
		if len(reqs) != 1 {
			t.Errorf("%s: sent %d times, want once (and no redirect followed)", c.id, len(reqs))
			continue
		}
		var doc []byte
		for _, e := range evs {
			if e.ID == c.id {
				doc = e.JSON
			}
		}
		if !bytes.Equal(reqs[0].Body, doc) {
			t.Errorf("%s: body %s, want the event document %s", c.id, reqs[0].Body, doc)
		}
	}
	if len(rec.Requests()) != len(cases) {
		t.Errorf("%d requests for %d sendable events", len(rec.Requests()), len(cases))
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the token reached the log:\n%s", logs.String())
	}
}

// The token never reaches a reason or the log, even when the receiver echoes it back.
func TestSecretStaysOut(t *testing.T) {
	pl := setup(t)
	p, logs := sharedPlugin(t, pl)
	echo := sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		st := 401
		if strings.HasSuffix(r.Header.Get("Idempotency-Key"), "5xx") {
			st = 503
		}
		return sdktest.Reply{Status: st, Body: "bad credentials: " + r.Header.Get("Authorization")}
	})
	configure(t, p, echo.URL+"/x")
	res, err := p.Forward(context.Background(), []sdk.Event{clickEvent(t, "a-4xx"), clickEvent(t, "a-5xx")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if strings.Contains(r.Reason, token) || !strings.Contains(r.Reason, "Bearer [redacted]") {
			t.Errorf("reason %q", r.Reason)
		}
	}
	// Rejected and accepted configurations alike stay quiet about it.
	for _, cfg := range []string{
		`{"url":"http://127.0.0.1:1/x","token":"` + token + `","timeout":"forever"}`,
		`{"url":"http://hooks.example.com/x","token":"` + token + `"}`,
	} {
		if err := p.Configure(context.Background(), json.RawMessage(cfg)); err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("error %q shows the token", err)
		}
	}
	// The plain-http warning goes over stderr (StreamStdio): wait for it, so the log is
	// complete when checked.
	logs.waitFor(t, "warning of plain http", func(rec map[string]any) bool {
		msg, _ := rec["msg"].(string)
		return rec["level"] == "WARN" && strings.Contains(msg, "plain http")
	})
	if strings.Contains(logs.String(), token) {
		t.Errorf("the token reached the log:\n%s", logs.String())
	}
}

// A destination that cannot be reached asks for a retry; a call that outlives the host's
// deadline asks one for the event it tried and answers the rest not sent.
func TestUnreachable(t *testing.T) {
	pl := setup(t)
	p, _ := sharedPlugin(t, pl)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	configure(t, p, "http://"+addr+"/x")
	res, err := p.Forward(context.Background(), []sdk.Event{clickEvent(t, "u1"), conversionEvent(t, "u2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != sdk.StatusRetry || !strings.Contains(r.Reason, "POST failed") {
			t.Errorf("unreachable: %+v", r)
		}
	}

	stall := make(chan struct{})
	defer close(stall)
	slow := sdktest.NewRecorder(t, func(sdktest.Request) sdktest.Reply { <-stall; return sdktest.Reply{} })
	configure(t, p, slow.URL+"/x")
	ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err = p.Forward(ctx, []sdk.Event{clickEvent(t, "s1"), clickEvent(t, "s2")})
	if err != nil {
		t.Fatalf("a call near its deadline must still answer: %v", err)
	}
	if time.Since(start) > 800*time.Millisecond {
		t.Errorf("the call took %v, past its deadline", time.Since(start))
	}
	// The first was tried and timed out; the second, left no time, was not sent.
	if res[0].Status != sdk.StatusRetry || res[1].Status != sdk.StatusNotSent {
		t.Errorf("past the deadline: %+v", res)
	}
}

// A bad configuration comes back as the host's "configuration rejected" naming the field.
func TestConfigure(t *testing.T) {
	pl := setup(t)
	p, _ := sharedPlugin(t, pl)
	cases := map[string]string{
		`{}`:                                    "config.url",
		`[]`:                                    "JSON object",
		`"url"`:                                 "JSON object",
		`{"url":"ftp://x.example/"}`:            "config.url",
		`{"url":"https://"}`:                    "config.url",
		`{"url":"http://x.example:99999/"}`:     "config.url",
		`{"url":"http://u:p@x.example/"}`:       "credentials",
		`{"url":"http://x.example/a b"}`:        "config.url",
		`{"url":7}`:                             "config.url",
		`{"url":"http://x.example/","token":5}`: "config.token",
		`{"url":"http://x.example/","token":"a\nb"}`:   "config.token",
		`{"url":"http://x.example/","timeout":"soon"}`: "config.timeout",
		`{"url":"http://x.example/","timeout":"6m"}`:   "config.timeout",
		`{"url":"http://x.example/","timeout":"0s"}`:   "config.timeout",
		`{"url":"http://x.example/","timeout":10}`:     "config.timeout",
		`{"url":"http://x.example/","colour":"red"}`:   "unknown field 'colour'",
		`{"url":"http://x.example/","Token":"x"}`:      "unknown field",
	}
	for cfg, want := range cases {
		err := p.Configure(context.Background(), json.RawMessage(cfg))
		if err == nil || !strings.HasPrefix(err.Error(), "configuration rejected: config") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a rejection naming %q", cfg, err, want)
		}
	}
	for _, cfg := range []string{
		`{"url":"http://x.example/"}`,
		`{"url":"https://x.example:8443/a?b=c","token":"t","timeout":"1m30s"}`,
		`{"url":"http://[::1]:8080/x","timeout":"250ms"}`,
	} {
		if err := p.Configure(context.Background(), json.RawMessage(cfg)); err != nil {
			t.Errorf("%s: %v", cfg, err)
		}
	}
}

// describe prints what the Go SDK prints, and the same as the Describe call says.
func TestDescribe(t *testing.T) {
	pl := setup(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(pl.launcher, "describe")
	cmd.Env = append(pl.env(), "PATH="+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("describe: %v\n%s", err, stderr.Bytes())
	}
	// The shape of sdk.Serve's describe output.
	var d struct {
		Name            string            `json:"name"`
		Version         string            `json:"version"`
		ProtocolVersion int               `json:"protocol_version"`
		Description     string            `json:"description,omitempty"`
		Config          []sdk.ConfigField `json:"config"`
	}
	dec := json.NewDecoder(bytes.NewReader(stdout.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("describe printed %q: %v", stdout.Bytes(), err)
	}
	var again bytes.Buffer
	enc := json.NewEncoder(&again)
	enc.SetIndent("", "  ")
	enc.Encode(d)
	if again.String() != stdout.String() {
		t.Errorf("describe output is not what Go's encoder makes of it:\n%s\nwant\n%s", stdout.Bytes(), again.Bytes())
	}
	if d.Name != "python-example" || d.Version == "" || d.ProtocolVersion != sdk.ProtocolVersion || d.Description == "" {
		t.Errorf("describe = %+v", d)
	}
	want := []sdk.ConfigField{
		{Name: "url", Type: "string", Required: true},
		{Name: "token", Type: "string", Secret: true},
		{Name: "timeout", Type: "duration", Default: "10s"},
	}
	if len(d.Config) != len(want) {
		t.Fatalf("config fields %+v", d.Config)
	}
	for i, w := range want {
		g := d.Config[i]
		if g.Name != w.Name || g.Type != w.Type || g.Required != w.Required || g.Secret != w.Secret || g.Default != w.Default || g.Description == "" {
			t.Errorf("config field %d = %+v, want %+v", i, g, w)
		}
	}

	p, _ := sharedPlugin(t, pl)
	rpc := sdk.Info{Name: d.Name, Version: d.Version, Description: d.Description, Config: d.Config}
	if !reflect.DeepEqual(p.Info, rpc) {
		t.Errorf("Describe call %+v\ndescribe command %+v", p.Info, rpc)
	}
}

// Run by hand, the plugin says what it is and exits non-zero; it also refuses a host
// without AutoMTLS.
func TestNotLaunchedByTheHost(t *testing.T) {
	t.Parallel()
	pl := setup(t)
	cases := []struct {
		name, want string
		env        []string
	}{
		{"no cookie", "python-example is a clickgate forwarder plugin", nil},
		{"wrong cookie", "python-example is a clickgate forwarder plugin", []string{cookieKey + "=guess"}},
		{"no client certificate", "AutoMTLS", []string{cookieKey + "=" + cookieValue}},
		{"bad client certificate", "PLUGIN_CLIENT_CERT", []string{cookieKey + "=" + cookieValue, "PLUGIN_CLIENT_CERT=hello"}},
		{"no virtualenv", "run plugins/python-example/setup.sh", []string{"CLICKGATE_PYTHON_VENV=" + t.TempDir()}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(pl.launcher)
			cmd.Env = append(append(pl.env(), "PATH="+os.Getenv("PATH")), c.env...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("%v, want a non-zero exit", err)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing (the host would read it as a handshake)", stdout.Bytes())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q, want %q", stderr.Bytes(), c.want)
			}
		})
	}
}

// selfSigned makes a certificate like go-plugin's AutoMTLS one.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost", Organization: []string{"HashiCorp"}},
		DNSNames:    []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement | x509.KeyUsageCertSign,
		NotBefore:   time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, _ := x509.MarshalECPrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM
}

// The handshake line and the mTLS behind it, checked directly: only a caller holding the
// key of PLUGIN_CLIENT_CERT gets in, over TLS with the certificate the line carries.
func TestHandshakeAndMTLS(t *testing.T) {
	t.Parallel()
	pl := setup(t)
	hostCert, hostPEM := selfSigned(t)
	cmd := exec.Command(pl.launcher)
	cmd.Env = append(pl.env(), "PATH="+os.Getenv("PATH"), cookieKey+"="+cookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1", "PLUGIN_MIN_PORT=10000", "PLUGIN_MAX_PORT=25000", "PLUGIN_CLIENT_CERT="+string(hostPEM))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr logBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(10 * time.Second):
		t.Fatalf("no handshake line; stderr:\n%s", stderr.String())
	}
	parts := strings.Split(line, "|")
	if len(parts) != 6 || parts[0] != "1" || parts[1] != strconv.Itoa(sdk.ProtocolVersion) || parts[2] != "unix" || parts[4] != "grpc" {
		t.Fatalf("handshake %q, want 1|%d|unix|<socket>|grpc|<cert>", line, sdk.ProtocolVersion)
	}
	der, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil {
		t.Fatalf("certificate field is not unpadded standard base64: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("certificate key %T, want ECDSA P-256", cert.PublicKey)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if st, _ := os.Stat(filepath.Dir(parts[3])); st == nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("socket directory %s must be private", filepath.Dir(parts[3]))
	}

	roots := x509.NewCertPool()
	roots.AddCert(cert)
	otherCert, _ := selfSigned(t)
	check := func(creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient("unix://"+parts[3], grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "plugin"})
		if err != nil {
			return err
		}
		if resp.Status != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health %v", resp.Status)
		}
		return nil
	}
	tlsWith := func(certs ...tls.Certificate) credentials.TransportCredentials {
		return credentials.NewTLS(&tls.Config{Certificates: certs, RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	}
	if err := check(tlsWith(hostCert)); err != nil {
		t.Fatalf("the host's certificate: %v", err)
	}
	for name, creds := range map[string]credentials.TransportCredentials{
		"another certificate": tlsWith(otherCert),
		"no certificate":      tlsWith(),
		"plaintext":           insecure.NewCredentials(),
	} {
		if err := check(creds); err == nil {
			t.Errorf("%s: let in", name)
		}
	}

	// The host dying (its end of the handshake pipe closes) stops the plugin too, socket
	// directory and all: no orphan is left waiting for a Shutdown that never comes.
	stdout.Close()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit once the host is gone: %v\n%s", err, stderr.String())
		}
		exited <- err
	case <-time.After(5 * time.Second):
		t.Fatal("still running 5 s after the host went away")
	}
	if _, err := os.Stat(filepath.Dir(parts[3])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory left behind: %v", err)
	}
}

// gone reports whether process pid has ended; the host reaps it, so not even a zombie
// is left.
func gone(pid int) bool { return syscall.Kill(pid, 0) == syscall.ESRCH }

// Close asks the plugin to stop (Close, then go-plugin's Shutdown) and it exits by itself
// inside the host's 2 s grace; Kill ends it at once.
func TestShutdown(t *testing.T) {
	t.Parallel()
	pl := setup(t)
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		p, logs := launch(t, pl)
		configure(t, p, "http://127.0.0.1:9/x")
		started := logs.waitFor(t, "of the plugin's start", func(rec map[string]any) bool { return rec["msg"] == "serving" })
		sock, _ := started["address"].(string)
		pid := p.PID()
		p.Close(context.Background())
		if !gone(pid) || !p.Exited() {
			t.Fatalf("process %d still there after Close", pid)
		}
		if strings.Contains(logs.String(), "failed to exit gracefully") {
			t.Errorf("the host had to kill it:\n%s", logs.String())
		}
		exit := logs.waitFor(t, "of the exit", func(rec map[string]any) bool { return rec["msg"] == "plugin process exited" })
		if exit["level"] != "INFO" || exit["error"] != nil {
			t.Errorf("exit %v, want a zero exit status", exit)
		}
		if sock == "" {
			t.Errorf("the start record %v has no socket address", started)
		} else if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("socket directory left behind: %v", err)
		}
	})
	t.Run("kill", func(t *testing.T) {
		t.Parallel()
		p, _ := launch(t, pl)
		if _, err := p.Forward(context.Background(), []sdk.Event{clickEvent(t, "early")}); err == nil {
			t.Error("Forward before Configure succeeded")
		}
		pid := p.PID()
		p.Kill()
		if !gone(pid) || !p.Exited() {
			t.Fatalf("process %d still there after Kill", pid)
		}
	})
}

// The generated go-plugin stubs come from copies of go-plugin's .proto files: they must
// be those of the go-plugin this module builds with.
func TestGoPluginProtosMatch(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/hashicorp/go-plugin").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "internal", "plugin")
	for _, name := range []string{"grpc_controller.proto", "grpc_stdio.proto"} {
		ours, err := os.ReadFile(filepath.Join("proto", name))
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("proto/%s differs from %s: copy it again", name, filepath.Join(dir, name))
		}
	}
}

// The Python unit tests (test_forwarder.py) run with the plugin's own interpreter.
func TestPythonUnits(t *testing.T) {
	t.Parallel()
	pl := setup(t)
	cmd := exec.Command(filepath.Join(pl.venv, "bin", "python3"), "-m", "unittest", "-q", "test_forwarder")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PYTHONDONTWRITEBYTECODE=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// End to end through a real clickgate: a tap on a phone and an attributed conversion
// reach the receiver through the Python plugin, as the event documents.
func TestThroughClickgate(t *testing.T) {
	pl := setup(t)
	rec := newReceiver(t)
	const ingest = "ingest-token-0123456789abcdef"
	t.Setenv("PY_EXAMPLE_TOKEN", token)
	plugins, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
		"name": "py", "path": pl.launcher, "linger": "10ms",
		"env":    map[string]string{"CLICKGATE_PYTHON_VENV": pl.venv},
		"config": map[string]any{"url": rec.URL + hookPath + "?" + hookQuery, "token": "${PY_EXAMPLE_TOKEN}"},
	}}})
	pf := filepath.Join(t.TempDir(), "plugins.json")
	if err := os.WriteFile(pf, plugins, 0o600); err != nil {
		t.Fatal(err)
	}
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_PLUGINS_FILE="+pf, "CLICKGATE_INGEST_TOKENS="+ingest)
	g.MustCreate(map[string]any{"slug": "spring", "destination": "https://shop.example.com/spring",
		"utm": map[string]any{"medium": "promotional", "campaign": "spring_sale"}})

	resp := g.Tap("GET", "/spring", map[string]string{"User-Agent": servertest.Android})
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("cgid") == "" {
		t.Fatalf("tap: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	clickID := loc.Query().Get("cgid")
	conv, _ := json.Marshal(map[string]any{"event_id": "order-1001", "type": "purchase", "value": 80, "currency": "USD",
		"click_id": clickID, "user": map[string]any{"email": " Jane.Doe@Example.com ", "phone": "+1 415 555 0100"}})
	req, _ := http.NewRequest("POST", g.Pub+"/v1/conversions", bytes.NewReader(conv))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ingest)
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	if cresp.StatusCode/100 != 2 {
		t.Fatalf("conversion: %d %s", cresp.StatusCode, body)
	}

	var click sdk.ClickEvent
	var conversion sdk.ConversionEvent
	var clickKey, convKey string
	deadline := time.Now().Add(20 * time.Second)
	for click.ClickID == "" || conversion.EventID == "" {
		if time.Now().After(deadline) {
			st, out := g.API("GET", "/api/v1/plugins", nil)
			t.Fatalf("click %q, conversion %q never both arrived; %d requests; plugins %d %v",
				click.ClickID, conversion.EventID, len(rec.Requests()), st, out)
		}
		time.Sleep(50 * time.Millisecond)
		for _, r := range rec.Requests() {
			var head struct {
				EventType string `json:"event_type"`
			}
			json.Unmarshal(r.Body, &head)
			switch head.EventType {
			case sdk.TypeClick:
				json.Unmarshal(r.Body, &click)
				clickKey = r.Header.Get("Idempotency-Key")
			case sdk.TypeConversion:
				json.Unmarshal(r.Body, &conversion)
				convKey = r.Header.Get("Idempotency-Key")
			}
		}
	}
	if click.ClickID != clickID || click.Campaign != "spring_sale" || click.Bot || clickKey != clickID {
		t.Errorf("click %+v (Idempotency-Key %q), want click %s", click, clickKey, clickID)
	}
	if conversion.Attribution == nil || conversion.Attribution.ClickID != clickID || conversion.Attribution.Campaign != "spring_sale" {
		t.Errorf("conversion attribution %+v, want click %s", conversion.Attribution, clickID)
	}
	if u := conversion.User; u == nil || u.Email != "jane.doe@example.com" || u.Phone != "+14155550100" {
		t.Errorf("conversion user %+v, want the normalised email and phone", conversion.User)
	}
	if convKey != conversion.EventID || conversion.SourceEventID != "order-1001" {
		t.Errorf("conversion %q with Idempotency-Key %q", conversion.EventID, convKey)
	}
}

var digits = regexp.MustCompile(`^[0-9]{1,7}$`)

// FuzzResponse: whatever the receiver answers, the result follows from the status, a
// Retry-After never parks an event past an hour, and the token never shows.
func FuzzResponse(f *testing.F) {
	f.Add(uint16(200), "", []byte("ok"))
	f.Add(uint16(229), "12", []byte("slow"))
	f.Add(uint16(303), "Wed, 21 Oct 2015 07:28:00 GMT", []byte(nil))
	f.Add(uint16(300), "Sunday, 06-Nov-94 08:49:37 GMT", []byte("\xff\xfe bad utf-8 \x00"))
	f.Add(uint16(0), "99999999999999999999999", []byte("Bearer "+token))
	f.Add(uint16(201), "Sun Nov  6 08:49:37 2094", []byte(strings.Repeat("é", 300)))
	f.Add(uint16(350), "-5", []byte("{}"))
	pl := setup(f)
	p, logs := launch(f, pl)
	var mu sync.Mutex
	var reply sdktest.Reply
	rec := sdktest.NewRecorder(f, func(sdktest.Request) sdktest.Reply { mu.Lock(); defer mu.Unlock(); return reply })
	cfg, _ := json.Marshal(map[string]string{"url": rec.URL + "/x", "token": token, "timeout": "5s"})
	if err := p.Configure(context.Background(), cfg); err != nil {
		f.Fatal(err)
	}
	ev := clickEvent(f, "fuzz")
	f.Fuzz(func(t *testing.T, code uint16, retryAfter string, body []byte) {
		status := 200 + int(code)%400 // no 1xx: a Go server sends those as interim answers
		mu.Lock()
		reply = sdktest.Reply{Status: status, Header: http.Header{"Retry-After": {retryAfter}}, Body: string(body)}
		mu.Unlock()
		res, err := p.Forward(context.Background(), []sdk.Event{ev})
		if err != nil {
			t.Fatal(err)
		}
		r := res[0]
		want := sdk.StatusFailed
		switch {
		case status < 300:
			want = sdk.StatusDelivered
		case status == 429 || status >= 500:
			want = sdk.StatusRetry
		}
		if r.Status != want {
			t.Fatalf("status %d: %+v, want %v", status, r, want)
		}
		if r.RetryAfter < 0 || r.RetryAfter > time.Hour || (want != sdk.StatusRetry && r.RetryAfter != 0) {
			t.Fatalf("status %d, Retry-After %q: retry after %v", status, retryAfter, r.RetryAfter)
		}
		if want == sdk.StatusRetry && digits.MatchString(retryAfter) {
			n, _ := strconv.Atoi(retryAfter)
			if r.RetryAfter != min(time.Duration(n)*time.Second, time.Hour) {
				t.Fatalf("Retry-After %q: retry after %v", retryAfter, r.RetryAfter)
			}
		}
		if want != sdk.StatusDelivered && !strings.HasPrefix(r.Reason, strconv.Itoa(status)) {
			t.Fatalf("reason %q does not start with the status %d", r.Reason, status)
		}
		if strings.Contains(r.Reason, token) || strings.Contains(logs.String(), token) {
			t.Fatalf("reason %q or the log shows the token", r.Reason)
		}
	})
}
