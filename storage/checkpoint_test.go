package storage

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestDecodeCountersHostile(t *testing.T) {
	for _, n := range []int{0, 1, 8, 23, 25, 31, 33, 64} {
		var c Counters
		if _, err := decodeCounters(make([]byte, n), &c); err == nil {
			t.Errorf("%d bytes decoded", n)
		}
	}
	var c Counters
	c.Human.Store(7)
	c.Bot.Store(2)
	c.Test.Store(1)
	var got Counters
	seq, err := decodeCounters(appendCounters(nil, &c, 99), &got)
	if err != nil || seq != 99 || got.Human.Load() != 7 || got.Bot.Load() != 2 || got.Test.Load() != 1 {
		t.Fatalf("round trip: seq %d err %v human %d bot %d test %d", seq, err, got.Human.Load(), got.Bot.Load(), got.Test.Load())
	}
	// A record from before the sequence: counts only, sequence 0.
	seq, err = decodeCounters(appendCounters(nil, &c, 99)[:countersLenV1], &got)
	if err != nil || seq != 0 || got.Human.Load() != 7 {
		t.Fatalf("old record: seq %d err %v human %d", seq, err, got.Human.Load())
	}
}

// commitSpread commits one human click on each of n links, from a few goroutines so
// batches form, and returns the links' counters.
func commitSpread(t *testing.T, db *DB, n int) []*Counters {
	t.Helper()
	ctrs := make([]*Counters, n)
	for i := range ctrs {
		ctrs[i] = db.Counters("", fmt.Sprintf("l%d", i))
	}
	var wg sync.WaitGroup
	const workers = 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				c := testClick(i, fmt.Sprintf("l%d", i), false)
				if err := db.Committer().CommitClick(AppendClick(nil, c), ctrs[i], KindHuman); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return ctrs
}

func counterMark(t *testing.T, db *DB) uint64 {
	t.Helper()
	seq, err := db.counterMark()
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// More links than one Badger transaction holds are checkpointed: while clicks are
// committed (checkpoints in the background at every tick) and by the closing one, so a
// restart replays nothing.
func TestCheckpointMoreLinksThanATransaction(t *testing.T) {
	const links = 30_000 // Badger takes about 26,000 entries per transaction here
	for _, tc := range []struct {
		name  string
		every time.Duration
	}{
		{"while committing", 5 * time.Millisecond},
		{"when stopping", time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openTest(t, dir)
			db.clicks.checkpointEvery = tc.every
			stop := runTest(db)
			commitSpread(t, db, links)
			head := db.OutboxHead()
			if tc.every < time.Second {
				// The background checkpoints catch up before the closing one runs.
				deadline := time.Now().Add(10 * time.Second)
				for counterMark(t, db) != head-1 {
					if time.Now().After(deadline) {
						t.Fatalf("the counter mark stayed at %d, head %d", counterMark(t, db), head)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			stop()

			db = openTest(t, dir)
			defer db.Close()
			if got := counterMark(t, db); got != head-1 {
				t.Fatalf("counter mark %d, want %d: the checkpoint did not cover every click", got, head-1)
			}
			for i := range links {
				if h := db.Counters("", fmt.Sprintf("l%d", i)).Human.Load(); h != 1 {
					t.Fatalf("link %d: %d human clicks after reopen, want 1", i, h)
				}
			}
		})
	}
}

// A checkpoint cut short by a crash wrote some links' records but did not move the
// mark: the restart replays past the old mark and counts nothing twice.
func TestCheckpointCutShort(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	db.clicks.checkpointEvery = time.Hour
	stop := runUntil(db)

	a, b := db.Counters("", "a"), db.Counters("", "b")
	commit := func(i int, slug string, c *Counters) {
		if err := db.Committer().CommitClick(AppendClick(nil, testClick(i, slug, false)), c, KindHuman); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		commit(i, "a", a)
	}
	for i := range 2 {
		commit(10+i, "b", b)
	}
	head := db.OutboxHead()
	// The crash: a's record was written as true at the head, b's and the mark were not.
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		kv := counterRecords([]*Counters{a}, head-1)[0]
		return txn.Set(kv.Key, kv.Value)
	}); err != nil {
		t.Fatal(err)
	}
	skipClosingCheckpoint(db)
	stop()
	if got := counterMark(t, db); got >= head-1 {
		t.Fatalf("the mark is at %d: the test did not crash before the checkpoint", got)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, dir)
	defer db.Close()
	if h := db.Counters("", "a").Human.Load(); h != 3 {
		t.Errorf("a: %d human clicks, want 3 (its record already counted the replayed clicks)", h)
	}
	if h := db.Counters("", "b").Human.Load(); h != 2 {
		t.Errorf("b: %d human clicks, want 2", h)
	}
	if got := counterMark(t, db); got != head-1 {
		t.Errorf("counter mark after the replay %d, want %d", got, head-1)
	}
}

// A counters record from before records carried their sequence is read as true at the
// mark: clicks committed past the mark are replayed onto it.
func TestCheckpointReadsRecordsWithoutSequence(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	stop := runUntil(db)
	c := db.Counters("", "old")
	commit := func(i int, kind ClickKind) {
		t.Helper()
		if err := db.Committer().CommitClick(AppendClick(nil, testClick(i, "old", kind == KindBot)), c, kind); err != nil {
			t.Fatal(err)
		}
	}
	for i, kind := range []ClickKind{KindBot, KindHuman, KindHuman, KindHuman} {
		commit(i, kind)
	}
	stop() // the closing checkpoint: the record and the mark at the head
	// Rewrite the record as an older build did: the counts alone.
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(countersKey(c.key), appendCounters(nil, c, 0)[:countersLenV1])
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Two more clicks, then a crash before any checkpoint covers them.
	db = openTest(t, dir)
	db.clicks.checkpointEvery = time.Hour
	stop = runUntil(db)
	c = db.Counters("", "old")
	if h, b := c.Human.Load(), c.Bot.Load(); h != 3 || b != 1 {
		t.Fatalf("reopened: human %d bot %d, want 3 and 1", h, b)
	}
	commit(10, KindHuman)
	commit(11, KindBot)
	crash(t, db, stop)

	db = openTest(t, dir)
	defer db.Close()
	c = db.Counters("", "old")
	if h, b := c.Human.Load(), c.Bot.Load(); h != 4 || b != 2 {
		t.Fatalf("after the replay: human %d bot %d, want 4 and 2", h, b)
	}
}
