package storage

import (
	"context"
	"testing"
)

// A store whose tables were written compressed, as before, opens and reads the same, and
// what it writes from then on is not compressed.
func TestTablesFromBeforeStayReadable(t *testing.T) {
	dir := t.TempDir()
	ids := map[[16]byte]bool{}
	commit := func(db *DB, from, n int) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { db.Run(ctx); close(done) }()
		ctr := db.Counters("", "s")
		for i := from; i < from+n; i++ {
			c := testClick(i, "s", false)
			ids[c.ID] = true
			if err := db.Committer().CommitClick(AppendClick(nil, c), ctr, KindHuman); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		<-done
	}
	// compressed reports whether every table is stored smaller than its content.
	compressed := func(db *DB) (n int, all bool) {
		all = true
		for _, ti := range db.bdb.Tables() {
			n++
			all = all && ti.OnDiskSize < ti.UncompressedSize*9/10
		}
		return n, all
	}

	old, err := Open(Options{Dir: dir, snappy: true})
	if err != nil {
		t.Fatal(err)
	}
	commit(old, 0, 3000)
	if err := old.Close(); err != nil { // flushes the memtable into a table
		t.Fatal(err)
	}

	db := openTest(t, dir)
	if n, all := compressed(db); n == 0 || !all {
		t.Fatalf("the store from before has %d tables, all compressed: %v", n, all)
	}
	commit(db, 3000, 3000)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, dir)
	defer db.Close()
	if n, all := compressed(db); n < 2 || all {
		t.Fatalf("%d tables, all compressed: %v; want the new ones not", n, all)
	}
	if len(ids) != 6000 {
		t.Fatalf("test clicks share IDs: %d distinct", len(ids))
	}
	for id := range ids {
		if _, err := db.GetClick(id); err != nil {
			t.Fatalf("click %x: %v", id, err)
		}
	}
}
