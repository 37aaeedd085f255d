package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// checkCellCache checks the cache against the records the store holds: a key it answers
// for is answered with the last record put, its byte counts add up, and its garbage is
// bounded.
func checkCellCache(t *testing.T, c *cellCache, store map[string][]byte, step int) {
	t.Helper()
	for k, want := range store {
		if got, ok := c.get([]byte(k)); ok && !bytes.Equal(got, want) {
			t.Fatalf("step %d: %q answered with %q, the store holds %q", step, k, got, want)
		}
	}
	if _, ok := c.get([]byte("never put")); ok {
		t.Fatalf("step %d: a key never put was answered", step)
	}
	live := 0
	for _, pos := range c.index {
		live += c.at(pos).size
	}
	if live != c.live {
		t.Fatalf("step %d: entries indexed take %d bytes, the cache counts %d", step, live, c.live)
	}
	if c.live > c.budget {
		t.Fatalf("step %d: %d live bytes, over the budget of %d", step, c.live, c.budget)
	}
	if g := c.total - c.live; g > max(c.live/2, c.minGarbage) {
		t.Fatalf("step %d: %d bytes of garbage beside %d live", step, g, c.live)
	}
}

// Whatever is put, in whatever order, with keys sharing hashes, records outgrowing their
// room or their chunk, and the budget reached, the cache never answers with a record
// the store no longer holds.
func TestCellCacheMatchesStore(t *testing.T) {
	today := DayOf(time.Now())
	for _, tc := range []struct {
		name        string
		chunk       int
		budget      int
		mask        uint64
		alwaysFound bool // every record of today or yesterday is found
	}{
		{"roomy", 1 << 16, 1 << 30, ^uint64(0), true},
		{"small chunks and budget", 600, 12 << 10, ^uint64(0), false},
		{"every key one hash", 1 << 16, 1 << 30, 0, false},
		{"eight hashes", 1 << 16, 1 << 30, 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, uint64(len(tc.name))))
			c := newCellCache()
			c.chunk, c.budget, c.mask, c.minGarbage = tc.chunk, tc.budget, tc.mask, 2<<10
			var keys []string
			for i := range 300 {
				d := today - Day(i%4) // today, yesterday and two older days
				keys = append(keys, string(cellKey(rCell, d, CellID{Campaign: "c", Slug: fmt.Sprint("s", i)})))
			}
			store := map[string][]byte{}
			hits, asked := 0, 0
			for step := range 20_000 {
				k := keys[rng.IntN(len(keys))]
				rec := store[k]
				switch r := rng.IntN(100); {
				case r < 70 && len(rec) > 0: // a few more bytes: the usual new visitor
					rec = append(bytes.Clone(rec), byte(step), byte(step>>8))
				case r < 98:
					rec = bytes.Repeat([]byte{byte(step)}, 1+rng.IntN(200))
				default: // larger than a chunk
					rec = bytes.Repeat([]byte{byte(step)}, tc.chunk+1)
				}
				store[k] = rec
				c.put(k, rec, today)
				if step%97 == 0 {
					checkCellCache(t, c, store, step)
				}
				if len(rec) < tc.chunk/2 && cellDay([]byte(k))+1 >= today {
					asked++
					if got, ok := c.get([]byte(k)); ok && bytes.Equal(got, rec) {
						hits++
					}
				}
			}
			checkCellCache(t, c, store, -1)
			if tc.alwaysFound && hits != asked {
				t.Errorf("%d of %d records just put were found", hits, asked)
			}
			if hits == 0 {
				t.Error("the cache never found a record")
			}
		})
	}
}

