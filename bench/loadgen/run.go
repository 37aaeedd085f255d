// Package loadgen is clickgate's HTTP load generator: raw keep-alive TCP connections,
// pre-built requests and a minimal response reader, so that the generator costs little
// CPU per request on a machine it shares with the server under test.
//
// It runs closed loop (each connection sends its next request when the answer arrives:
// saturation throughput) or open loop at a constant rate that corrects for coordinated
// omission: every request has an intended send time on a fixed schedule, latency is
// measured from that time, and a stalled connection or server does not pause the
// schedule. It never follows redirects and checks every answer against what its request
// expects; a wrong answer is an error, never throughput.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Error kinds counted by a run.
const (
	KindStatus    = "status"    // answer with another status than expected
	KindLocation  = "location"  // Location missing or not starting with the expected URL
	KindClickID   = "click_id"  // Location without the click parameter
	KindBody      = "body"      // body without the expected bytes
	KindConnect   = "connect"   // the connection could not be opened
	KindReset     = "reset"     // connection reset or broken pipe
	KindClosed    = "closed"    // the server closed the connection without answering
	KindTimeout   = "timeout"   // no answer within Config.Timeout
	KindMalformed = "malformed" // not a valid HTTP/1.x answer, or too large
	KindOther     = "other"     // any other transport error
)

var errKinds = [...]string{KindStatus, KindLocation, KindClickID, KindBody, KindConnect, KindReset, KindClosed, KindTimeout, KindMalformed, KindOther}

func kindIndex(k string) int {
	for i, s := range errKinds {
		if s == k {
			return i
		}
	}
	return len(errKinds) - 1
}

// Histogram range: 1 µs to 10 minutes at 3 significant digits. Values are microseconds.
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

// minPace is the shortest sleep of the open-loop pacer. Above 1/minPace requests per
// second it releases the requests due in each minPace at once, so its wake-ups (two
// system calls each) stay few; a request then leaves at most minPace late, and that
// lateness is part of its measured latency.
const minPace = 50 * time.Microsecond

// NewHistogram returns an empty latency histogram in microseconds with the range the
// generator records into.
func NewHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// Config is one run.
type Config struct {
	// Addr is the server's host:port (also sent as Host unless the requests say otherwise).
	Addr string
	// Conns is the number of keep-alive connections (default 64).
	Conns int
	// Rate is the constant request rate per second of an open-loop run; 0 runs closed
	// loop. Open loop needs enough connections to carry Rate × latency requests in flight.
	Rate float64
	// Warmup runs before the measured interval; nothing in it is counted.
	Warmup time.Duration
	// Duration is the measured interval.
	Duration time.Duration
	// Timeout bounds the wait for one answer (default 5 s); past it the connection is
	// closed and the request counted as a timeout.
	Timeout time.Duration
	// Source builds the requests.
	Source Source
	// Seed makes builders' random sequences and identifiers differ between runs.
	Seed uint64
	// Observe, when set, is called with every correct answer (also outside the measured
	// interval) from the connection's goroutine; worker is the connection's index in
	// [0, Conns), so an observer can keep per-worker state without locks.
	Observe func(worker int, resp *Response)
	// Begin and End, when set, are called at the start and the end of the measured
	// interval (e.g. to read the server's CPU time at the same instants).
	Begin, End func()
	// Slice is the length of the spans the measured interval is cut into for
	// Result.Slices (default 1 s).
	Slice time.Duration
}

