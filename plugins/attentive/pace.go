package main

import (
	"context"
	"sync"
	"time"
)

// pacer spaces requests evenly at a fixed rate, shared by the workers of a call and
// kept across calls, so a stream of batches stays under the account's rate limit
// instead of discovering it through 429s.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func newPacer(perSecond float64) *pacer {
	return &pacer{interval: time.Duration(float64(time.Second) / perSecond)}
}

// wait blocks until the caller's turn, or returns ctx's error if the turn would come
// after ctx ends (then the turn is not taken).
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := time.Now()
	at := now
	if p.next.After(now) {
		at = p.next
	}
	if dl, ok := ctx.Deadline(); ok && at.After(dl) {
		p.mu.Unlock()
		return context.DeadlineExceeded
	}
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ctx.Err()
}
