package storage

import (
	"errors"
	"fmt"
	"github.com/dgraph-io/badger/v4"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBloomHasEveryKeyAndFewOthers(t *testing.T) {
	for _, capacity := range []int{1, 100, 1 << 16} {
		b := newBloom(capacity)
		r := rand.New(rand.NewPCG(1, uint64(capacity)))
		added := make([]uint64, capacity)
		for i := range added {
			added[i] = r.Uint64()
			b.add(added[i])
		}
		for _, h := range added {
			if !b.has(h) {
				t.Fatalf("capacity %d: a key added is not there", capacity)
			}
		}
		if capacity < 1000 {
			continue
		}
		fp := 0
		const tries = 200000
		for range tries {
			if b.has(r.Uint64()) {
				fp++
			}
		}
		if rate := float64(fp) / tries; rate > 0.02 {
			t.Errorf("capacity %d, full: %.2f %% false positives, want about 1 %%", capacity, 100*rate)
		}
	}
}

func TestSeenFilterGrowsAndForgetsExpiredWeeks(t *testing.T) {
	f := newSeenFilter()
	const start = int64(1_800_000_000)
	now := start
	f.now = func() int64 { return now }
	week := func(n int64) int64 { return start + n*seenWeek }
	type key struct {
		h       uint64
		expires int64
	}
	var keys []key
	// Far more keys than a first layer holds, in one week: the filter grows layers.
	for i := range 3*seenMinKeys + 7 {
		keys = append(keys, key{uint64(i)*0x9e3779b97f4a7c15 + 1, week(1)})
	}
	// Key 15 expires the second before its week ends: the grace after the week is all that
	// keeps it through a clock set back.
	keys = append(keys, key{11, week(3)}, key{12, 0}, key{13, start + 60}, key{14, week(5)}, key{15, genUntil(week(2)) - 1})
	for _, k := range keys {
		f.add(k.h, k.expires)
	}
	for _, k := range keys {
		if !f.mayHave(k.h) {
			t.Fatalf("key %d (expires %d) missing", k.h, k.expires)
		}
	}
	if g := f.find(genUntil(week(1))); len(g.layers) < 2 || g.keys() != 3*seenMinKeys+7 {
		t.Errorf("week 1: %d layers, %d keys", len(g.layers), g.keys())
	}

	// Time passes to just after key 11 expired: every key Badger may still hold (not
	// expired, or expired within the grace) must still be there, and the weeks wholly
	// past their grace are gone.
	for _, later := range []int64{week(1) + 10, genUntil(week(2)) + seenGrace/2, week(3) - 1, week(3) + seenGrace, week(4) + seenGrace + 1} {
		now = later
		f.add(99, later+seenWeek)
		for _, k := range keys {
			if live := k.expires == 0 || k.expires+seenGrace >= later; live && !f.mayHave(k.h) {
				t.Fatalf("at %d: key %d expiring at %d lost", later, k.h, k.expires)
			}
		}
		for _, g := range f.gens {
			if g.until != 0 && g.until+seenGrace < later {
				t.Errorf("at %d: the week ending %d is kept", later, g.until)
			}
		}
	}
	if f.find(genUntil(week(1))) != nil {
		t.Errorf("week 1 kept after every key in it expired")
	}
}

// A wall clock stepped forward for a moment drops nothing: the filter's clock cannot run
// ahead of the time that elapsed.
func TestSeenFilterIgnoresAClockSteppedForward(t *testing.T) {
	start := time.Now()
	ahead := start.Add(21 * 24 * time.Hour)
	f := newSeenFilter()
	f.now = boundedClock(start, func() time.Time { return ahead })
	if got := f.now(); got > start.Unix()+60 {
		t.Fatalf("clock stepped 21 days ahead reads %d, %d s after the start", got, got-start.Unix())
	}
	f.add(1, start.Add(10*24*time.Hour).Unix())
	f.add(2, start.Add(40*24*time.Hour).Unix()) // with the stepped clock, this add would drop key 1's week
	if !f.mayHave(1) {
		t.Error("key expiring in 10 days dropped when the wall clock jumped 21 days")
	}
	// A clock set back is followed: expiries are then judged as Badger judges them.
	behind := start.Add(-time.Hour)
	if got := boundedClock(start, func() time.Time { return behind })(); got != behind.Unix() {
		t.Errorf("clock set back reads %d, want %d", got, behind.Unix())
	}
}

// A new week is sized like the busiest one held, so it does not start with small layers.
func TestSeenFilterSizesANewWeekLikeTheLast(t *testing.T) {
	f := newSeenFilter()
	now := int64(1_800_000_000)
	f.now = func() int64 { return now }
	const busy = 3*seenMinKeys + 7
	for i := range busy {
		f.add(uint64(i)*0x9e3779b97f4a7c15+1, now+seenWeek)
	}
	f.add(1, now+5*seenWeek)
	g := f.find(genUntil(now + 5*seenWeek))
	if len(g.layers) != 1 || g.layers[0].capacity < busy {
		t.Errorf("new week: %d layers, first for %d keys; want one for at least %d", len(g.layers), g.layers[0].capacity, busy)
	}
}

// The filter files a key under the week Badger expires it in, so a week is dropped only
// after Badger stopped serving its keys.
func TestSeenFilterAgreesWithBadgerOnExpiry(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer runTest(db)()
	for _, horizon := range []time.Duration{time.Hour, 30 * 24 * time.Hour, 1500 * time.Millisecond} {
		id := [16]byte{byte(horizon)}
		ev := horizon.String()
		if _, err := db.PutConversion(id, &Conversion{ID: ev, EventID: ev, Type: "purchase", Status: "approved"}, horizon, nil); err != nil {
			t.Fatal(err)
		}
		var expires int64
		if err := db.bdb.View(func(txn *badger.Txn) error {
			item, err := txn.Get(dedupeKey("purchase", ev))
			if err == nil {
				expires = int64(item.ExpiresAt())
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if min := time.Now().Add(horizon).Unix(); expires < min-1 || expires > min+1 {
			t.Errorf("horizon %s: Badger expires the key at %d, want about %d", horizon, expires, min)
		}
		g := db.seen.find(genUntil(expires))
		if g == nil || !g.layers[0].has(db.seen.hash(dedupeKey("purchase", ev))) {
			t.Errorf("horizon %s: the key is not in the filter's week for %d", horizon, expires)
		}
	}
}

// The filter is rebuilt from the store: after a reopen, every conversion committed is
// still found by its event, and an event never seen still is not.
func TestDedupeKeysSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	stop := runTest(db)
	const n = 500
	for i := range n {
		id := [16]byte{byte(i >> 8), byte(i), 1}
		horizon := time.Hour
		if i%3 == 0 {
			horizon = 0 // never expires
		}
		if _, err := db.PutConversion(id, &Conversion{ID: fmt.Sprint("c", i), EventID: fmt.Sprint("o", i), Type: "purchase", Status: "approved"}, horizon, nil); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	db = openTest(t, dir)
	defer db.Close()
	for i := range n {
		c, id, err := db.ConversionByEvent("purchase", fmt.Sprint("o", i))
		if err != nil || c.ID != fmt.Sprint("c", i) || id != [16]byte{byte(i >> 8), byte(i), 1} {
			t.Fatalf("event o%d after reopen: %v %v", i, c, err)
		}
	}
	for _, ev := range []string{"o500", "o-1", ""} {
		if _, _, err := db.ConversionByEvent("purchase", ev); !errors.Is(err, ErrNotFound) {
			t.Errorf("event %q never stored: %v", ev, err)
		}
	}
	if _, _, err := db.ConversionByEvent("refund", "o1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("same event ID, other type: %v", err)
	}
	// The reloaded filter answers most new event IDs itself: that is what it is for.
	maybe := 0
	for i := range 10000 {
		if db.seen.mayHave(db.seen.hash(dedupeKey("purchase", fmt.Sprint("new-", i)))) {
			maybe++
		}
	}
	if maybe > 200 {
		t.Errorf("the reloaded filter may have %d of 10,000 event IDs never stored", maybe)
	}
}

// A key the filter only thinks it has (a false positive, or a commit that failed after
// the key was added) is confirmed absent by Badger.
func TestDedupeFilterFalsePositiveIsConfirmed(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	db.seen.add(db.seen.hash(dedupeKey("purchase", "ghost")), 0)
	if _, _, err := db.ConversionByEvent("purchase", "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key only in the filter: %v", err)
	}
}

// The lookup asks the filter first: a dedupe key Badger holds but the filter was never
// told of is not read. (In the store this cannot happen; here it shows the read skipped.)
func TestDedupeLookupAsksTheFilterFirst(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	id := [16]byte{7}
	if err := db.bdb.Update(func(txn *badger.Txn) error {
		if err := txn.Set(conversionKey(id), AppendConversion(nil, &Conversion{ID: "c", EventID: "o", Type: "purchase", Status: "approved"})); err != nil {
			return err
		}
		return txn.Set(dedupeKey("purchase", "o"), id[:])
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.ConversionByEvent("purchase", "o"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key the filter does not have: %v, want ErrNotFound without a read", err)
	}
	db.seen.add(db.seen.hash(dedupeKey("purchase", "o")), 0)
	if c, got, err := db.ConversionByEvent("purchase", "o"); err != nil || c.ID != "c" || got != id {
		t.Fatalf("once the filter has it: %v %v %v", c, got, err)
	}
}
