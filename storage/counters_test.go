package storage

import (
	"fmt"
	"strings"
	"testing"
)

// Counters are found again by their link key, on the hash path and on the collision path
// (every key given the same hash), and their keys, packed into the arena, read back
// unchanged however many keys follow them, a key longer than a chunk included.
func TestCountersByKey(t *testing.T) {
	for _, collide := range []bool{false, true} {
		t.Run(fmt.Sprintf("collide=%v", collide), func(t *testing.T) {
			db := openTest(t, t.TempDir())
			defer db.Close()
			if collide {
				db.counterHash = func(string) uint64 { return 42 }
			}
			long := strings.Repeat("x", counterKeysChunk+100)
			keys := []string{LinkKey("", "a"), LinkKey("go.brand.com", "a"), LinkKey("", long)}
			for i := range 20_000 { // 20,000 keys of about 25 bytes: two chunks
				keys = append(keys, LinkKey("go.example.com", fmt.Sprintf("link-%06d", i)))
			}
			got := map[string]*Counters{}
			for i, k := range keys {
				c := db.countersFor(k)
				c.Human.Store(int64(i))
				got[k] = c
			}
			for i, k := range keys {
				c := db.countersFor(k)
				if c != got[k] || c.key != k || c.Human.Load() != int64(i) {
					t.Fatalf("key %d: counters %p (key %.20q, %d), want %p", i, c, c.key, c.Human.Load(), got[k])
				}
			}
			if db.countersLen != len(keys) {
				t.Fatalf("%d counters for %d keys", db.countersLen, len(keys))
			}
			if db.lookupCounters(LinkKey("", "b")) != nil || db.lookupCounters("") != nil {
				t.Fatal("a key never added was found")
			}
			if collide && len(db.counterCollided) != len(keys)-1 {
				t.Fatalf("%d collided keys, want %d", len(db.counterCollided), len(keys)-1)
			}
		})
	}
}

// With every link key hashing alike, counters are still restored one per link with
// their counts: from the closing checkpoint's journal after a stop, and from the outbox
// replay after a crash.
func TestCountersCollidingKeysAcrossRestarts(t *testing.T) {
	collide := func(string) uint64 { return 7 }
	for _, crashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crashed), func(t *testing.T) {
			dir := t.TempDir()
			open := func() *DB {
				db, err := Open(Options{Dir: dir, counterHash: collide})
				if err != nil {
					t.Fatal(err)
				}
				return db
			}
			db := open()
			stop := runUntil(db)
			const links = 12
			id := 0
			for i := range links {
				slug := fmt.Sprintf("s%d", i)
				ctr := db.Counters("", slug)
				for range i + 1 {
					id++
					if err := db.Committer().CommitClick(AppendClick(nil, testClick(id, slug, false)), ctr, KindHuman); err != nil {
						t.Fatal(err)
					}
				}
			}
			if crashed {
				crash(t, db, stop)
			} else {
				stop()
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			db = open()
			defer db.Close()
			if db.countersLen != links {
				t.Fatalf("%d counters restored for %d links", db.countersLen, links)
			}
			for i := range links {
				if got := db.Counters("", fmt.Sprintf("s%d", i)).Human.Load(); got != int64(i+1) {
					t.Errorf("link s%d: %d clicks, want %d", i, got, i+1)
				}
			}
			if db.countersLen != links || len(db.counterCollided) != links-1 {
				t.Fatalf("after lookups: %d counters, %d collided", db.countersLen, len(db.counterCollided))
			}
		})
	}
}
