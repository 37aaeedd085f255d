package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Consumers of the outbox (the Kafka relay, each plugin) keep a durable cursor: the
// sequence number of the next event they have not yet had acknowledged. An outbox entry
// is deleted once every registered consumer, and the counter checkpoint, has passed it.

func cursorKey(name string) []byte { return metaKey("cursor/" + name) }

// Cursor returns a consumer's cursor. A consumer seen for the first time starts at the
// oldest event still in the outbox, so it receives every retained event.
func (db *DB) Cursor(name string) (uint64, error) {
	c, _, err := db.cursor(name)
	return c, err
}

// cursor is Cursor, and whether the consumer had one.
func (db *DB) cursor(name string) (uint64, bool, error) {
	var c uint64
	found := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(cursorKey(name))
		if err == badger.ErrKeyNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return ErrCorrupt
			}
			c = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return 0, false, fmt.Errorf("storage: cursor %s: %w", name, err)
	}
	if !found {
		c = db.oldestOutbox()
	}
	return c, found, nil
}

// SetCursor records that a consumer had every event before next acknowledged.
func (db *DB) SetCursor(name string, next uint64) error {
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(cursorKey(name), binary.BigEndian.AppendUint64(nil, next))
	})
	if err != nil {
		return fmt.Errorf("storage: set cursor %s: %w", name, err)
	}
	return nil
}

func (db *DB) oldestOutbox() uint64 {
	var first uint64 = 1
	db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixOutbox}})
		defer it.Close()
		it.Seek(outboxKey(db.retention.floor.Load()))
		if it.Valid() {
			first = binary.BigEndian.Uint64(it.Item().Key()[1:])
		} else {
			first = db.OutboxHead()
		}
		return nil
	})
	return first
}

// retention tracks which consumers hold outbox entries back, and how far the outbox has
// been trimmed.
type retention struct {
	mu        sync.Mutex
	consumers map[string]bool

	// trim runs one TrimOutbox at a time. floor is where the outbox's live entries
	// begin, as far as this run knows: every entry starting below it is deleted. A
	// deleted entry stays in the tree as a tombstone until compaction drops it, and an
	// iterator from the prefix's start steps over every one of them: at a few thousand
	// clicks a second that was a tenth of a second of CPU each trim, taken from
	// redirects in one burst. Reads of the outbox's oldest entries seek to the floor.
	trim  sync.Mutex
	floor atomic.Uint64
}

// Register adds a consumer whose cursor holds back deletion. Consumers not registered in
// this run (a plugin removed from the configuration) do not block retention.
func (db *DB) Register(name string) {
	db.retention.mu.Lock()
	defer db.retention.mu.Unlock()
	if db.retention.consumers == nil {
		db.retention.consumers = map[string]bool{}
	}
	db.retention.consumers[name] = true
}

// TrimOutbox deletes outbox entries whose events every registered consumer and the
// counter checkpoint have passed. It returns the number of events deleted.
func (db *DB) TrimOutbox() (int, error) {
	low := uint64(math.MaxUint64)
	db.retention.mu.Lock()
	names := make([]string, 0, len(db.retention.consumers))
	for n := range db.retention.consumers {
		names = append(names, n)
	}
	db.retention.mu.Unlock()
	for _, n := range names {
		c, err := db.Cursor(n)
		if err != nil {
			return 0, err
		}
		low = min(low, c)
	}
	cs, err := db.counterMark()
	if err != nil {
		return 0, err
	}
	low = min(low, cs+1)

	db.retention.trim.Lock()
	defer db.retention.trim.Unlock()
	var dead [][]byte
	deleted, floor := 0, db.retention.floor.Load()
	err = db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixOutbox}})
		defer it.Close()
		for it.Seek(outboxKey(floor)); it.Valid(); it.Next() {
			item := it.Item()
			first := binary.BigEndian.Uint64(item.Key()[1:])
			n := uint64(item.ValueSize()) / outboxEventLen
			if first+n > low {
				break // this entry still has an event someone needs
			}
			dead = append(dead, item.KeyCopy(nil))
			deleted += int(n)
			floor = first + n
			if err := item.Value(func(v []byte) error {
				for i := 0; i+outboxEventLen <= len(v); i += outboxEventLen {
					if EventKind(v[i]) != EventConversion {
						continue
					}
					// An event whose state was kept has a status change after it, which
					// goes out with the conversion's sealed identifiers: they go with the
					// conversion's last event.
					state := eventStateKey(first + uint64(i/outboxEventLen))
					switch _, err := txn.Get(state); {
					case err == nil:
						dead = append(dead, state)
					case errors.Is(err, badger.ErrKeyNotFound):
						dead = append(dead, sealedUserKey([16]byte(v[i+1:i+outboxEventLen])))
					default:
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
			if len(dead) >= 10000 {
				break
			}
		}
		return nil
	})
	if err != nil || len(dead) == 0 {
		return 0, err
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range dead {
		if err := wb.Delete(k); err != nil {
			return 0, fmt.Errorf("storage: trim outbox: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("storage: trim outbox: %w", err)
	}
	db.retention.floor.Store(floor)
	return deleted, nil
}

// OutboxSize estimates the bytes the outbox takes on disk.
func (db *DB) OutboxSize() uint64 {
	onDisk, _ := db.bdb.EstimateSize([]byte{prefixOutbox})
	return onDisk
}

// OutboxChanged returns a channel closed at the next commit of outbox events, so
// consumers wait for new events without polling.
func (db *DB) OutboxChanged() <-chan struct{} {
	db.outboxMu.Lock()
	defer db.outboxMu.Unlock()
	return db.outboxSignal
}
