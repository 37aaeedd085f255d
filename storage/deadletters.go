package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// DeadLetter is an event a consumer gave up on: the destination refused it for good, or
// it ran out of attempts. It keeps the event document so it can be replayed.
type DeadLetter struct {
	Consumer string          `json:"consumer"`
	Seq      uint64          `json:"seq"`
	EventID  string          `json:"event_id"`
	Type     string          `json:"type"`
	Time     time.Time       `json:"time"`
	Event    json.RawMessage `json:"event"`
	Reason   string          `json:"reason"`
	Attempts int             `json:"attempts"`
	FailedAt time.Time       `json:"failed_at"`
}

const prefixDead = 'X' // X consumer 0x00 seq(8) -> DeadLetter (JSON)

func deadPrefix(consumer string) []byte { return append(append([]byte{prefixDead}, consumer...), 0) }

func deadKey(consumer string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(deadPrefix(consumer), seq)
}

// ReplayResult counts what a replay of dead letters did.
type ReplayResult struct {
	Replayed  int `json:"replayed"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
}

// GetDeadLetters reads the named dead letters of a consumer; one missing fails them all
// with ErrNotFound, naming it.
func (db *DB) GetDeadLetters(consumer string, seqs []uint64) ([]*DeadLetter, error) {
	dls := make([]*DeadLetter, 0, len(seqs))
	for _, seq := range seqs {
		d, err := db.GetDeadLetter(consumer, seq)
		if err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		dls = append(dls, d)
	}
	return dls, nil
}

// PutDeadLetter stores (or replaces) a dead letter.
func (db *DB) PutDeadLetter(d *DeadLetter) error {
	// Without HTML escaping the event is kept byte for byte, so a replay sends what the
	// destination refused, no bigger.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return err
	}
	v := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(deadKey(d.Consumer, d.Seq), v) }); err != nil {
		return fmt.Errorf("storage: put dead letter: %w", err)
	}
	return nil
}

// RewriteDeadLetter replaces a dead letter that is still there (a replay failed it
// again) and says whether it was; one purged meanwhile stays purged.
func (db *DB) RewriteDeadLetter(d *DeadLetter) (bool, error) {
	db.deadMu.Lock()
	defer db.deadMu.Unlock()
	if _, err := db.GetDeadLetter(d.Consumer, d.Seq); errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, db.PutDeadLetter(d)
}

// DeadLetters lists a consumer's dead letters with Seq > after, oldest first.
func (db *DB) DeadLetters(consumer string, after uint64, limit int) ([]*DeadLetter, error) {
	var out []*DeadLetter
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: deadPrefix(consumer), PrefetchValues: true})
		defer it.Close()
		for it.Seek(deadKey(consumer, after+1)); it.Valid() && len(out) < limit; it.Next() {
			var d DeadLetter
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &d) }); err != nil {
				return err
			}
			out = append(out, &d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: list dead letters: %w", err)
	}
	return out, nil
}

// deadLetterPage is how many dead letters EachDeadLetters reads at a time.
const deadLetterPage = 1000

// EachDeadLetters calls fn with a consumer's dead letters, oldest first, a page at a time,
// until there are none left, fn fails, or ctx ends (its error then). A destination down
// for a day leaves millions of letters; a replay of them all holds one page. fn may
// replace or delete the letters it is given: the next page starts after the last of
// them, so each letter is seen once, and letters added meanwhile are seen if they come
// after it.
func (db *DB) EachDeadLetters(ctx context.Context, consumer string, fn func([]*DeadLetter) error) error {
	for after := uint64(0); ; {
		if err := ctx.Err(); err != nil {
			return err
		}
		dls, err := db.DeadLetters(consumer, after, deadLetterPage)
		if err != nil || len(dls) == 0 {
			return err
		}
		if err := fn(dls); err != nil {
			return err
		}
		after = dls[len(dls)-1].Seq
	}
}

// GetDeadLetter reads one dead letter.
func (db *DB) GetDeadLetter(consumer string, seq uint64) (*DeadLetter, error) {
	var d DeadLetter
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(deadKey(consumer, seq))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error { return json.Unmarshal(v, &d) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get dead letter: %w", err)
	}
	return &d, nil
}

// DeleteDeadLetters removes the given dead letters, or all of a consumer's when seqs is
// empty. It returns how many it removed.
func (db *DB) DeleteDeadLetters(consumer string, seqs []uint64) (int, error) {
	db.deadMu.Lock()
	defer db.deadMu.Unlock()
	var keys [][]byte
	if len(seqs) == 0 {
		if err := db.bdb.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: deadPrefix(consumer)})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		}); err != nil {
			return 0, fmt.Errorf("storage: list dead letters to delete: %w", err)
		}
	} else {
		for _, s := range seqs {
			if _, err := db.GetDeadLetter(consumer, s); err == nil {
				keys = append(keys, deadKey(consumer, s))
			}
		}
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return 0, err
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("storage: delete dead letters: %w", err)
	}
	return len(keys), nil
}
