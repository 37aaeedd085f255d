package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/dgraph-io/badger/v4"
	"github.com/segmentio/encoding/json"
)

// The index consumer reads the outbox once for two products with different needs.
//
// The visitor index and identity graph must be current (a conversion waits for the
// clicks answered before it), so they are written with the "index" cursor after every
// batch. Their entries are idempotent, so a replay rewrites them harmlessly.
//
// Report counters need not be current to the millisecond but must count every event
// exactly once, and writing them per batch made every small batch rewrite its cells
// and visitor sketches (16 KiB once dense): at low rates that cost more than the
// clicks. They accumulate in memory and are written every reportsFlushEvery, then the
// "reports" cursor moves. After a crash the events between the two cursors are counted
// again from the outbox, which keeps them (the reports cursor holds retention like any
// consumer's).
//
// A flush writes each changed cell once, however many: its cells go in as many
// transactions as they need, each cell with the cursor it counts up to, so a recount
// after a crash part-way skips, cell by cell, what was written. (Bounding a flush to
// one transaction made clicks spread over many links flush several times a second.)
const (
	reportsConsumer   = "reports"
	reportsFlushEvery = 2 * time.Second
	// reportsFlushBytes bounds the memory of the counters held between flushes.
	reportsFlushBytes = 32 << 20
	// reportsFlushAccounted bounds the conversion states of a flush and the cells
	// conversions changed: they are written in the transaction that moves the cursor.
	reportsFlushAccounted = 8192
	// After a batch smaller than indexLingerBelow events, the consumer waits indexLinger
	// before reading again.
	indexLinger      = 3 * time.Millisecond
	indexLingerBelow = 256
)

// pending is the report counters changed since the last flush: whole cells (with their
// visitor sketches) and contributions, read from storage the first time an event touches
// them (unless the store cannot hold them: cell_days.go). Cells stay cached once
// written: decoded, up to reportsCacheCells, so a busy cell is not decoded again after
// every flush; and as records (cell_cache.go), so the day's other cells are decoded
// from memory rather than read from the store.
type pending struct {
	cells     map[string]*pendingCell
	accounted map[string]*Contribution // by conversion ID
	convCells int                      // cells with conv set
	bytes     int                      // estimated memory held

	cachedCells map[string]*pendingCell // as written
	cache       *cellCache              // records as written, beyond cachedCells
	stored      *cellDays               // which cells of the latest days the store may hold
	lookups     int                     // cells read from the store
	keyBuf      []byte                  // the key being looked up
}

// reportsCacheCells bounds the cells kept after a flush: a day of a few hundred thousand
// links.
const reportsCacheCells = 200_000

// pendingCell is one cell being counted. Its visitor sketch is decoded only when a human
// click needs it: a conversion's share, or a bot click, writes the sketch back as read.
type pendingCell struct {
	Cell
	// through is the reports cursor of the flush that last wrote the cell: it counts the
	// events before it, and a recount skips the clicks among those (a cell a conversion
	// changed is written with the cursor, so it has none to skip).
	through uint64
	// conv says a conversion changed the cell since the last flush.
	conv   bool
	key    string              // the cell record's key
	sk     *hyperloglog.Sketch // decoded, or nil
	raw    []byte              // the sketch as stored while not decoded (nil: none yet)
	legacy bool                // the sketch is still in its own record (the older layout)
	size   int                 // estimated encoded size of the sketch
}

func newPending() *pending {
	return &pending{cells: map[string]*pendingCell{}, accounted: map[string]*Contribution{}, cachedCells: map[string]*pendingCell{}, cache: newCellCache(), stored: newCellDays()}
}

// written moves the flushed counters to the cache and starts an empty set of changes.
func (p *pending) written() {
	if len(p.cachedCells)+len(p.cells) > reportsCacheCells {
		clear(p.cachedCells) // mostly yesterday's cells by then: read again when touched
	}
	for k, c := range p.cells {
		c.legacy, c.conv = false, false // its sketch went into the cell record
		p.cachedCells[k] = c
	}
	// The maps are emptied rather than made again: the next flush holds about as many
	// cells, and a map grown from empty rehashes all the way up.
	clear(p.cells)
	clear(p.accounted)
	p.bytes, p.convCells = 0, 0
}

