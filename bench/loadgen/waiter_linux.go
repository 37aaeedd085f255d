package loadgen

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// waiter sleeps until a point of the run's clock with microsecond precision. Go's own
// timers are late by up to a millisecond when the runtime is idle (it waits for the next
// timer in epoll_wait, whose timeout is in whole milliseconds), which would add up to a
// millisecond of the generator's lateness to every constant-rate latency. A timerfd armed
// at an absolute CLOCK_MONOTONIC time wakes the netpoller on time.
type waiter struct {
	f        *os.File
	monoBase int64 // CLOCK_MONOTONIC at the run's time zero, in ns
}

// newWaiter returns a waiter whose zero is base (a time.Now() reading taken just before).
func newWaiter(base time.Time) (*waiter, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("pacer timerfd: %w", err)
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pacer clock: %w", err)
	}
	// Both clocks are CLOCK_MONOTONIC (Go's monotonic reading is too); align their zeros.
	mono := ts.Nano() - int64(time.Since(base))
	// A non-blocking descriptor becomes a pollable File: Read parks on the netpoller.
	return &waiter{f: os.NewFile(uintptr(fd), "pacer"), monoBase: mono}, nil
}

// until sleeps until the run's clock reads at.
func (w *waiter) until(at time.Duration) error {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(w.monoBase + int64(at))}
	raw, err := w.f.SyscallConn()
	if err != nil {
		return fmt.Errorf("pacer: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.TimerfdSettime(int(fd), unix.TFD_TIMER_ABSTIME, &spec, nil)
	}); err != nil {
		return fmt.Errorf("pacer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("pacer timerfd: %w", serr)
	}
	var b [8]byte
	if _, err := w.f.Read(b[:]); err != nil {
		return fmt.Errorf("pacer: %w", err)
	}
	return nil
}

func (w *waiter) close() { w.f.Close() }
