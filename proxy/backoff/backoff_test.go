package backoff

import (
	"context"
	"testing"
	"time"
)

func TestBackoffGrowsWithJitterAndResets(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for i, base := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		base *= time.Millisecond
		if i >= 4 {
			base = time.Second
		}
		d := b.Next()
		if d < base/2 || d >= base/2+base {
			t.Fatalf("step %d: %s outside [%s, %s)", i, d, base/2, base/2+base)
		}
	}
	b.Reset()
	if d := b.Next(); d >= 150*time.Millisecond {
		t.Fatalf("after reset: %s", d)
	}
}

func TestSleepStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("slept through a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("short sleep interrupted")
	}
}
