package pluginhost

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/storage"
)

// A plugin's word on when to retry is honoured up to sdk.MaxRetryAfter: a forwarder that
// passes on a bogus header (a year, an overflowed number) cannot park its stream.
func TestSettleCapsRetryAfter(t *testing.T) {
	r := &runner{spec: Spec{Name: "cap", MaxAttempts: 10}, log: slog.Default()}
	for _, tc := range []struct {
		name  string
		waits []time.Duration
		want  time.Duration
	}{
		{"none asked", []time.Duration{0, 0}, 0},
		{"the longest asked", []time.Duration{time.Second, 3 * time.Second}, 3 * time.Second},
		{"a year", []time.Duration{time.Second, 365 * 24 * time.Hour}, sdk.MaxRetryAfter},
		{"overflowed", []time.Duration{1<<63 - 1}, sdk.MaxRetryAfter},
		{"negative", []time.Duration{-time.Hour}, 0},
	} {
		batch := make([]*pending, len(tc.waits))
		results := make([]sdk.Result, len(tc.waits))
		for i, w := range tc.waits {
			batch[i] = &pending{seq: uint64(i)}
			results[i] = sdk.Result{Status: sdk.StatusRetry, RetryAfter: w, Reason: "busy"}
		}
		if got := r.settle(context.Background(), batch, results); got != tc.want {
			t.Errorf("%s: wait %s, want %s", tc.name, got, tc.want)
		}
		for i, p := range batch {
			if p == nil || p.attempts != 1 || p.lastWhy != "busy" {
				t.Errorf("%s: event %d after a retry: %+v", tc.name, i, p)
			}
		}
	}
	// Delivered events leave the batch; a retried one stays.
	batch := []*pending{{seq: 1}, {seq: 2}}
	r.settle(context.Background(), batch, []sdk.Result{{Status: sdk.StatusDelivered}, {Status: sdk.StatusRetry}})
	if batch[0] != nil || batch[1] == nil {
		t.Fatalf("after delivered and retry: %+v", batch)
	}
}

// A store that refuses writes (a full disk, a closed store) does not hold a runner, and
// with it the server's shutdown, for ever: the dead letter and the cursor are retried
// until the runner's context ends, and the event stays unresolved, for a restart to
// deliver again.
func TestStoreWritesGiveUpAtShutdown(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	db.Close() // every write now fails
	r := &runner{spec: Spec{Name: "full", MaxAttempts: 1}, db: db, consumer: Consumer("full"), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	done := make(chan []*pending, 1)
	go func() {
		batch := []*pending{{seq: 7, ev: sdk.Event{ID: "e7", Type: sdk.TypeClick}}}
		r.settle(ctx, batch, []sdk.Result{sdk.Failed("refused")})
		r.advance(ctx, 8)
		done <- batch
	}()
	select {
	case batch := <-done:
		if batch[0] == nil {
			t.Error("an event whose dead letter was never stored left the batch")
		}
		if r.cursor != 0 {
			t.Errorf("the runner's cursor moved to %d without being stored", r.cursor)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("settle and advance still retrying 20 s after their context ended")
	}
}

// An event the plugin did not try uses up no attempt while the call tried others, however
// many calls leave it unsent; a call that tried nothing counts an attempt for each, up to
// a dead letter, so a plugin that never gets to send cannot stall its stream for ever.
func TestSettleNotSent(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	r := &runner{spec: Spec{Name: "ns", MaxAttempts: 3}, db: db, consumer: Consumer("ns"), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx := context.Background()
	unsent := &pending{seq: 2, ev: sdk.Event{ID: "e2", Type: sdk.TypeClick}}
	for call := range 10 {
		tried := &pending{seq: uint64(100 + call), ev: sdk.Event{ID: "t", Type: sdk.TypeClick}}
		batch := []*pending{tried, unsent}
		wait := r.settle(ctx, batch, []sdk.Result{sdk.Retry(time.Second, "429"), sdk.NotSent(2*time.Second, "not sent after a 429")})
		if batch[1] == nil || unsent.attempts != 0 || unsent.lastWhy != "not sent after a 429" || tried.attempts != 1 || wait != 2*time.Second {
			t.Fatalf("call %d: unsent %+v, tried %+v, wait %s", call, unsent, tried, wait)
		}
	}
	for call := 1; call <= 3; call++ {
		batch := []*pending{unsent}
		r.settle(ctx, batch, []sdk.Result{sdk.NotSent(0, "out of time")})
		if unsent.attempts != call || (batch[0] == nil) != (call == 3) {
			t.Fatalf("call %d sending nothing: %+v, left the batch %v", call, unsent, batch[0] == nil)
		}
	}
	dls, err := db.DeadLetters(Consumer("ns"), 0, 10)
	if err != nil || len(dls) != 1 || dls[0].EventID != "e2" || !strings.Contains(dls[0].Reason, "gave up after 3 attempts: out of time") {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}
}
