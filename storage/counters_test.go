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
