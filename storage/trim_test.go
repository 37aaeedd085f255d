package storage

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// putOutbox writes entries outbox entries of n click events each, the first starting at
// sequence first, as commits write them, and returns the sequence after the last.
func putOutbox(t testing.TB, db *DB, first uint64, entries, n int) uint64 {
	t.Helper()
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	var ref [16]byte
	for range entries {
		v := make([]byte, 0, n*outboxEventLen)
		for i := range n {
			binary.BigEndian.PutUint64(ref[8:], first+uint64(i))
			v = appendOutboxValue(v, EventClick, ref[:])
		}
		if err := wb.Set(outboxKey(first), v); err != nil {
			t.Fatal(err)
		}
		first += uint64(n)
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	db.outboxMu.Lock()
	db.outboxNext = max(db.outboxNext, first)
	db.outboxMu.Unlock()
	return first
}

// holdOutbox makes low the lowest sequence any holder of retention still needs: the
// store's own consumers and the counter checkpoint are past it, and "fwd" is at it.
func holdOutbox(t testing.TB, db *DB, low uint64) {
	t.Helper()
	for _, c := range []string{indexConsumer, reportsConsumer} {
		if err := db.SetCursor(c, low+1_000_000); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(metaKey(metaCountersSeq), binary.BigEndian.AppendUint64(nil, low+1_000_000))
	}); err != nil {
		t.Fatal(err)
	}
	db.Register("fwd")
	if err := db.SetCursor("fwd", low); err != nil {
		t.Fatal(err)
	}
}

