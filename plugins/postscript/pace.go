package main

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clickgate/clickgate/sdk"
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

// retryAfter reads Retry-After (the SDK's reading), else X-RateLimit-Reset (seconds,
// or a Unix time); 0 when neither is there or readable. Postscript documents neither
// header, so they are read only in case it sends them.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if h.Get("Retry-After") != "" {
		return sdk.RetryAfter(h, now)
	}
	v := strings.TrimSpace(h.Get("X-RateLimit-Reset"))
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case v == "" || err != nil || n <= 0:
		return 0
	case n > 1_000_000_000: // a Unix time, not a number of seconds
		return seconds(n - now.Unix())
	default:
		return seconds(n)
	}
}

func seconds(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(min(n, int64(sdk.MaxRetryAfter/time.Second))) * time.Second
}
