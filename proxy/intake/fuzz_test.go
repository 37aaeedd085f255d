package intake

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/attribution"
	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

const fuzzToken = "fuzz-ingest-token-0123456789"

// fuzzIntake is an intake on a store of its own, as the server wires it.
func fuzzIntake(f *testing.F) (*Intake, *storage.DB) {
	db, _ := runningStore(f)
	return intakeOn(db), db
}

// runningStore opens a store of the test's own and runs its background work until
// stop is called or the test ends; the store stays open until the test ends.
func runningStore(tb testing.TB) (db *storage.DB, stop func()) {
	db, err := storage.Open(storage.Options{Dir: tb.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	tb.Cleanup(func() { stop(); db.Close() })
	return db, stop
}

// intakeOn is an intake on db, wired as the server wires it, accepting fuzzToken.
func intakeOn(db *storage.DB) *Intake {
	in := New([]string{fuzzToken})
	in.DB, in.Windows, in.IDs = db, attribution.Windows{Default: 7 * 24 * time.Hour}, ids.NewClickIDs(1)
	in.Hasher, in.Region, in.Log = identity.NewHasher([]byte("fuzz-secret")), "US", slog.New(slog.NewTextHandler(io.Discard, nil))
	return in
}

// postConversions sends body to the intake's POST /v1/conversions and returns the
// status and the decoded JSON answer.
func postConversions(tb testing.TB, in *Intake, body string) (int, map[string]any) {
	tb.Helper()
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/v1/conversions")
	req.Header.Set("Authorization", "Bearer "+fuzzToken)
	req.SetBodyString(body)
	var rc fasthttp.RequestCtx
	rc.Init(&req, nil, nil)
	in.Conversions(&rc)
	var out map[string]any
	if err := json.Unmarshal(rc.Response.Body(), &out); err != nil {
		tb.Fatalf("answer is not JSON: %q", rc.Response.Body())
	}
	return rc.Response.StatusCode(), out
}

// serve runs a handler on a request the way the server would, and checks what every
// answer must be: JSON, 200 or a client error, and after a client error the store as
// it was.
func serve(t *testing.T, db *storage.DB, h fasthttp.RequestHandler, req *fasthttp.Request) *fasthttp.RequestCtx {
	head := db.OutboxHead()
	var ctx fasthttp.RequestCtx
	ctx.Init(req, nil, nil)
	h(&ctx)
	st, body := ctx.Response.StatusCode(), ctx.Response.Body()
	if !json.Valid(body) {
		t.Fatalf("%d answer is not JSON: %q", st, body)
	}
	switch {
	case st == fasthttp.StatusOK:
	case st >= 400 && st < 500:
		if got := db.OutboxHead(); got != head {
			t.Fatalf("%d answer %s, but the outbox moved from %d to %d", st, body, head, got)
		}
	default:
		t.Fatalf("status %d: %s", st, body)
	}
	return &ctx
}

// FuzzConversions sends whatever body a client may to POST /v1/conversions, through the
// intake's own parsing: the batch probe, each item's strict decode, validation.
func FuzzConversions(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"o-1","type":"purchase","value":10,"currency":"USD","user":{"email":"a@b.co","phone":"+14155552671"}}`,
		`{"conversions":[{"event_id":"o-2","type":"lead"},{"event_id":"o-2","type":"lead","status":"rejected"},{"event_id":" "}]}`,
		`{"conversions":[]}`, `{"conversions":null}`, `{"conversions":{}}`, `{"event_id":"o-3","type":"lead"} {}`,
		`{"event_id":"o-4","type":"purchase","value":1e999,"currency":"USD"}`, `{"event_id":"o-5","type":"lead","click_id":"0000000000000000000000000u"}`,
		`{"event_id":"o-6","type":"lead","occurred_at":"2026-01-01T00:00:00Z","visitor_id":"05gq0000000000000000000000"}`,
		"\xff{", `[]`, ``, `{"event_id":"o-7","type":"lead","conversions":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	in, db := fuzzIntake(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/v1/conversions")
		req.Header.Set("Authorization", "Bearer "+fuzzToken)
		req.Header.SetContentType("application/json")
		req.SetBody(body)
		ctx := serve(t, db, in.Conversions, &req)
		if ctx.Response.StatusCode() != fasthttp.StatusOK {
			return
		}
		// A batch answers each item; one conversion answers itself.
		var out struct {
			Results      []json.RawMessage `json:"results"`
			ConversionID string            `json:"conversion_id"`
		}
		if err := json.Unmarshal(ctx.Response.Body(), &out); err != nil || out.Results == nil && out.ConversionID == "" {
			t.Fatalf("200 without a conversion: %s (%v)", ctx.Response.Body(), err)
		}
	})
}

// FuzzPostback sends whatever query a tracker may to GET /v1/postback.
func FuzzPostback(f *testing.F) {
	for _, s := range []string{
		"event_id=p-1&type=purchase&value=12.5&currency=EUR", "event_id=p-2&type=lead&click_id=0000000000000000000000000u",
		"event_id=p-3&type=purchase&value=NaN&currency=USD", "event_id=p-4&type=purchase&value=Inf&currency=USD",
		"event_id=p-5&type=purchase&value=0x1p4&currency=USD", "event_id=p-6&type=purchase&value=1e999&currency=USD",
		"event_id=p-7&type=lead&status=refunded", "event_id=%ff&type=lead", "type=lead&type=purchase&event_id=p-8", "",
	} {
		f.Add(s)
	}
	in, db := fuzzIntake(f)
	f.Fuzz(func(t *testing.T, query string) {
		var req fasthttp.Request
		req.Header.SetMethod("GET")
		req.SetRequestURI("/v1/postback?" + query)
		req.Header.Set("Authorization", "Bearer "+fuzzToken)
		serve(t, db, in.Postback, &req)
	})
}
