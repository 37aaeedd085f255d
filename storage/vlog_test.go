package storage

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Values above the threshold live in the value log; once most of a value log file is
// garbage (deleted or overwritten), collection rewrites it and the values still live
// read back intact.
func TestValueLogGarbageCollected(t *testing.T) {
	dir := t.TempDir()
	open := func() *DB {
		db, err := Open(Options{Dir: dir, valueLogFileMB: 1})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 4*valueThreshold) }
	key := func(i int) []byte { return []byte(fmt.Sprintf("Zgc%06d", i)) }
	const n = 12000 // about 4 MB: several value log files
	// Written in small batches, so the values spread over several value log files.
	for from := 0; from < n; from += 500 {
		wb := db.bdb.NewWriteBatch()
		for i := from; i < from+500; i++ {
			if err := wb.Set(key(i), value(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// A restart flushes the memtable to a table of its own.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	// Keep every tenth value, delete the rest.
	wb := db.bdb.NewWriteBatch()
	for i := range n {
		if i%10 != 0 {
			if err := wb.Delete(key(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	// A second restart leaves the deletions in a second table; compacting the two out of
	// level 0 (Badger does it in the background) drops the deleted values and tells the
	// value log how much of each file is garbage.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	defer db.Close()
	for deadline := time.Now().Add(30 * time.Second); inLevel0(db) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d tables still in level 0", inLevel0(db))
		}
	}
	rewritten, err := db.collectValueLog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rewritten == 0 {
		t.Fatal("no value log file rewritten with 90% of the values deleted")
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		for i := range n {
			it, err := txn.Get(key(i))
			if i%10 != 0 {
				if err != badger.ErrKeyNotFound {
					return fmt.Errorf("deleted key %d: %v", i, err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("kept key %d: %w", i, err)
			}
			v, err := it.ValueCopy(nil)
			if err != nil || !bytes.Equal(v, value(i)) {
				return fmt.Errorf("kept key %d: %d bytes, %v", i, len(v), err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func inLevel0(db *DB) int {
	n := 0
	for _, tb := range db.bdb.Tables() {
		if tb.Level == 0 {
			n++
		}
	}
	return n
}
