package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
)

// Counters are a link's committed click counts. The click committer adds to them after
// each successful commit and checkpoints them (checkpoint.go), so after a crash they are
// restored from the checkpoint journal plus the outbox entries past it.
type Counters struct {
	key   string // the link key, in the store's key arena (keepKey)
	Human atomic.Int64
	Bot   atomic.Int64
	Test  atomic.Int64
}

// Counters returns the counters of a link, creating them at zero.
func (db *DB) Counters(domain, slug string) *Counters {
	return db.countersFor(LinkKey(domain, slug))
}

func (db *DB) countersFor(lk string) *Counters {
	db.countersMu.Lock()
	defer db.countersMu.Unlock()
	c := db.lookupCounters(lk)
	if c == nil {
		c = db.newCounters(lk)
	}
	return c
}

// The counters of a million links were a million key strings and a map of a million
// string keys and pointers, which the garbage collector traced at every cycle: with a
// million links it marked for 300–800 ms every 3 s. Now the keys are packed into chunks
// (keepKey) and the map holds a hash and a position, neither a pointer; the rare key
// whose hash another key already has goes to a small map of its own.

// counterKeysChunk is the size of the chunks the counters' link keys are packed into.
const counterKeysChunk = 256 << 10

// lookupCounters returns the counters of link key lk, or nil; countersMu is held, or the
// store is opening.
func (db *DB) lookupCounters(lk string) *Counters {
	n, ok := db.counterIndex[db.counterHash(lk)]
	if !ok {
		return nil
	}
	if c := db.counterAt(n); c.key == lk {
		return c
	}
	if n, ok := db.counterCollided[lk]; ok {
		return db.counterAt(n)
	}
	return nil
}

func (db *DB) counterAt(n uint32) *Counters {
	return &db.countersChunks[n/countersChunk][n%countersChunk]
}

// keepKey copies lk into the key arena and returns the copy. The bytes of a chunk never
// change once written, so the strings viewing them are as immutable as any; a chunk
// lives as long as one of them.
func (db *DB) keepKey(lk string) string {
	if lk == "" {
		return ""
	}
	if cap(db.keyChunk)-len(db.keyChunk) < len(lk) {
		db.keyChunk = make([]byte, 0, max(counterKeysChunk, len(lk)))
	}
	at := len(db.keyChunk)
	db.keyChunk = append(db.keyChunk, lk...)
	return unsafe.String(&db.keyChunk[at], len(lk))
}

// countersChunk is how many counters are allocated together: a million links are then a
// thousand objects for the garbage collector rather than a million.
const countersChunk = 1024

// newCounters returns zeroed counters for a link key, registered; countersMu is held, or
// the store is opening (restore), before anything else runs.
func (db *DB) newCounters(lk string) *Counters {
	if db.countersLen >= math.MaxUint32 {
		panic("storage: more than 2^32-1 link counters") // positions are uint32
	}
	if db.countersLen%countersChunk == 0 {
		db.countersChunks = append(db.countersChunks, make([]Counters, countersChunk))
	}
	n := uint32(db.countersLen)
	db.countersLen++
	c := db.counterAt(n)
	c.key = db.keepKey(lk)
	h := db.counterHash(lk)
	if _, taken := db.counterIndex[h]; taken {
		db.counterCollided[c.key] = n
	} else {
		db.counterIndex[h] = n
	}
	return c
}

// countersFrom returns up to n counters in the order they were made, from the pos-th,
// the position after them, and whether that is the end. Counters are never removed, so
// a walk from 0 to the end sees every link that had counters when it started.
func (db *DB) countersFrom(pos, n int) (cs []*Counters, next int, end bool) {
	db.countersMu.Lock()
	defer db.countersMu.Unlock()
	stop := min(pos+max(n, 0), db.countersLen)
	cs = make([]*Counters, 0, max(stop-pos, 0))
	for ; pos < stop; pos++ {
		cs = append(cs, db.counterAt(uint32(pos)))
	}
	return cs, pos, pos >= db.countersLen
}

func (c *Counters) add(kind ClickKind, n int64) {
	switch kind {
	case KindHuman:
		c.Human.Add(n)
	case KindBot:
		c.Bot.Add(n)
	case KindTest:
		c.Test.Add(n)
	}
}

