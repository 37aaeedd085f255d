package links

import (
	"hash/maphash"
	"maps"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/clickgate/clickgate/storage"
)

// Entry is a link in the index. The pointer is stable for the life of the link; updates
// swap the record inside it, so counters and reservations carry over.
type Entry struct {
	rec      atomic.Pointer[byte] // the link's record in the index's arena
	Counters *storage.Counters
	// reserved counts human clicks admitted under max_clicks, including clicks whose
	// commit is still in flight, so concurrent taps cannot overshoot the limit.
	reserved atomic.Int64
}

// Link returns the current compiled link in memory of its own.
func (e *Entry) Link() *Link { return e.LinkInto(new(Link)) }

// LinkInto decodes the current compiled link into dst, reusing dst's slices, and returns
// dst. Its strings view the index's arena and stay valid however the link changes.
func (e *Entry) LinkInto(dst *Link) *Link {
	if err := decodeRecord(dst, recordAt(e.rec.Load())); err != nil {
		panic(err) // the index wrote the record itself: this is a bug, not bad input
	}
	return dst
}

// Reserve takes a slot for a human click; it reports false when the link's max_clicks
// is used up. Every human click is counted, limit or not, so a limit set later by an
// update starts from the clicks the link already had.
func (e *Entry) Reserve(l *Link) bool {
	n := e.reserved.Add(1)
	if l.MaxClicks > 0 && n > l.MaxClicks {
		e.reserved.Add(-1)
		return false
	}
	return true
}

// Release returns a slot taken by Reserve whose click was not stored.
func (e *Entry) Release(*Link) { e.reserved.Add(-1) }

const (
	shardCount = 256
	slotChunk  = 4096    // entries allocated together, so their addresses never move
	arenaChunk = 1 << 20 // bytes of records allocated together
	// The arena is rewritten when updates have left more dead records than live ones,
	// and at least this many bytes of them.
	arenaSlack = 32 << 20
)

// keyed is a new entry with its key and the key's hash.
type keyed struct {
	key  string
	hash uint64
	n    uint32
}

// Index maps (host, slug) to links for the redirect. Reads take no lock: each shard is an
// immutable map behind an atomic pointer, and a write copies only its shard (1/256th of
// the links). Nothing per link is a heap object of its own: shards map a 64-bit hash of
// the key to an entry number, entries live in fixed-size chunks, and compiled links are
// packed records in an append-only arena (record.go), so the garbage collector sees a
// few hundred objects for a million links, and each link costs its record plus about 70
// bytes (its counters, kept by storage, are apart).
type Index struct {
	seed   maphash.Seed
	shards [shardCount]atomic.Pointer[shard]
	// domains holds every domain some link has, immutable behind the pointer like a
	// shard. A request's host outside it has no link of its own, so the lookup goes
	// straight to the no-domain link: with many links the probe for a key that is not
	// there is a cache miss or two per redirect. It only grows (links are not removed
	// from the index, and a link's domain is part of its key).
	domains atomic.Pointer[map[string]struct{}]
	slots   atomic.Pointer[[]*[slotChunk]Entry]
	count   atomic.Int64

	mu sync.Mutex // serialises writers; the fields below are theirs
	// chunk is the arena chunk records are appended to; older chunks are reachable only
	// through the records that point into them.
	chunk           []byte
	live, allocated int64 // record bytes in use and written since the last rewrite
	buf             []byte
	next            uint32 // the next entry number
	slack           int64  // arenaSlack; tests lower it
}

// shard is immutable once published.
type shard struct {
	byHash map[uint64]uint32
	// collided holds keys whose hash another key of the shard already had: a 64-bit
	// collision is rare, not impossible.
	collided map[string]uint32
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	ix := &Index{seed: maphash.MakeSeed(), slack: arenaSlack}
	for i := range ix.shards {
		ix.shards[i].Store(&shard{byHash: map[uint64]uint32{}})
	}
	ix.slots.Store(&[]*[slotChunk]Entry{})
	ix.domains.Store(&map[string]struct{}{})
	return ix
}

// Len returns the number of links.
func (ix *Index) Len() int { return int(ix.count.Load()) }

// Lookup finds the link for a request host (lowercase, without port) and slug: a link on
// that domain, else a link on no domain. It allocates nothing.
func (ix *Index) Lookup(host, slug []byte) *Entry {
	var buf [320]byte
	if len(slug)+1 > len(buf) {
		return nil
	}
	if _, ok := (*ix.domains.Load())[string(host)]; ok && len(host)+1+len(slug) <= len(buf) {
		k := append(append(append(buf[:0], host...), 0), slug...)
		if e := ix.get(k); e != nil {
			return e
		}
	}
	return ix.get(append(append(buf[:0], 0), slug...))
}

// Get returns the entry for a storage link key.
func (ix *Index) Get(key string) *Entry { return ix.get([]byte(key)) }

func (ix *Index) get(k []byte) *Entry {
	h := maphash.Bytes(ix.seed, k)
	sh := ix.shards[h%shardCount].Load()
	if n, ok := sh.byHash[h]; ok {
		if e := ix.entry(n); e.hasKey(k) {
			return e
		}
	}
	if len(sh.collided) > 0 {
		if n, ok := sh.collided[string(k)]; ok {
			return ix.entry(n)
		}
	}
	return nil
}

func (ix *Index) hash(key string) uint64 { return maphash.String(ix.seed, key) }

