package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

func TestDecodeCheckpointHostile(t *testing.T) {
	entry := func(key string, h, b, tc uint64) []byte {
		e := binary.AppendUvarint(nil, uint64(len(key)))
		e = append(e, key...)
		for _, n := range []uint64{h, b, tc} {
			e = binary.AppendUvarint(e, n)
		}
		return e
	}
	head := []byte{checkpointVersion, 7}
	good := append(slices.Clone(head), entry("d\x00a", 1, 2, 3)...)
	for _, tc := range []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"another version", append([]byte{2, 7}, entry("d\x00a", 1, 2, 3)...)},
		{"version only", []byte{checkpointVersion}},
		{"sequence cut short", []byte{checkpointVersion, 0x80}},
		{"sequence of eleven bytes", append([]byte{checkpointVersion}, bytes.Repeat([]byte{0xff}, 11)...)},
		{"no links", head},
		{"key of no bytes", append(slices.Clone(head), entry("", 1, 2, 3)...)},
		{"key longer than the record", append(slices.Clone(head), 40, 'd', 0, 'a')},
		{"key length cut short", append(slices.Clone(head), 0x80)},
		{"counts missing", append(slices.Clone(head), 3, 'd', 0, 'a')},
		{"test count cut short", append(slices.Clone(head), entry("d\x00a", 1, 2, 300)[:7]...)},
		{"human count past int64", append(slices.Clone(head), entry("d\x00a", math.MaxInt64+1, 0, 0)...)},
		{"good entry then garbage", append(slices.Clone(good), 0xff)},
		{"good entry then half an entry", append(slices.Clone(good), entry("d\x00b", 1, 1, 1)[:4]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := decodeCheckpoint(tc.v, func(uint64, []byte, int64, int64, int64) { calls++ })
			if !errors.Is(err, errCheckpointRecord) {
				t.Fatalf("error %v, want a malformed record", err)
			}
			if calls > 0 {
				t.Fatalf("%d links read from a malformed record", calls)
			}
		})
	}
}

