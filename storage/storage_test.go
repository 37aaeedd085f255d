package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func openTest(t testing.TB, dir string) *DB {
	t.Helper()
	db, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// runUntil runs the store's background work and returns what stops it; the store stays
// open.
func runUntil(db *DB) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// runTest runs the store's background work and returns what stops it and closes the store.
func runTest(db *DB) (stop func()) {
	halt := runUntil(db)
	return func() { halt(); db.Close() }
}

// skipClosingCheckpoint makes the committer stop as a kill would, without a closing
// checkpoint: a write in flight ends, nothing more is written.
func skipClosingCheckpoint(db *DB) {
	db.crashCommitter.Store(true)
}

// crash stops the store's work as a kill would, without a closing checkpoint (see
// skipClosingCheckpoint), and closes it: what it committed is on disk, nothing else.
func crash(t *testing.T, db *DB, stop func()) {
	t.Helper()
	skipClosingCheckpoint(db)
	stop()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func testClick(i int, slug string, bot bool) *Click {
	var id [16]byte
	binary.BigEndian.PutUint64(id[8:], uint64(i+1))
	binary.BigEndian.PutUint64(id[:8], uint64(time.Now().UnixNano()))
	return &Click{
		ID: id, Time: time.Now().Truncate(time.Microsecond).UTC(), Node: "n1", Slug: slug,
		Campaign: "spring", UTM: UTM{Source: "sms", Medium: "promotional", Campaign: "spring"},
		Variant: -1, Destination: "https://shop.example.com/?cgid=x", VisitorID: fmt.Sprintf("v%d", i),
		IP: "127.0.0.1", UserAgent: "ua", Bot: bot, BotReason: map[bool]string{true: "head"}[bot],
	}
}

func TestClickRecordRoundTrip(t *testing.T) {
	c := testClick(1, "s", true)
	c.Variant = 2
	c.IdentityKind, c.IdentityValue, c.IdentitySource, c.Token = "email", "abc", "token", "tok"
	c.SealedUser = "sealed\x00bytes\xff"
	got, err := DecodeClick(AppendClick(nil, c))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*got) != fmt.Sprint(*c) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, *c)
	}
}

// Records written before SealedUser existed (version 1) still decode.
func TestClickRecordV1(t *testing.T) {
	c := testClick(1, "s", false)
	rec := AppendClick(nil, c)
	rec[16] = clickRecordV1
	rec = rec[:len(rec)-1] // the empty SealedUser's length
	got, err := DecodeClick(rec)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*got) != fmt.Sprint(*c) {
		t.Fatalf("version 1:\n got %+v\nwant %+v", *got, *c)
	}
}

func TestClickRecordCapsFields(t *testing.T) {
	c := testClick(1, "s", false)
	c.UserAgent = string(make([]byte, 10000))
	got, err := DecodeClick(AppendClick(nil, c))
	if err != nil || len(got.UserAgent) != maxUserAgent {
		t.Fatalf("user agent not capped: %d %v", len(got.UserAgent), err)
	}
}

