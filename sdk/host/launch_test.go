package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/host"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A real plugin process: its stderr reaches the host's log under its name, and a batch
// far over gRPC's 4 MB default goes through in one call.
func TestLaunchLogsAndLargeBatches(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/webhook").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil)).With("plugin", "hook")
	rec := sdktest.NewRecorder(t, nil)
	ctx := context.Background()
	p, err := host.Launch(ctx, host.Config{Path: bin, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.Configure(ctx, json.RawMessage(fmt.Sprintf(`{"url":%q,"secret":"short","max_batch":1000}`, rec.URL))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "shorter than 16 characters") {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's stderr warning never reached the host log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"plugin":"hook"`) {
		t.Fatalf("plugin log lines lack the plugin's name:\n%s", logs.String())
	}
	pad := strings.Repeat("x", 1000)
	evs := make([]sdk.Event, 6000) // about 6 MB in one Forward
	for i := range evs {
		evs[i] = sdk.Event{ID: fmt.Sprint(i), Type: sdk.TypeClick, Time: time.Now(), JSON: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))}
	}
	res, err := p.Forward(ctx, evs)
	if err != nil {
		t.Fatalf("large batch: %v", err)
	}
	for i, r := range res {
		if r.Status != sdk.StatusDelivered {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	if n := len(rec.Requests()); n != 6 {
		t.Fatalf("%d requests for 6000 events at max_batch 1000", n)
	}
}

type recordTimes struct{ got []time.Time }

func (r *recordTimes) Info() sdk.Info                                   { return sdk.Info{Name: "t"} }
func (r *recordTimes) Configure(context.Context, json.RawMessage) error { return nil }
func (r *recordTimes) Close(context.Context) error                      { return nil }
func (r *recordTimes) Forward(_ context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	for _, e := range evs {
		r.got = append(r.got, e.Time)
	}
	return sdk.All(len(evs), sdk.Delivered()), nil
}

func TestEventTimesSurviveTheWire(t *testing.T) {
	f := &recordTimes{}
	p := sdktest.Connect(t, f)
	at := time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC)
	if _, err := p.Forward(context.Background(), []sdk.Event{{ID: "a", Time: at}, {ID: "b"}}); err != nil {
		t.Fatal(err)
	}
	if !f.got[0].Equal(at) || !f.got[1].IsZero() {
		t.Fatalf("times %v", f.got)
	}
}
