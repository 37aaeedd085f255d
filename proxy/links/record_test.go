package links

import (
	"fmt"
	"maps"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickgate/clickgate/storage"
)

func recordLinks() map[string]*storage.Link {
	exp := time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)
	utm := storage.UTM{Source: "sms", Medium: "promotional", Campaign: "xmas", Content: "hero", Term: "gifts"}
	return map[string]*storage.Link{
		"plain":    {Slug: "p", Destination: "https://shop.example/"},
		"full":     {Domain: "go.brand.com", Slug: "f", Destination: "https://shop.example/p?ref=a&x=%20y#top", UTM: utm, Campaign: "xmas", ForwardQuery: true, MaxClicks: 1 << 40, ExpiresAt: &exp, Status: storage.StatusPaused},
		"archived": {Slug: "a", Destination: "https://shop.example/", Status: storage.StatusArchived},
		"variants": {Slug: "v", UTM: utm, Variants: []storage.Variant{
			{Destination: "https://a.example/?k=1&k2", Weight: 3, Content: "a"},
			{Destination: "https://b.example/#f", Weight: 1, Content: "b"},
			{Destination: "https://c.example/", Weight: 250, Content: ""},
		}},
		"identity": {Slug: "i", Destination: "https://shop.example/", IdentityParams: map[string]string{"sub": "customer_id", "e": "email", "phone_number": "phone"}},
		"unicode":  {Slug: "u", Destination: "https://shop.example/ü?q=ü", UTM: storage.UTM{Campaign: "été"}},
	}
}

// A record decodes to exactly the compiled link it was written from.
func TestRecordRoundTrip(t *testing.T) {
	for name, l := range recordLinks() {
		want := Compile(l)
		got := new(Link)
		if err := decodeRecord(got, appendRecord(nil, want)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

// Decoding into a link that held a bigger one (the redirect's scratch) leaves nothing of
// the old one behind.
func TestRecordDecodeReusesScratch(t *testing.T) {
	ls := recordLinks()
	names := []string{"variants", "plain", "identity", "full", "variants", "unicode", "archived", "identity"}
	scratch := new(Link)
	for _, name := range names {
		want := Compile(ls[name])
		if err := decodeRecord(scratch, appendRecord(nil, want)); err != nil {
			t.Fatal(err)
		}
		got := *scratch
		got.Targets = append([]Target(nil), scratch.Targets...)
		for i := range got.Targets {
			if len(got.Targets[i].Keys) == 0 {
				got.Targets[i].Keys = nil // a reused slice is empty rather than nil
			}
		}
		if len(got.IdentityParams) == 0 {
			got.IdentityParams = nil
		}
		if !reflect.DeepEqual(&got, want) {
			t.Errorf("%s after another link:\n got %+v\nwant %+v", name, &got, want)
		}
	}
}

// A record cut short is an error, never a read past its end.
func TestRecordTruncated(t *testing.T) {
	rec := appendRecord(nil, Compile(recordLinks()["full"]))
	for n := 4; n < len(rec); n++ {
		cut := append([]byte(nil), rec[:n]...)
		cut[0], cut[1], cut[2], cut[3] = byte(n-4), 0, 0, 0
		if err := decodeRecord(new(Link), cut); err == nil {
			t.Fatalf("record cut to %d of %d bytes decoded", n, len(rec))
		}
	}
}

// Two keys whose 64-bit hashes collide are both found: the second goes to the shard's
// collision map. A real collision cannot be produced on demand, so the test makes the
// shard look as if the second key had hashed where the first did.
func TestIndexHashCollision(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "first", Destination: "https://first.example/"})
	a := ix.Get(storage.LinkKey("", "first"))

	key := storage.LinkKey("", "second")
	h := ix.hash(key)
	ix.mu.Lock()
	n := ix.newEntry()
	e := ix.entry(n)
	e.Counters = db.Counters("", "second")
	e.rec.Store(ix.store(appendRecord(nil, Compile(&storage.Link{Slug: "second", Destination: "https://second.example/"}))))
	// The first key's entry now sits under the second key's hash, as after a collision.
	sh := ix.shards[h%shardCount].Load()
	faked := &shard{byHash: maps.Clone(sh.byHash), collided: map[string]uint32{key: n}}
	faked.byHash[h] = ix.entryNumber(a)
	ix.shards[h%shardCount].Store(faked)
	ix.mu.Unlock()

	if got := ix.Get(key); got != e {
		t.Fatalf("colliding key found %v", got)
	}
	if got := ix.Lookup(nil, []byte("second")); got != e || destOf(got.Link()) != "https://second.example/" {
		t.Fatal("colliding key not found by Lookup")
	}
	if ix.Get(storage.LinkKey("", "first")) != a || ix.Get(storage.LinkKey("", "third")) != nil {
		t.Fatal("a collision disturbed other keys")
	}

	// publish files a new key under a taken hash in the collision map.
	ix.mu.Lock()
	ix.publish(h%shardCount, []keyed{{key: "\x00third", hash: h, n: n}})
	ix.mu.Unlock()
	if ix.shards[h%shardCount].Load().collided["\x00third"] != n || ix.shards[h%shardCount].Load().byHash[h] != ix.entryNumber(a) {
		t.Fatal("publish overwrote a taken hash")
	}
}

// Updates leave dead records in the arena; it is rewritten before they outgrow the live
// ones, while readers keep reading.
func TestIndexArenaRewrite(t *testing.T) {
	db := openTestDB(t)
	ix := NewIndex()
	ix.slack = 64 << 10
	var ls []*storage.Link
	for i := range 100 {
		ls = append(ls, &storage.Link{Slug: fmt.Sprintf("s%d", i), Destination: fmt.Sprintf("https://x.example/%d/v0", i)})
	}
	ix.Put(db, ls...)
	entries := make([]*Entry, len(ls))
	for i, l := range ls {
		entries[i] = ix.Get(l.Key())
	}
	live0, _ := ix.arenaBytes()

	done := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch := new(Link)
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				k := i % len(ls)
				e := ix.Lookup(nil, []byte(ls[k].Slug))
				if e != entries[k] || !strings.HasPrefix(destOf(e.LinkInto(scratch)), fmt.Sprintf("https://x.example/%d/v", k)) {
					bad.Add(1)
				}
			}
		}()
	}
	maxAllocated := int64(0)
	for v := 1; v <= 200; v++ {
		for i, l := range ls {
			l.Destination = fmt.Sprintf("https://x.example/%d/v%d", i, v)
		}
		ix.Put(db, ls...)
		_, allocated := ix.arenaBytes()
		maxAllocated = max(maxAllocated, allocated)
	}
	close(done)
	wg.Wait()

	live, allocated := ix.arenaBytes()
	if bad.Load() != 0 {
		t.Fatalf("%d bad reads during rewrites", bad.Load())
	}
	if live < live0 || live > 2*live0 {
		t.Fatalf("live bytes %d, at start %d", live, live0)
	}
	// 200 versions of every record were written; the arena held at most the slack plus
	// the live records, plus the Put that crossed the line.
	if limit := 2*live + ix.slack + live; maxAllocated > limit {
		t.Fatalf("arena grew to %d bytes (limit %d): dead records not reclaimed", maxAllocated, limit)
	}
	if allocated > 2*live+ix.slack {
		t.Fatalf("arena %d bytes for %d live", allocated, live)
	}
	for i, e := range entries {
		if want := fmt.Sprintf("https://x.example/%d/v200", i); destOf(e.Link()) != want || ix.Len() != len(ls) {
			t.Fatalf("entry %d: %s, want %s", i, destOf(e.Link()), want)
		}
	}
}

