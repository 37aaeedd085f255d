package storage

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// A cell of today or yesterday is read from the store only when the store may hold it;
// older days' cells are always read. A cell the store holds is never started at zero.
func TestCellsReadOnlyWhenStored(t *testing.T) {
	awayFromMidnight(t)
	db := openTest(t, t.TempDir())
	defer db.Close()
	today := DayOf(time.Now())
	id := func(slug string) CellID { return CellID{Campaign: "spring", Slug: slug} }
	stored := map[Day]map[string]int64{
		today:      {"a": 5},
		today - 1:  {"y": 7},
		today - 40: {"old": 9},
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		for d, cells := range stored {
			for slug, n := range cells {
				v, err := appendCell(nil, &Cell{HumanClicks: n}, nil, 1)
				if err != nil {
					return err
				}
				if err := txn.Set(cellKey(rCell, d, id(slug)), v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	p := newPending()
	steps := []struct {
		day     Day
		slug    string
		clicks  int64
		lookups int
	}{
		{today, "a", 5, 1},
		{today, "b", 0, 1}, // the store has no such cell: not read
		{today - 1, "y", 7, 2},
		{today - 1, "z", 0, 2},
		{today - 40, "old", 9, 3},
		{today - 40, "new", 0, 4}, // an older day has no filter
		{today, "a", 5, 4},        // pending now
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		for _, s := range steps {
			c, err := p.cell(txn, s.day, id(s.slug))
			if err != nil {
				return err
			}
			if c.HumanClicks != s.clicks || p.lookups != s.lookups {
				t.Errorf("day %d, %s: %d clicks after %d lookups, want %d after %d", today-s.day, s.slug, c.HumanClicks, p.lookups, s.clicks, s.lookups)
			}
			if s.slug == "b" {
				c.HumanClicks = 2
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.flushReports(p, 2); err != nil {
		t.Fatal(err)
	}

	// A consumer started again (a new filter, loaded from the store) reads what the last
	// one wrote, and still reads no cell the store lacks.
	p = newPending()
	const fresh = 20_000
	err = db.bdb.View(func(txn *badger.Txn) error {
		c, err := p.cell(txn, today, id("b"))
		if err != nil {
			return err
		}
		if c.HumanClicks != 2 || p.lookups != 1 {
			t.Errorf("b after a restart: %d clicks after %d lookups, want 2 after 1", c.HumanClicks, p.lookups)
		}
		for i := range fresh {
			if _, err := p.cell(txn, today, id(fmt.Sprint("fresh", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Only the filter's false positives are read: about 1 %.
	if p.lookups > 1+fresh/50 {
		t.Errorf("%d lookups for %d cells the store lacks", p.lookups-1, fresh)
	}
}

// Clicks counted after a restart add to the cells the store holds from before it.
func TestReportCellsAddUpAcrossRestart(t *testing.T) {
	awayFromMidnight(t)
	dir := t.TempDir()
	commit := func(db *DB, from int, slugs ...string) {
		t.Helper()
		for i, slug := range slugs {
			if err := db.Committer().CommitClick(AppendClick(nil, testClick(from+i, slug, false)), db.Counters("", slug), KindHuman); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitTotals := func(db *DB, want map[string][2]int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !reflect.DeepEqual(reportTotals(t, db), want) {
			if time.Now().After(deadline) {
				t.Fatalf("report totals %v, want %v", reportTotals(t, db), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	db := openTest(t, dir)
	db.reportsFlushEvery.Store(int64(10 * time.Millisecond))
	stop := runTest(db)
	commit(db, 0, "a", "a", "a")
	waitTotals(db, map[string][2]int64{"a": {3, 3}})
	stop()

	db = openTest(t, dir)
	db.reportsFlushEvery.Store(int64(10 * time.Millisecond))
	defer runTest(db)()
	commit(db, 3, "a", "b")
	waitTotals(db, map[string][2]int64{"a": {4, 4}, "b": {1, 1}})
}

// A day that has left the filters gets none again when the clock steps back: cells of it
// counted in between were never added to one.
func TestCellDaysClockStepsBack(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	s := newCellDays()
	const d = Day(20_000)
	steps := []struct {
		now, day Day
		key      string
		want     bool
	}{
		{d + 2, d, "x", true},      // two days ago: read
		{d + 1, d, "x", true},      // the clock stepped back a day: still read
		{d + 1, d + 2, "y", false}, // the latest day keeps its filter
		{d + 1, d + 2, "y", true},
		{d + 3, d + 2, "z", false}, // yesterday
		{d + 4, d + 2, "y", true},  // two days ago
	}
	err := db.bdb.View(func(txn *badger.Txn) error {
		for i, st := range steps {
			if got := s.mayHold(txn, st.now, st.day, st.key); got != st.want {
				t.Errorf("step %d: day %d at %d, %s: may hold %v, want %v", i, st.day, st.now, st.key, got, st.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// awayFromMidnight waits out the last seconds of a UTC day, so that a test reading
// today's cells does not see the day change under it.
func awayFromMidnight(t *testing.T) {
	t.Helper()
	if left := time.Until(DayOf(time.Now()).Time().Add(24 * time.Hour)); left < 15*time.Second {
		time.Sleep(left + time.Second)
	}
}
