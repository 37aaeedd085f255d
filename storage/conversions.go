package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// EventConversion announces a conversion (new, or a status change) in the outbox.
const EventConversion EventKind = 2

const (
	prefixConversion = 'K' // K conversion-id(16)           -> conversion record (AppendConversion)
	prefixDedupe     = 'E' // E type 0x00 event_id          -> conversion-id(16)
	prefixSealedUser = 'U' // U conversion-id(16)           -> sealed plain identifiers
	prefixEventState = 'V' // V seq(8, big endian)          -> the conversion record as of that outbox event, once changed
	prefixEventIndex = 'Q' // Q type 0x00 event_id          -> conversion-id(16) [seq(8) of its last event], for ever (FindConversion)
)

// metaEventIndex marks a store whose conversions all have their prefixEventIndex key.
const metaEventIndex = "conversion_event_index"

func eventIndexKey(typ, eventID string) []byte {
	return append(append(append([]byte{prefixEventIndex}, typ...), 0), eventID...)
}

// eventStateKey keys the record a conversion event announced, kept when a status change
// rewrites the conversion's record: a consumer that reads the earlier event after that
// (it fell behind, or restarted) would otherwise publish the later state twice and the
// earlier one never. An event with no kept state announced the record as it is. The
// state goes when the outbox entry is trimmed.
func eventStateKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixEventState}, seq)
}

// Touch is a click credited for a conversion.
type Touch struct {
	ClickID          string    `json:"click_id"`
	Slug             string    `json:"slug"`
	Domain           string    `json:"domain,omitempty"`
	Campaign         string    `json:"campaign"`
	UTM              UTM       `json:"utm"`
	Variant          *int      `json:"variant,omitempty"`
	ClickTime        time.Time `json:"click_time"`
	SecondsToConvert int64     `json:"seconds_to_convert"`
	// Credit is the share of the conversion this touch gets under the model that
	// produced it (1 for last and first click, 1/n for linear).
	Credit float64 `json:"credit"`
}

// IdentityRef is an identity as stored: customer IDs as given, emails and phones as
// keyed hashes.
type IdentityRef struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

// Conversion is a stored conversion with its attribution.
type Conversion struct {
	ID         string        `json:"conversion_id"`
	EventID    string        `json:"event_id"`
	Type       string        `json:"type"`
	Status     string        `json:"status"`
	Value      *float64      `json:"value,omitempty"`
	Currency   string        `json:"currency,omitempty"`
	OccurredAt time.Time     `json:"occurred_at"`
	ReceivedAt time.Time     `json:"received_at"`
	ClickID    string        `json:"click_id,omitempty"`
	VisitorID  string        `json:"visitor_id,omitempty"`
	Identities []IdentityRef `json:"identities,omitempty"`
	// LastClick is the attributed touch (the default model); FirstClick and Linear are
	// kept so reports can show the other models.
	LastClick  *Touch  `json:"last_click,omitempty"`
	FirstClick *Touch  `json:"first_click,omitempty"`
	Linear     []Touch `json:"linear,omitempty"`
	// Reason says why a conversion is unattributed.
	Reason string `json:"reason,omitempty"`
	Source string `json:"source"` // "api" or "postback"
	// Revision is 0 for the conversion as first committed, and each status change adds
	// one; -1 for a record from before revisions were kept (it may be either).
	Revision int `json:"-"`
	// StatusChangedAt is when the refund or rejection that set Status happened; zero
	// while the conversion keeps the status it came with.
	StatusChangedAt time.Time `json:"status_changed_at,omitzero"`
}

func conversionKey(id [16]byte) []byte { return append([]byte{prefixConversion}, id[:]...) }
func sealedUserKey(id [16]byte) []byte { return append([]byte{prefixSealedUser}, id[:]...) }

// SealedUser is the record for a conversion's plain identifiers, sealed by the caller
// (storage never sees them in clear). It lives only until every consumer has read the
// conversion's events (TrimOutbox deletes it with them), ttl at most.
func SealedUser(id [16]byte, sealed []byte, ttl time.Duration) KV {
	return KV{Key: sealedUserKey(id), Value: sealed, ExpiresAt: expiresAfter(ttl)}
}

// expiresAfter is the Unix second a record kept for d expires at, rounded up; 0 (never)
// for d ≤ 0.
func expiresAfter(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return time.Now().Add(d + time.Second - 1).Unix()
}

func dedupeKey(typ, eventID string) []byte {
	return append(append(append([]byte{prefixDedupe}, typ...), 0), eventID...)
}

// ConversionByEvent finds a conversion by its type and event ID (the dedupe key). An event
// never seen is answered ErrNotFound from memory, without a read.
func (db *DB) ConversionByEvent(typ, eventID string) (*Conversion, [16]byte, error) {
	var id [16]byte
	if db.bdb.IsClosed() {
		return nil, id, ErrStoreClosed
	}
	dk := dedupeKey(typ, eventID)
	if !db.seen.mayHave(db.seen.hash(dk)) {
		return nil, id, ErrNotFound
	}
	return db.conversionAt(dk)
}

// conversionAt reads the conversion whose ID a dedupe or event index entry holds (its
// first 16 bytes); ErrNotFound when there is no such entry.
func (db *DB) conversionAt(key []byte) (*Conversion, [16]byte, error) {
	var id [16]byte
	var c *Conversion
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		c, id, err = conversionIn(txn, key)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, id, ErrNotFound
	}
	if err != nil {
		return nil, id, fmt.Errorf("storage: conversion by event: %w", err)
	}
	return c, id, nil
}

