package pluginhost

import (
	"log/slog"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
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
		if got := r.settle(batch, results); got != tc.want {
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
	r.settle(batch, []sdk.Result{{Status: sdk.StatusDelivered}, {Status: sdk.StatusRetry}})
	if batch[0] != nil || batch[1] == nil {
		t.Fatalf("after delivered and retry: %+v", batch)
	}
}