// firstLive is the first sequence of the outbox's first entry, read from the prefix's
// start, past every tombstone.
func firstLive(t testing.TB, db *DB) (uint64, bool) {
	var first uint64
	found := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixOutbox}})
		defer it.Close()
		it.Rewind()
		if found = it.Valid(); found {
			first = binary.BigEndian.Uint64(it.Item().Key()[1:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return first, found
}

// Trims go on from where the last one stopped, never past an event someone needs, and a
// consumer without a cursor still starts at the oldest event left, in chunks larger than
// one trim takes and with the cursor inside an entry.
func TestTrimOutboxFromWhereItStopped(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	next := putOutbox(t, db, 1, 2, 5)        // events 1..10, five an entry
	next = putOutbox(t, db, next, 20_000, 1) // 11..20010, one an entry
	for _, tc := range []struct {
		low       uint64
		wantFirst uint64 // the first entry left
		more      int    // entries of five committed after the trims
	}{
		{low: 3, wantFirst: 1},                     // inside the first entry: nothing goes
		{low: 6, wantFirst: 6},                     // one whole entry
		{low: 15_003, wantFirst: 15_003},           // more keys than one trim takes
		{low: 15_003, wantFirst: 15_003},           // again: nothing more
		{low: 20_011, wantFirst: 20_011, more: 10}, // all of them, then new ones
		{low: 20_028, wantFirst: 20_026},
	} {
		holdOutbox(t, db, tc.low)
		deleted := 0
		for {
			n, err := db.TrimOutbox()
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			deleted += n
		}
		first, ok := firstLive(t, db)
		if !ok {
			first = next
		}
		if first != tc.wantFirst {
			t.Fatalf("low %d: the outbox starts at %d (%d deleted), want %d", tc.low, first, deleted, tc.wantFirst)
		}
		if got := db.oldestOutbox(); got != first {
			t.Fatalf("low %d: a consumer without a cursor would start at %d, the oldest event left is %d", tc.low, got, first)
		}
		if c, err := db.Cursor("new"); err != nil || c != first {
			t.Fatalf("low %d: cursor of a new consumer %d, %v; want %d", tc.low, c, err, first)
		}
		var seqs []uint64
		if err := db.ScanOutbox(0, func(e OutboxEntry) bool { seqs = append(seqs, e.Seq); return true }); err != nil {
			t.Fatal(err)
		}
		if uint64(len(seqs)) != next-first || len(seqs) > 0 && (seqs[0] != first || seqs[len(seqs)-1] != next-1) {
			t.Fatalf("low %d: %d events left, want %d from %d", tc.low, len(seqs), next-first, first)
		}
		if tc.more > 0 {
			next = putOutbox(t, db, next, tc.more, 5)
		}
	}
}

// BenchmarkTrimOutbox trims the outbox the way the server does, every few seconds at a
// few thousand clicks a second: each round commits entries, lets every holder pass
// them and trims. The tombstones of the rounds before are still in the tree.
func BenchmarkTrimOutbox(b *testing.B) {
	for _, rounds := range []int{10, 100} {
		b.Run(fmt.Sprintf("after-%d-trims", rounds), func(b *testing.B) {
			db := openTest(b, b.TempDir())
			defer db.Close()
			next := uint64(1)
			round := func() {
				next = putOutbox(b, db, next, 5000, 2)
				holdOutbox(b, db, next)
				if n, err := db.TrimOutbox(); err != nil || n != 10_000 {
					b.Fatalf("trimmed %d events, %v", n, err)
				}
			}
			for range rounds {
				round()
			}
			for b.Loop() {
				b.StopTimer()
				next = putOutbox(b, db, next, 5000, 2)
				holdOutbox(b, db, next)
				b.StartTimer()
				if n, err := db.TrimOutbox(); err != nil || n != 10_000 {
					b.Fatalf("trimmed %d events, %v", n, err)
				}
			}
		})
	}
}

// A conversion's events each carry the state they announced, also when read from the
// outbox (after a restart, or by a consumer that fell behind): a purchase refunded
// before a consumer read it still reaches that consumer as the purchase, then the
// refund. Its sealed identifiers stay while any of its events is in the outbox, the
// kept state goes with its entry, and a status change whose earlier event is already
// trimmed keeps no state.
func TestConversionEventsKeepTheirStateUntilTrimmed(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	stop := runUntil(db)
	var id [16]byte
	id[15] = 7
	value := 20.0
	c := &Conversion{ID: "c7", EventID: "o7", Type: "purchase", Status: "approved", Value: &value, Currency: "USD"}
	first, err := db.PutConversion(id, c, time.Hour, []KV{SealedUser(id, []byte("sealed-7"), time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c.Status, c.Revision = "refunded", 1
	second, err := db.PutConversion(id, c, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openTest(t, dir) // nothing kept in memory: the events come from the outbox
	defer db.Close()
	read := func(from uint64) []Event {
		t.Helper()
		evs, err := db.ReadEvents(from, 10)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	statuses := func(evs []Event) (out []string) {
		for _, e := range evs {
			if e.Kind != EventConversion {
				continue
			}
			c, err := DecodeConversion(e.Record)
			if err != nil {
				t.Fatalf("event %d: %v", e.Seq, err)
			}
			out = append(out, fmt.Sprintf("%d:%s:%s", e.Seq, c.Status, e.Sealed))
		}
		return out
	}
	want := []string{fmt.Sprintf("%d:approved:sealed-7", first), fmt.Sprintf("%d:refunded:sealed-7", second)}
	if got := statuses(read(first)); !slices.Equal(got, want) {
		t.Fatalf("read from the outbox: %q, want %q", got, want)
	}
	// The kept state lasts as long as its event, however far behind a consumer is.
	if err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(eventStateKey(first))
		if err == nil && it.ExpiresAt() != 0 {
			t.Errorf("the purchase's kept state expires at %d", it.ExpiresAt())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// Every consumer past the purchase's event: its entry goes, the refund's stays
	// with the identifiers it goes out with.
	holdOutbox(t, db, second)
	if n, err := db.TrimOutbox(); err != nil || n != int(second-1) {
		t.Fatalf("trim: %d events, %v; want the %d before the refund", n, err, second-1)
	}
	if got := statuses(read(second)); !slices.Equal(got, want[1:]) {
		t.Fatalf("after the purchase's event was trimmed: %q, want %q", got, want[1:])
	}
	if n := countPrefix(t, db, prefixEventState); n != 0 {
		t.Fatalf("%d event states kept after the purchase's event was trimmed, want none", n)
	}
	// Past the refund too: its state and the identifiers go.
	holdOutbox(t, db, second+1)
	if _, err := db.TrimOutbox(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []byte{prefixEventState, prefixSealedUser} {
		if n := countPrefix(t, db, p); n != 0 {
			t.Errorf("%d records under %q left after the conversion's last event was trimmed", n, p)
		}
	}
	if _, err := db.GetConversion(id); err != nil {
		t.Errorf("the conversion itself: %v", err)
	}
	// A rejection now, after a restart: the refund's event is gone, so nothing keeps
	// its state (a reopened store knows where its outbox begins).
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	stop = runUntil(db)
	c.Status, c.Revision = "rejected", 2
	third, err := db.PutConversion(id, c, time.Hour, nil)
	stop()
	if err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, db, prefixEventState); n != 0 {
		t.Errorf("%d event states kept for an event already trimmed", n)
	}
	if got := statuses(read(third)); !slices.Equal(got, []string{fmt.Sprintf("%d:rejected:", third)}) {
		t.Errorf("the rejection: %q", got)
	}
}