// Records round-trip, split where they fill, each carrying the sequence.
func TestCheckpointRecordsRoundTrip(t *testing.T) {
	var cs []*Counters
	want := map[string][3]int64{}
	for i := range 5000 {
		c := &Counters{key: LinkKey("go.example", fmt.Sprintf("link-%d", i))}
		c.Human.Store(int64(i * 1000))
		c.Bot.Store(int64(i % 3))
		c.Test.Store(math.MaxInt64 - int64(i))
		cs = append(cs, c)
		want[c.key] = [3]int64{c.Human.Load(), c.Bot.Load(), c.Test.Load()}
	}
	kvs, size := checkpointRecords(cs, 1<<40, 77)
	if len(kvs) < 2 {
		t.Fatalf("%d records: the test wants a split", len(kvs))
	}
	got := map[string][3]int64{}
	var total int64
	for i, kv := range kvs {
		if !bytes.Equal(kv.Key, checkpointKey(77+uint64(i))) {
			t.Fatalf("record %d keyed %x", i, kv.Key)
		}
		if len(kv.Value) > recordBytes+256 {
			t.Fatalf("record %d is %d bytes", i, len(kv.Value))
		}
		total += int64(len(kv.Value))
		err := decodeCheckpoint(kv.Value, func(seq uint64, key []byte, h, b, tc int64) {
			if seq != 1<<40 {
				t.Fatalf("sequence %d", seq)
			}
			got[string(key)] = [3]int64{h, b, tc}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if total != size {
		t.Errorf("size %d, records hold %d", size, total)
	}
	if est := checkpointSize(cs); est > size || est < size-int64(len(kvs))*16 {
		t.Errorf("estimated size %d, records %d", est, size)
	}
	if len(got) != len(want) {
		t.Fatalf("%d links read back, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%q: %v, want %v", k, got[k], v)
		}
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	c := &Counters{key: LinkKey("d", "s")}
	c.Human.Store(5)
	kvs, _ := checkpointRecords([]*Counters{c, c}, 9, 0)
	f.Add(kvs[0].Value)
	f.Add([]byte{checkpointVersion})
	f.Add([]byte{checkpointVersion, 1, 1, 'k', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 1, 0, 0})
	f.Fuzz(func(t *testing.T, v []byte) {
		var got []*Counters
		var seq uint64
		err := decodeCheckpoint(v, func(s uint64, key []byte, h, b, tc int64) {
			if h < 0 || b < 0 || tc < 0 || len(key) == 0 {
				t.Fatalf("read key %q counts %d %d %d", key, h, b, tc)
			}
			c := &Counters{key: string(key)}
			c.Human.Store(h)
			c.Bot.Store(b)
			c.Test.Store(tc)
			got, seq = append(got, c), s
		})
		if err != nil {
			if len(got) > 0 {
				t.Fatalf("%d links read from a record that failed: %v", len(got), err)
			}
			return
		}
		// What decodes encodes again to the same links.
		kvs, _ := checkpointRecords(got, seq, 0)
		n := 0
		for _, kv := range kvs {
			if err := decodeCheckpoint(kv.Value, func(s uint64, key []byte, h, b, tc int64) {
				c := got[n]
				if s != seq || string(key) != c.key || h != c.Human.Load() || b != c.Bot.Load() || tc != c.Test.Load() {
					t.Fatalf("entry %d changed on the way back", n)
				}
				n++
			}); err != nil {
				t.Fatal(err)
			}
		}
		if n != len(got) {
			t.Fatalf("%d entries back of %d", n, len(got))
		}
	})
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

// Many links are checkpointed, in several records: while clicks are committed
// (checkpoints in the background at every tick) and by the closing one, so a restart
// replays nothing.
func TestCheckpointManyLinks(t *testing.T) {
	const links = 30_000 // some twenty records
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
	kvs, _ := checkpointRecords([]*Counters{a}, head-1, db.clicks.journal.next)
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(kvs[0].Key, kvs[0].Value) }); err != nil {
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

// countPrefix counts the keys under a prefix.
func countPrefix(t *testing.T, db *DB, prefix byte) int {
	t.Helper()
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefix}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A store from before the journal holds one counters record per link: the counts alone
// (the first layout) or with their sequence. They are read, moved into the journal and
// deleted; clicks committed past the mark are replayed onto them.
func TestCheckpointMovesOldRecordsIntoJournal(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	stop := runUntil(db)
	commit := func(i int, slug string, kind ClickKind) {
		t.Helper()
		c := db.Counters("", slug)
		if err := db.Committer().CommitClick(AppendClick(nil, testClick(i, slug, kind == KindBot)), c, kind); err != nil {
			t.Fatal(err)
		}
	}
	for i, kind := range []ClickKind{KindBot, KindHuman, KindHuman, KindHuman} {
		commit(i, "first", kind)
		commit(10+i, "second", KindHuman)
	}
	stop() // the closing checkpoint: records and the mark at the head
	head := db.OutboxHead()
	// Rewrite the counters as older builds did.
	old := func(c *Counters, withSeq bool) []byte {
		v := binary.BigEndian.AppendUint64(nil, uint64(c.Human.Load()))
		v = binary.BigEndian.AppendUint64(v, uint64(c.Bot.Load()))
		v = binary.BigEndian.AppendUint64(v, uint64(c.Test.Load()))
		if withSeq {
			v = binary.BigEndian.AppendUint64(v, head-1)
		}
		return v
	}
	if err := db.bdb.DropPrefix([]byte{prefixCheckpoint}); err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		for slug, withSeq := range map[string]bool{"first": false, "second": true} {
			c := db.Counters("", slug)
			if err := txn.Set(append([]byte{prefixCounters}, c.key...), old(c, withSeq)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	check := func(db *DB, human, bot, second int64) {
		t.Helper()
		if h, b := db.Counters("", "first").Human.Load(), db.Counters("", "first").Bot.Load(); h != human || b != bot {
			t.Errorf("first: human %d bot %d, want %d and %d", h, b, human, bot)
		}
		if n := db.Counters("", "second").Human.Load(); n != second {
			t.Errorf("second: human %d, want %d", n, second)
		}
	}
	// Two more clicks, then a crash before any checkpoint covers them.
	db = openTest(t, dir)
	db.clicks.checkpointEvery = time.Hour
	check(db, 3, 1, 4)
	if n := countPrefix(t, db, prefixCounters); n != 0 {
		t.Errorf("%d old records left", n)
	}
	if n := countPrefix(t, db, prefixCheckpoint); n == 0 {
		t.Error("no journal records")
	}
	stop = runUntil(db)
	commit(20, "first", KindHuman)
	commit(21, "first", KindBot)
	commit(22, "second", KindHuman)
	crash(t, db, stop)

	db = openTest(t, dir)
	check(db, 4, 2, 5)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir)
	defer db.Close()
	check(db, 4, 2, 5)
}

// journalOnDisk returns the numbers of the checkpoint records stored, their size and
// the links they hold.
func journalOnDisk(t *testing.T, db *DB) (nums []uint64, size int64, keys map[string]bool) {
	t.Helper()
	keys = map[string]bool{}
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCheckpoint}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			nums = append(nums, binary.BigEndian.Uint64(it.Item().Key()[1:]))
			size += it.Item().ValueSize()
			err := it.Item().Value(func(v []byte) error {
				return decodeCheckpoint(v, func(_ uint64, key []byte, _, _, _ int64) { keys[string(key)] = true })
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return nums, size, keys
}

// checkLinks fails unless every link l0… has the human clicks want says.
func checkLinks(t *testing.T, db *DB, links int, want map[string]int64, after string) {
	t.Helper()
	for i := range links {
		slug := fmt.Sprintf("l%d", i)
		if h := db.Counters("", slug).Human.Load(); h != want[slug] {
			t.Fatalf("after %s: %s has %d human clicks, want %d", after, slug, h, want[slug])
		}
	}
}

// clickRandomly commits n human clicks on links l0… picked at random, pausing now and
// then so checkpoints run between them, until n or until stop says so. It counts them
// in want.
func clickRandomly(t *testing.T, db *DB, rng *rand.Rand, links, n int, want map[string]int64, stop func() bool) {
	t.Helper()
	for i := 0; i < n && !stop(); i++ {
		slug := fmt.Sprintf("l%d", rng.IntN(links))
		if err := db.Committer().CommitClick(AppendClick(nil, testClick(rng.IntN(1<<30), slug, false)), db.Counters("", slug), KindHuman); err != nil {
			t.Fatal(err)
		}
		want[slug]++
		if i%8 == 7 {
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// Checkpoints append to the journal, and rollups keep it to a few copies of every
// link's counts: the journal stays bounded however many checkpoints are written. A
// restart after a clean stop or a crash, wherever a rollup stood, finds every click
// once.
func TestCheckpointJournalRollsUp(t *testing.T) {
	const links = 40
	dir := t.TempDir()
	want := map[string]int64{}
	rng := rand.New(rand.NewPCG(1, 2))
	var stopped []string
	crashedInRollup := false
	for epoch := 0; epoch < 8 || !crashedInRollup; epoch++ {
		if epoch == 100 {
			t.Fatalf("no crash in 100 stops came during a rollup: %v", stopped)
		}
		db := openTest(t, dir)
		checkLinks(t, db, links, want, fmt.Sprint(stopped))
		idle := db.Counters("", "never clicked")
		db.clicks.journal.minBytes, db.clicks.journal.slice = 0, 2
		db.clicks.checkpointEvery = time.Millisecond
		stop := runUntil(db)
		clickRandomly(t, db, rng, links, 400, want, func() bool { return false })
		crashed := epoch%2 == 1
		if crashed {
			skipClosingCheckpoint(db)
		}
		stop()
		j := db.clicks.journal
		crashedInRollup = crashedInRollup || crashed && j.rollup != nil
		stopped = append(stopped, fmt.Sprintf("epoch %d: crash %v, rollup unfinished %v, %d records written", epoch, crashed, j.rollup != nil, j.next))
		nums, size, keys := journalOnDisk(t, db)
		if keys[idle.key] {
			t.Errorf("epoch %d: the journal holds a link never clicked", epoch)
		}
		all, _, _ := db.countersFrom(0, links)
		whole := checkpointSize(all)
		if nums[0] == 0 && epoch > 0 {
			t.Errorf("epoch %d: the first record is still stored: no rollup ended", epoch)
		}
		// A rollup is due at twice a whole copy and writes one more while clicks go on;
		// records carry a header each. Without rollups the journal grows with every
		// checkpoint: hundreds of records by now.
		if size > 8*whole || len(nums) > int(j.next)/4 {
			t.Errorf("epoch %d: the journal holds %d bytes in %d of %d records written, a whole copy is %d", epoch, size, len(nums), j.next, whole)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db := openTest(t, dir)
	defer db.Close()
	checkLinks(t, db, links, want, fmt.Sprint(stopped))
	t.Log(stopped)
}

var errTestCrash = errors.New("test crash")

// A crash at any step of writing a checkpoint, within a rollup or not, leaves the
// journal, the mark and the outbox such that a restart finds every click once: before
// a transaction of records, between the records and the mark (records ahead of the
// mark), and between a rollup's last records and the deletes of what they replaced.
func TestCheckpointCrashMidWrite(t *testing.T) {
	const links = 40
	for _, tc := range []struct {
		name       string
		step       checkpointStep
		rollups    bool
		endsRollup bool // only a run that ends a rollup
	}{
		{"before records", stepRecords, false, false},
		{"before the mark", stepMark, false, false},
		{"before records, in a rollup", stepRecords, true, false},
		{"before the mark, in a rollup", stepMark, true, false},
		{"before records, at a rollup's end", stepRecords, true, true},
		{"before the mark, at a rollup's end", stepMark, true, true},
		{"before the deletes, at a rollup's end", stepDrop, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := map[string]int64{}
			rng := rand.New(rand.NewPCG(3, 4))
			db := openTest(t, dir)
			db.clicks.checkpointEvery = time.Millisecond
			db.clicks.journal.minBytes, db.clicks.journal.slice = 0, 3
			if !tc.rollups {
				db.clicks.journal.minBytes = 1 << 40
			}
			var crashed atomic.Bool
			seen := 0
			db.checkpointFault = func(step checkpointStep, endsRollup bool) error {
				if crashed.Load() {
					return errTestCrash // a crashed process writes nothing more
				}
				if step == tc.step && (endsRollup || !tc.endsRollup) {
					if seen++; seen == 5 {
						crashed.Store(true)
						return errTestCrash
					}
				}
				return nil
			}
			stop := runUntil(db)
			clickRandomly(t, db, rng, links, 100_000, want, crashed.Load)
			if !crashed.Load() {
				t.Fatal("the checkpoint never reached the step")
			}
			crash(t, db, stop)

			db = openTest(t, dir)
			checkLinks(t, db, links, want, "the crash")
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTest(t, dir)
			defer db.Close()
			checkLinks(t, db, links, want, "a clean restart after it")
		})
	}
}

// A checkpoint of many links spans several transactions. A crash after some of them
// leaves those links' records stored and the mark where it was: the restart replays
// every click past the mark and counts each once, and the journal goes on past the
// records the cut-short checkpoint numbered, so later checkpoints do not overwrite
// them.
func TestCheckpointCrashBetweenTransactions(t *testing.T) {
	const links = 12_000 // four records
	for _, committed := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("after %d of 4", committed), func(t *testing.T) {
			dir := t.TempDir()
			db := openTest(t, dir)
			db.clicks.checkpointEvery = time.Hour // only the closing checkpoint
			db.checkpointTxnRecords = 1
			var started atomic.Int64 // record transactions begun
			db.checkpointFault = func(step checkpointStep, _ bool) error {
				if step != stepRecords {
					return errTestCrash // the mark stays
				}
				if started.Add(1) > int64(committed) {
					return errTestCrash
				}
				return nil
			}
			stop := runUntil(db)
			commitSpread(t, db, links)
			head := db.OutboxHead()
			stop() // the closing checkpoint writes its first records, then crashes
			if n := started.Load(); n != int64(committed)+1 {
				t.Fatalf("the checkpoint began %d record transactions, want %d", n, committed+1)
			}
			if n := countPrefix(t, db, prefixCheckpoint); n != committed {
				t.Fatalf("%d checkpoint records stored, want %d", n, committed)
			}
			if got := counterMark(t, db); got >= head-1 {
				t.Fatalf("the mark is at %d: the checkpoint was not cut short", got)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			want := map[string]int64{}
			for i := range links {
				want[fmt.Sprintf("l%d", i)] = 1
			}
			db = openTest(t, dir)
			checkLinks(t, db, links, want, "a checkpoint cut short")
			// The restore checkpointed what it replayed, numbered past the records
			// already there: reopened, the store replays nothing and counts the same.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTest(t, dir)
			checkLinks(t, db, links, want, "the restore's own checkpoint")
			// Another round, checkpointed whole at a clean stop: its records must not
			// replace the ones the cut-short checkpoint left.
			db.checkpointTxnRecords = 1
			stop = runUntil(db)
			commitSpread(t, db, links)
			stop()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			for k := range want {
				want[k] = 2
			}
			db = openTest(t, dir)
			defer db.Close()
			checkLinks(t, db, links, want, "a second round and a clean stop")
			if got, head := counterMark(t, db), db.OutboxHead(); got != head-1 {
				t.Errorf("counter mark %d after a clean stop, want %d", got, head-1)
			}
		})
	}
}
