package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Committer makes clicks durable before their redirect is answered, at a cost shared
// by every click in flight: handlers append their record to the open batch and wait; one
// goroutine commits the whole batch in one Badger transaction (click records, their
// outbox entry and the outbox sequence), or in several in order when Badger will not
// take it in one, then wakes them all and adds the clicks to their links' counters; a timer starts counter checkpoints (checkpoint.go). While one
// batch commits, the next one fills, so the batch size follows the load without a timer.
// Other events (conversions) go through the same commits, so the outbox has one
// sequence in commit order.
type Committer struct {
	db   *DB
	mu   sync.Mutex
	open *batch
	kick chan struct{}
	// spare holds the buffers of the last committed batch for reuse.
	spare *batch

	// Owned by the run goroutine.
	dirty           map[*Counters]struct{}
	lastCheckpoint  time.Time
	checkpointSeq   uint64         // the outbox sequence the last checkpoint covers
	writing         *checkpointRun // the checkpoint being written, or nil
	journal         journal
	checkpointEvery time.Duration
	closed          bool

	// Observe, when set, is told the size and duration of each commit (for metrics).
	Observe func(clicks int, d time.Duration, err error)
	// finishing, when set (tests), is called before each transaction commits; an error
	// it returns fails that commit as a store failing would.
	finishing func() error
}

type batch struct {
	recs   []byte
	ends   []int
	ctrs   []counterDelta
	others []Write
	keys   []byte // arena for keys and outbox values: Badger reads them until commit returns
	done   chan struct{}
	err    error
	// otherSeq is the outbox sequence of others[0], set by the commit.
	otherSeq uint64
	// clicksDone and othersDone count the clicks and other events that are durable
	// although err is set: a batch split over transactions can fail after the first
	// ones committed, and what they hold is answered as stored.
	clicksDone, othersDone int
}

type counterDelta struct {
	c    *Counters
	kind ClickKind
}

// Write is an event other than a click: the records to set and the outbox event that
// announces it.
type Write struct {
	Kind EventKind
	Ref  [16]byte
	Sets []KV
	// Stamp holds values among Sets whose last 8 bytes the commit sets to this event's
	// outbox sequence (big endian) before staging them: a record that says which event
	// last announced it, known only once the commit numbers the event.
	Stamp [][]byte
}

// KV is one record of a Write; ExpiresAt (Unix seconds, 0 for never) makes it expire
// (dedupe horizons). The caller fixes the time, so it can keep the same one elsewhere.
type KV struct {
	Key, Value []byte
	ExpiresAt  int64
}

// CommitEvent commits w in the next group commit and returns its outbox sequence.
func (w *Committer) CommitEvent(wr Write) (uint64, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return 0, ErrClosed
	}
	b := w.open
	b.others = append(b.others, wr)
	i := len(b.others) - 1
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	<-b.done
	if b.err != nil && i >= b.othersDone {
		return 0, b.err
	}
	return b.otherSeq + uint64(i), nil
}

// ErrEventTooBig fails a group commit holding an event more than a transaction takes:
// the event's fault, not the store's.
var ErrEventTooBig = errors.New("an event is more than a transaction takes")

// ErrClosed is returned for clicks submitted after the committer stopped.
var ErrClosed = errors.New("storage: committer stopped")

func newCommitter(db *DB) *Committer {
	return &Committer{
		db:              db,
		open:            &batch{done: make(chan struct{})},
		kick:            make(chan struct{}, 1),
		dirty:           map[*Counters]struct{}{},
		lastCheckpoint:  time.Now(),
		checkpointEvery: checkpointEvery,
	}
}

// CommitClick makes one click record durable, then adds it to its link's counters. rec is a
// record from AppendClick; it is copied, so the caller may reuse it at once. Commit
// blocks until the batch holding the click is committed and returns its error.
func (w *Committer) CommitClick(rec []byte, c *Counters, kind ClickKind) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	b := w.open
	b.recs = append(b.recs, rec...)
	b.ends = append(b.ends, len(b.recs))
	b.ctrs = append(b.ctrs, counterDelta{c, kind})
	i := len(b.ends) - 1
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	<-b.done
	if i < b.clicksDone {
		return nil
	}
	return b.err
}