// Compaction keeps the latest records of today and yesterday, in fewer chunks, and
// forgets older days.
func TestCellCacheCompaction(t *testing.T) {
	today := DayOf(time.Now())
	c := newCellCache()
	c.chunk, c.minGarbage = 4<<10, 1<<10
	key := func(d Day, i int) string { return string(cellKey(rCell, d, CellID{Slug: fmt.Sprint("s", i)})) }
	want := map[string][]byte{}
	for _, d := range []Day{today, today - 1, today - 2, today - 30} {
		for i := range 20 {
			k := key(d, i)
			want[k] = []byte(k)
			c.put(k, want[k], today)
		}
	}
	// Records outgrowing their room move, leaving garbage, until compaction runs.
	compacted := false
	for round := 1; !compacted; round++ {
		if round > 100 {
			t.Fatal("never compacted")
		}
		for i := range 20 {
			k := key(today, i)
			want[k] = bytes.Repeat([]byte{byte(round)}, 10*round)
			before := c.first
			c.put(k, want[k], today)
			if c.first != before {
				compacted = true
				if c.total != c.live {
					t.Errorf("after compaction %d bytes in chunks, %d live", c.total, c.live)
				}
			}
		}
	}
	for k, rec := range want {
		got, ok := c.get([]byte(k))
		switch d := cellDay([]byte(k)); {
		case d+1 >= today && (!ok || !bytes.Equal(got, rec)):
			t.Errorf("day %d: %q gave %q, %v; want %q", today-d, k, got, ok, rec)
		case d+1 < today && ok:
			t.Errorf("day %d: %q still cached after compaction", today-d, k)
		}
	}
}

// A cache filled with a day gone by makes room for the new day at its first refusal,
// and only once that day.
func TestCellCacheNewDayWhenFull(t *testing.T) {
	today := DayOf(time.Now())
	c := newCellCache()
	c.budget = 8 << 10
	key := func(d Day, i int) string { return string(cellKey(rCell, d, CellID{Slug: fmt.Sprint("s", i)})) }
	rec := bytes.Repeat([]byte{'r'}, 60)
	for i := 0; c.live+entrySize(len(key(today-2, i)), roomFor(len(rec))) <= c.budget; i++ {
		c.put(key(today-2, i), rec, today-2)
	}
	c.put(key(today, 0), rec, today)
	if _, ok := c.get([]byte(key(today, 0))); !ok {
		t.Fatal("the new day's first cell was not cached in a cache full of an old day")
	}
	if _, ok := c.get([]byte(key(today-2, 0))); ok {
		t.Error("an old day's cell outlived the compaction")
	}
	first := c.first
	for i := 1; i < 1000; i++ {
		c.put(key(today, i), rec, today)
	}
	if c.first != first {
		t.Errorf("compacted again on the same day (chunk numbers from %d to %d): refused puts must not compact each", first, c.first)
	}
	if c.live > c.budget {
		t.Errorf("%d live bytes, over the budget of %d", c.live, c.budget)
	}
}

