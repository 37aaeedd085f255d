package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/server/servertest"
)

// BenchmarkConversionIntake stores CLICKGATE_BENCH_CLICKS clicks (default 1,000,000)
// from CLICKGATE_BENCH_VISITORS visitors (default one for every 5 clicks) spread over
// CLICKGATE_BENCH_DAYS days (default 30), then posts conversions with attribution, one
// per request from 32 connections and in batches of 100 from 8, and times a campaign
// report over the data. The defaults are an SMS program's history: a recipient taps a
// link about once a week, so a conversion's 7-day window holds one or two of their
// clicks. CLICKGATE_BENCH_VISITORS=100000
// CLICKGATE_BENCH_DAYS=0 is a stress shape instead: every click inside the window, so at
// 10,000,000 clicks every conversion reads and credits 100 touches.
// CLICKGATE_BENCH_SECONDS (default 5) is the length of each phase: with ten million
// clicks a level compaction can take most of a 5-second phase, so longer ones average
// it in rather than land on it or miss it.
//
//	go test -run '^$' -bench ConversionIntake -benchtime 1x -timeout 30m ./bench/
//
// CLICKGATE_BENCH_CPUPROFILE=FILE writes CPU profiles of the single and the batched
// phase to FILE.single and FILE.batch.
func BenchmarkConversionIntake(b *testing.B) {
	clicks := envInt("CLICKGATE_BENCH_CLICKS", 1_000_000)
	visitors := int64(envInt("CLICKGATE_BENCH_VISITORS", max(clicks/5, 1)))
	days := envInt("CLICKGATE_BENCH_DAYS", 30)
	phase := time.Duration(envInt("CLICKGATE_BENCH_SECONDS", 5)) * time.Second
	const token = "bench-ingest-token-0123456789"
	for b.Loop() {
		g := servertest.Start(b, b.TempDir(), "CLICKGATE_INGEST_TOKENS="+token)
		g.MustCreate(map[string]any{"slug": "s", "destination": "https://shop.example.com/p", "utm": map[string]any{"medium": "promotional", "campaign": "bench"}})
		db := g.S.DB
		start := time.Now()
		fill(b, db, clicks, "s", "bench", visitors, time.Duration(days)*24*time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		db.WaitIndexed(ctx, db.OutboxHead())
		cancel()
		indexed := time.Since(start)
		// Compacting ten million clicks written in minutes goes on after they are
		// indexed; a store that grew over weeks has no such debt, so the intake is
		// measured once the process is idle.
		settle := waitIdle(10 * time.Minute)
		perWindow := float64(clicks) / float64(visitors)
		if days > 7 {
			perWindow = perWindow * 7 / float64(days)
		}
		b.Logf("%d clicks from %d visitors over %d days (%.1f clicks a visitor in a 7-day window) stored and indexed in %s, compactions done %s later",
			clicks, visitors, days, perWindow, indexed.Round(time.Second), settle.Round(time.Second))

		var seq atomic.Int64
		prof := func(name string) func() {
			if pf := os.Getenv("CLICKGATE_BENCH_CPUPROFILE"); pf != "" {
				f, err := os.Create(pf + name)
				if err != nil {
					b.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					b.Fatal(err)
				}
				return func() { pprof.StopCPUProfile(); f.Close() }
			}
			return func() {}
		}
		// The index counts conversions for the reports after they are answered; a phase
		// ends when the index has caught up with it, so a rate the index could not keep
		// up with is not reported as sustained, and the next phase does not pay for it.
		caughtUp := func(r *intakeRun) {
			t0 := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			db.WaitIndexed(ctx, db.OutboxHead())
			cancel()
			r.catchUp = time.Since(t0)
			r.sustained = r.rate * phase.Seconds() / (phase + r.catchUp).Seconds()
		}
		stop := prof(".single")
		single := postConversions(b, g.Pub, token, &seq, visitors, phase, 32, 1)
		caughtUp(&single)
		stop()
		stop = prof(".batch")
		batched := postConversions(b, g.Pub, token, &seq, visitors, phase, 8, 100)
		caughtUp(&batched)
		stop()
		// The median of nine reports: one alone may land on a counter flush or a
		// compaction and say more about that than about the report.
		var reports []time.Duration
		for range 9 {
			t0 := time.Now()
			req, _ := http.NewRequest("GET", g.Adm+"/api/v1/reports/campaigns?group_by=campaign", nil)
			req.Header.Set("Authorization", "Bearer "+servertest.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("report: %v", err)
			}
			resp.Body.Close()
			reports = append(reports, time.Since(t0))
			time.Sleep(100 * time.Millisecond)
		}
		sort.Slice(reports, func(i, j int) bool { return reports[i] < reports[j] })
		reportTime := reports[len(reports)/2]
		b.ReportMetric(single.sustained, "indexed-conversions/s")
		b.ReportMetric(batched.sustained, "batched-indexed-conversions/s")
		b.ReportMetric(single.rate, "conversions/s")
		b.ReportMetric(float64(single.p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(batched.rate, "batched-conversions/s")
		b.ReportMetric(float64(batched.p99.Microseconds())/1000, "batch-p99-ms")
		b.ReportMetric(float64(reportTime.Microseconds())/1000, "report-ms")
		b.ReportMetric(float64(single.cpu.Nanoseconds())/1000, "cpu-µs/conversion")
		b.ReportMetric(float64(batched.cpu.Nanoseconds())/1000, "batch-cpu-µs/conversion")
		b.Logf("with %d clicks stored: %.0f attributed conversions/s one per request from 32 connections (p99 %s; %.0f/s counting the %s the index then took to catch up); "+
			"%.0f/s in batches of 100 from 8 connections (p99 per batch %s; %.0f/s with the index's %s); goal 20,000/s. Campaign report in %s (median of 9, slowest %s; goal 50 ms)",
			clicks, single.rate, single.p99.Round(time.Microsecond), single.sustained, single.catchUp.Round(time.Millisecond),
			batched.rate, batched.p99.Round(time.Microsecond), batched.sustained, batched.catchUp.Round(time.Millisecond),
			reportTime.Round(time.Microsecond), reports[len(reports)-1].Round(time.Microsecond))
		g.Stop()
	}
}

type intakeRun struct {
	rate float64       // conversions per second
	p99  time.Duration // of one request's answer
	cpu  time.Duration // process CPU per conversion (server and client: this process is both)
	// catchUp is how long the index took, once the phase ended, to catch up with every
	// conversion; sustained is the rate over the phase and that.
	catchUp   time.Duration
	sustained float64
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postConversions posts attributed conversions (by visitor, so attribution reads the
// visitor's clicks) for d from conns connections, size per request (1: the single
// form), and checks every answer.
func postConversions(b *testing.B, pub, token string, seq *atomic.Int64, visitors int64, d time.Duration, conns, size int) intakeRun {
	c := &fasthttp.Client{MaxConnsPerHost: conns}
	lats := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	cpu0 := cpuTime()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(pub + "/v1/conversions")
			req.Header.SetMethod("POST")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.SetContentType("application/json")
			var body []byte
			for time.Now().Before(stop) {
				body = body[:0]
				if size > 1 {
					body = append(body, `{"conversions":[`...)
				}
				for i := 0; i < size; i++ {
					if i > 0 {
						body = append(body, ',')
					}
					n := seq.Add(1)
					body = fmt.Appendf(body, `{"event_id":"e%d","type":"purchase","value":10,"currency":"USD","visitor_id":%q}`, n, visitor(n%visitors))
				}
				if size > 1 {
					body = append(body, "]}"...)
				}
				req.SetBody(body)
				t0 := time.Now()
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 || bytes.Count(resp.Body(), []byte(`"click_id"`)) != size {
					b.Errorf("conversion: %v %d %.300s", err, resp.StatusCode(), resp.Body())
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	if len(all) == 0 {
		b.Fatal("no conversion answered")
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	n := len(all) * size
	return intakeRun{rate: float64(n) / d.Seconds(), p99: all[len(all)*99/100], cpu: cpu / time.Duration(n)}
}

func visitor(i int64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	return ids.VisitorID(b).String()
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

// waitIdle waits until this process used under a tenth of a core for a second, or for
// at most max, and says how long it waited.
func waitIdle(max time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < max {
		c0 := cpuTime()
		time.Sleep(time.Second)
		if cpuTime()-c0 < 100*time.Millisecond {
			break
		}
	}
	return time.Since(start)
}