func (w *Committer) run(ctx context.Context) {
	// Checkpoints are looked at on a timer, not after each commit: events that move no
	// counter (conversions) still need the mark to pass them, or retention would keep
	// them until the next click or restart.
	tick := time.NewTicker(w.checkpointEvery)
	defer tick.Stop()
	for {
		var written chan error // nil, so never ready, while no checkpoint is written
		if w.writing != nil {
			written = w.writing.done
		}
		select {
		case <-w.kick:
			w.commitOpen()
		case <-tick.C:
			w.maybeCheckpoint()
		case err := <-written:
			w.checkpointDone(err)
			if w.journal.rollup != nil {
				w.maybeCheckpoint() // a rollup goes on at once
			}
		case <-ctx.Done():
			// Answer everything already submitted, then refuse new clicks.
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			w.commitOpen()
			if w.db.crashCommitter.Load() {
				// As a kill would leave it, but for a write in flight, which ends
				// before the store can close.
				if w.writing != nil {
					w.checkpointDone(<-w.writing.done)
				}
				return
			}
			w.checkpointNow()
			return
		}
	}
}

func (w *Committer) commitOpen() {
	w.mu.Lock()
	b := w.open
	if len(b.ends) == 0 && len(b.others) == 0 {
		w.mu.Unlock()
		return
	}
	next := w.spare
	if next == nil {
		next = &batch{}
	}
	w.spare = nil
	next.done = make(chan struct{})
	w.open = next
	w.mu.Unlock()

	w.db.outboxMu.Lock()
	first := w.db.outboxNext // only this goroutine moves it
	w.db.outboxMu.Unlock()
	start := time.Now()
	b.err = w.write(b)
	if w.Observe != nil {
		w.Observe(len(b.ends), time.Since(start), b.err)
	}
	close(b.done)
	if b.err == nil {
		w.db.recent.keep(b, first)
	} else {
		w.db.recent.reset()
	}

	// Recycle the buffers, not the batch: waiters may still be reading b.err.
	w.spare = &batch{recs: b.recs[:0], ends: b.ends[:0], ctrs: b.ctrs[:0], keys: b.keys[:0]}
	// others are not recycled: their waiters read otherSeq from b after done.
}

func (w *Committer) write(b *batch) error {
	db := w.db
	db.outboxMu.Lock()
	seq := db.outboxNext
	db.outboxMu.Unlock()
	b.otherSeq = seq + uint64(len(b.ends))

	// Keys and outbox values live in one arena sized up front, so appending never moves
	// memory that Badger still points at: a key per click, an outbox event per click
	// and other event.
	need := len(b.ends)*(1+16) + (len(b.ends)+len(b.others))*outboxEventLen + 64
	if cap(b.keys) < need {
		b.keys = make([]byte, 0, need)
	}
	arena := b.keys[:0]
	defer func() { b.keys = arena }()
	// events carves out of the arena the outbox value announcing clicks [c0, c1) and
	// other events [o0, o1): one outbox entry per transaction instead of one per click
	// halves Badger's writes.
	events := func(c0, c1, o0, o1 int) []byte {
		s := len(arena)
		for i := c0; i < c1; i++ {
			arena = appendOutboxValue(arena, EventClick, b.recs[b.start(i):b.start(i)+16])
		}
		for _, o := range b.others[o0:o1] {
			arena = appendOutboxValue(arena, o.Kind, o.Ref[:])
		}
		return arena[s:len(arena):len(arena)]
	}
	stageClick := func(txn *badger.Txn, i int) error {
		rec := b.recs[b.start(i):b.ends[i]:b.ends[i]]
		ks := len(arena)
		arena = append(append(arena, prefixClick), rec[:16]...)
		return txn.Set(arena[ks:len(arena):len(arena)], rec)
	}
	stageOther := func(txn *badger.Txn, j int) error {
		o := b.others[j]
		for _, v := range o.Stamp {
			binary.BigEndian.PutUint64(v[len(v)-8:], b.otherSeq+uint64(j))
		}
		for _, kv := range o.Sets {
			e := badger.NewEntry(kv.Key, kv.Value)
			if kv.ExpiresAt > 0 {
				e.ExpiresAt = uint64(kv.ExpiresAt)
			}
			if err := txn.SetEntry(e); err != nil {
				return err
			}
		}
		return nil
	}

	// Badger refuses a transaction past MaxBatchCount entries or MaxBatchSize bytes as
	// it estimates them (ErrTxnTooBig). A batch that would pass either goes in several
	// transactions, in order, each with the outbox entry of its own events and room left
	// for it; the transaction being staged holds clicks from first and other events from
	// firstOther (only once every click is in an earlier one). An event's records never
	// straddle two transactions: they go with its outbox entry or not at all.
	maxCount, maxSize := db.bdb.MaxBatchCount()-txnOverheadEntries, db.bdb.MaxBatchSize()-txnOverheadBytes
	// An event no transaction could hold fails the batch before any of it is committed:
	// a failure after a split would answer as failed what earlier transactions made
	// durable.
	for j, o := range b.others {
		if n, bytes := writeSize(o); n >= maxCount || bytes >= maxSize {
			return fmt.Errorf("storage: event %d of the batch is %d entries of %d bytes: %w (%w)", j, n, bytes, ErrEventTooBig, badger.ErrTxnTooBig)
		}
	}
	txn := db.bdb.NewTransaction(true)
	defer func() { txn.Discard() }()
	first, firstOther := 0, 0
	var count, size int64
	// commit commits the transaction staged, holding clicks up to clicksTo and other
	// events up to othersTo, and counts what is durable from then on.
	commit := func(clicksTo, othersTo int) error {
		if err := w.finish(txn, seq+uint64(first+firstOther), events(first, clicksTo, firstOther, othersTo)); err != nil {
			return err
		}
		w.applyDeltas(b.ctrs[first:clicksTo])
		first, firstOther = clicksTo, othersTo
		b.clicksDone, b.othersDone = clicksTo, othersTo
		if clicksTo > 0 {
			db.outboxMu.Lock()
			db.clickHead = seq + uint64(clicksTo)
			db.outboxMu.Unlock()
		}
		return nil
	}
	// room makes room for n more entries of the given estimated size, committing what is
	// staged when they would not fit beside it.
	room := func(n, bytes int64, clicksTo, othersTo int) error {
		if count+n < maxCount && size+bytes < maxSize {
			count, size = count+n, size+bytes
			return nil
		}
		if count == 0 {
			return fmt.Errorf("%d entries of %d bytes: %w", n, bytes, badger.ErrTxnTooBig)
		}
		if err := commit(clicksTo, othersTo); err != nil {
			return err
		}
		txn = db.bdb.NewTransaction(true)
		count, size = n, bytes
		return nil
	}
	for i := range b.ends {
		err := room(1, txnEntrySize(1+16, b.ends[i]-b.start(i)), i, 0)
		if err == nil {
			err = stageClick(txn, i)
		}
		if err != nil {
			return fmt.Errorf("storage: stage click: %w", err)
		}
	}
	for j, o := range b.others {
		n, bytes := writeSize(o)
		err := room(n, bytes, len(b.ends), j)
		if err == nil {
			err = stageOther(txn, j)
		}
		if err != nil {
			return fmt.Errorf("storage: stage event: %w", err)
		}
	}
	return commit(len(b.ends), len(b.others))
}

