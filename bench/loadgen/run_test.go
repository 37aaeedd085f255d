package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// testServer is a raw HTTP/1.1 server whose answer to each request is chosen by a
// function of the request's sequence number.
type testServer struct {
	ln       net.Listener
	answered atomic.Int64
	answer   func(n int64) action
	wg       sync.WaitGroup
}

type action struct {
	raw   string        // response to write
	delay time.Duration // wait before writing it
	until time.Time     // or wait until then
	reset bool          // reset the connection instead of answering
	close bool          // close after answering
	hang  bool          // never answer
}

const good = "HTTP/1.1 302 Found\r\nContent-Length: 0\r\nLocation: https://shop.example.com/p?utm_source=sms&cgid=01abc\r\n\r\n"

func startServer(t *testing.T, answer func(n int64) action) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln, answer: answer}
	var seq atomic.Int64
	var conns sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conns.Delete(c)
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					cl := 0
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
						if v, ok := bytes.CutPrefix([]byte(line), []byte("Content-Length: ")); ok {
							cl, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
						}
					}
					if _, err := br.Discard(cl); err != nil {
						return
					}
					a := s.answer(seq.Add(1))
					switch {
					case a.hang:
						time.Sleep(time.Hour)
					case a.reset:
						c.(*net.TCPConn).SetLinger(0)
						return
					}
					time.Sleep(a.delay)
					if d := time.Until(a.until); d > 0 {
						time.Sleep(d)
					}
					if _, err := c.Write([]byte(a.raw)); err != nil {
						return
					}
					s.answered.Add(1)
					if a.close {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
	})
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func redirectSource(addr string) Source {
	return &Fixed{
		Raw:    AppendGet(nil, addr, "/spring", Header{"User-Agent", "test"}),
		Status: 302, Location: []byte("https://shop.example.com/p?"), ClickParam: "cgid",
	}
}

