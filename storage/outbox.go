package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
)

// EventKind is the kind of event an outbox entry announces.
type EventKind uint8

// Event kinds in the outbox.
const (
	EventClick EventKind = 1
)

// OutboxEntry is one event of the outbox log: a sequence number, strictly increasing in
// commit order, and a reference to the record it announces. Consumers (the Kafka relay,
// each plugin) read the log at their own durable cursor.
//
// On disk, one Badger entry per committed transaction holds all its events: the key is
// the first event's sequence number, the value is kind(1)+ref(16) per event.
type OutboxEntry struct {
	Seq  uint64
	Kind EventKind
	Ref  [16]byte
}

const outboxEventLen = 17

func appendOutboxValue(dst []byte, kind EventKind, ref []byte) []byte {
	dst = append(dst, byte(kind))
	return append(dst, ref...)
}

// ScanOutbox calls fn for each event with Seq >= from, in order, until fn returns false.
func (db *DB) ScanOutbox(from uint64, fn func(OutboxEntry) bool) error {
	return db.bdb.View(func(txn *badger.Txn) error { return scanOutboxTxn(txn, from, fn) })
}

func scanOutboxTxn(txn *badger.Txn, from uint64, fn func(OutboxEntry) bool) error {
	// The event numbered `from` may sit inside an entry that starts before it: find
	// the last entry starting at or before it.
	start := outboxKey(from)
	rit := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixOutbox}, Reverse: true})
	rit.Seek(start)
	if rit.Valid() {
		start = rit.Item().KeyCopy(nil)
	}
	rit.Close()

	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixOutbox}, PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		first := binary.BigEndian.Uint64(item.Key()[1:])
		stop := false
		err := item.Value(func(v []byte) error {
			if len(v) == 0 || len(v)%outboxEventLen != 0 {
				return fmt.Errorf("outbox entry %d: %w", first, ErrCorrupt)
			}
			for i := 0; i < len(v)/outboxEventLen; i++ {
				e := OutboxEntry{Seq: first + uint64(i), Kind: EventKind(v[i*outboxEventLen])}
				if e.Seq < from {
					continue
				}
				copy(e.Ref[:], v[i*outboxEventLen+1:(i+1)*outboxEventLen])
				if !fn(e) {
					stop = true
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if stop {
			return nil
		}
	}
	return nil
}

// OutboxHead returns the sequence number the next outbox event will get.
func (db *DB) OutboxHead() uint64 {
	db.outboxMu.Lock()
	defer db.outboxMu.Unlock()
	return db.outboxNext
}

// Event is an outbox event with its record, for consumers.
type Event struct {
	OutboxEntry
	// Record is the announced record (for clicks, a record from AppendClick), copied.
	Record []byte
	// Sealed is a conversion's sealed plain identifiers (see SealedUser), nil when none
	// were given or they are gone.
	Sealed []byte
	// sealedInStore marks a kept status change whose Sealed is to be read from the store.
	sealedInStore bool
}

// readOutbox returns up to max events with Seq >= from, each with its record, read in
// one transaction. An event whose record is missing is returned with a nil Record.
//
// Records are read with one iterator walking the click keys in order rather than a Get
// per event: click IDs start with their time, so the clicks of a batch sit next to each
// other in the key space and a walk touches each table block once.
func (db *DB) readOutbox(from uint64, max int) ([]Event, error) {
	var out []Event
	err := db.bdb.View(func(txn *badger.Txn) error {
		if err := scanOutboxTxn(txn, from, func(e OutboxEntry) bool {
			out = append(out, Event{OutboxEntry: e})
			return len(out) < max
		}); err != nil {
			return err
		}
		order := make([]int, 0, len(out))
		for i := range out {
			switch out[i].Kind {
			case EventClick:
				order = append(order, i)
			case EventConversion:
				// The state the event announced, kept if a status change has replaced it
				// since; else the record as it is (also for events from before states
				// were kept).
				it, err := txn.Get(eventStateKey(out[i].Seq))
				if err == badger.ErrKeyNotFound {
					it, err = txn.Get(conversionKey(out[i].Ref))
				}
				if err == badger.ErrKeyNotFound {
					continue
				}
				if err != nil {
					return err
				}
				if out[i].Record, err = it.ValueCopy(nil); err != nil {
					return err
				}
				switch it, err := txn.Get(sealedUserKey(out[i].Ref)); {
				case err == badger.ErrKeyNotFound:
				case err != nil:
					return err
				default:
					if out[i].Sealed, err = it.ValueCopy(nil); err != nil {
						return err
					}
				}
			}
		}
		sort.Slice(order, func(a, b int) bool { return bytes.Compare(out[order[a]].Ref[:], out[order[b]].Ref[:]) < 0 })
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixClick}})
		defer it.Close()
		var key [17]byte
		key[0] = prefixClick
		positioned := false
		for _, i := range order {
			copy(key[1:], out[i].Ref[:])
			// Step forward a few keys before paying for a seek.
			found := false
			for steps := 0; positioned && it.Valid() && steps < 4; steps++ {
				c := bytes.Compare(it.Item().Key(), key[:])
				if c == 0 {
					found = true
					break
				}
				if c > 0 {
					break
				}
				it.Next()
			}
			if !found {
				it.Seek(key[:])
				positioned = true
				found = it.Valid() && bytes.Equal(it.Item().Key(), key[:])
			}
			if !found {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[i].Record = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: read events: %w", err)
	}
	return out, nil
}
