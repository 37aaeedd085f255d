package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The visitor index and identity graph that attribution reads. Clicks are indexed off
// the redirect path by an outbox consumer (the redirect writes one record per click and
// nothing else); conversions add identity links in their own commit. The visitor index
// (P entries) lives in a store of its own (DB.idx, in visitorIndexDir); the identity
// graph stays in the main store, where conversions write it with their records.
const (
	prefixVisitorClick = 'P' // P visitor 0x00 click-id(16)           -> touch entry (human) or kind
	prefixIdentity     = 'I' // I kind 0x00 value 0x00 visitor        -> nil
	prefixVisitorIdent = 'J' // J visitor 0x00 kind 0x00 value        -> nil

	indexConsumer = "index"

	// visitorIndexDir is the visitor index's Badger directory, inside the main one.
	visitorIndexDir = "visitor-index"
)

// visitorClickPrefix has room for the click ID (or a seek key's time and random part)
// that every caller appends.
func visitorClickPrefix(visitor string) []byte {
	return append(append(append(make([]byte, 0, 2+len(visitor)+16), prefixVisitorClick), visitor...), 0)
}

func identityPrefix(kind, value string) []byte {
	return append(append(append(append([]byte{prefixIdentity}, kind...), 0), value...), 0)
}

func visitorIdentPrefix(visitor string) []byte {
	return append(append([]byte{prefixVisitorIdent}, visitor...), 0)
}

// IdentityLinks returns the records that join a visitor and an identity both ways.
func IdentityLinks(visitor string, id IdentityRef) []KV {
	return []KV{
		{Key: append(identityPrefix(id.Kind, id.Value), visitor...)},
		{Key: append(append(append(visitorIdentPrefix(visitor), id.Kind...), 0), id.Value...)},
	}
}

type indexer struct {
	mu       sync.Mutex
	through  uint64        // every event before it is indexed
	progress chan struct{} // closed at the next advance; made at open, so never nil
}

// updateIndex runs fn with a write transaction on the main store and one on the visitor
// index, and commits the index's first: a crash between the two leaves index entries
// whose events are indexed again, which rewrites them as they were.
func (db *DB) updateIndex(fn func(txn, itxn *badger.Txn) error) error {
	itxn := db.idx.NewTransaction(true)
	defer itxn.Discard()
	txn := db.bdb.NewTransaction(true)
	defer txn.Discard()
	if err := fn(txn, itxn); err != nil {
		return err
	}
	if err := itxn.Commit(); err != nil {
		return fmt.Errorf("visitor index: %w", err)
	}
	return txn.Commit()
}

// moveVisitorIndex moves the visitor index of a store from before it had a store of its
// own out of the main store, a chunk at a time; a crash midway leaves entries in both,
// and the next open goes on (a copy rewrites an entry as it was).
func (db *DB) moveVisitorIndex() error {
	start, moved := time.Now(), 0
	for {
		var kvs []KV
		if err := db.bdb.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixVisitorClick}, PrefetchValues: true})
			defer it.Close()
			for it.Rewind(); it.Valid() && len(kvs) < 10_000; it.Next() {
				v, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				kvs = append(kvs, KV{Key: it.Item().KeyCopy(nil), Value: v})
			}
			return nil
		}); err != nil {
			return fmt.Errorf("storage: read the visitor index to move: %w", err)
		}
		if len(kvs) == 0 {
			break
		}
		if err := db.moveEntries(kvs); err != nil {
			return fmt.Errorf("storage: move the visitor index: %w", err)
		}
		moved += len(kvs)
	}
	if moved > 0 {
		db.log.Info("visitor index moved to its own store", "entries", moved, "took", time.Since(start).Round(time.Millisecond).String())
	}
	return nil
}

// moveEntries copies kvs into the visitor index's store, then deletes them from the main
// store. A batch left by an error is cancelled, which frees what it holds (and is
// harmless after a flush).
func (db *DB) moveEntries(kvs []KV) error {
	copied, removed := db.idx.NewWriteBatch(), db.bdb.NewWriteBatch()
	defer copied.Cancel()
	defer removed.Cancel()
	for _, kv := range kvs {
		if err := copied.Set(kv.Key, kv.Value); err != nil {
			return err
		}
		if err := removed.Delete(kv.Key); err != nil {
			return err
		}
	}
	if err := copied.Flush(); err != nil {
		return err
	}
	return removed.Flush()
}

