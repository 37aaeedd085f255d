package storage

import (
	"errors"
	"fmt"
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
	now := int64(1_800_000_000)
	week := func(n int64) int64 { return now + n*seenWeek }
	type key struct {
		h       uint64
		expires int64
	}
	var keys []key
	// Far more keys than a first layer holds, in one week: the filter grows layers.
	for i := range 3*seenMinKeys + 7 {
		keys = append(keys, key{uint64(i)*0x9e3779b97f4a7c15 + 1, week(1)})
	}
	keys = append(keys, key{11, week(3)}, key{12, 0}, key{13, now + 60})
	for _, k := range keys {
		f.add(k.h, k.expires, now)
	}
	for _, k := range keys {
		if !f.mayHave(k.h) {
			t.Fatalf("key %d (expires %d) missing", k.h, k.expires)
		}
	}
	if g := f.gens[slicesIndex(f, genUntil(week(1)))]; len(g.layers) < 2 || g.keys != 3*seenMinKeys+7 {
		t.Errorf("week 1: %d layers, %d keys", len(g.layers), g.keys)
	}

	// Two weeks on, past the grace period of the weeks ending by then: a key still live
	// in Badger must still be there; one expired may go.
	later := week(2) + seenWeek + seenGrace + 1
	f.add(99, later+seenWeek, later)
	for _, k := range keys {
		live := k.expires == 0 || k.expires+seenGrace >= later
		if live && !f.mayHave(k.h) {
			t.Errorf("key %d expiring at %d lost at %d", k.h, k.expires, later)
		}
	}
	if i := slicesIndex(f, genUntil(week(1))); i >= 0 {
		t.Errorf("week 1 kept after every key in it expired")
	}
}

// A new week is sized like the busiest one held, so it does not start with small layers.
func TestSeenFilterSizesANewWeekLikeTheLast(t *testing.T) {
	f := newSeenFilter()
	now := int64(1_800_000_000)
	const busy = 3*seenMinKeys + 7
	for i := range busy {
		f.add(uint64(i)*0x9e3779b97f4a7c15+1, now+seenWeek, now)
	}
	f.add(1, now+5*seenWeek, now)
	g := f.gens[slicesIndex(f, genUntil(now+5*seenWeek))]
	if len(g.layers) != 1 || g.layers[0].capacity < busy {
		t.Errorf("new week: %d layers, first for %d keys; want one for at least %d", len(g.layers), g.layers[0].capacity, busy)
	}
}

func slicesIndex(f *seenFilter, until int64) int {
	for i, g := range f.gens {
		if g.until == until {
			return i
		}
	}
	return -1
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
}

// A key the filter only thinks it has (a false positive, or a commit that failed after
// the key was added) is confirmed absent by Badger.
func TestDedupeFilterFalsePositiveIsConfirmed(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	db.seen.add(db.seen.hash(dedupeKey("purchase", "ghost")), 0, time.Now().Unix())
	if _, _, err := db.ConversionByEvent("purchase", "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a key only in the filter: %v", err)
	}
}
