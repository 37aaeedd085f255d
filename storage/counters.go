package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Counters are a link's committed click counts. The click committer adds to them after
// each successful commit and checkpoints them (checkpoint.go), so after a crash they are
// restored from the checkpoint journal plus the outbox entries past it.
type Counters struct {
	key   string
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
	c := db.counters[lk]
	if c == nil {
		c = db.newCounters(lk)
	}
	return c
}

// countersChunk is how many counters are allocated together: a million links are then a
// thousand objects for the garbage collector rather than a million.
const countersChunk = 1024

// newCounters returns zeroed counters for a link key, registered; countersMu is held, or
// the store is opening (restore), before anything else runs.
func (db *DB) newCounters(lk string) *Counters {
	i := db.countersLen % countersChunk
	if i == 0 {
		db.countersChunks = append(db.countersChunks, make([]Counters, countersChunk))
	}
	c := &db.countersChunks[len(db.countersChunks)-1][i]
	db.countersLen++
	c.key = lk
	db.counters[lk] = c
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
		cs = append(cs, &db.countersChunks[pos/countersChunk][pos%countersChunk])
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
		c := db.counters[string(key)]
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
