package storage

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// seenFilter remembers in memory which dedupe keys the store holds, so that the usual
// conversion, one whose event ID was never seen, is told so without a Badger read. A key
// that is in no table is Badger's costliest lookup (a table and its bloom filter on every
// level, their indexes often not cached): about a tenth of a batched conversion's CPU
// with ten million clicks stored.
//
// It is a Bloom filter: "not seen" is certain, "maybe seen" is confirmed by Badger. Each
// layer errs on about 1 % of keys it does not hold, and a lookup tests every layer of
// every week (five or six with the default horizon), so a few percent of new event IDs
// still cost a read. It holds every dedupe key in the store: it is filled from them when
// the store opens, and a key is added before it is committed, so a failed or interrupted
// commit can only leave an extra key (a wasted Badger read), never a missing one (a
// duplicate taken as new).
//
// Keys expire with their horizon, so the filter keeps one generation per week of expiry
// and forgets a generation once every key in it has expired in Badger too. That is judged
// on a clock that cannot run ahead of the time elapsed since the store opened: a wall
// clock stepped forward for a moment must not drop keys Badger serves again once it is
// set right.
type seenFilter struct {
	seed maphash.Seed
	now  func() int64 // Unix seconds, from boundedClock

	mu   sync.RWMutex
	gens []*seenGen
}

// seenGen holds the keys that expire within one week.
type seenGen struct {
	until int64 // Unix seconds by which every key in it has expired; 0: keys that never expire
	bloomSet
}

const (
	// seenWeek is the span of expiry times one generation covers: with the default 30-day
	// horizon a lookup tests five or six generations.
	seenWeek = int64(7 * 24 * 3600)
	// seenGrace keeps a generation a while past its last expiry, so a clock step back
	// cannot drop keys Badger still holds.
	seenGrace = int64(3600)
	// seenMinKeys sizes a generation's first layer when nothing tells how big it will be
	// (80 KiB).
	seenMinKeys = 1 << 16
)

func newSeenFilter() *seenFilter {
	return &seenFilter{seed: maphash.MakeSeed(), now: boundedClock(time.Now(), time.Now)}
}

// boundedClock reads the wall clock in Unix seconds, but never ahead of start plus the
// monotonic time elapsed since start.
func boundedClock(start time.Time, wall func() time.Time) func() int64 {
	return func() int64 { return min(wall().Unix(), start.Unix()+int64(time.Since(start)/time.Second)+1) }
}

func (f *seenFilter) hash(key []byte) uint64 { return maphash.Bytes(f.seed, key) }

// genUntil is the end of the generation for a key expiring at expires (0: never).
func genUntil(expires int64) int64 {
	if expires <= 0 {
		return 0
	}
	return (expires/seenWeek + 1) * seenWeek
}

// add records a key (by its hash) that expires at expires, Unix seconds (0: never).
func (f *seenFilter) add(h uint64, expires int64) {
	until := genUntil(expires)
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen(until, now).insert(h)
}

// gen finds or makes the generation ending at until, dropping expired ones. The caller
// holds the write lock.
func (f *seenFilter) gen(until, now int64) *seenGen {
	f.gens = slices.DeleteFunc(f.gens, func(g *seenGen) bool { return g.until != 0 && g.until+seenGrace < now })
	if g := f.find(until); g != nil {
		return g
	}
	// A new week is sized like the busiest one held: volumes change slowly.
	size := seenMinKeys
	for _, g := range f.gens {
		size = max(size, g.keys())
	}
	g := &seenGen{until: until, bloomSet: newBloomSet(size)}
	f.gens = append(f.gens, g)
	return g
}

// find returns the generation ending at until, or nil. The caller holds the lock.
func (f *seenFilter) find(until int64) *seenGen {
	for _, g := range f.gens {
		if g.until == until {
			return g
		}
	}
	return nil
}

// mayHave reports whether a key (by its hash) may be in the store; false is certain.
func (f *seenFilter) mayHave(h uint64) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, g := range f.gens {
		if g.has(h) {
			return true
		}
	}
	return false
}

// load fills the filter from the dedupe keys in the store and returns how many there
// were. It is called before the store takes writes. It reads the keys twice in one
// transaction, counting them by week and then adding them, so that each week's first
// layer fits what it holds (with room for as many again) without keeping every key in
// memory in between.
func (f *seenFilter) load(bdb *badger.DB) (int, error) {
	total := 0
	err := bdb.View(func(txn *badger.Txn) error {
		each := func(fn func(key []byte, expires int64)) {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixDedupe}})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				fn(it.Item().Key(), int64(it.Item().ExpiresAt()))
			}
		}
		count := map[int64]int{}
		each(func(_ []byte, expires int64) { count[genUntil(expires)]++ })
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gens = f.gens[:0]
		for until, n := range count {
			f.gens = append(f.gens, &seenGen{until: until, bloomSet: newBloomSet(max(seenMinKeys, 2*n))})
			total += n
		}
		each(func(key []byte, expires int64) { f.find(genUntil(expires)).insert(f.hash(key)) })
		return nil
	})
	return total, err
}

// bloom is a blocked Bloom filter: the bits of one key all fall in one 512-bit block,
// so a test touches one cache line. Ten bits a key and seven probes give about 1 %
// false positives when full.
type bloom struct {
	blocks   [][8]uint64
	keys     int
	capacity int
}

const (
	bloomBitsPerKey = 10
	bloomProbes     = 7
)

func newBloom(capacity int) *bloom {
	return &bloom{blocks: make([][8]uint64, (capacity*bloomBitsPerKey+511)/512), capacity: capacity}
}

// block picks the key's block from the hash's low half; probes come from a remix of the
// hash, so they do not follow the block.
func (b *bloom) block(h uint64) (*[8]uint64, uint64) {
	return &b.blocks[(h&0xffffffff)*uint64(len(b.blocks))>>32], mix64(h)
}

func (b *bloom) add(h uint64) {
	blk, p := b.block(h)
	for range bloomProbes {
		blk[(p>>6)&7] |= 1 << (p & 63)
		p >>= 9
	}
	b.keys++
}

func (b *bloom) has(h uint64) bool {
	blk, p := b.block(h)
	for range bloomProbes {
		if blk[(p>>6)&7]&(1<<(p&63)) == 0 {
			return false
		}
		p >>= 9
	}
	return true
}

// mix64 is SplitMix64's finaliser: every output bit depends on every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// bloomSet is a Bloom filter that grows: when its last layer is full it adds one twice
// as big, rather than let the false positive rate climb.
type bloomSet struct {
	layers []*bloom
}

func newBloomSet(capacity int) bloomSet {
	return bloomSet{layers: []*bloom{newBloom(capacity)}}
}

// insert adds a key (by its hash) to the last layer, or to a new one when it is full.
func (s *bloomSet) insert(h uint64) {
	l := s.layers[len(s.layers)-1]
	if l.keys >= l.capacity {
		l = newBloom(2 * l.capacity)
		s.layers = append(s.layers, l)
	}
	l.add(h)
}

// has reports whether a key may have been inserted; false is certain.
func (s *bloomSet) has(h uint64) bool {
	for _, l := range s.layers {
		if l.has(h) {
			return true
		}
	}
	return false
}

// keys counts the keys inserted, all layers.
func (s *bloomSet) keys() int {
	n := 0
	for _, l := range s.layers {
		n += l.keys
	}
	return n
}