// restore loads the outbox sequence and the counter checkpoint, then replays the outbox
// entries written after the counter mark. It returns the mark then, and the journal's
// state.
func (db *DB) restore() (mark uint64, j journal, err error) {
	start := time.Now()
	j.minBytes, j.slice = rollupMinBytes, rollupSlice
	var countersSeq uint64
	// Links whose records are true past the mark (a checkpoint cut short by a crash):
	// the replay skips the events their records already count.
	ahead := map[*Counters]uint64{}
	found := func(seq uint64, key []byte, human, bot, test int64) {
		c := db.lookupCounters(string(key))
		if c == nil {
			c = db.newCounters(string(key))
		}
		c.Human.Store(human)
		c.Bot.Store(bot)
		c.Test.Store(test)
		if seq > countersSeq {
			ahead[c] = seq
		}
	}
	legacy := 0
	err = db.bdb.View(func(txn *badger.Txn) error {
		var err error
		if db.outboxNext, err = readUint64(txn, metaOutboxSeq); err != nil {
			return err
		}
		db.outboxNext++
		// Clicks from before a restart may not be indexed yet: conversions wait for them.
		db.clickHead = db.outboxNext
		if countersSeq, err = readUint64(txn, metaCountersSeq); err != nil {
			return err
		}
		if legacy, err = readLegacyCounters(txn, found); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCheckpoint}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if len(item.Key()) != 9 {
				return fmt.Errorf("checkpoint record key %x", item.Key())
			}
			j.next = binary.BigEndian.Uint64(item.Key()[1:]) + 1
			j.bytes += item.ValueSize()
			err := item.Value(func(v []byte) error { return decodeCheckpoint(v, found) })
			if err != nil {
				return fmt.Errorf("record %d: %w", j.next-1, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, j, fmt.Errorf("storage: restore counters: %w", err)
	}
	replayed := map[*Counters]bool{}
	events := 0
	err = db.ScanOutbox(countersSeq+1, func(e OutboxEntry) bool {
		if e.Kind != EventClick {
			return true
		}
		events++
		c, err := db.GetClick(e.Ref)
		if err != nil {
			db.log.Error("outbox entry points at a missing click", "seq", e.Seq, "err", err)
			return true
		}
		ctr := db.countersFor(LinkKey(c.Domain, c.Slug))
		if e.Seq <= ahead[ctr] {
			return true
		}
		ctr.add(c.Kind(), 1)
		replayed[ctr] = true
		return true
	})
	if err != nil {
		return 0, j, fmt.Errorf("storage: replay counters: %w", err)
	}
	head := db.outboxNext - 1
	all, _, _ := db.countersFrom(0, db.countersLen)
	all = clicked(all)
	// Checkpoint at once: a later checkpoint writes only the links it saw clicks for,
	// and would otherwise move the mark past the entries replayed here. Old per-link
	// records go into the journal whole, every link, so they can be dropped.
	var links []*Counters
	if legacy > 0 {
		links = all
	} else {
		for c := range replayed {
			links = append(links, c)
		}
	}
	if legacy > 0 || events > 0 {
		kvs, n := checkpointRecords(links, head, j.next)
		if err := db.writeCheckpoint(kvs, head, 0); err != nil {
			return 0, j, err
		}
		j.next += uint64(len(kvs))
		j.bytes += n
	}
	if legacy > 0 {
		if err := db.bdb.DropPrefix([]byte{prefixCounters}); err != nil {
			return 0, j, fmt.Errorf("storage: drop the counter records moved into the journal: %w", err)
		}
		db.log.Info("moved link counters into the checkpoint journal", "links", legacy)
	}
	j.whole = checkpointSize(all)
	if events > 0 {
		db.log.Info("restored click counters from the outbox", "links", len(replayed), "clicks", events, "from_seq", countersSeq+1,
			"took", time.Since(start).Round(time.Millisecond).String())
	}
	if legacy > 0 || events > 0 {
		return head, j, nil
	}
	return countersSeq, j, nil
}

// readLegacyCounters reads the counter records of the layout before the journal, one
// per link (24 bytes of counts, then from one version on the sequence they are true at),
// and returns how many there were.
func readLegacyCounters(txn *badger.Txn, found func(seq uint64, key []byte, human, bot, test int64)) (int, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCounters}, PrefetchValues: true})
	defer it.Close()
	n := 0
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		key := item.Key()[1:]
		err := item.Value(func(v []byte) error {
			if len(v) != countersLenV1 && len(v) != countersLenV1+8 {
				return fmt.Errorf("counters of %q: %d bytes", key, len(v))
			}
			var counts [3]int64
			for i := range counts {
				n := binary.BigEndian.Uint64(v[8*i:])
				if n > math.MaxInt64 {
					return fmt.Errorf("counters of %q: count %d out of range", key, n)
				}
				counts[i] = int64(n)
			}
			var seq uint64
			if len(v) > countersLenV1 {
				seq = binary.BigEndian.Uint64(v[24:])
			}
			found(seq, key, counts[0], counts[1], counts[2])
			return nil
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// countersLenV1 is the size of the oldest per-link counters record: human, bot and test.
const countersLenV1 = 24

func readUint64(txn *badger.Txn, name string) (uint64, error) {
	it, err := txn.Get(metaKey(name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n uint64
	err = it.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("meta %s: %d bytes", name, len(v))
		}
		n = binary.BigEndian.Uint64(v)
		return nil
	})
	return n, err
}
