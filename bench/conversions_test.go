package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/server/servertest"
)

// BenchmarkConversionIntake stores CLICKGATE_BENCH_CLICKS clicks (default 1,000,000)
// from 100,000 visitors, then posts conversions with attribution from 32 connections for
// 5 s and times a campaign report over the data.
//
//	go test -run '^$' -bench ConversionIntake -benchtime 1x -timeout 30m ./bench/
func BenchmarkConversionIntake(b *testing.B) {
	clicks := 1_000_000
	if s := os.Getenv("CLICKGATE_BENCH_CLICKS"); s != "" {
		clicks, _ = strconv.Atoi(s)
	}
	const token = "bench-ingest-token-0123456789"
	for b.Loop() {
		g := servertest.Start(b, b.TempDir(), "CLICKGATE_INGEST_TOKENS="+token)
		g.MustCreate(map[string]any{"slug": "s", "destination": "https://shop.example.com/p", "utm": map[string]any{"medium": "promotional", "campaign": "bench"}})
		db := g.S.DB
		start := time.Now()
		fill(b, db, clicks, "s", "bench", 100000)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		db.WaitIndexed(ctx, db.OutboxHead())
		cancel()
		b.Logf("%d clicks stored and indexed in %s", clicks, time.Since(start).Round(time.Second))

		c := &fasthttp.Client{MaxConnsPerHost: 32}
		var lats [32][]time.Duration
		var wg sync.WaitGroup
		var seq atomic.Int64
		stop := time.Now().Add(5 * time.Second)
		for w := 0; w < 32; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				req.SetRequestURI(g.Pub + "/v1/conversions")
				req.Header.SetMethod("POST")
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.SetContentType("application/json")
				for time.Now().Before(stop) {
					n := seq.Add(1)
					req.SetBodyString(fmt.Sprintf(`{"event_id":"e%d","type":"purchase","value":10,"currency":"USD","visitor_id":%q}`, n, visitor(n%100000)))
					t0 := time.Now()
					if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 || !bytes.Contains(resp.Body(), []byte(`"click_id"`)) {
						b.Errorf("conversion: %v %d %s", err, resp.StatusCode(), resp.Body())
						return
					}
					lats[w] = append(lats[w], time.Since(t0))
				}
			}()
		}
		wg.Wait()
		var all []time.Duration
		for _, l := range lats {
			all = append(all, l...)
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		rate := float64(len(all)) / 5
		p99 := all[len(all)*99/100]

		t0 := time.Now()
		req, _ := http.NewRequest("GET", g.Adm+"/api/v1/reports/campaigns?group_by=campaign", nil)
		req.Header.Set("Authorization", "Bearer "+servertest.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("report: %v", err)
		}
		resp.Body.Close()
		reportTime := time.Since(t0)
		b.ReportMetric(rate, "conversions/s")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(reportTime.Microseconds())/1000, "report-ms")
		b.Logf("with %d clicks stored: %.0f attributed conversions/s (goal 20,000), p99 %s; campaign report in %s (goal 50 ms)",
			clicks, rate, p99.Round(time.Microsecond), reportTime.Round(time.Microsecond))
		g.Stop()
	}
}

func visitor(i int64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	return ids.VisitorID(b).String()
}
