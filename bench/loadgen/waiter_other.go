//go:build !linux

package loadgen

import "time"

// waiter sleeps with Go's timers (millisecond precision when the runtime is idle).
type waiter struct{ base time.Time }

func newWaiter(base time.Time) (*waiter, error) { return &waiter{base: base}, nil }

func (w *waiter) until(at time.Duration) error {
	time.Sleep(time.Until(w.base.Add(at)))
	return nil
}

func (w *waiter) close() {}