// TestOpenLoopCorrectsForStall: the server stops answering for 200 ms in the middle of
// a constant-rate run. Every request scheduled during the stall must show up with its
// delay (about rate × 0.2 s slow samples, fewer over a threshold), although each
// connection only sent one request into the stall: the uncorrected service time shows
// at most one slow sample per connection.
func TestOpenLoopCorrectsForStall(t *testing.T) {
	const (
		rate  = 2000.0
		conns = 16
		stall = 200 * time.Millisecond
	)
	var stallFrom, stallTo atomic.Int64
	srv := startServer(t, func(int64) action {
		now := time.Now().UnixNano()
		if from, to := stallFrom.Load(), stallTo.Load(); from != 0 && now >= from && now < to {
			return action{raw: good, until: time.Unix(0, to)}
		}
		return action{raw: good}
	})
	res, err := Run(context.Background(), Config{
		Addr: srv.addr(), Conns: conns, Rate: rate, Warmup: 200 * time.Millisecond, Duration: time.Second,
		Source: redirectSource(srv.addr()),
		Begin: func() {
			from := time.Now().Add(300 * time.Millisecond)
			stallTo.Store(from.Add(stall).UnixNano())
			stallFrom.Store(from.UnixNano())
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := res.ErrorCount(); n > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	// Requests due in the first 150 ms of the stall wait more than 50 ms: rate × 0.15 s
	// of them. The threshold is high enough that a busy machine's scheduling hiccups
	// do not reach it.
	const threshold = 50 * time.Millisecond
	want := rate * (stall - threshold).Seconds()
	corrected := countOver(res.Latency, threshold.Microseconds())
	uncorrected := countOver(res.Service, threshold.Microseconds())
	t.Logf("answered %d, achieved %.0f/s; samples over 50 ms: corrected %d (expected about %.0f), uncorrected %d; max %d µs",
		res.Answered, res.Rate(), corrected, want, uncorrected, res.Latency.Max())
	if float64(corrected) < 0.6*want || float64(corrected) > 1.4*want {
		t.Errorf("corrected histogram has %d samples over 50 ms, want about %.0f", corrected, want)
	}
	if uncorrected > 2*conns {
		t.Errorf("uncorrected histogram has %d samples over 50 ms: more than the %d connections could have sent into the stall", uncorrected, conns)
	}
	if m := res.Latency.Max(); m < 150_000 || m > 500_000 {
		t.Errorf("max corrected latency %d µs, want about 200,000", m)
	}
	if r := res.Rate(); r < 0.9*rate || r > 1.1*rate {
		t.Errorf("achieved %.0f/s, want about %.0f", r, rate)
	}
}

// countOver counts the samples above v.
func countOver(h *hdrhistogram.Histogram, v int64) int64 {
	var n int64
	for _, b := range h.Distribution() {
		if b.From > v {
			n += b.Count
		}
	}
	return n
}

// TestWrongAnswersAreErrors: a wrong status, a wrong Location, a Location without the
// click ID and a reset connection are each counted by kind, never as answered.
func TestWrongAnswersAreErrors(t *testing.T) {
	var good302 atomic.Int64
	srv := startServer(t, func(n int64) action {
		switch n % 6 {
		case 1:
			return action{raw: "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"}
		case 2:
			return action{raw: "HTTP/1.1 302 Found\r\nContent-Length: 0\r\nLocation: https://evil.example.net/?cgid=1\r\n\r\n"}
		case 3:
			return action{raw: "HTTP/1.1 302 Found\r\nContent-Length: 0\r\nLocation: https://shop.example.com/p?utm_source=sms\r\n\r\n"}
		case 4:
			return action{reset: true}
		case 5:
			return action{raw: "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n"}
		}
		good302.Add(1)
		return action{raw: good}
	})
	res, err := Run(context.Background(), Config{Addr: srv.addr(), Conns: 4, Duration: 300 * time.Millisecond, Source: redirectSource(srv.addr())})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answered %d, errors %v", res.Answered, res.Errors)
	for _, k := range []string{KindStatus, KindLocation, KindClickID, KindReset} {
		if res.Errors[k] == 0 {
			t.Errorf("no %q error counted: %v", k, res.Errors)
		}
	}
	if res.Answered == 0 || res.Answered > good302.Load() {
		t.Errorf("answered %d, but the server sent %d correct answers", res.Answered, good302.Load())
	}
	if res.Latency.TotalCount() != res.Answered {
		t.Errorf("%d latency samples for %d correct answers: wrong answers must not count", res.Latency.TotalCount(), res.Answered)
	}
	wrong := res.Errors[KindStatus] + res.Errors[KindLocation] + res.Errors[KindClickID]
	if res.Responses != res.Answered+wrong {
		t.Errorf("responses %d != answered %d + wrong answers %d", res.Responses, res.Answered, wrong)
	}
}

// TestClosedLoopCounting: the answers counted in the measured interval match what the
// server sent between the Begin and End hooks, and reconnects after Connection: close
// are not errors.
func TestClosedLoopCounting(t *testing.T) {
	srv := startServer(t, func(n int64) action {
		if n%50 == 0 {
			return action{raw: "HTTP/1.1 302 Found\r\nConnection: close\r\nContent-Length: 0\r\nLocation: https://shop.example.com/p?cgid=9\r\n\r\n", close: true}
		}
		return action{raw: good}
	})
	var atBegin, atEnd int64
	const conns = 4
	res, err := Run(context.Background(), Config{
		Addr: srv.addr(), Conns: conns, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond,
		Source: redirectSource(srv.addr()),
		Begin:  func() { atBegin = srv.answered.Load() },
		End:    func() { atEnd = srv.answered.Load() },
	})
	if err != nil {
		t.Fatal(err)
	}
	server := atEnd - atBegin
	t.Logf("answered %d (%.0f/s), server sent %d in the interval, reconnects %d", res.Answered, res.Rate(), server, res.Reconnects)
	if res.ErrorCount() != 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	// Each connection can have one answer on either side of each edge; a busy machine
	// can also delay the hooks a little behind the interval's edges.
	if d, tol := res.Answered-server, int64(2*conns)+server/100; d > tol || d < -tol {
		t.Errorf("answered %d, server sent %d in the interval", res.Answered, server)
	}
	if res.Reconnects == 0 {
		t.Error("no reconnect after Connection: close")
	}
	if e := res.Elapsed; e < 450*time.Millisecond || e > 700*time.Millisecond {
		t.Errorf("measured interval %s, want about 500ms", e)
	}
	if got := res.Rate(); got != float64(res.Answered)/res.Elapsed.Seconds() {
		t.Errorf("rate %v, want answered / interval", got)
	}
}

// TestOpenLoopOverCapacity: a server slower than the schedule leaves requests unsent;
// they are counted, and their waiting time is in the latency histogram.
func TestOpenLoopOverCapacity(t *testing.T) {
	srv := startServer(t, func(int64) action { return action{raw: good, delay: 20 * time.Millisecond} })
	res, err := Run(context.Background(), Config{Addr: srv.addr(), Conns: 2, Rate: 400, Duration: 500 * time.Millisecond, Source: redirectSource(srv.addr())})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answered %d, unsent %d, p50 %d µs, max %d µs", res.Answered, res.Unsent, res.Latency.ValueAtQuantile(50), res.Latency.Max())
	if res.Unsent < 100 {
		t.Errorf("unsent %d: a server at 100/s cannot keep a 400/s schedule", res.Unsent)
	}
	if res.Latency.TotalCount() != res.Answered+res.Unsent {
		t.Errorf("histogram holds %d samples, want answered + unsent = %d", res.Latency.TotalCount(), res.Answered+res.Unsent)
	}
	if res.Latency.Max() < 250_000 {
		t.Errorf("max latency %d µs: the backlog's wait is missing", res.Latency.Max())
	}
}

func TestTimeoutAndRefused(t *testing.T) {
	srv := startServer(t, func(int64) action { return action{hang: true} })
	res, err := Run(context.Background(), Config{Addr: srv.addr(), Conns: 2, Duration: 300 * time.Millisecond, Timeout: 100 * time.Millisecond, Source: redirectSource(srv.addr())})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors[KindTimeout] == 0 || res.Answered != 0 {
		t.Errorf("hanging server: %v, answered %d", res.Errors, res.Answered)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	res, err = Run(context.Background(), Config{Addr: addr, Conns: 2, Duration: 100 * time.Millisecond, Source: redirectSource(addr)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors[KindConnect] == 0 {
		t.Errorf("refused connections: %v", res.Errors)
	}
}

// TestSlicesShowAStall: the server stops answering for two of a closed-loop run's six
// 100 ms slices. The interval's rate averages the stall away; the slices must show it,
// and hold every answer of the whole slices.
func TestSlicesShowAStall(t *testing.T) {
	var begin atomic.Int64 // UnixNano of the measured interval's start, 0 before it
	srv := startServer(t, func(int64) action {
		b := begin.Load()
		if b == 0 {
			return action{raw: good}
		}
		from, to := time.Unix(0, b).Add(200*time.Millisecond), time.Unix(0, b).Add(400*time.Millisecond)
		if now := time.Now(); !now.Before(from) && now.Before(to) {
			return action{raw: good, until: to}
		}
		return action{raw: good}
	})
	res, err := Run(context.Background(), Config{
		Addr: srv.addr(), Conns: 4, Warmup: 100 * time.Millisecond, Duration: 600 * time.Millisecond,
		Slice: 100 * time.Millisecond, Source: redirectSource(srv.addr()),
		Begin: func() { begin.Store(time.Now().UnixNano()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answered %d, slices %v", res.Answered, res.Slices)
	if len(res.Slices) != 6 || res.Slice != 100*time.Millisecond {
		t.Fatalf("%d slices of %s, want 6 of 100ms", len(res.Slices), res.Slice)
	}
	var sum int64
	for _, n := range res.Slices {
		sum += n
	}
	// Only answers after the last whole slice are left out: a few milliseconds' worth.
	if sum > res.Answered || sum < res.Answered*9/10 {
		t.Errorf("slices hold %d answers, the interval %d", sum, res.Answered)
	}
	busy := min(res.Slices[0], res.Slices[5])
	if busy < 40 {
		t.Fatalf("only %d answers in a slice without a stall", busy)
	}
	// Each connection may finish one request that had started before the stall, and one
	// the stall held answers at its end, late in the slice's clock by scheduling.
	for _, i := range []int{2, 3} {
		if res.Slices[i] > busy/4 {
			t.Errorf("slice %d (the stall) has %d answers, a slice without one %d", i, res.Slices[i], busy)
		}
	}
}