// Result is what a run measured over its measured interval.
type Result struct {
	// Open tells an open-loop (constant rate) run from a closed-loop one.
	Open bool
	// TargetRate is the open-loop rate asked for.
	TargetRate float64
	// Conns is the number of connections.
	Conns int
	// Elapsed is the measured interval.
	Elapsed time.Duration
	// Answered counts correct answers in the interval.
	Answered int64
	// Responses counts every parsed answer, correct or not.
	Responses int64
	// ArrivedInInterval counts every parsed answer that arrived inside the measured
	// interval, whatever its intended send time: the work the server did in that span,
	// which is what its CPU time over the same span is divided by.
	ArrivedInInterval int64
	// Errors counts failures by kind (wrong answers and transport errors).
	Errors map[string]int64
	// Unsent counts open-loop requests whose intended send time fell in the interval but
	// that no connection was free to send before it ended (the server was over
	// capacity). Each is in Latency with the time it had waited at the end, a lower
	// bound of its true latency.
	Unsent int64
	// Reconnects counts connections opened after the first one of each worker.
	Reconnects int64
	// Slices counts the correct answers that arrived in each whole Config.Slice of the
	// measured interval, in order (a last, shorter span is left out): a server whose
	// throughput comes and goes shows it here, where the interval's rate averages it away.
	Slices []int64
	// Slice is the length of each of Slices' spans.
	Slice time.Duration
	// Latency holds microseconds from the intended send time (open loop) or the actual
	// send time (closed loop) to the complete answer, for correct answers.
	Latency *hdrhistogram.Histogram
	// Service holds microseconds from the actual send to the answer: the uncorrected
	// figure, which hides the time a request waited for a stalled connection.
	Service *hdrhistogram.Histogram
	// GeneratorLag holds microseconds from the intended to the actual send time of the
	// open-loop requests whose connection was free before they were due: the
	// generator's own lateness (pacer wake-up, scheduling, building the request), which
	// is inside Latency. Requests that waited for a busy connection are not in it.
	GeneratorLag *hdrhistogram.Histogram
}

// Rate is correct answers per second over the measured interval.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Answered) / r.Elapsed.Seconds()
}

// ErrorCount is the total of all error kinds.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, v := range r.Errors {
		n += v
	}
	return n
}

