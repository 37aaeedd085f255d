package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// agg merges what the workers measured. Workers batch their samples and take the lock
// once per batch, so one histogram serves every connection without per-request locking.
type agg struct {
	mu        sync.Mutex
	latency   *hdrhistogram.Histogram
	service   *hdrhistogram.Histogram
	genLag    *hdrhistogram.Histogram
	answered  int64
	responses int64
	arrived   int64
	reconns   int64
	errs      [len(errKinds)]int64
	slices    []int64
}

func newAgg(cfg Config) *agg {
	return &agg{latency: NewHistogram(), service: NewHistogram(), genLag: NewHistogram(), slices: make([]int64, sliceCount(cfg))}
}

// sliceCount is how many spans of cfg.Slice a measured interval can touch: one more than
// fit in Duration, as the clock's interval may run a little long.
func sliceCount(cfg Config) int { return int(cfg.Duration/cfg.Slice) + 1 }

func (a *agg) result(cfg Config, elapsed time.Duration) *Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	res := &Result{
		Open: cfg.Rate > 0, TargetRate: cfg.Rate, Conns: cfg.Conns, Elapsed: elapsed,
		Answered: a.answered, Responses: a.responses, ArrivedInInterval: a.arrived, Reconnects: a.reconns,
		Errors: map[string]int64{}, Latency: a.latency, Service: a.service, GeneratorLag: a.genLag,
		Slices: a.slices, Slice: cfg.Slice,
	}
	for i, n := range a.errs {
		if n > 0 {
			res.Errors[errKinds[i]] = n
		}
	}
	return res
}

const batch = 256

// workerStats is one connection's unshared tally.
type workerStats struct {
	a                                     *agg
	lat, svc, lag                         [batch]int64
	n, nlag                               int
	answered, responses, arrived, reconns int64
	errs                                  [len(errKinds)]int64
	slices                                []int64
}

func newWorkerStats(a *agg) *workerStats {
	return &workerStats{a: a, slices: make([]int64, len(a.slices))}
}

// counts reports whether an event belongs to the measured interval: by intended send time
// in an open-loop run (so late answers to scheduled requests still count), by the time
// it happened in a closed-loop one.
func (r *run) counts(intended, at time.Duration) bool {
	if r.interval > 0 {
		return intended >= r.mStart && intended < r.end
	}
	return int64(at) >= r.winStart.Load() && int64(at) <= r.winEnd.Load()
}

// answer records one answer. idle says the connection was free before the request was
// due, so that how late it left is the generator's own lateness.
func (s *workerStats) answer(r *run, kind string, intended, sent, done time.Duration, idle bool) {
	if ws := r.winStart.Load(); int64(done) >= ws && int64(done) <= r.winEnd.Load() {
		s.arrived++
		if i := (int64(done) - ws) / int64(r.cfg.Slice); kind == "" && i < int64(len(s.slices)) {
			s.slices[i]++
		}
	}
	if !r.counts(intended, done) {
		return
	}
	s.responses++
	if kind != "" {
		s.errs[kindIndex(kind)]++
		return
	}
	s.answered++
	s.lat[s.n] = micros(done - intended)
	s.svc[s.n] = micros(done - sent)
	if idle && r.interval > 0 {
		s.lag[s.nlag] = micros(sent - intended)
		s.nlag++
	}
	if s.n++; s.n == batch {
		s.flush()
	}
}

func (s *workerStats) fail(r *run, kind string, at, intended time.Duration) {
	if r.interval == 0 {
		intended = at
	}
	if r.counts(intended, at) {
		s.errs[kindIndex(kind)]++
	}
}

func (s *workerStats) reconnects(r *run, at time.Duration) {
	if int64(at) >= r.winStart.Load() && int64(at) <= r.winEnd.Load() {
		s.reconns++
	}
}

func (s *workerStats) flush() {
	a := s.a
	a.mu.Lock()
	for i := 0; i < s.n; i++ {
		a.latency.RecordValue(s.lat[i])
		a.service.RecordValue(s.svc[i])
	}
	for i := 0; i < s.nlag; i++ {
		a.genLag.RecordValue(s.lag[i])
	}
	a.answered += s.answered
	a.responses += s.responses
	a.arrived += s.arrived
	a.reconns += s.reconns
	for i, n := range s.errs {
		a.errs[i] += n
	}
	for i, n := range s.slices {
		a.slices[i] += n
	}
	a.mu.Unlock()
	clear(s.slices)
	s.n, s.nlag, s.answered, s.responses, s.arrived, s.reconns = 0, 0, 0, 0, 0, 0
	s.errs = [len(errKinds)]int64{}
}

// micros converts to whole microseconds inside the histogram's range (values past the
// top are clamped rather than dropped, so a sample is never lost).
func micros(d time.Duration) int64 {
	v := int64(d / time.Microsecond)
	if v < histMin {
		return histMin
	}
	return min(v, histMax)
}