// entryNumber finds an entry's number by its address.
func (ix *Index) entryNumber(e *Entry) uint32 {
	for n := uint32(0); n < ix.next; n++ {
		if ix.entry(n) == e {
			return n
		}
	}
	panic("entry not in the index")
}

// Load publishes links handed over in batches as Put would, with each link's stored
// counters.
func TestIndexLoadBatches(t *testing.T) {
	db := openTestDB(t)
	var all []*storage.Link
	for i := range 25_000 {
		all = append(all, &storage.Link{Domain: []string{"", "go.example.com"}[i%2], Slug: fmt.Sprintf("s%d", i),
			Destination: fmt.Sprintf("https://shop.example.com/%d", i)})
	}
	db.Counters("", "s0").Human.Store(7)
	ix := NewIndex()
	rest := all
	ix.Load(db, func() []*storage.Link {
		n := min(len(rest), 10_000)
		b := rest[:n]
		rest = rest[n:]
		return b
	})
	if ix.Len() != len(all) {
		t.Fatalf("Len = %d, want %d", ix.Len(), len(all))
	}
	for i, l := range all {
		e := ix.Get(l.Key())
		if e == nil || destOf(e.Link()) != l.Destination {
			t.Fatalf("link %d (%s) not loaded right: %v", i, l.Key(), e)
		}
	}
	if e := ix.Get(storage.LinkKey("", "s0")); e.Counters.Human.Load() != 7 || e.reserved.Load() != 7 {
		t.Fatalf("stored counters not attached: %d reserved %d", e.Counters.Human.Load(), e.reserved.Load())
	}
	// Later Puts update and add as usual.
	ix.Put(db, &storage.Link{Slug: "s0", Destination: "https://changed.example/"}, &storage.Link{Slug: "new", Destination: "https://new.example/"})
	if destOf(ix.Get(storage.LinkKey("", "s0")).Link()) != "https://changed.example/" || ix.Get(storage.LinkKey("", "new")) == nil || ix.Len() != len(all)+1 {
		t.Fatal("Put after Load")
	}
}