// Run performs one run and returns what it measured. It stops by itself after Warmup +
// Duration (plus at most Timeout for answers still in flight) or when ctx ends.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Source == nil || cfg.Addr == "" || cfg.Duration <= 0 {
		return nil, errors.New("loadgen: Addr, Source and Duration are required")
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Slice <= 0 {
		cfg.Slice = time.Second
	}
	if cfg.Rate < 0 || math.IsNaN(cfg.Rate) || math.IsInf(cfg.Rate, 0) {
		return nil, fmt.Errorf("loadgen: invalid rate %v", cfg.Rate)
	}
	r := &run{cfg: cfg, base: time.Now(), agg: newAgg(cfg)}
	r.mStart = r.cfg.Warmup
	r.end = r.cfg.Warmup + r.cfg.Duration
	r.winStart.Store(math.MaxInt64)
	r.winEnd.Store(math.MaxInt64)
	if cfg.Rate > 0 {
		r.interval = 1e9 / cfg.Rate
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.ctx = ctx
	if cfg.Rate > 0 {
		w, err := newWaiter(r.base)
		if err != nil {
			return nil, err
		}
		defer w.close()
		r.slots = make(chan uint64, cfg.Conns)
		r.stopPacer = make(chan struct{})
		go r.pace(w)
	}

	var wg sync.WaitGroup
	for w := 0; w < cfg.Conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(w)
		}()
	}
	// The clock: open the measured interval, call the hooks at its edges, then stop. A
	// closed-loop interval runs between the instants the clock really woke, so the hooks
	// (e.g. reading the server's CPU time) and the counts cover the same span.
	sleep := func(until time.Duration) bool {
		t := time.NewTimer(until - r.now())
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	elapsed := cfg.Duration
	if sleep(r.mStart) {
		began := r.now()
		r.winStart.Store(int64(began))
		if cfg.Begin != nil {
			cfg.Begin()
		}
		// The interval lasts Duration from when the clock really woke, so that a late
		// wake-up does not cut its last slice short.
		if sleep(began + cfg.Duration) {
			ended := r.now()
			r.winEnd.Store(int64(ended))
			if cfg.End != nil {
				cfg.End()
			}
			if cfg.Rate == 0 {
				elapsed = ended - began
			}
		}
	}
	r.stopped.Store(true)
	if cfg.Rate > 0 {
		close(r.stopPacer)
	}
	if cfg.Rate == 0 {
		// Answers in flight at the end are outside the interval: unblock their reads now.
		r.closeAll()
	} else {
		// Open loop: answers to requests sent before the end are measured; each is bounded
		// by its own deadline, and this only guards against a worker stuck elsewhere.
		go func() {
			t := time.NewTimer(cfg.Timeout + time.Second)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			r.closeAll()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: run interrupted: %w", err)
	}
	if r.paceErr != nil {
		return nil, r.paceErr
	}
	res := r.agg.result(cfg, elapsed)
	if ws, we := r.winStart.Load(), r.winEnd.Load(); we != math.MaxInt64 {
		res.Slices = res.Slices[:min(int((we-ws)/int64(cfg.Slice)), len(res.Slices))]
	} else {
		res.Slices = nil
	}
	if cfg.Rate > 0 {
		r.countUnsent(res)
	}
	return res, nil
}

type run struct {
	cfg      Config
	ctx      context.Context
	base     time.Time
	mStart   time.Duration
	end      time.Duration
	interval float64 // ns between open-loop slots
	next     atomic.Uint64
	stopped  atomic.Bool
	agg      *agg
	// winStart and winEnd bound a closed-loop interval in ns since base, as the clock
	// observed them (MaxInt64 until then).
	winStart, winEnd atomic.Int64

	abandonedMu sync.Mutex
	abandoned   []uint64 // open-loop slots taken but not sent because the run had ended

	// slots carries open-loop slot numbers from the pacer to free connections, in order.
	slots     chan uint64
	stopPacer chan struct{}
	paceErr   error

	mu    sync.Mutex
	conns map[int]net.Conn
}

func (r *run) now() time.Duration { return time.Since(r.base) }

func (r *run) slotTime(i uint64) time.Duration { return time.Duration(float64(i) * r.interval) }

func (r *run) track(w int, c net.Conn) {
	r.mu.Lock()
	if r.conns == nil {
		r.conns = map[int]net.Conn{}
	}
	if c == nil {
		delete(r.conns, w)
	} else {
		r.conns[w] = c
	}
	r.mu.Unlock()
}

// closeAll unblocks every worker: reads fail at once and nothing after the stop counts.
func (r *run) closeAll() {
	r.mu.Lock()
	for _, c := range r.conns {
		c.SetDeadline(time.Unix(1, 0))
	}
	r.mu.Unlock()
}

// pace releases open-loop slots to the workers at their intended times, in order. If
// no connection is free it waits for one: the slots keep their intended times, so the
// wait is measured. It stops at the end of the run. Warm-up slots still unsent when the
// measured interval begins are skipped, so that an over-capacity warm-up does not fill
// the interval with a backlog that is never counted.
func (r *run) pace(w *waiter) {
	defer close(r.slots)
	first := uint64(math.Ceil(float64(r.mStart) / r.interval))
	for i := uint64(0); ; {
		t := r.slotTime(i)
		now := r.now()
		if t >= r.end || now >= r.end {
			return
		}
		if i < first && now >= r.mStart {
			i, t = first, r.slotTime(first)
		}
		if t > now {
			if err := w.until(max(t, now+minPace)); err != nil {
				r.paceErr = err
				return
			}
			continue
		}
		select {
		case r.slots <- i:
			i++
			r.next.Store(i)
		case <-r.stopPacer:
			return
		case <-r.ctx.Done():
			return
		}
	}
}

// countUnsent adds the open-loop slots of the measured interval that were never sent:
// those no worker took before the end, and those taken but dropped at the end.
func (r *run) countUnsent(res *Result) {
	last := uint64(math.Ceil(float64(r.end) / r.interval)) // slots [0, last) are due before the end
	first := uint64(math.Ceil(float64(r.mStart) / r.interval))
	record := func(i uint64) {
		res.Unsent++
		res.Latency.RecordValue(micros(r.end - r.slotTime(i)))
	}
	for i := max(min(r.next.Load(), last), first); i < last; i++ {
		record(i)
	}
	for _, i := range r.abandoned {
		if i >= first && i < last {
			record(i)
		}
	}
}

// worker owns one connection: it builds, sends, reads and checks, and reconnects after a
// transport error.
func (r *run) worker(w int) {
	b := r.cfg.Source.NewBuilder(r.cfg.Seed<<20 | uint64(w))
	var (
		req      Request
		resp     Response
		conn     net.Conn
		rd       = NewReader(nil, 8192)
		deadline time.Duration
		dials    int
		st       = newWorkerStats(r.agg)
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
		r.track(w, nil)
		st.flush()
	}()
	for {
		var intended time.Duration
		idle := false
		if r.interval > 0 {
			waitFrom := r.now()
			slot, ok := <-r.slots
			if !ok {
				return
			}
			intended = r.slotTime(slot)
			idle = waitFrom <= intended
			now := r.now()
			if now >= r.end {
				// Due before the end but not sent by then: the server fell behind the
				// schedule. It counts as unsent, with the wait it had at the end.
				r.abandonedMu.Lock()
				r.abandoned = append(r.abandoned, slot)
				r.abandonedMu.Unlock()
				continue
			}
			if intended < r.mStart && now >= r.mStart {
				continue // a warm-up request still waiting when the interval began: dropped
			}
		} else if r.stopped.Load() || r.ctx.Err() != nil {
			return
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp", r.cfg.Addr, r.cfg.Timeout)
			if err != nil {
				st.fail(r, KindConnect, r.now(), intended)
				// Do not spin on a refused connection; the schedule goes on without us.
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if dials++; dials > 1 {
				st.reconnects(r, r.now())
			}
			conn = c
			rd.Reset(conn)
			deadline = 0
			r.track(w, conn)
			if r.stopped.Load() && r.interval == 0 {
				return
			}
		}
		b.Build(&req)
		sent := r.now()
		if r.interval == 0 {
			intended = sent
		}
		// Refresh the deadline only when it is closer than half the timeout: setting it
		// on every request would cost a timer update per request.
		if sent+r.cfg.Timeout/2 > deadline {
			deadline = sent + r.cfg.Timeout
			conn.SetDeadline(r.base.Add(deadline))
		}
		_, err := conn.Write(req.Raw)
		if err == nil {
			err = rd.Read(&resp, req.BodyContains != nil)
			if err == nil && rd.Buffered() > 0 {
				err = fmt.Errorf("%w: %d bytes after the answer", ErrMalformed, rd.Buffered())
			}
		}
		done := r.now()
		if err != nil {
			st.fail(r, classify(err), done, intended)
			conn.Close()
			conn = nil
			r.track(w, nil)
			continue
		}
		kind := check(&req, &resp)
		st.answer(r, kind, intended, sent, done, idle)
		if kind == "" && r.cfg.Observe != nil {
			r.cfg.Observe(w, &resp)
		}
		if resp.Close {
			conn.Close()
			conn = nil
			r.track(w, nil)
		}
	}
}

// check compares an answer with its request's expectations; "" is a correct answer.
func check(req *Request, resp *Response) string {
	if resp.Status != req.Status {
		return KindStatus
	}
	if req.Location != nil && (resp.Location == nil || !bytes.HasPrefix(resp.Location, req.Location)) {
		return KindLocation
	}
	if req.ClickParam != "" && len(QueryValue(resp.Location, req.ClickParam)) == 0 {
		return KindClickID
	}
	if req.BodyContains != nil && !bytes.Contains(resp.Body, req.BodyContains) {
		return KindBody
	}
	return ""
}

// classify names a transport error.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLarge):
		return KindMalformed
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return KindReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return KindClosed
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindConnect
	}
	return KindOther
}
