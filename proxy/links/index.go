package links

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/clickgate/clickgate/storage"
)

// Entry is a link in the index. The pointer is stable for the life of the link; updates
// swap the compiled link inside it, so counters and reservations carry over.
type Entry struct {
	link     atomic.Pointer[Link]
	Counters *storage.Counters
	// reserved counts human clicks admitted under max_clicks, including clicks whose
	// commit is still in flight, so concurrent taps cannot overshoot the limit.
	reserved atomic.Int64
}

// Link returns the current compiled link.
func (e *Entry) Link() *Link { return e.link.Load() }

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

const shardCount = 256

// Index maps (host, slug) to links for the redirect. Reads take no lock: each shard is an
// immutable map behind an atomic pointer, and a write copies only its shard (1/256th of
// the links), so creating one link among a million copies a few thousand map entries.
type Index struct {
	seed   maphash.Seed
	shards [shardCount]atomic.Pointer[map[string]*Entry]
	mu     sync.Mutex // serialises writers
	count  atomic.Int64
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	ix := &Index{seed: maphash.MakeSeed()}
	for i := range ix.shards {
		m := map[string]*Entry{}
		ix.shards[i].Store(&m)
	}
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
	if len(host) > 0 && len(host)+1+len(slug) <= len(buf) {
		k := append(append(append(buf[:0], host...), 0), slug...)
		if e := ix.get(k); e != nil {
			return e
		}
	}
	return ix.get(append(append(buf[:0], 0), slug...))
}

func (ix *Index) get(k []byte) *Entry {
	m := *ix.shards[maphash.Bytes(ix.seed, k)%shardCount].Load()
	return m[string(k)]
}

// Get returns the entry for a storage link key.
func (ix *Index) Get(key string) *Entry {
	m := *ix.shards[maphash.String(ix.seed, key)%shardCount].Load()
	return m[key]
}

// Put adds or replaces links. Counters come from storage so they survive restarts.
func (ix *Index) Put(db *storage.DB, ls ...*storage.Link) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	byShard := map[uint64][]*storage.Link{}
	for _, l := range ls {
		s := maphash.String(ix.seed, l.Key()) % shardCount
		byShard[s] = append(byShard[s], l)
	}
	for s, group := range byShard {
		old := *ix.shards[s].Load()
		fresh := false
		for _, l := range group {
			if e := old[l.Key()]; e != nil {
				e.link.Store(Compile(l))
			} else {
				fresh = true
			}
		}
		if !fresh {
			continue // updates only: swapped in place, no copy
		}
		m := make(map[string]*Entry, len(old)+len(group))
		for k, v := range old {
			m[k] = v
		}
		for _, l := range group {
			if m[l.Key()] != nil {
				continue
			}
			c := Compile(l)
			e := &Entry{Counters: db.Counters(l.Domain, l.Slug)}
			e.reserved.Store(e.Counters.Human.Load())
			e.link.Store(c)
			m[l.Key()] = e
			ix.count.Add(1)
		}
		ix.shards[s].Store(&m)
	}
}
