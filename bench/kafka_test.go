// Package bench holds clickgate's load benchmarks. They start what they need (a real
// Kafka broker through configs/kafka, a real Badger store) and report rates measured in
// the same run, so figures compare on a shared, noisy machine.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/relay"
	"github.com/clickgate/clickgate/proxy/relay/kafkatest"
	"github.com/clickgate/clickgate/proxy/server/servertest"
	"github.com/clickgate/clickgate/storage"
)

// BenchmarkRelayDrain fills the outbox with CLICKGATE_BENCH_EVENTS clicks (default
// 1,000,000), drains them into a local broker, and compares the drain rate with the
// redirect rate the proxy sustains in the same run. The goal is a drain at least twice
// as fast as redirects arrive, so a backlog always shrinks.
//
//	go test -run '^$' -bench RelayDrain -benchtime 1x ./bench/
func BenchmarkRelayDrain(b *testing.B) {
	events := envInt("CLICKGATE_BENCH_EVENTS", 1_000_000)
	broker, err := kafkatest.Start(19592)
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()

	redirectRate := redirectSaturation(b, 5*time.Second).rps

	for b.Loop() {
		db, err := storage.Open(storage.Options{Dir: b.TempDir(), Logger: quiet()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { db.Run(ctx); close(done) }()
		fill(b, db, events, "bench", "spring_sale", 50000, 0)

		r, err := relay.New(db, relay.Config{
			Brokers: []string{broker.Addr}, ClicksTopic: fmt.Sprintf("drain%d.clicks", time.Now().UnixNano()),
			Partitions: 6, Compression: "lz4", BatchSize: benchBatch(),
		}, quiet())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		rctx, rcancel := context.WithCancel(context.Background())
		rdone := make(chan struct{})
		go func() { r.Run(rctx); close(rdone) }()
		for {
			c, _ := db.Cursor(relay.Consumer)
			if c >= db.OutboxHead() {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(start)
		rcancel()
		<-rdone
		cancel()
		<-done
		db.Close()
		drain := float64(events) / took.Seconds()
		b.ReportMetric(drain, "drain-events/s")
		b.ReportMetric(redirectRate, "redirects/s")
		b.ReportMetric(drain/redirectRate, "drain/redirect")
		b.Logf("drained %d events in %s: %.0f events/s; redirects at saturation %.0f/s; ratio %.2f (goal >= 2)",
			events, took.Round(time.Millisecond), drain, redirectRate, drain/redirectRate)
	}
}

// fill commits n clicks on one link from visitors visitors, click i by visitor i mod
// visitors, their times spread evenly over the span before now (all now when span is 0),
// oldest first, from many goroutines, as a busy edge would.
func fill(b *testing.B, db *storage.DB, n int, slug, campaign string, visitors int64, span time.Duration) {
	gen := ids.NewClickIDs(1)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	ctr := db.Counters("", slug)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 1024)
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				at := start.Add(-span + time.Duration(float64(span)*float64(i)/float64(n)))
				c := &storage.Click{ID: gen.New(at), Time: at, Node: "bench", Slug: slug, Campaign: campaign,
					UTM:     storage.UTM{Source: "sms", Medium: "promotional", Campaign: campaign, Content: "a"},
					Variant: -1, Destination: "https://shop.example.com/p?utm_source=sms&utm_medium=promotional&utm_campaign=" + campaign + "&utm_content=a&cgid=x",
					VisitorID: visitor(i % visitors), IP: "203.0.113.7",
					UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"}
				buf = storage.AppendClick(buf[:0], c)
				if err := db.Committer().CommitClick(buf, ctr, storage.KindHuman); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// load is what a closed-loop run measured.
type load struct {
	rps      float64
	p50, p99 time.Duration
}

// redirectSaturation measures redirects per second with durable clicks, and their
// latency, from 64 keep-alive connections; the load generator runs in the same process,
// so both share the machine's cores (bench/ will get a separate generator).
func redirectSaturation(b *testing.B, d time.Duration, env ...string) load {
	g := servertest.Start(b, b.TempDir(), env...)
	g.MustCreate(map[string]any{"slug": "s", "destination": "https://shop.example.com/p",
		"utm": map[string]any{"medium": "promotional", "campaign": "bench"}})
	c := &fasthttp.Client{MaxConnsPerHost: 64}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	lats := make([][]time.Duration, 64)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			req.SetRequestURI(g.Pub + "/s")
			req.Header.SetUserAgent(servertest.IPhone)
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := c.Do(req, resp); err == nil && resp.StatusCode() == 302 {
					lats[w] = append(lats[w], time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	g.Stop()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		b.Fatal("no redirect answered")
	}
	return load{rps: float64(len(all)) / d.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100]}
}

// BenchmarkRedirectWithRelay compares redirect throughput with the Kafka relay running
// against the same server without Kafka, in one run: the relay is off the redirect path,
// so the ratio should stay near 1 (both share the machine with the broker and the load
// generator).
//
//	go test -run '^$' -bench RedirectWithRelay -benchtime 1x ./bench/
func BenchmarkRedirectWithRelay(b *testing.B) {
	broker, err := kafkatest.Start(19592)
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	for b.Loop() {
		off := redirectSaturation(b, 5*time.Second)
		on := redirectSaturation(b, 5*time.Second, "CLICKGATE_KAFKA_BROKERS="+broker.Addr,
			fmt.Sprintf("CLICKGATE_KAFKA_CLICKS_TOPIC=sat%d.clicks", time.Now().UnixNano()))
		b.ReportMetric(off.rps, "redirects/s-kafka-off")
		b.ReportMetric(on.rps, "redirects/s-kafka-on")
		b.ReportMetric(on.rps/off.rps, "on/off")
		b.Logf("without Kafka %.0f redirects/s (p50 %s, p99 %s); with the relay %.0f/s (p50 %s, p99 %s); ratio %.2f",
			off.rps, off.p50, off.p99, on.rps, on.p50, on.p99, on.rps/off.rps)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func benchBatch() int {
	n, _ := strconv.Atoi(os.Getenv("CLICKGATE_BENCH_BATCH"))
	return n
}
