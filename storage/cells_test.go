package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
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
		for _, through := range []uint64{0, 1, 1 << 40} {
			v, err := appendCell(nil, &c, sketch, through)
			if err != nil {
				t.Fatal(err)
			}
			var got Cell
			rec, err := decodeCell(v, &got)
			if err != nil || rec.legacy || rec.through != through || !reflect.DeepEqual(got, c) || string(rec.sketch) != string(sketch) {
				t.Errorf("%s, through %d: got %+v %+v err %v", name, through, got, rec, err)
			}
		}
	}
	// A record from before cells kept their cursor: counting from the start.
	v, _ := appendCell(nil, &c, raw, 77)
	v = append([]byte{cellRecordV2}, v[2:]...) // 77 is one varint byte
	var got Cell
	if rec, err := decodeCell(v, &got); err != nil || rec.through != 0 || !reflect.DeepEqual(got, c) || string(rec.sketch) != string(raw) {
		t.Errorf("version 2 record: %+v %+v %v", got, rec, err)
	}
}

func TestDecodeCellHostile(t *testing.T) {
	good, _ := appendCell(nil, &Cell{HumanClicks: 1}, []byte{1, 2, 3}, 5)
	cases := map[string][]byte{
		"empty":                {},
		"other version":        append([]byte{7}, good[1:]...),
		"no length":            {cellRecordV2},
		"length too long":      {cellRecordV2, 50, '{', '}'},
		"huge length":          {cellRecordV2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"bad json":             {cellRecordV2, 2, '{', 'x'},
		"json wrong type":      append([]byte{cellRecordV2, 21}, `{"human_clicks":"x"}`...),
		"no cursor":            {cellRecordV3},
		"cursor overflows":     {cellRecordV3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 2, '{', '}'},
		"cursor, no length":    {cellRecordV3, 5},
		"v3 length too long":   {cellRecordV3, 5, 50, '{', '}'},
		"v3 bad json":          {cellRecordV3, 5, 2, '{', 'x'},
		"truncated cursor":     {cellRecordV3, 0x80},
		"v3 cut inside length": good[:3],
	}
	for name, v := range cases {
		var c Cell
		if _, err := decodeCell(v, &c); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecodeCell(f *testing.F) {
	good, _ := appendCell(nil, &Cell{HumanClicks: 1, TTC: map[int]int64{3: 1}}, []byte{1, 2, 3}, 300)
	f.Add(good)
	f.Add(append([]byte{cellRecordV2}, good[3:]...))
	f.Add([]byte(`{"human_clicks":2}`))
	f.Fuzz(func(t *testing.T, v []byte) {
		var c Cell
		rec, err := decodeCell(v, &c)
		if err != nil || rec.legacy {
			return
		}
		again, err := appendCell(nil, &c, rec.sketch, rec.through)
		if err != nil {
			t.Fatal(err)
		}
		var c2 Cell
		if rec2, err := decodeCell(again, &c2); err != nil || !reflect.DeepEqual(c, c2) || rec2.through != rec.through || string(rec2.sketch) != string(rec.sketch) {
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
			if rec, err := decodeCell(v, &c); err != nil || rec.legacy || rec.sketch == nil {
				return fmt.Errorf("rewritten cell: sketch %d bytes, legacy %v, %v", len(rec.sketch), rec.legacy, err)
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

func TestReportFlushPolicy(t *testing.T) {
	every := 2 * time.Second
	with := func(cells, accounted, bytes int) *pending {
		p := newPending()
		for i := range cells {
			p.cells[fmt.Sprint(i)] = &pendingCell{}
		}
		for i := range accounted {
			p.accounted[fmt.Sprint(i)] = &Contribution{}
		}
		p.bytes = bytes
		return p
	}
	for _, tc := range []struct {
		name  string
		p     *pending
		since time.Duration
		want  bool
	}{
		{"nothing pending", with(0, 0, 0), time.Hour, false},
		{"few cells, too soon", with(10, 0, 0), time.Second, false},
		{"few cells", with(10, 0, 0), every, true},
		{"conversions only", with(0, 5, 0), every, true},
		{"many cells wait their time", with(100_000, 0, 0), every - time.Millisecond, false},
		{"many cells, in one flush", with(100_000, 0, 0), every, true},
		{"memory bound", with(1, 0, reportsFlushBytes), 0, true},
		{"conversion states bound", with(0, reportsFlushAccounted, 0), 0, true},
		{"conversion states and cells bound", func() *pending {
			p := with(0, reportsFlushAccounted/2, 0)
			p.convCells = reportsFlushAccounted / 2
			return p
		}(), 0, true},
	} {
		if got := tc.p.due(tc.since, every); got != tc.want {
			t.Errorf("%s: due after %s = %v", tc.name, tc.since, got)
		}
	}
}

// reportTotals sums the report cells of today by slug: human clicks and visitors.
func reportTotals(t *testing.T, db *DB) map[string][2]int64 {
	t.Helper()
	day := DayOf(time.Now())
	cells, err := db.ReportCells(day, day+1)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]int64{}
	for _, c := range cells {
		v := int64(0)
		if c.Visitors != nil {
			v = int64(c.Visitors.Estimate())
		}
		got := out[c.ID.Slug]
		out[c.ID.Slug] = [2]int64{got[0] + c.Cell.HumanClicks, got[1] + v}
	}
	return out
}

// A flush cut short by a crash wrote some cells but did not move the reports cursor:
// the recount skips the events those cells already count and counts the rest once.
func TestReportFlushCutShort(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	db.reportsFlushEvery.Store(int64(time.Hour))
	db.crashIndex.Store(true)
	stop := runTest(db)
	var visitors [][]byte
	for i, slug := range []string{"a", "a", "a", "b", "b"} {
		c := testClick(i, slug, false)
		if slug == "a" {
			visitors = append(visitors, []byte(c.VisitorID))
		}
		if err := db.Committer().CommitClick(AppendClick(nil, c), db.Counters("", slug), KindHuman); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	head := db.OutboxHead()
	if !db.WaitIndexed(ctx, head) {
		t.Fatal("index never caught up")
	}
	// The part of the flush that got written before the crash: a's cell, counting
	// every event before the head.
	sk := hyperloglog.New14()
	for _, v := range visitors {
		sk.Insert(v)
	}
	raw, _ := sk.MarshalBinary()
	v, err := appendCell(nil, &Cell{HumanClicks: 3}, raw, head)
	if err != nil {
		t.Fatal(err)
	}
	key := cellKey(rCell, DayOf(time.Now()), CellID{Campaign: "spring", Medium: "promotional", Slug: "a"})
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(key, v) }); err != nil {
		t.Fatal(err)
	}
	stop()

	db = openTest(t, dir)
	db.reportsFlushEvery.Store(int64(10 * time.Millisecond))
	defer runTest(db)()
	want := map[string][2]int64{"a": {3, 3}, "b": {2, 2}}
	deadline := time.Now().Add(10 * time.Second)
	for !reflect.DeepEqual(reportTotals(t, db), want) {
		if time.Now().After(deadline) {
			t.Fatalf("after the recount: %v, want %v", reportTotals(t, db), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if got := reportTotals(t, db); !reflect.DeepEqual(got, want) {
		t.Fatalf("a later flush counted again: %v", got)
	}
}

// A flush of more cells than one transaction takes writes them all.
func TestReportFlushManyCells(t *testing.T) {
	db := openTest(t, t.TempDir())
	db.reportsFlushEvery.Store(int64(time.Hour))
	defer runTest(db)()
	const links = 30_000 // more cells than one Badger transaction takes here
	commitSpread(t, db, links)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if !db.WaitIndexed(ctx, db.OutboxHead()) {
		t.Fatal("index never caught up")
	}
	// Every cell is pending: one more click wakes the consumer, which writes them all
	// in one flush.
	db.reportsFlushEvery.Store(int64(time.Millisecond))
	if err := db.Committer().CommitClick(AppendClick(nil, testClick(links, "extra", false)), db.Counters("", "extra"), KindHuman); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := reportTotals(t, db)
		for slug, hv := range got {
			if hv != [2]int64{1, 1} {
				t.Fatalf("link %s: %v, want one click by one visitor", slug, hv)
			}
		}
		if len(got) == links+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d links reported", len(got), links+1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The cells a conversion changed are written with the cursor, not ahead of it: a
// recount reads the conversion as it is now, so it could not redo them cell by cell.
func TestReportFlushSplit(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	now := time.Now().UTC()
	last := Touch{ClickID: "k1", Slug: "x", Campaign: "spring", ClickTime: now, Credit: 1}
	first := Touch{ClickID: "k0", Slug: "y", Campaign: "spring", ClickTime: now, Credit: 1}
	conv := &Conversion{ID: "c1", Type: "purchase", Status: "approved", OccurredAt: now, LastClick: &last, FirstClick: &first}
	p := newPending()
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, slug := range []string{"x", "z"} {
			if _, err := p.cell(txn, DayOf(now), CellID{Campaign: "spring", Slug: slug}); err != nil {
				return err
			}
		}
		return p.applyConversion(txn, conv)
	})
	if err != nil {
		t.Fatal(err)
	}
	clicks, conversions := p.split()
	slugs := func(cs []*pendingCell) (out []string) {
		for _, c := range cs {
			out = append(out, parseCellID([]byte(c.key[6:])).Slug)
		}
		slices.Sort(out)
		return out
	}
	if got := slugs(clicks); !reflect.DeepEqual(got, []string{"z"}) {
		t.Errorf("written ahead of the cursor: %v, want [z]", got)
	}
	if got := slugs(conversions); !reflect.DeepEqual(got, []string{"x", "y"}) {
		t.Errorf("written with the cursor: %v, want [x y]", got)
	}
	if p.convCells != 2 {
		t.Errorf("convCells %d, want 2", p.convCells)
	}
}

// A cell key is the prefix, the kind, the day, then each field ending in NUL; appending
// to a buffer that held another key gives the same bytes as a fresh one, and the fields
// parse back.
func TestAppendCellKey(t *testing.T) {
	ids := []CellID{
		{},
		{Campaign: "spring", Medium: "promotional", Content: "a", Domain: "go.brand.com", Slug: "s1"},
		{Slug: "only-a-slug"},
		{Campaign: "ünï", Content: "with space", Slug: "x"},
	}
	var buf []byte
	for _, day := range []Day{0, 1, 20_000, 1<<32 - 1} {
		for _, id := range ids {
			buf = appendCellKey(buf[:0], rCell, day, id)
			want := binary.BigEndian.AppendUint32([]byte{prefixReport, rCell}, uint32(day))
			want = append(want, id.Campaign+"\x00"+id.Medium+"\x00"+id.Content+"\x00"+id.Domain+"\x00"+id.Slug+"\x00"...)
			if !bytes.Equal(buf, want) || !bytes.Equal(cellKey(rCell, day, id), want) {
				t.Fatalf("key of %+v on day %d: %q, want %q", id, day, buf, want)
			}
			if got := parseCellID(buf[6:]); got != id {
				t.Fatalf("parsed back %+v, want %+v", got, id)
			}
		}
	}
}