// indexClick indexes a click by visitor (in the visitor index's transaction) and joins
// its visitor to the identity it carried, resolving a per-recipient token (in the main
// store's).
func (db *DB) indexClick(txn, itxn *badger.Txn, c *Click) error {
	if c.VisitorID == "" {
		return nil
	}
	// A human click's entry carries what attribution needs of it, so a conversion reads
	// a visitor's touches in one prefix scan instead of a random read per click.
	entry := []byte{byte(c.Kind())}
	if c.Kind() == KindHuman {
		entry = appendTouchEntry(make([]byte, 0, 64), c)
	}
	if err := itxn.Set(append(visitorClickPrefix(c.VisitorID), c.ID[:]...), entry); err != nil {
		return err
	}
	if c.Kind() != KindHuman {
		return nil // a bot's or test's identity joins nothing
	}
	id := IdentityRef{Kind: c.IdentityKind, Value: c.IdentityValue}
	if c.Token != "" {
		// Read in the indexing transaction: one of its own per click cost more than the
		// read. A token never issued, or revoked, joins nothing.
		if r, err := getRecipient(txn, c.Domain, c.Slug, c.Token); err == nil {
			id = IdentityRef{Kind: r.Kind, Value: r.Value}
		}
	}
	if id.Kind != "" && id.Value != "" {
		for _, kv := range IdentityLinks(c.VisitorID, id) {
			if err := txn.Set(kv.Key, kv.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

func (ix *indexer) advance(c uint64) {
	ix.mu.Lock()
	ix.through = c
	close(ix.progress)
	ix.progress = make(chan struct{})
	ix.mu.Unlock()
}

// ClickHead is the outbox sequence just past the last committed click: waiting for the
// index to reach it (WaitIndexed) waits for clicks only, not for other conversions.
func (db *DB) ClickHead() uint64 {
	db.outboxMu.Lock()
	defer db.outboxMu.Unlock()
	return db.clickHead
}

// Indexed says whether every outbox event before seq is indexed, without waiting.
func (db *DB) Indexed(seq uint64) bool {
	db.index.mu.Lock()
	defer db.index.mu.Unlock()
	return db.index.through >= seq
}

// WaitIndexed waits until every outbox event before seq is indexed, so attribution sees
// every click answered before a conversion arrived. It gives up when ctx ends.
func (db *DB) WaitIndexed(ctx context.Context, seq uint64) bool {
	for {
		db.index.mu.Lock()
		done, ch := db.index.through >= seq, db.index.progress
		db.index.mu.Unlock()
		if done {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}

// VisitorClicks returns a visitor's human clicks made from from to to (and up to a
// second either side: the caller judges exact times), as attribution touches: time,
// link, campaign, UTM and variant, without the request details (IP, user agent,
// referrer, destination). Of more than limit it returns the latest, oldest
// first. It also reports whether the visitor has a human click before from, unless it
// stopped at limit, so a conversion with no click in its span can say its clicks are
// all too old.
//
// Click IDs begin with their millisecond, so the visitor's index entries are in time
// order and only the span asked for is read, and past it only as far as the first human
// click: a visitor with years of clicks costs a conversion no more than one with a
// week's.
func (s *Snapshot) VisitorClicks(visitor string, from, to time.Time, limit int) (clicks []*Click, earlier bool, err error) {
	var out []*Click
	p := visitorClickPrefix(visitor)
	// A second either side: the filter on exact times is the caller's, this only skips
	// what cannot be in the span.
	lo, hi := idMillis(from.Add(-time.Second)), idMillis(to.Add(time.Second))
	// The seek key is the prefix, the span's last millisecond and the highest random
	// part, in the prefix's spare room (p keeps its length).
	seek := binary.BigEndian.AppendUint64(p, hi<<16)[:len(p)+6]
	for range 10 {
		seek = append(seek, 0xff)
	}
	it, done := s.reverse(p)
	defer done()
	for it.Seek(seek); it.ValidForPrefix(p) && len(out) < limit; it.Next() {
		item := it.Item()
		id := [16]byte(item.Key()[len(p):])
		if clickIDMillis(id) < lo {
			// Before the span: the first human entry answers whether there is an
			// earlier click (a touch is a human click; a bare kind byte says).
			if err := item.Value(func(v []byte) error {
				earlier = len(v) > 1 || len(v) == 1 && ClickKind(v[0]) == KindHuman
				return nil
			}); err != nil {
				return nil, false, err
			}
			if earlier {
				break
			}
			continue
		}
		if err := item.Value(func(v []byte) error {
			switch {
			case len(v) > 1:
				c, err := decodeVisitorEntry(id, v)
				if err != nil {
					return fmt.Errorf("visitor index entry %q: %w", item.Key(), err)
				}
				out = append(out, c)
			case len(v) == 1 && ClickKind(v[0]) == KindHuman:
				// An entry from before touches were kept in the index: read the click.
				c, err := getClick(s.txn, id)
				if err == nil {
					out = append(out, c)
				}
			}
			return nil
		}); err != nil {
			return nil, false, err
		}
	}
	slices.Reverse(out)
	return out, earlier, nil
}

// idMillis is t as the millisecond a click ID begins with (48 bits), clamped.
func idMillis(t time.Time) uint64 {
	return uint64(min(max(t.UnixMilli(), 0), 1<<48-1))
}

// IdentityVisitors returns the visitors joined to an identity.
func (s *Snapshot) IdentityVisitors(id IdentityRef, limit int) ([]string, error) {
	return s.suffixes(identityPrefix(id.Kind, id.Value), limit), nil
}

// VisitorIdentities returns the identities joined to a visitor.
func (s *Snapshot) VisitorIdentities(visitor string, limit int) ([]IdentityRef, error) {
	var out []IdentityRef
	for _, raw := range s.suffixes(visitorIdentPrefix(visitor), limit) {
		if k, v, ok := strings.Cut(raw, "\x00"); ok {
			out = append(out, IdentityRef{Kind: k, Value: v})
		}
	}
	return out, nil
}

func (s *Snapshot) suffixes(prefix []byte, limit int) []string {
	var out []string
	it := s.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
		out = append(out, string(it.Item().Key()[len(prefix):]))
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
