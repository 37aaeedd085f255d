package storage

import (
	"errors"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// A store from before conversions were indexed by event ID gets the index when it is
// opened, once: a refund past the dedupe horizon finds those conversions too.
func TestConversionsIndexedByEventOnOpen(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	stop := runUntil(db)
	var id [16]byte
	id[15] = 9
	if _, err := db.PutConversion(id, &Conversion{ID: "c9", EventID: "o9", Type: "lead", Status: "approved"}, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	stop()
	// As an older version left it: no index key, no mark.
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(eventIndexKey("lead", "o9")); err != nil {
			return err
		}
		return txn.Delete(metaKey(metaEventIndex))
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.FindConversion("lead", "o9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("before the reopen: %v, want not found", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	defer db.Close()
	c, got, err := db.FindConversion("lead", "o9")
	if err != nil || got != id || c.EventID != "o9" {
		t.Fatalf("after the reopen: %+v %x %v", c, got, err)
	}
	if _, _, err := db.FindConversion("purchase", "o9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another type: %v, want not found", err)
	}
}