// After a flush, a cell the decoded cache no longer has is decoded from the cell cache,
// not read from the store, and the cache holds exactly what the store does.
func TestCellsFromCacheAfterFlush(t *testing.T) {
	awayFromMidnight(t)
	db := openTest(t, t.TempDir())
	defer db.Close()
	today := DayOf(time.Now())
	id := func(i int) CellID { return CellID{Campaign: "spring", Slug: fmt.Sprint("s", i)} }
	const cells = 500
	p := newPending()
	// each hands every cell to fn in one read transaction, then flushes.
	each := func(through uint64, fn func(txn *badger.Txn, i int, c *pendingCell) error) {
		t.Helper()
		err := db.bdb.View(func(txn *badger.Txn) error {
			for i := range cells {
				c, err := p.cell(txn, today, id(i))
				if err != nil {
					return err
				}
				if err := fn(txn, i, c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.flushReports(p, through); err != nil {
			t.Fatal(err)
		}
	}
	count := func(round int) {
		t.Helper()
		each(uint64(100+round), func(txn *badger.Txn, i int, c *pendingCell) error {
			if c.HumanClicks != int64(round*i) {
				t.Errorf("round %d, cell %d: %d clicks, want %d", round, i, c.HumanClicks, round*i)
			}
			c.HumanClicks += int64(i)
			sk, _, err := c.sketch(txn)
			if err != nil {
				return err
			}
			sk.Insert(fmt.Appendf(nil, "visitor %d %d", round, i))
			return nil
		})
		clear(p.cachedCells) // as when it outgrows reportsCacheCells
	}
	count(0)
	lookups := p.lookups
	for round := 1; round < 4; round++ {
		count(round)
	}
	if p.lookups != lookups {
		t.Errorf("%d cells read from the store after the first flush, want none", p.lookups-lookups)
	}
	sketches := map[int][]byte{}
	for i := range cells {
		rec, _ := p.cache.get(cellKey(rCell, today, id(i)))
		r, err := decodeCell(rec, &Cell{})
		if err != nil {
			t.Fatal(err)
		}
		sketches[i] = bytes.Clone(r.sketch)
	}
	// Bot clicks only, from the cache and then twice from the decoded cells: the records
	// are rewritten in place, the second time one digit longer, under sketches loaded
	// from them before. A bot click leaves the sketch as loaded.
	clear(p.cachedCells)
	for _, n := range []int64{9, 1, 1} {
		each(200, func(_ *badger.Txn, _ int, c *pendingCell) error {
			c.BotClicks += n
			return nil
		})
	}
	err := db.bdb.View(func(txn *badger.Txn) error {
		for i := range cells {
			k := cellKey(rCell, today, id(i))
			it, err := txn.Get(k)
			if err != nil {
				return err
			}
			stored, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			if got, ok := p.cache.get(k); !ok || !bytes.Equal(got, stored) {
				t.Fatalf("cell %d: cached %x (%v), stored %x", i, got, ok, stored)
			}
			var c Cell
			r, err := decodeCell(stored, &c)
			if err != nil {
				return err
			}
			if c.BotClicks != 11 || !bytes.Equal(r.sketch, sketches[i]) {
				t.Fatalf("cell %d: %d bot clicks and sketch %x after the bot rounds, want 11 and %x", i, c.BotClicks, r.sketch, sketches[i])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkCellCacheGet finds a cell record among a million, as the index consumer does
// for a click on a cell flushed before: it should cost far less than the Badger read it
// replaces (several microseconds with a million links).
func BenchmarkCellCacheGet(b *testing.B) {
	const n = 1_000_000
	today := DayOf(time.Now())
	c := newCellCache()
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = cellKey(rCell, today, CellID{Campaign: "spring_sale", Medium: "promotional", Slug: fmt.Sprint("s", i)})
		rec, err := appendCell(nil, &Cell{HumanClicks: 1}, nil, uint64(i))
		if err != nil {
			b.Fatal(err)
		}
		c.put(string(keys[i]), rec, today)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i = (i + 7919) % n
		if _, ok := c.get(keys[i]); !ok {
			b.Fatal("not cached")
		}
	}
}

// A flush whose second transaction fails leaves in the cache only what the store holds:
// the first transaction's records, not the second's.
func TestCellCacheOnlyWhatCommitted(t *testing.T) {
	awayFromMidnight(t)
	db := openTest(t, t.TempDir())
	defer db.Close()
	today := DayOf(time.Now())
	cells := db.txnEntries(256) + 100 // two transactions of cells
	id := func(i int) CellID { return CellID{Campaign: "spring", Slug: fmt.Sprint("s", i)} }
	p := newPending()
	err := db.bdb.View(func(txn *badger.Txn) error {
		for i := range cells {
			c, err := p.cell(txn, today, id(i))
			if err != nil {
				return err
			}
			c.HumanClicks++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantCached int) {
		t.Helper()
		cached := 0
		err := db.bdb.View(func(txn *badger.Txn) error {
			for i := range cells {
				k := cellKey(rCell, today, id(i))
				got, ok := p.cache.get(k)
				if !ok {
					continue
				}
				cached++
				it, err := txn.Get(k)
				if err != nil {
					t.Fatalf("%s: cell %d cached, not stored (%v)", when, i, err)
				}
				stored, err := it.ValueCopy(nil)
				if err != nil {
					return err
				}
				if !bytes.Equal(got, stored) {
					t.Fatalf("%s: cell %d cached %x, stored %x", when, i, got, stored)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if cached != wantCached {
			t.Errorf("%s: %d cells cached, want %d", when, cached, wantCached)
		}
	}
	calls := 0
	db.flushFault = func() error {
		if calls++; calls == 2 {
			return errTestCrash
		}
		return nil
	}
	if err := db.flushReports(p, 10); err == nil {
		t.Fatal("the flush did not fail")
	}
	check("after the failed flush", db.txnEntries(256))
	db.flushFault = nil
	if err := db.flushReports(p, 11); err != nil {
		t.Fatal(err)
	}
	check("after the flush again", cells)
}
