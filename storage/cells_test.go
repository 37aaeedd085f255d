package storage

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/dgraph-io/badger/v4"
	"github.com/segmentio/encoding/json"
)

func TestCellRecordRoundTrip(t *testing.T) {
	sk := hyperloglog.New14()
	sk.Insert([]byte("v1"))
	raw, err := sk.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	c := Cell{HumanClicks: 3, BotClicks: 1, Conversions: map[string]int64{"purchase": 2}, Revenue: map[string]float64{"USD": 12.5}}
	for name, sketch := range map[string][]byte{"with sketch": raw, "without": nil} {
		v, err := appendCell(nil, &c, sketch)
		if err != nil {
			t.Fatal(err)
		}
		var got Cell
		gotSketch, legacy, err := decodeCell(v, &got)
		if err != nil || legacy || !reflect.DeepEqual(got, c) || string(gotSketch) != string(sketch) {
			t.Errorf("%s: got %+v sketch %d bytes legacy %v err %v", name, got, len(gotSketch), legacy, err)
		}
	}
}

func TestDecodeCellHostile(t *testing.T) {
	good, _ := appendCell(nil, &Cell{HumanClicks: 1}, []byte{1, 2, 3})
	cases := map[string][]byte{
		"empty":           {},
		"other version":   append([]byte{7}, good[1:]...),
		"no length":       {cellRecordV2},
		"length too long": {cellRecordV2, 50, '{', '}'},
		"huge length":     {cellRecordV2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"bad json":        {cellRecordV2, 2, '{', 'x'},
		"json wrong type": append([]byte{cellRecordV2, 21}, `{"human_clicks":"x"}`...),
	}
	for name, v := range cases {
		var c Cell
		if _, _, err := decodeCell(v, &c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeCell(f *testing.F) {
	good, _ := appendCell(nil, &Cell{HumanClicks: 1, TTC: map[int]int64{3: 1}}, []byte{1, 2, 3})
	f.Add(good)
	f.Add([]byte(`{"human_clicks":2}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		var c Cell
		sketch, legacy, err := decodeCell(v, &c)
		if err != nil || legacy {
			return
		}
		again, err := appendCell(nil, &c, sketch)
		if err != nil {
			t.Fatal(err)
		}
		var c2 Cell
		if _, _, err := decodeCell(again, &c2); err != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("re-encoded cell differs: %+v %+v %v", c, c2, err)
		}
	})
}

// A store whose cells keep their visitor sketches in records of their own (the older
// layout) reports the same visitors, and the first flush that rewrites a cell moves its
// sketch in and deletes the old record, keeping the visitors it had.
func TestLegacyCellsMoveTheirSketchIn(t *testing.T) {
	db := openTest(t, t.TempDir())
	db.reportsFlushEvery.Store(int64(10 * time.Millisecond))
	day := DayOf(time.Now())
	id := CellID{Campaign: "spring", Medium: "promotional", Slug: "s"}
	other := CellID{Campaign: "spring", Medium: "promotional", Slug: "t"}
	// Two old cells: one a click will touch, one left as it is.
	err := db.bdb.Update(func(txn *badger.Txn) error {
		for i, cid := range []CellID{id, other} {
			sk := hyperloglog.New14()
			for v := range 100 {
				sk.Insert(fmt.Appendf(nil, "old-%d-%d", i, v))
			}
			raw, err := sk.MarshalBinary()
			if err != nil {
				return err
			}
			js, _ := json.Marshal(&Cell{HumanClicks: 100})
			if err := txn.Set(cellKey(rCell, day, cid), js); err != nil {
				return err
			}
			if err := txn.Set(cellKey(rSketch, day, cid), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	report := func() map[string][2]int64 {
		t.Helper()
		cells, err := db.ReportCells(day, day+1)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][2]int64{}
		for _, c := range cells {
			var v int64
			if c.Visitors != nil {
				v = int64(c.Visitors.Estimate())
			}
			out[c.ID.Slug] = [2]int64{c.Cell.HumanClicks, v}
		}
		return out
	}
	if got := report(); got["s"] != [2]int64{100, 100} || got["t"] != [2]int64{100, 100} {
		t.Fatalf("old layout reported %v", got)
	}

	defer runTest(db)()
	ctr := db.Counters("", "s")
	for i := range 20 {
		c := testClick(i, "s", false)
		c.Campaign, c.UTM = id.Campaign, UTM{Medium: id.Medium}
		if err := db.Committer().CommitClick(AppendClick(nil, c), ctr, KindHuman); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for report()["s"][0] != 120 {
		if time.Now().After(deadline) {
			t.Fatalf("the clicks were never counted: %v", report())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := report(); got["s"] != [2]int64{120, 120} || got["t"] != [2]int64{100, 100} {
		t.Fatalf("after the flush: %v, want s 120 clicks and visitors, t as it was", got)
	}
	err = db.bdb.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(cellKey(rSketch, day, id)); !errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("the rewritten cell's old sketch record is still there: %v", err)
		}
		it, err := txn.Get(cellKey(rCell, day, id))
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			var c Cell
			if sketch, legacy, err := decodeCell(v, &c); err != nil || legacy || sketch == nil {
				return fmt.Errorf("rewritten cell: sketch %d bytes, legacy %v, %v", len(sketch), legacy, err)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A legacy cell's sketch is read once: decoded for a click, it is not read again as raw
// bytes at the flush, and its size is told as the growth of the pending flush.
func TestLegacySketchReadOnce(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	day, id := DayOf(time.Now()), CellID{Slug: "s"}
	sk := hyperloglog.New14()
	for v := range 5000 { // dense enough to be worth counting
		sk.Insert(fmt.Appendf(nil, "v%d", v))
	}
	raw, _ := sk.MarshalBinary()
	js, _ := json.Marshal(&Cell{HumanClicks: 5000})
	err := db.bdb.Update(func(txn *badger.Txn) error {
		if err := txn.Set(cellKey(rCell, day, id), js); err != nil {
			return err
		}
		return txn.Set(cellKey(rSketch, day, id), raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	p := newPending()
	err = db.bdb.View(func(txn *badger.Txn) error {
		c, err := p.cell(txn, day, id)
		if err != nil || !c.legacy {
			return fmt.Errorf("cell %+v, %v", c, err)
		}
		got, grew, err := c.sketch(txn)
		if err != nil {
			return err
		}
		if got.Estimate() < 4900 || grew < len(raw)/2 {
			return fmt.Errorf("sketch estimate %d, grew the flush by %d of its %d bytes", got.Estimate(), grew, len(raw))
		}
		if err := c.loadLegacy(txn); err != nil || c.raw != nil {
			return fmt.Errorf("decoded sketch read again: %d raw bytes, %v", len(c.raw), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A snapshot asked of a closed store is an error rather than a panic in Badger, and so
// are the reads that take one.
func TestSnapshotOfAClosedStore(t *testing.T) {
	db := openTest(t, t.TempDir())
	db.Close()
	if s, err := db.Snapshot(); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("Snapshot: %v, %v", s, err)
	}
	if _, _, err := db.ConversionByEvent("purchase", "e"); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("ConversionByEvent: %v", err)
	}
	if _, err := db.GetClick([16]byte{1}); !errors.Is(err, ErrStoreClosed) {
		t.Errorf("GetClick: %v", err)
	}
}
