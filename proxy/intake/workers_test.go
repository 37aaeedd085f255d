package intake

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWorkersRunEveryJobOnceAndExitWhenIdle(t *testing.T) {
	before := runtime.NumGoroutine()
	w := newWorkers(50 * time.Millisecond)
	const jobs, inFlight = 2000, 8
	var ran [jobs]atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	for i := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		w.do(func() {
			defer func() { <-sem; wg.Done() }()
			ran[i].Add(1)
		})
	}
	wg.Wait()
	for i := range ran {
		if n := ran[i].Load(); n != 1 {
			t.Fatalf("job %d ran %d times", i, n)
		}
	}
	// Workers are reused: far fewer are started than there are jobs.
	if n := w.started.Load(); n > jobs/10 {
		t.Errorf("%d workers started for %d jobs, at most %d in flight", n, jobs, inFlight)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines left after the workers' idle time, %d before", n, before)
	}
}