func conversionIn(txn *badger.Txn, key []byte) (*Conversion, [16]byte, error) {
	var id [16]byte
	it, err := txn.Get(key)
	if err != nil {
		return nil, id, err
	}
	if err := it.Value(func(v []byte) error {
		if len(v) != 16 && len(v) != 24 {
			return ErrCorrupt
		}
		copy(id[:], v)
		return nil
	}); err != nil {
		return nil, id, err
	}
	c, err := getConversion(txn, id)
	return c, id, err
}

func getConversion(txn *badger.Txn, id [16]byte) (*Conversion, error) {
	it, err := txn.Get(conversionKey(id))
	if err != nil {
		return nil, err
	}
	var c *Conversion
	err = it.Value(func(v []byte) error {
		c, err = DecodeConversion(v)
		return err
	})
	return c, err
}

// PutConversion commits a conversion (new or changed) with its dedupe key (kept for
// horizon), its event index entry (kept for ever, FindConversion), any extra records
// (identity links), for a status change the state it replaces (eventStateKey), and an
// outbox event, in the next group commit, and returns the event's outbox sequence.
//
// The caller serialises calls for one dedupe key with ConversionByEvent: between the
// lookup and this commit, no other conversion with the same key may be looked up.
func (db *DB) PutConversion(id [16]byte, c *Conversion, horizon time.Duration, extra []KV) (uint64, error) {
	dk := dedupeKey(c.Type, c.EventID)
	// The key's expiry is fixed here, so Badger and the filter agree on it however long
	// the commit waits.
	expires := expiresAfter(horizon)
	// The event index entry carries the sequence of the conversion's latest event, which
	// the commit stamps in.
	index := append(id[:len(id):len(id)], make([]byte, 8)...)
	sets := append([]KV{
		// Sized for the usual record, so encoding it does not grow the buffer step by step.
		{Key: conversionKey(id), Value: AppendConversion(make([]byte, 0, 256+192*(2+len(c.Linear))), c)},
		{Key: dk, Value: append([]byte(nil), id[:]...), ExpiresAt: expires},
		{Key: eventIndexKey(c.Type, c.EventID), Value: index},
	}, extra...)
	if c.Revision > 0 {
		// A status change: the event that announced the state it replaces keeps it.
		// No trim runs from the look at that event to the commit: a trim deciding
		// meanwhile that the event was the conversion's last would delete the sealed
		// identifiers this change goes out with, or pass the event and leave its state
		// to the horizon.
		db.retention.trim.Lock()
		defer db.retention.trim.Unlock()
		kept, err := db.keepEventState(id, c)
		if err != nil {
			return 0, err
		}
		sets = append(sets, kept...)
	}
	// Known before it is committed: a commit that fails after all leaves a key the filter
	// only thinks may be there.
	db.seen.add(db.seen.hash(dk), expires)
	return db.clicks.CommitEvent(Write{Kind: EventConversion, Ref: id, Sets: sets, Stamp: [][]byte{index}})
}

// keepEventState returns the record keeping conversion id's current state under the
// sequence of the event that announced it, for a status change about to replace it:
// none when that event is unknown (committed before events were stamped) or already
// trimmed, when no consumer can read it any more.
func (db *DB) keepEventState(id [16]byte, c *Conversion) ([]KV, error) {
	var kept []KV
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(eventIndexKey(c.Type, c.EventID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var seq uint64
		if err := it.Value(func(v []byte) error {
			if len(v) == 24 && [16]byte(v[:16]) == id {
				seq = binary.BigEndian.Uint64(v[16:])
			}
			return nil
		}); err != nil || seq == 0 || seq < db.retention.floor.Load() {
			return err
		}
		rec, err := txn.Get(conversionKey(id))
		if err != nil {
			return err
		}
		v, err := rec.ValueCopy(nil)
		if err != nil {
			return err
		}
		// No expiry: a consumer may be behind by more than the horizon, and the state
		// lives as long as its event (the floor, checked under the trim lock, says the
		// event is not trimmed yet, so a trim will delete it).
		kept = append(kept, KV{Key: eventStateKey(seq), Value: v})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: keep the state a status change replaces: %w", err)
	}
	return kept, nil
}

// FindConversion finds a conversion by its type and event ID however long ago it was
// committed: the dedupe key ConversionByEvent reads expires with the dedupe horizon,
// but a refund or a rejection can come later and must still change the conversion it
// names. It reads the store (no filter answers from memory): it is for status changes,
// which are rare.
func (db *DB) FindConversion(typ, eventID string) (*Conversion, [16]byte, error) {
	return db.conversionAt(eventIndexKey(typ, eventID))
}

// indexConversionEvents gives every conversion of a store from before FindConversion
// its event index key, once.
func (db *DB) indexConversionEvents() error {
	done := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get(metaKey(metaEventIndex))
		done = err == nil
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil || done {
		return err
	}
	start := time.Now()
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err = db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixConversion}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if len(item.Key()) != 17 {
				continue
			}
			var c *Conversion
			if err := item.Value(func(v []byte) error {
				var err error
				c, err = DecodeConversion(v)
				return err
			}); err != nil {
				db.log.Error("conversion record not readable; it cannot be found by its event ID", "key", fmt.Sprintf("%x", item.Key()), "err", err)
				continue
			}
			if err := wb.Set(eventIndexKey(c.Type, c.EventID), item.KeyCopy(nil)[1:]); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err == nil {
		err = wb.Set(metaKey(metaEventIndex), []byte{1})
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("storage: index conversions by event: %w", err)
	}
	if n > 0 {
		db.log.Info("conversions indexed by event ID", "conversions", n, "took", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

// GetConversion reads a conversion by its ID.
func (db *DB) GetConversion(id [16]byte) (*Conversion, error) {
	var c *Conversion
	err := db.bdb.View(func(txn *badger.Txn) error {
		var err error
		c, err = getConversion(txn, id)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get conversion: %w", err)
	}
	return c, nil
}
