package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// A group commit Badger would refuse as one transaction (too many entries, or too many
// bytes) goes in several: every click and event is committed, numbered in order, each
// event with all its records, stamped with its own sequence, and read back the same
// from the outbox and from the committer's memory.
func TestCommitSplitsWhatBadgerWillNotTakeInOneTransaction(t *testing.T) {
	// A 1 MiB memtable lets a transaction hold about 1,600 entries or 150 KB.
	db, err := Open(Options{Dir: t.TempDir(), MemTableMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const clicks, events = 3000, 1500
	w := db.clicks
	ctr := db.Counters("", "s")
	b := w.open
	for i := range clicks {
		b.recs = AppendClick(b.recs, testClick(i, "s", false))
		b.ends = append(b.ends, len(b.recs))
		b.ctrs = append(b.ctrs, counterDelta{ctr, KindHuman})
	}
	for j := range events {
		var ref [16]byte
		ref[0] = 0xff
		binary.BigEndian.PutUint64(ref[8:], uint64(j))
		index := make([]byte, 16+8)
		b.others = append(b.others, Write{Kind: EventConversion, Ref: ref, Stamp: [][]byte{index}, Sets: []KV{
			{Key: conversionKey(ref), Value: fmt.Appendf(nil, "conversion %d", j)},
			// Stays in the tree (under valueThreshold), so bytes bind before entries.
			{Key: fmt.Appendf(nil, "zz-big-%d", j), Value: bytes.Repeat([]byte{'x'}, 150)},
			{Key: fmt.Appendf(nil, "zz-index-%d", j), Value: index},
		}})
	}
	w.commitOpen()
	if b.err != nil {
		t.Fatalf("commit: %v", b.err)
	}
	if got := ctr.Human.Load(); got != clicks {
		t.Fatalf("counter %d, want %d", got, clicks)
	}
	if h := db.OutboxHead(); h != clicks+events+1 {
		t.Fatalf("outbox head %d, want %d", h, clicks+events+1)
	}
	entries := 0
	err = db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixOutbox}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			entries++
		}
		for j := range events {
			item, err := txn.Get(fmt.Appendf(nil, "zz-index-%d", j))
			if err != nil {
				return fmt.Errorf("event %d's index: %w", j, err)
			}
			v, _ := item.ValueCopy(nil)
			if seq := binary.BigEndian.Uint64(v[16:]); seq != clicks+uint64(j)+1 {
				return fmt.Errorf("event %d stamped %d, want %d", j, seq, clicks+j+1)
			}
			if _, err := txn.Get(fmt.Appendf(nil, "zz-big-%d", j)); err != nil {
				return fmt.Errorf("event %d's record: %w", j, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if entries < 4 {
		t.Fatalf("%d transactions: the batch was not big enough to need splitting", entries)
	}
	stored, err := db.readOutbox(1, clicks+events+1)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := db.ReadEvents(1, clicks+events+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != clicks+events || len(kept) != len(stored) {
		t.Fatalf("outbox holds %d events, memory %d, want %d", len(stored), len(kept), clicks+events)
	}
	for i, e := range stored {
		want := fmt.Sprintf("conversion %d", i-clicks)
		if i < clicks {
			want = string(b.recs[b.start(i):b.ends[i]])
		}
		if e.Seq != uint64(i+1) || string(e.Record) != want {
			t.Fatalf("event %d: seq %d, record %q, want %q", i, e.Seq, e.Record, want)
		}
		if k := kept[i]; k.Seq != e.Seq || k.Kind != e.Kind || k.Ref != e.Ref || !bytes.Equal(k.Record, e.Record) {
			t.Fatalf("event %d from memory: %+v, from the outbox %+v", i, k.OutboxEntry, e.OutboxEntry)
		}
	}
}

// An event bigger than any transaction fails its batch before any of the batch is
// committed: none of it is durable, counted or in the outbox, as its answer says.
func TestCommitRefusesAnEventNoTransactionHolds(t *testing.T) {
	db, err := Open(Options{Dir: t.TempDir(), MemTableMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w := db.clicks
	ctr := db.Counters("", "s")
	b := w.open
	for i := range 3000 { // more than one transaction's worth, so they would split first
		b.recs = AppendClick(b.recs, testClick(i, "s", false))
		b.ends = append(b.ends, len(b.recs))
		b.ctrs = append(b.ctrs, counterDelta{ctr, KindHuman})
	}
	var sets []KV
	for i := range 5000 {
		sets = append(sets, KV{Key: fmt.Appendf(nil, "zz-%d", i), Value: []byte("v")})
	}
	b.others = append(b.others, Write{Kind: EventConversion, Ref: [16]byte{0xff}, Sets: sets})
	w.commitOpen()
	if !errors.Is(b.err, badger.ErrTxnTooBig) {
		t.Fatalf("commit: %v, want ErrTxnTooBig", b.err)
	}
	if h, n := db.OutboxHead(), ctr.Human.Load(); h != 1 || n != 0 {
		t.Fatalf("after the refused batch: outbox head %d, counter %d; want nothing committed", h, n)
	}
}

// failingSecondCommit opens a store whose transactions hold about 1,600 entries and
// whose second transaction fails to commit, as a store running out of disk would.
func failingSecondCommit(t *testing.T) *DB {
	t.Helper()
	db, err := Open(Options{Dir: t.TempDir(), MemTableMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	commits := 0
	db.clicks.finishing = func() error {
		if commits++; commits == 2 {
			return errors.New("disk full")
		}
		return nil
	}
	return db
}

// A batch split over transactions that fails after the first ones committed answers
// what they made durable as stored, and only the rest as failed: a click committed
// and counted is never redirected without its click ID.
func TestCommitAnswersWhatItCommittedBeforeFailing(t *testing.T) {
	db := failingSecondCommit(t)
	w := db.clicks
	ctr := db.Counters("", "s")
	const n = 3000 // about two transactions' worth
	errs := make(chan error, n+1)
	for i := range n {
		go func() { errs <- w.CommitClick(AppendClick(nil, testClick(i, "s", false)), ctr, KindHuman) }()
	}
	go func() {
		_, err := w.CommitEvent(Write{Kind: EventConversion, Ref: [16]byte{0xff}, Sets: []KV{{Key: []byte("zz-conv"), Value: []byte("v")}}})
		errs <- err
	}()
	for queued := false; !queued; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		queued = len(w.open.ends) == n && len(w.open.others) == 1
		w.mu.Unlock()
	}
	w.commitOpen()
	stored := 0
	for range n + 1 {
		if <-errs == nil {
			stored++
		}
	}
	done := int(ctr.Human.Load())
	if done == 0 || done == n {
		t.Fatalf("%d clicks committed before the failure, want some and not all", done)
	}
	if stored != done || db.OutboxHead() != uint64(done)+1 || db.ClickHead() != uint64(done)+1 {
		t.Fatalf("%d answered as stored, %d committed and counted, outbox head %d, click head %d", stored, done, db.OutboxHead(), db.ClickHead())
	}
}

// The same for other events (conversions): those the committed transactions held are
// answered with their sequence, the rest with the error.
func TestCommitAnswersEventsCommittedBeforeFailing(t *testing.T) {
	db := failingSecondCommit(t)
	w := db.clicks
	const n = 3000 // about two transactions' worth, one entry each
	type answer struct {
		seq uint64
		err error
	}
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			var ref [16]byte
			binary.BigEndian.PutUint64(ref[8:], uint64(i))
			seq, err := w.CommitEvent(Write{Kind: EventConversion, Ref: ref, Sets: []KV{{Key: fmt.Appendf(nil, "zz-%d", i), Value: []byte("v")}}})
			answers <- answer{seq, err}
		}()
	}
	for queued := false; !queued; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		queued = len(w.open.others) == n
		w.mu.Unlock()
	}
	w.commitOpen()
	stored := map[uint64]bool{}
	for range n {
		if a := <-answers; a.err == nil {
			stored[a.seq] = true
		}
	}
	head := db.OutboxHead()
	if len(stored) == 0 || len(stored) == n || uint64(len(stored))+1 != head {
		t.Fatalf("%d answered as stored, outbox head %d: want some, not all, and the same", len(stored), head)
	}
	for seq := uint64(1); seq < head; seq++ {
		if !stored[seq] {
			t.Fatalf("committed event %d answered as failed", seq)
		}
	}
	if db.ClickHead() != 1 {
		t.Errorf("click head %d after a batch of conversions only", db.ClickHead())
	}
}
