package relay

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A replay waiting for another one to finish gives up when its request ends, answering
// with its context's error and nothing replayed, instead of waiting on and then
// returning at once.
func TestReplayWaitingItsTurnGivesUpWithItsRequest(t *testing.T) {
	r := &Relay{replaying: make(chan struct{}, 1)}
	r.replaying <- struct{}{} // a replay runs
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	type answer struct {
		replayed int
		err      error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := r.Replay(ctx, nil)
		done <- answer{res.Replayed, err}
	}()
	select {
	case a := <-done:
		if !errors.Is(a.err, context.DeadlineExceeded) || a.replayed != 0 {
			t.Fatalf("Replay = %d replayed, %v; want none and the deadline's error", a.replayed, a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a replay waiting its turn is still waiting 30 s after its request ended")
	}
	if len(r.replaying) != 1 {
		t.Fatal("the replay that gave up released the running replay's turn")
	}
}