// What a transaction holds besides the events' records, at most: Badger's end-of-
// transaction entry, which it counts from the start, and finish's outbox entry and
// outbox sequence; each a short key and a value under valueThreshold bytes (a longer one
// goes to the value log, leaving a pointer).
const (
	txnOverheadEntries = 3
	txnOverheadBytes   = txnOverheadEntries * (32 + valueThreshold + 12)
)

// writeSize is the entries and bytes Badger counts for w's records.
func writeSize(w Write) (n, bytes int64) {
	for _, kv := range w.Sets {
		bytes += txnEntrySize(len(kv.Key), len(kv.Value))
	}
	return int64(len(w.Sets)), bytes
}

// txnEntrySize is what Badger counts against a transaction's MaxBatchSize for an entry.
func txnEntrySize(key, value int) int64 {
	if value >= valueThreshold {
		value = 12 // a value pointer
	}
	return int64(key + value + 2 + 10) // meta, user meta, key version
}

func (b *batch) start(i int) int {
	if i == 0 {
		return 0
	}
	return b.ends[i-1]
}

// finish stages the outbox entry for the events numbered from first and the outbox
// high-water mark, then commits.
func (w *Committer) finish(txn *badger.Txn, first uint64, events []byte) error {
	if w.finishing != nil {
		if err := w.finishing(); err != nil {
			return err
		}
	}
	n := uint64(len(events) / outboxEventLen)
	last := first + n - 1
	if err := txn.Set(outboxKey(first), events); err != nil {
		return fmt.Errorf("storage: stage outbox entry: %w", err)
	}
	if err := txn.Set(metaKey(metaOutboxSeq), binary.BigEndian.AppendUint64(nil, last)); err != nil {
		return fmt.Errorf("storage: stage outbox sequence: %w", err)
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("storage: commit clicks: %w", err)
	}
	w.db.outboxMu.Lock()
	w.db.outboxNext = last + 1
	close(w.db.outboxSignal)
	w.db.outboxSignal = make(chan struct{})
	w.db.outboxMu.Unlock()
	return nil
}

func (w *Committer) applyDeltas(ds []counterDelta) {
	for _, d := range ds {
		d.c.add(d.kind, 1)
		w.dirty[d.c] = struct{}{}
	}
}
