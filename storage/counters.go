package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Counters are a link's committed click counts. The click committer adds to them after
// each successful commit and checkpoints them (checkpoint.go), so after a crash they are
// restored from the checkpoint plus the outbox entries past it.
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

// newCounters returns zeroed counters for a link key, registered; countersMu is held.
func (db *DB) newCounters(lk string) *Counters {
	if len(db.countersFree) == 0 {
		db.countersFree = make([]Counters, countersChunk)
	}
	c := &db.countersFree[0]
	db.countersFree = db.countersFree[1:]
	c.key = lk
	db.counters[lk] = c
	return c
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
// entries written after the counter mark. It returns the mark then.
func (db *DB) restore() (mark uint64, err error) {
	start := time.Now()
	var countersSeq uint64
	// Links whose records are true past the mark (a checkpoint cut short by a crash):
	// the replay skips the events their records already count.
	ahead := map[*Counters]uint64{}
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
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCounters}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			c := db.newCounters(string(item.Key()[1:]))
			err := item.Value(func(v []byte) error {
				seq, err := decodeCounters(v, c)
				if seq > countersSeq {
					ahead[c] = seq
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: restore counters: %w", err)
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
		return 0, fmt.Errorf("storage: replay counters: %w", err)
	}
	if events == 0 {
		return countersSeq, nil
	}
	// Checkpoint at once: a later checkpoint writes only the links it saw clicks for, and
	// would otherwise move the mark past the entries replayed here.
	links := make([]*Counters, 0, len(replayed))
	for c := range replayed {
		links = append(links, c)
	}
	if err := db.writeCheckpoint(counterRecords(links, db.outboxNext-1), db.outboxNext-1); err != nil {
		return 0, err
	}
	db.log.Info("restored click counters from the outbox", "links", len(replayed), "clicks", events, "from_seq", countersSeq+1,
		"took", time.Since(start).Round(time.Millisecond).String())
	return db.outboxNext - 1, nil
}

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