func (ix *Index) entry(n uint32) *Entry {
	return &(*ix.slots.Load())[n/slotChunk][n%slotChunk]
}

// hasKey reports whether the entry's link has the storage key k (domain, NUL, slug).
func (e *Entry) hasKey(k []byte) bool {
	r := reader{b: recordAt(e.rec.Load())[4:]}
	d, s := r.str(), r.str()
	return len(k) == len(d)+1+len(s) && string(k[:len(d)]) == d && k[len(d)] == 0 && string(k[len(d)+1:]) == s
}

// Put adds or replaces links. Counters come from storage so they survive restarts.
func (ix *Index) Put(db *storage.DB, ls ...*storage.Link) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	byShard := map[uint64][]keyed{}
	ix.stage(db, ls, byShard)
	ix.publishAll(byShard)
}

// Load adds the links next yields, in batches it returns until it returns none, and
// publishes them together: a shard is copied once rather than once per batch (with a
// million links, batches of 10,000 made loading quadratic, a third of the start). The
// keys must not repeat across batches, as keys read from storage do not.
func (ix *Index) Load(db *storage.DB, next func() []*storage.Link) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	byShard := map[uint64][]keyed{}
	for ls := next(); len(ls) > 0; ls = next() {
		ix.stage(db, ls, byShard)
	}
	ix.publishAll(byShard)
}

// stage stores the records of ls, replacing those of links already published, and
// groups the new ones by shard for publishAll.
func (ix *Index) stage(db *storage.DB, ls []*storage.Link, byShard map[uint64][]keyed) {
	fresh := map[string]*Entry{} // links new in this call, for a key given twice
	for _, l := range ls {
		key := l.Key()
		ix.buf = appendRecord(ix.buf[:0], Compile(l))
		rec := ix.store(ix.buf)
		e := ix.get([]byte(key))
		if e == nil {
			e = fresh[key]
		}
		if e != nil {
			ix.live -= int64(len(recordAt(e.rec.Load())))
			e.rec.Store(rec)
			continue
		}
		n := ix.newEntry()
		e = ix.entry(n)
		e.Counters = db.Counters(l.Domain, l.Slug)
		e.reserved.Store(e.Counters.Human.Load())
		e.rec.Store(rec)
		fresh[key] = e
		h := ix.hash(key)
		byShard[h%shardCount] = append(byShard[h%shardCount], keyed{key, h, n})
	}
}

func (ix *Index) publishAll(byShard map[uint64][]keyed) {
	// The new links' domains join the set by the time Put returns; until then a
	// reader skips their domain keys and finds what it found before the Put.
	var added map[string]struct{}
	old := *ix.domains.Load()
	for _, group := range byShard {
		for _, a := range group {
			d, _, _ := strings.Cut(a.key, "\x00")
			if _, ok := old[d]; ok || d == "" {
				continue
			}
			if added == nil {
				added = maps.Clone(old)
			}
			added[d] = struct{}{}
		}
	}
	if added != nil {
		ix.domains.Store(&added)
	}
	for s, group := range byShard {
		ix.publish(s, group)
	}
	if dead := ix.allocated - ix.live; dead > ix.slack && dead > ix.live {
		ix.rewriteArena()
	}
}

// publish adds new entries to shard s: a copy of the shard with them replaces it.
func (ix *Index) publish(s uint64, group []keyed) {
	old := ix.shards[s].Load()
	sh := &shard{byHash: make(map[uint64]uint32, len(old.byHash)+len(group))}
	for h, n := range old.byHash {
		sh.byHash[h] = n
	}
	if len(old.collided) > 0 {
		sh.collided = map[string]uint32{}
		for k, n := range old.collided {
			sh.collided[k] = n
		}
	}
	for _, a := range group {
		if _, taken := sh.byHash[a.hash]; taken {
			if sh.collided == nil {
				sh.collided = map[string]uint32{}
			}
			sh.collided[a.key] = a.n
		} else {
			sh.byHash[a.hash] = a.n
		}
	}
	ix.shards[s].Store(sh)
	ix.count.Add(int64(len(group)))
}

// newEntry returns the number of a new zeroed entry, growing the chunks if needed.
func (ix *Index) newEntry() uint32 {
	n := ix.next
	ix.next++
	if slots := *ix.slots.Load(); int(n/slotChunk) == len(slots) {
		grown := append(slots[:len(slots):len(slots)], new([slotChunk]Entry))
		ix.slots.Store(&grown)
	}
	return n
}

// store copies a record into the arena and returns where it starts.
func (ix *Index) store(rec []byte) *byte {
	if cap(ix.chunk)-len(ix.chunk) < len(rec) {
		ix.chunk = make([]byte, 0, max(arenaChunk, len(rec)))
	}
	at := len(ix.chunk)
	ix.chunk = append(ix.chunk, rec...)
	ix.live += int64(len(rec))
	ix.allocated += int64(len(rec))
	return &ix.chunk[at]
}

// rewriteArena copies every live record into fresh chunks. A redirect still decoding an
// old record keeps its chunk alive until it is done; then the collector frees it.
func (ix *Index) rewriteArena() {
	ix.chunk, ix.live, ix.allocated = nil, 0, 0
	for n := uint32(0); n < ix.next; n++ {
		e := ix.entry(n)
		e.rec.Store(ix.store(recordAt(e.rec.Load())))
	}
}

// arenaBytes reports the record bytes in use and written since the last rewrite.
func (ix *Index) arenaBytes() (live, allocated int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.live, ix.allocated
}
