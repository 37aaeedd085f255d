// Package backoff spaces out retries: exponential delays with jitter, so many edges or
// plugins that failed together do not retry in step.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields growing delays between Min and Max.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the current delay with ±50% jitter and doubles it, up to Max.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	}
	d := b.cur/2 + rand.N(b.cur)
	b.cur = min(b.cur*2, b.Max)
	return d
}

// Reset starts again from Min after a success.
func (b *Backoff) Reset() { b.cur = b.Min }

// Sleep waits for d or until ctx ends; it reports whether the full wait happened.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