func (p *pending) empty() bool {
	return len(p.cells) == 0 && len(p.accounted) == 0
}

// flushAfter is how long after the last flush the pending counters are to be written
// (0: at once).
func (p *pending) flushAfter(every time.Duration) time.Duration {
	if p.bytes >= reportsFlushBytes || len(p.accounted)+p.convCells >= reportsFlushAccounted {
		return 0
	}
	return every
}

// due says whether the pending counters are to be written, the last flush having been
// that long ago.
func (p *pending) due(since, every time.Duration) bool {
	return !p.empty() && since >= p.flushAfter(every)
}

// runIndex keeps the visitor index, the identity graph and the report counters as
// events arrive, in one pass over the outbox: each event is read and decoded once, off
// the redirect path.
func (db *DB) runIndex(ctx context.Context) {
	for ctx.Err() == nil {
		db.indexFromCursors(ctx)
	}
}

// indexFromCursors runs the index consumer from its stored cursors until ctx ends, or
// until counting fails: then the unflushed counters are dropped and the caller starts
// again from the cursors, so nothing is counted twice.
func (db *DB) indexFromCursors(ctx context.Context) {
	var cursor, reports uint64
	for {
		var err error
		if cursor, reports, err = db.indexCursors(); err == nil {
			break
		}
		db.log.Error("cannot read the index cursors", "err", err)
		if !sleepCtx(ctx, time.Second) {
			return
		}
	}
	p := newPending()
	// Count again what the index has seen but the last flush did not cover.
	for reports < cursor && ctx.Err() == nil {
		evs, err := db.readOutbox(reports, 2000)
		if err == nil && len(evs) == 0 {
			break // trimmed past: nothing left to recount
		}
		if err == nil {
			if evs = clip(evs, cursor); len(evs) == 0 {
				break
			}
			err = db.count(p, decodeEvents(evs))
		}
		if err != nil {
			// Part of the batch may be counted: drop everything unflushed and start
			// again from the stored cursors.
			db.log.Error("index: cannot recount report counters; retrying", "err", err)
			sleepCtx(ctx, time.Second)
			return
		}
		reports = evs[len(evs)-1].Seq + 1
		if p.due(0, time.Duration(db.reportsFlushEvery.Load())) {
			if err := db.flushReports(p, reports); err != nil {
				db.log.Error("index: report counters not written; retrying", "err", err)
			}
		}
	}
	if ctx.Err() != nil {
		return // the recount is unfinished: what it counted is not written as if it were
	}
	db.index.advance(cursor)
	lastFlush := time.Now()
	flush := func() {
		if err := db.flushReports(p, cursor); err != nil {
			db.log.Error("index: report counters not written; retrying", "err", err)
			return
		}
		lastFlush = time.Now()
	}
	broken := false
	defer func() {
		if !broken && !db.crashIndex.Load() && !p.empty() {
			flush()
		}
	}()
	small := false
	for ctx.Err() == nil {
		if small {
			// A trickle of events costs a transaction each: gather a few milliseconds'
			// worth (attribution waits for the index far longer than that).
			sleepCtx(ctx, indexLinger)
		}
		if p.due(time.Since(lastFlush), time.Duration(db.reportsFlushEvery.Load())) {
			flush()
		}
		changed := db.OutboxChanged()
		evs, err := db.ReadEvents(cursor, 2000)
		if err != nil {
			db.log.Error("index: cannot read the outbox", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		if len(evs) == 0 {
			wait := time.Duration(1<<63 - 1)
			if !p.empty() {
				wait = max(time.Until(lastFlush.Add(p.flushAfter(time.Duration(db.reportsFlushEvery.Load())))), 0)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-changed:
			case <-t.C:
			}
			t.Stop()
			continue
		}
		small = len(evs) < indexLingerBelow
		next := evs[len(evs)-1].Seq + 1
		decoded := decodeEvents(evs)
		if err := db.indexEvents(decoded, next); err != nil {
			db.log.Error("index: update failed; retrying", "err", err)
			sleepCtx(ctx, time.Second)
			continue
		}
		cursor = next
		db.index.advance(cursor)
		if err := db.count(p, decoded); err != nil {
			// The counters of this batch are incomplete: drop everything unflushed and
			// count again from the reports cursor.
			db.log.Error("index: report counters failed; recounting", "err", err)
			broken = true
			sleepCtx(ctx, time.Second)
			return
		}
	}
}

// indexCursors reads the index and reports cursors. A store without a reports cursor
// gets one now, where the index is: a store from before the reports cursor kept its
// counters in step with the index, and a new one has counted nothing, so a crash
// before its first flush recounts from there.
func (db *DB) indexCursors() (index, reports uint64, err error) {
	index, _, err = db.cursor(indexConsumer)
	if err != nil {
		return 0, 0, err
	}
	reports, foundReports, err := db.cursor(reportsConsumer)
	if err != nil {
		return 0, 0, err
	}
	if !foundReports {
		reports = index
		if err := db.SetCursor(reportsConsumer, reports); err != nil {
			return 0, 0, err
		}
	}
	return index, min(reports, index), nil
}

func clip(evs []Event, before uint64) []Event {
	for i, e := range evs {
		if e.Seq >= before {
			return evs[:i]
		}
	}
	return evs
}

// decoded is an outbox event with its record decoded (nil when missing or corrupt).
type decoded struct {
	seq        uint64
	click      *Click
	conversion *Conversion
}

func decodeEvents(evs []Event) []decoded {
	out := make([]decoded, len(evs))
	for i, e := range evs {
		out[i].seq = e.Seq
		if e.Record == nil {
			continue
		}
		switch e.Kind {
		case EventClick:
			out[i].click, _ = DecodeClick(e.Record)
		case EventConversion:
			out[i].conversion, _ = DecodeConversion(e.Record)
		}
	}
	return out
}

// indexEvents writes the visitor index and identity entries of a batch and moves the
// index cursor, in one transaction on each store (updateIndex).
func (db *DB) indexEvents(evs []decoded, next uint64) error {
	return db.updateIndex(func(txn, itxn *badger.Txn) error {
		for _, e := range evs {
			if e.click != nil {
				if err := db.indexClick(txn, itxn, e.click); err != nil {
					return err
				}
			}
		}
		return txn.Set(cursorKey(indexConsumer), binary.BigEndian.AppendUint64(nil, next))
	})
}

// count adds a batch to the pending report counters.
func (db *DB) count(p *pending, evs []decoded) error {
	return db.bdb.View(func(txn *badger.Txn) error {
		for _, e := range evs {
			switch {
			case e.click != nil:
				c := e.click
				if c.Test {
					continue
				}
				cl, err := p.cell(txn, DayOf(c.Time), CellID{Campaign: c.Campaign, Medium: c.UTM.Medium, Content: c.UTM.Content, Domain: c.Domain, Slug: c.Slug})
				if err != nil {
					return err
				}
				if e.seq < cl.through {
					continue // counted before a crash cut its flush short
				}
				if c.Bot {
					cl.BotClicks++
					continue
				}
				cl.HumanClicks++
				sk, grew, err := cl.sketch(txn)
				if err != nil {
					return err
				}
				p.bytes += grew
				sk.Insert([]byte(c.VisitorID))
				if cl.size < sketchDense {
					// A sparse sketch grows by a few bytes per new visitor, to at most dense.
					cl.size += 4
					p.bytes += 4
				}
			case e.conversion != nil:
				if err := p.applyConversion(txn, e.conversion); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// sketchDense is the encoded size of a dense precision-14 sketch.
const sketchDense = 16 << 10

// cell returns the pending cell of day d and id: already pending, cached, read, or new.
func (p *pending) cell(txn *badger.Txn, d Day, id CellID) (*pendingCell, error) {
	// The key is built in a buffer the map lookups read in place: most clicks find
	// their cell pending or cached, and only a cell new to memory needs a string.
	p.keyBuf = appendCellKey(p.keyBuf[:0], rCell, d, id)
	if c := p.cells[string(p.keyBuf)]; c != nil {
		return c, nil
	}
	c := p.cachedCells[string(p.keyBuf)]
	if c == nil {
		c = &pendingCell{key: string(p.keyBuf)}
		if rec, ok := p.cache.get(p.keyBuf); ok {
			if err := c.load(rec); err != nil {
				return nil, fmt.Errorf("report cell: %w", err)
			}
		} else if p.stored.mayHold(txn, DayOf(time.Now()), d, c.key) {
			if err := p.read(txn, c); err != nil {
				return nil, err
			}
		}
	}
	p.cells[c.key] = c
	p.bytes += len(c.key) + 256 + c.size
	return c, nil
}

// read loads a cell from the store, if it is there.
func (p *pending) read(txn *badger.Txn, c *pendingCell) error {
	p.lookups++
	it, err := txn.Get([]byte(c.key))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("report cell: %w", err)
	}
	if err := it.Value(c.load); err != nil {
		return fmt.Errorf("report cell: %w", err)
	}
	return nil
}

// load decodes a cell record into c.
func (c *pendingCell) load(v []byte) error {
	rec, err := decodeCell(v, &c.Cell)
	if err != nil {
		return err
	}
	c.raw, c.legacy, c.through = bytes.Clone(rec.sketch), rec.legacy, rec.through
	c.size = len(c.raw)
	return nil
}

// sketch returns the cell's visitor sketch, decoding it (or reading it from its own
// record, in the older layout) the first time, and by how much that grew the cell's
// estimated size.
func (c *pendingCell) sketch(txn *badger.Txn) (*hyperloglog.Sketch, int, error) {
	if c.sk != nil {
		return c.sk, 0, nil
	}
	size := c.size
	if err := c.loadLegacy(txn); err != nil {
		return nil, 0, err
	}
	c.sk = hyperloglog.New14()
	if len(c.raw) > 0 {
		if err := c.sk.UnmarshalBinary(c.raw); err != nil {
			return nil, 0, fmt.Errorf("visitor sketch: %w", err)
		}
	}
	c.raw = nil
	c.size = max(c.size, 64)
	return c.sk, c.size - size, nil
}

// loadLegacy reads a sketch still kept in its own record (the older layout) into raw,
// unless the cell already has it.
func (c *pendingCell) loadLegacy(txn *badger.Txn) error {
	if !c.legacy || c.raw != nil || c.sk != nil {
		return nil
	}
	it, err := txn.Get(legacySketchKey(c.key))
	switch {
	case err == nil:
		c.raw, err = it.ValueCopy(nil)
		c.size = len(c.raw)
		return err
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil
	}
	return err
}

// applyConversion brings the counters in line with a conversion's current state: the
// first time it adds the conversion, later it moves it to reversed on a refund.
//
// A recount may decode an event from a later state than the event's (an event from
// before replaced states were kept reads the conversion's record as it is now), so
// skipping cell by cell would not redo what was done: the cells a conversion changes
// are written with its state and the cursor, in one transaction, and need no skip.
func (p *pending) applyConversion(txn *badger.Txn, c *Conversion) error {
	prev := p.accounted[c.ID]
	// A conversion as first committed cannot have been counted (its counters are written
	// with the cursor that passes its event), so only a status change looks for what
	// was.
	if prev == nil && c.Revision != 0 {
		it, err := txn.Get(append([]byte{prefixReport, rAccounted}, c.ID...))
		switch {
		case err == nil:
			prev = &Contribution{}
			if err := it.Value(func(v []byte) error { return json.Unmarshal(v, prev) }); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
	}
	if prev != nil && prev.Status == c.Status {
		return nil // already counted in this state
	}
	// A decoded record's strings share one copy of the record: what outlives this batch
	// (map keys of cached cells, the accounted set) gets copies of its own, or each would
	// keep a whole record alive.
	id, typ, status, currency := strings.Clone(c.ID), strings.Clone(c.Type), strings.Clone(c.Status), strings.Clone(c.Currency)
	apply := func(parts []Part, in string, sign float64) error {
		for _, pt := range parts {
			cl, err := p.cell(txn, pt.Day, pt.Cell)
			if err != nil {
				return err
			}
			p.converted(cl)
			if pt.Model == "last" {
				if cl.Conversions == nil {
					cl.Conversions = map[string]int64{}
				}
				if cl.Reversed == nil {
					cl.Reversed = map[string]int64{}
				}
				if in == "approved" {
					cl.Conversions[typ] += int64(sign)
				} else {
					cl.Reversed[typ] += int64(sign)
				}
			}
			if in != "approved" || currency == "" || typ != "purchase" {
				continue
			}
			m := &cl.LinearRevenue
			switch pt.Model {
			case "last":
				m = &cl.Revenue
			case "first":
				m = &cl.FirstRevenue
			}
			if *m == nil {
				*m = map[string]float64{}
			}
			(*m)[currency] += sign * pt.Value
		}
		return nil
	}
	parts := conversionParts(c)
	if prev != nil {
		if err := apply(parts, prev.Status, -1); err != nil {
			return err
		}
	} else if c.LastClick != nil {
		// Time to conversion, for medians, in the cell of the attributed click.
		cl, err := p.cell(txn, parts[0].Day, parts[0].Cell)
		if err != nil {
			return err
		}
		p.converted(cl)
		if cl.TTC == nil {
			cl.TTC = map[int]int64{}
		}
		cl.TTC[TTCBucket(c.LastClick.SecondsToConvert)]++
	}
	if err := apply(parts, status, 1); err != nil {
		return err
	}
	if p.accounted[id] == nil {
		p.bytes += len(id) + 64
	}
	p.accounted[id] = &Contribution{Status: status, Type: typ}
	return nil
}

// converted marks a cell as changed by a conversion.
func (p *pending) converted(c *pendingCell) {
	if !c.conv {
		c.conv = true
		p.convCells++
	}
}

// split sorts the pending cells: those only clicks changed, written in transactions of
// their own, and those conversions changed, written with the cursor.
func (p *pending) split() (clicks, conversions []*pendingCell) {
	for _, c := range p.cells {
		if c.conv {
			conversions = append(conversions, c)
		} else {
			clicks = append(clicks, c)
		}
	}
	return clicks, conversions
}

// flushReports writes the pending counters, each cell as counting up to next, then
// moves the reports cursor to next with the conversion states, and forgets them.
func (db *DB) flushReports(p *pending, next uint64) error {
	clicks, conversions := p.split()
	chunk := db.txnEntries(256)
	today := DayOf(time.Now())
	// The records written, put in the cache once their transaction has committed.
	recs := make([][]byte, 0, min(len(clicks), chunk))
	written := func(cs []*pendingCell) {
		for i, c := range cs {
			c.through = next
			p.cache.put(c.key, recs[i], today)
		}
		recs = recs[:0]
	}
	for len(clicks) > 0 {
		n := min(len(clicks), chunk)
		if err := db.bdb.Update(func(txn *badger.Txn) error {
			recs = recs[:0]
			for _, c := range clicks[:n] {
				rec, err := c.write(txn, next)
				if err != nil {
					return err
				}
				recs = append(recs, rec)
			}
			if db.flushFault != nil {
				return db.flushFault()
			}
			return nil
		}); err != nil {
			return fmt.Errorf("storage: write report counters: %w", err)
		}
		written(clicks[:n])
		clicks = clicks[n:]
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		recs = recs[:0]
		for _, c := range conversions {
			rec, err := c.write(txn, next)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		if db.flushFault != nil {
			if err := db.flushFault(); err != nil {
				return err
			}
		}
		for id, c := range p.accounted {
			v, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if err := txn.Set(append([]byte{prefixReport, rAccounted}, id...), v); err != nil {
				return err
			}
		}
		return txn.Set(cursorKey(reportsConsumer), binary.BigEndian.AppendUint64(nil, next))
	})
	if err != nil {
		return fmt.Errorf("storage: write report counters: %w", err)
	}
	written(conversions)
	p.written()
	return nil
}

// write stages the cell as counting the events before through, and returns the record.
func (c *pendingCell) write(txn *badger.Txn, through uint64) ([]byte, error) {
	if err := c.loadLegacy(txn); err != nil {
		return nil, err
	}
	sketch := c.raw
	if c.sk != nil {
		var err error
		if sketch, err = c.sk.MarshalBinary(); err != nil {
			return nil, fmt.Errorf("visitor sketch: %w", err)
		}
	}
	v, err := appendCell(nil, &c.Cell, sketch, through)
	if err != nil {
		return nil, err
	}
	if err := txn.Set([]byte(c.key), v); err != nil {
		return nil, err
	}
	if c.legacy {
		return v, txn.Delete(legacySketchKey(c.key))
	}
	return v, nil
}
