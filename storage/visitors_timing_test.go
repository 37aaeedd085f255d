package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkVisitorClicks reads a visitor's clicks the way attribution does, from a store
// of CLICKGATE_BENCH_CLICKS clicks (default 1,000,000) by one visitor for every five,
// over 30 days: one snapshot per read (a conversion per request) and one snapshot for
// a hundred reads (a batch).
func BenchmarkVisitorClicks(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("CLICKGATE_BENCH_CLICKS")); err == nil && v > 0 {
		n = v
	}
	visitors := max(n/5, 1)
	db := openTest(b, b.TempDir())
	defer runTest(db)()

	now := time.Now()
	const span = 30 * 24 * time.Hour
	visitor := func(i int) string { return fmt.Sprintf("%022d", i%visitors) }
	ctr := db.Counters("", "s")
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				c := testClick(i, "s", false)
				c.Time = now.Add(-span + time.Duration(float64(span)*float64(i)/float64(n))).UTC()
				binary.BigEndian.PutUint64(c.ID[:8], uint64(c.Time.UnixMilli())<<16)
				c.VisitorID = visitor(i)
				buf = AppendClick(buf[:0], c)
				if err := db.Committer().CommitClick(buf, ctr, KindHuman); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer wcancel()
	if !db.WaitIndexed(wctx, db.OutboxHead()) {
		b.Fatal("the index did not catch up")
	}
	from := now.Add(-7 * 24 * time.Hour)
	read := func(b *testing.B, s *Snapshot, rng *rand.Rand) {
		if _, _, err := s.VisitorClicks(visitor(rng.IntN(visitors)), from, now, 100); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("snapshot-each", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			s, err := db.Snapshot()
			if err != nil {
				b.Fatal(err)
			}
			read(b, s, rng)
			s.Close()
		}
	})
	b.Run("snapshot-per-100", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		var s *Snapshot
		i := 0
		for b.Loop() {
			if i%100 == 0 {
				if s != nil {
					s.Close()
				}
				var err error
				if s, err = db.Snapshot(); err != nil {
					b.Fatal(err)
				}
			}
			i++
			read(b, s, rng)
		}
		if s != nil {
			s.Close()
		}
	})
}

// BenchmarkPendingCell finds the pending cell of a click among 100,000, as the index
// consumer does for every click it counts: the cell is already in memory, so nothing
// should be allocated.
func BenchmarkPendingCell(b *testing.B) {
	const n = 100_000
	p := newPending()
	ids := make([]CellID, n)
	day := DayOf(time.Now())
	for i := range ids {
		ids[i] = CellID{Campaign: "spring_sale", Medium: "promotional", Content: "a", Slug: fmt.Sprintf("s%d", i)}
		p.cells[string(cellKey(rCell, day, ids[i]))] = &pendingCell{key: string(cellKey(rCell, day, ids[i]))}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 7919) % n
		if c, err := p.cell(nil, day, ids[i]); err != nil || c == nil {
			b.Fatal("no cell", err)
		}
	}
}
