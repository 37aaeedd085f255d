package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// Outbox consumers (the index, the Kafka relay, plugins) read most events right after
// they are committed. Rather than read each click back from Badger (a transaction, a
// seek and a copy per click), they take the committer's last batches from memory;
// events no longer there (a restart, a consumer that fell behind) come from the outbox.

// recentMaxBytes bounds the records kept: a few batches at saturation.
const recentMaxBytes = 4 << 20

type recentBatch struct {
	events []Event // contiguous sequences
	bytes  int
}

type recent struct {
	mu      sync.Mutex
	batches []recentBatch
	bytes   int
}

// keep adds the events of a committed batch, whose first event has sequence first.
func (r *recent) keep(b *batch, first uint64) {
	evs := make([]Event, 0, len(b.ends)+len(b.others))
	recs := bytes.Clone(b.recs) // b's buffers are reused by the next batch
	for i, end := range b.ends {
		rec := recs[b.start(i):end:end]
		evs = append(evs, Event{OutboxEntry: OutboxEntry{Seq: first + uint64(i), Kind: EventClick, Ref: [16]byte(rec[:16])}, Record: rec})
	}
	size := len(recs)
	for j, o := range b.others {
		e := Event{OutboxEntry: OutboxEntry{Seq: b.otherSeq + uint64(j), Kind: o.Kind, Ref: o.Ref}}
		if o.Kind != EventConversion {
			r.reset() // a kind this cache does not know how to read: the outbox does
			return
		}
		rk, sk := conversionKey(o.Ref), sealedUserKey(o.Ref)
		for _, kv := range o.Sets {
			switch {
			case bytes.Equal(kv.Key, rk):
				e.Record = kv.Value
			case bytes.Equal(kv.Key, sk):
				e.Sealed = kv.Value
			}
		}
		// A status change that brought no identifiers of its own goes out with those of
		// the conversion as first sent, which only the store has.
		e.sealedInStore = e.Sealed == nil && revised(e.Record)
		size += len(e.Record) + len(e.Sealed)
		evs = append(evs, e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.batches); n > 0 {
		last := r.batches[n-1].events
		if last[len(last)-1].Seq+1 != evs[0].Seq {
			r.batches, r.bytes = nil, 0 // a gap: what is kept must be contiguous
		}
	}
	r.batches = append(r.batches, recentBatch{events: evs, bytes: size})
	r.bytes += size
	for r.bytes > recentMaxBytes && len(r.batches) > 1 {
		r.bytes -= r.batches[0].bytes
		r.batches = r.batches[1:]
	}
}

func (r *recent) reset() {
	r.mu.Lock()
	r.batches, r.bytes = nil, 0
	r.mu.Unlock()
}

// events returns up to max kept events from sequence from on, or false when the event
// at from is not kept.
func (r *recent) events(from uint64, max int) ([]Event, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The batches are contiguous and in order: search for the one holding from. Under a
	// light load they are many and small (4 MiB of one-click batches), and every consumer
	// reads after every commit, so a scan from the oldest was 10 % of the CPU.
	i := sort.Search(len(r.batches), func(i int) bool {
		evs := r.batches[i].events
		return evs[len(evs)-1].Seq >= from
	})
	var out []Event
	for _, b := range r.batches[i:] {
		first := b.events[0].Seq
		if len(out) == 0 && first > from {
			return nil, false
		}
		start := 0
		if from > first {
			start = int(from - first)
		}
		for _, e := range b.events[start:] {
			if len(out) == max {
				return out, true
			}
			out = append(out, e)
		}
	}
	return out, len(out) > 0
}

// ReadEvents returns up to max events with Seq >= from, each with its record (nil when
// the record is missing): from memory when the committer still has them, else from the
// outbox in one transaction. Records are shared between readers: read them, never
// change them.
//
// A conversion's record is as of its event, from memory or from the outbox (where an
// event committed before event states were kept has the conversion's current record).
func (db *DB) ReadEvents(from uint64, max int) ([]Event, error) {
	evs, ok := db.recent.events(from, max)
	if !ok {
		return db.readOutbox(from, max)
	}
	for i := range evs {
		if !evs[i].sealedInStore {
			continue
		}
		// evs holds copies of the kept events: filling one in changes nothing kept.
		err := db.bdb.View(func(txn *badger.Txn) error {
			it, err := txn.Get(sealedUserKey(evs[i].Ref))
			if err != nil {
				return err
			}
			evs[i].Sealed, err = it.ValueCopy(nil)
			return err
		})
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return nil, fmt.Errorf("storage: read sealed identifiers: %w", err)
		}
	}
	return evs, nil
}

// revised reports whether a conversion record is a status change (revision above 0).
func revised(rec []byte) bool {
	if len(rec) < 3 || rec[0] != conversionRecordV1 {
		return false
	}
	rev, n := binary.Varint(rec[2:])
	return n > 0 && rev > 0
}