func TestDecodeClickHostile(t *testing.T) {
	good := AppendClick(nil, testClick(1, "s", false))
	cases := map[string][]byte{
		"empty":       {},
		"short":       good[:10],
		"bad version": append(append(append([]byte{}, good[:16]...), 9), good[17:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(append([]byte{}, good...), 0),
		"huge length": append(append([]byte{}, good[:20]...), 0xff, 0xff, 0xff, 0xff, 0x0f),
	}
	for name, b := range cases {
		if _, err := DecodeClick(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeClick(f *testing.F) {
	f.Add(AppendClick(nil, testClick(1, "s", false)))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeClick(b)
		if err != nil {
			return
		}
		if _, err := DecodeClick(AppendClick(nil, c)); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}

// Concurrent commits land in the outbox in order, counters are right, and both survive a
// reopen; counters are rebuilt from the outbox when no checkpoint covers the clicks.
func TestCommitOutboxAndCounters(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	db.clicks.checkpointEvery = time.Hour
	stop := runUntil(db)

	ctr := db.Counters("", "s")
	const n = 2000
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := testClick(i, "s", i%4 == 0)
			kind := c.Kind()
			if err := db.Committer().CommitClick(AppendClick(nil, c), ctr, kind); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if h, b := ctr.Human.Load(), ctr.Bot.Load(); h != n*3/4 || b != n/4 {
		t.Fatalf("counters human=%d bot=%d", h, b)
	}
	if db.OutboxHead() != n+1 {
		t.Fatalf("outbox head %d", db.OutboxHead())
	}
	// Simulate a crash: no counter checkpoint since the last one, so the reopen must
	// rebuild the counters from the outbox.
	crash(t, db, stop)

	db = openTest(t, dir)
	defer db.Close()
	ctr = db.Counters("", "s")
	if h, b := ctr.Human.Load(), ctr.Bot.Load(); h != n*3/4 || b != n/4 {
		t.Fatalf("after reopen counters human=%d bot=%d", h, b)
	}
	var seqs []uint64
	seen := map[[16]byte]bool{}
	err := db.ScanOutbox(1, func(e OutboxEntry) bool {
		seqs = append(seqs, e.Seq)
		seen[e.Ref] = true
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != n || len(seen) != n {
		t.Fatalf("outbox has %d entries, %d distinct clicks", len(seqs), len(seen))
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("outbox sequence gap at %d: %d", i, s)
		}
	}
	if db.OutboxHead() != n+1 {
		t.Fatalf("outbox head after reopen %d", db.OutboxHead())
	}
	// A scan may start inside a transaction's entry.
	for _, from := range []uint64{2, n / 2, n - 1, n, n + 1} {
		var got []uint64
		db.ScanOutbox(from, func(e OutboxEntry) bool { got = append(got, e.Seq); return true })
		if want := int(n + 1 - from); len(got) != want || (want > 0 && got[0] != from) {
			t.Fatalf("scan from %d: %d events starting %v, want %d", from, len(got), got[:min(len(got), 1)], want)
		}
	}
}

func TestCommitAfterStopFails(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	db.Run(ctx)
	err := db.Committer().CommitClick(AppendClick(nil, testClick(1, "s", false)), db.Counters("", "s"), KindHuman)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v", err)
	}
}

func TestLinksAndRecipients(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	l := &Link{Slug: "a", Destination: "https://x.example/", Status: StatusActive}
	if err := db.PutLinks([]*Link{l}, true); err != nil {
		t.Fatal(err)
	}
	var ee *ExistsError
	if err := db.PutLinks([]*Link{{Slug: "b"}, l}, true); !errors.As(err, &ee) {
		t.Fatalf("duplicate slug: %v", err)
	}
	if _, err := db.GetLink("", "b"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a refused batch wrote something")
	}
	got, err := db.GetLink("", "a")
	if err != nil || got.Destination != l.Destination {
		t.Fatalf("get: %v %v", got, err)
	}
	if err := db.PutRecipients("", "a", []Recipient{{Token: "t1", Kind: "customer_id", Value: "42"}}); err != nil {
		t.Fatal(err)
	}
	r, err := db.GetRecipient("", "a", "t1")
	if err != nil || r.Kind != "customer_id" || r.Value != "42" || r.Sealed != nil {
		t.Fatalf("recipient %v %v", r, err)
	}
	sealed := []byte("sealed\x00with NULs\x00")
	if err := db.PutRecipients("", "a", []Recipient{{Token: "t3", Kind: "email", Value: "hash", Sealed: sealed}}); err != nil {
		t.Fatal(err)
	}
	if r, err := db.GetRecipient("", "a", "t3"); err != nil || r.Kind != "email" || r.Value != "hash" || string(r.Sealed) != string(sealed) {
		t.Fatalf("recipient with sealed identity %+v %v", r, err)
	}
	if err := db.PutRecipients("", "a", []Recipient{{Token: "t2"}, {Token: "t1"}}); err == nil {
		t.Fatal("taken token accepted")
	}
}

// ReadEvents returns events in outbox order with their records, from any starting point,
// and so does the outbox read it falls back to.
func TestReadEvents(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer runTest(db)()
	ctr := db.Counters("", "s")
	var want [][16]byte
	for i := 0; i < 300; i++ {
		c := testClick(i, "s", false)
		// IDs deliberately out of key order relative to commit order.
		c.ID[0] = byte(255 - i%256)
		want = append(want, c.ID)
		if err := db.Committer().CommitClick(AppendClick(nil, c), ctr, KindHuman); err != nil {
			t.Fatal(err)
		}
	}
	for name, read := range map[string]func(uint64, int) ([]Event, error){"ReadEvents": db.ReadEvents, "outbox": db.readOutbox} {
		for _, from := range []uint64{1, 150, 300} {
			evs, err := read(from, 1000)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 301-int(from) {
				t.Fatalf("%s from %d: %d events", name, from, len(evs))
			}
			for i, e := range evs {
				c, err := DecodeClick(e.Record)
				if err != nil || e.Seq != from+uint64(i) || c.ID != want[e.Seq-1] || e.Ref != c.ID {
					t.Fatalf("%s event %d: seq %d ref %x record %v err %v", name, i, e.Seq, e.Ref, c, err)
				}
			}
		}
		if evs, _ := read(1, 7); len(evs) != 7 {
			t.Fatalf("%s: max not honoured: %d", name, len(evs))
		}
	}
}

// A conversion's sealed identifiers travel with its outbox event and go when every
// consumer has read it.
func TestSealedUserLivesWithTheOutbox(t *testing.T) {
	dir := t.TempDir()
	// run starts the store's consumers (the index consumer reads the outbox too) and
	// returns what stops them and closes the store.
	db := openTest(t, dir)
	stop := runTest(db)
	var with, without [16]byte
	with[15], without[15] = 1, 2
	sealed := []byte("opaque sealed bytes")
	seqWith, err := db.PutConversion(with, &Conversion{ID: "c1", EventID: "o-1", Type: "purchase", Status: "approved"}, time.Hour,
		[]KV{SealedUser(with, sealed, time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	seqWithout, err := db.PutConversion(without, &Conversion{ID: "c2", EventID: "o-2", Type: "purchase", Status: "approved"}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A refund that names nobody goes out with the identifiers the conversion came with.
	if _, err := db.PutConversion(with, &Conversion{ID: "c1", EventID: "o-1", Type: "purchase", Status: "refunded", Revision: 1}, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	for name, read := range map[string]func(uint64, int) ([]Event, error){"ReadEvents": db.ReadEvents, "outbox": db.readOutbox} {
		evs, err := read(seqWith, 10)
		if err != nil || len(evs) != 3 {
			t.Fatalf("%s: %d events, %v", name, len(evs), err)
		}
		if string(evs[0].Sealed) != string(sealed) || evs[1].Sealed != nil || string(evs[2].Sealed) != string(sealed) {
			t.Fatalf("%s: sealed = %q, %q, %q", name, evs[0].Sealed, evs[1].Sealed, evs[2].Sealed)
		}
	}
	if evs, ok := db.recent.events(seqWith, 10); !ok || len(evs) != 3 {
		t.Fatalf("the events are not kept in memory (%v): the test reads only the outbox", ok)
	}
	db.Register("fwd")
	if err := db.SetCursor("fwd", seqWithout+2); err != nil {
		t.Fatal(err)
	}
	stop() // closing checkpoints the counters, which hold retention too
	db = openTest(t, dir)
	db.reportsFlushEvery.Store(int64(20 * time.Millisecond)) // the report counters hold retention too
	defer runTest(db)()
	db.Register("fwd")
	for i := 0; ; i++ {
		if _, err := db.TrimOutbox(); err != nil {
			t.Fatal(err)
		}
		if evs, _ := db.ReadEvents(1, 10); len(evs) == 0 {
			break
		}
		if i == 50 {
			t.Fatal("outbox never trimmed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get(sealedUserKey(with))
		return err
	})
	if !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatalf("sealed identifiers outlived the outbox: %v", err)
	}
	if _, err := db.GetConversion(with); err != nil {
		t.Fatalf("the conversion itself must stay: %v", err)
	}
}

// Visitor reads from many goroutines through one snapshot each get their own visitor's
// clicks, and the snapshot closes cleanly after them.
func TestSnapshotSharedByConcurrentReads(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	const visitors, each = 30, 3
	want := map[string][][16]byte{}
	err := db.updateIndex(func(txn, itxn *badger.Txn) error {
		for i := range visitors * each {
			c := testClick(i, "s", false)
			c.VisitorID = fmt.Sprintf("v%d", i%visitors) // v1 and v10 share a first byte
			want[c.VisitorID] = append(want[c.VisitorID], c.ID)
			if err := db.indexClick(txn, itxn, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	always, never := time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for v, ids := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				got, _, err := snap.VisitorClicks(v, always, never, 10)
				var gotIDs [][16]byte
				for _, c := range got {
					gotIDs = append(gotIDs, c.ID)
				}
				if err != nil || !slices.Equal(gotIDs, ids) {
					t.Errorf("visitor %s: %d clicks (%v), want its %d", v, len(got), err, len(ids))
					return
				}
			}
		}()
	}
	wg.Wait()
	snap.Close() // panics if a read left its iterator open
}

// A visitor's human clicks come back as touches from the index alone; bots and tests are
// not touches; entries written in the index's two earlier forms (a whole click record,
// and before that a kind byte with the click read from the main store) still resolve.
func TestVisitorClicks(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	human, bot := testClick(1, "s", false), testClick(2, "s", true)
	whole, legacy := testClick(3, "w", false), testClick(4, "t", false)
	for _, c := range []*Click{human, bot, whole, legacy} {
		c.VisitorID = "v1"
	}
	human.ID[0], bot.ID[0], whole.ID[0], legacy.ID[0] = 1, 2, 3, 4 // index order is click ID order
	err := db.updateIndex(func(txn, itxn *badger.Txn) error {
		for _, c := range []*Click{human, bot} {
			if err := db.indexClick(txn, itxn, c); err != nil {
				return err
			}
		}
		if err := itxn.Set(append(visitorClickPrefix("v1"), whole.ID[:]...), AppendClick(nil, whole)); err != nil {
			return err
		}
		if err := txn.Set(clickKey(legacy.ID), AppendClick(nil, legacy)); err != nil {
			return err
		}
		return itxn.Set(append(visitorClickPrefix("v1"), legacy.ID[:]...), []byte{byte(KindHuman)})
	})
	if err != nil {
		t.Fatal(err)
	}
	// A human click is indexed in the compact form, a bot's as its kind.
	for _, c := range []*Click{human, bot} {
		want := []byte{byte(KindBot)}
		if c == human {
			want = appendTouchEntry(nil, c)
		}
		if err := db.idx.View(func(itxn *badger.Txn) error {
			item, err := itxn.Get(append(visitorClickPrefix("v1"), c.ID[:]...))
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err == nil && !bytes.Equal(v, want) {
				err = fmt.Errorf("entry %x, want %x", v, want)
			}
			return err
		}); err != nil {
			t.Errorf("index entry of click %d: %v", c.ID[0], err)
		}
	}
	always, never := time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	got, _, err := visitorClicks(db, "v1", always, never, 10)
	if err != nil || len(got) != 3 {
		t.Fatalf("VisitorClicks = %d clicks, %v", len(got), err)
	}
	if g, want := *got[0], touchOf(human); !g.Time.Equal(want.Time) || g.Time.Location() != time.UTC {
		t.Errorf("touch time %s, want %s in UTC", g.Time, want.Time)
	} else if g.Time = want.Time; g != want {
		t.Errorf("touch =\n %+v\nwant the human click without request details\n %+v", g, want)
	}
	if got[1].ID != whole.ID || got[1].Slug != "w" || !got[1].Time.Equal(whole.Time) {
		t.Errorf("entry with a whole click record resolved to %+v", got[1])
	}
	if got[2].ID != legacy.ID || got[2].Slug != "t" {
		t.Errorf("legacy entry resolved to %+v", got[2])
	}
	if got, _, _ := visitorClicks(db, "v1", always, never, 1); len(got) != 1 || got[0].ID != legacy.ID {
		t.Errorf("limit not honoured or not the latest: %+v", got)
	}
}

// Only the span asked for is read, by the millisecond click IDs begin with; of more
// clicks than the limit, the latest come back, oldest first. Whether a human click came
// before the span is told, a bot's is not.
// Each span is read three ways: on a snapshot of its own (an iterator bound to the
// visitor's prefix), as a later read of a shared snapshot (a pooled iterator over the
// whole store), and both again once the entries are in tables on disk. Visitors whose
// keys sort either side of v1 (v0, v10) must not leak in.
func TestVisitorClicksSpan(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	day0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d int) time.Time { return day0.Add(time.Duration(d) * 24 * time.Hour) }
	err := db.updateIndex(func(txn, itxn *badger.Txn) error {
		for d := range 20 {
			c := testClick(d, "s", d == 7 || d == 0) // days 0 and 7 are bots
			c.VisitorID, c.Time = "v1", at(d)
			binary.BigEndian.PutUint64(c.ID[:8], uint64(c.Time.UnixMilli())<<16)
			if err := db.indexClick(txn, itxn, c); err != nil {
				return err
			}
			for _, other := range []string{"v0", "v10"} {
				o := testClick(100+d, "s", false)
				o.VisitorID, o.Time = other, at(d).Add(time.Minute)
				binary.BigEndian.PutUint64(o.ID[:8], uint64(o.Time.UnixMilli())<<16)
				if err := db.indexClick(txn, itxn, o); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	days := func(cs []*Click) (out []int) {
		for _, c := range cs {
			out = append(out, int(c.Time.Sub(day0)/(24*time.Hour)))
		}
		return out
	}
	cases := []struct {
		from, to time.Time
		limit    int
		want     []int
		earlier  bool
	}{
		{at(5), at(10), 100, []int{5, 6, 8, 9, 10}, true},
		{at(5), at(10), 3, []int{8, 9, 10}, false}, // stopped at the limit
		{time.Time{}, at(2), 1, []int{2}, false},
		{at(18).Add(time.Hour), at(30), 100, []int{19}, true},
		{at(25), at(30), 100, nil, true},
		{at(8), at(8).Add(time.Hour), 100, []int{8}, true}, // day 7's bot is passed over for day 6
		{at(1), at(3), 100, []int{1, 2, 3}, false},         // only day 0's bot before
		{at(0).Add(time.Hour), at(0).Add(2 * time.Hour), 100, nil, false},
		{time.Time{}, at(-1), 100, nil, false},
	}
	check := func(where string) {
		shared, err := db.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer shared.Close()
		if _, _, err := shared.VisitorClicks("v0", time.Time{}, at(30), 100); err != nil { // takes the first read
			t.Fatal(err)
		}
		for _, tc := range cases {
			for how, read := range map[string]func() ([]*Click, bool, error){
				"own snapshot":    func() ([]*Click, bool, error) { return visitorClicks(db, "v1", tc.from, tc.to, tc.limit) },
				"shared snapshot": func() ([]*Click, bool, error) { return shared.VisitorClicks("v1", tc.from, tc.to, tc.limit) },
			} {
				got, earlier, err := read()
				if err != nil || !slices.Equal(days(got), tc.want) || earlier != tc.earlier {
					t.Errorf("%s, %s: VisitorClicks(%s, %s, %d) = days %v, earlier %t, %v; want %v, %t", where, how, tc.from, tc.to, tc.limit, days(got), earlier, err, tc.want, tc.earlier)
				}
			}
		}
	}
	check("in the memtable")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	defer db.Close()
	check("in tables")
}

// Every time to conversion lands in a bucket whose value is within 2 % of it, and
// buckets keep the order of the times.
func TestTTCBuckets(t *testing.T) {
	prev := -1
	for s := int64(0); s < 100*86400; s += 1 + s/50 {
		b := TTCBucket(s)
		if b < prev {
			t.Fatalf("bucket of %d s is %d, before %d", s, b, prev)
		}
		prev = b
		if v := TTCValue(b); math.Abs(float64(v-s)) > 0.02*float64(s)+0.5 {
			t.Fatalf("%d s reads back as %d", s, v)
		}
	}
	if TTCBucket(-5) != 0 {
		t.Error("a negative time must land in the first bucket")
	}
}

// Report counters count every event exactly once across a crash that loses the
// counters written since the last flush: the events between the reports cursor and the
// index cursor are counted again from the outbox, and only those.
func TestReportCountersExactlyOnceAcrossCrash(t *testing.T) {
	dir := t.TempDir()
	commit := func(db *DB, from, n int) {
		ctr := db.Counters("", "s")
		for i := from; i < from+n; i++ {
			c := testClick(i, "s", i%5 == 0)
			if err := db.Committer().CommitClick(AppendClick(nil, c), ctr, c.Kind()); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if !db.WaitIndexed(ctx, db.OutboxHead()) {
			t.Fatal("index never caught up")
		}
	}
	totals := func(db *DB) (human, bot, visitors int64) {
		cells, err := db.ReportCells(0, DayOf(time.Now())+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cells {
			human, bot = human+c.Cell.HumanClicks, bot+c.Cell.BotClicks
			if c.Visitors != nil {
				visitors += int64(c.Visitors.Estimate())
			}
		}
		return
	}

	// 500 clicks written and flushed, then 300 more indexed but never flushed: a crash.
	db := openTest(t, dir)
	db.reportsFlushEvery.Store(int64(10 * time.Millisecond))
	stop := runTest(db)
	commit(db, 0, 500)
	time.Sleep(100 * time.Millisecond) // a flush after the last batch
	db.reportsFlushEvery.Store(int64(time.Hour))
	db.crashIndex.Store(true)
	commit(db, 500, 300)
	if h, b, _ := totals(db); h+b != 500 {
		t.Fatalf("before the crash %d clicks were written, want the 500 flushed", h+b)
	}
	stop()

	db = openTest(t, dir)
	db.reportsFlushEvery.Store(int64(20 * time.Millisecond))
	defer runTest(db)()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, b, v := totals(db)
		if h+b == 800 {
			if h != 640 || b != 160 || v != 640 {
				t.Fatalf("after recount: human %d bot %d visitors %d, want 640 160 640", h, b, v)
			}
			break
		}
		if h+b > 800 || time.Now().After(deadline) {
			t.Fatalf("after the crash the reports count %d clicks, want 800", h+b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if h, b, _ := totals(db); h+b != 800 {
		t.Fatalf("a later flush counted again: %d clicks", h+b)
	}
}

// The index consumer's in-memory events are the outbox's: same sequences, kinds,
// references and records, clicks and conversions mixed; a sequence no longer kept
// falls back to the outbox.
func TestRecentEventsMatchTheOutbox(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer runTest(db)()
	ctr := db.Counters("", "s")
	var wg sync.WaitGroup
	for i := 0; i < 400; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%10 == 0 {
				var id [16]byte
				binary.BigEndian.PutUint64(id[8:], uint64(i))
				if _, err := db.PutConversion(id, &Conversion{ID: fmt.Sprint("c", i), EventID: fmt.Sprint("o", i), Type: "purchase", Status: "approved"}, time.Hour,
					[]KV{SealedUser(id, []byte(fmt.Sprint("sealed", i)), time.Hour)}); err != nil {
					t.Error(err)
				}
				return
			}
			c := testClick(i, "s", false)
			if err := db.Committer().CommitClick(AppendClick(nil, c), ctr, KindHuman); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	head := db.OutboxHead()
	mem, ok := db.recent.events(1, 1000)
	if !ok || len(mem) != int(head-1) {
		t.Fatalf("kept %d events (ok %v), want all %d", len(mem), ok, head-1)
	}
	disk, err := db.readOutbox(1, 1000)
	if err != nil || len(disk) != len(mem) {
		t.Fatalf("outbox: %d events, %v", len(disk), err)
	}
	for i := range mem {
		m, d := mem[i], disk[i]
		if m.OutboxEntry != d.OutboxEntry || !bytes.Equal(m.Record, d.Record) || !bytes.Equal(m.Sealed, d.Sealed) {
			t.Fatalf("event %d: memory %+v, outbox %+v", i, m.OutboxEntry, d.OutboxEntry)
		}
	}
	if part, ok := db.recent.events(head-5, 3); !ok || len(part) != 3 || part[0].Seq != head-5 {
		t.Fatalf("from the middle: %d events from %v", len(part), part)
	}
	db.recent.mu.Lock()
	db.recent.batches = db.recent.batches[len(db.recent.batches)-1:] // the oldest are gone
	db.recent.mu.Unlock()
	if _, ok := db.recent.events(1, 10); ok {
		t.Fatal("an event no longer kept was answered from memory")
	}
	if evs, err := db.ReadEvents(1, 10); err != nil || len(evs) != 10 || evs[0].Seq != 1 {
		t.Fatalf("fallback to the outbox: %d events, %v", len(evs), err)
	}
}

func visitorClicks(db *DB, visitor string, from, to time.Time, limit int) ([]*Click, bool, error) {
	s, err := db.Snapshot()
	if err != nil {
		return nil, false, err
	}
	defer s.Close()
	return s.VisitorClicks(visitor, from, to, limit)
}

// A wait for the index that starts before the index consumer first moves is woken by
// that first move, not left to its deadline.
func TestWaitIndexedBeforeTheConsumerStarts(t *testing.T) {
	db := openTest(t, t.TempDir())
	if db.Indexed(db.OutboxHead()) {
		t.Fatal("indexed before the index consumer ran")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	woke := make(chan bool)
	go func() { woke <- db.WaitIndexed(ctx, db.OutboxHead()) }()
	time.Sleep(50 * time.Millisecond) // the wait is parked before the consumer runs
	defer runTest(db)()
	if !<-woke {
		t.Fatal("the wait ran to its deadline: the consumer's first move did not wake it")
	}
	if !db.Indexed(db.OutboxHead()) {
		t.Fatal("not indexed once the wait returned")
	}
}

// A store from before the visitor index had a store of its own keeps its entries in the
// main one: opening it moves them, chunk by chunk, and attribution finds every one.
func TestVisitorIndexMovesToItsOwnStore(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	const n = 25_000 // two and a half chunks
	wb := db.bdb.NewWriteBatch()
	for i := range n {
		c := testClick(i, "s", false)
		c.VisitorID = fmt.Sprintf("v%d", i%100)
		if err := wb.Set(append(visitorClickPrefix(c.VisitorID), c.ID[:]...), AppendClick(nil, &Click{ID: c.ID, Time: c.Time, Slug: c.Slug})); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	inMain := 0
	db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixVisitorClick}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			inMain++
		}
		return nil
	})
	if inMain != 0 {
		t.Fatalf("%d visitor index entries left in the main store", inMain)
	}
	always, never := time.Time{}, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	total := 0
	for v := range 100 {
		got, _, err := visitorClicks(db, fmt.Sprintf("v%d", v), always, never, n)
		if err != nil || len(got) != n/100 {
			t.Fatalf("visitor v%d: %d clicks (%v), want %d", v, len(got), err, n/100)
		}
		total += len(got)
	}
	if total != n {
		t.Fatalf("%d of %d entries found after the move", total, n)
	}
}
