package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Link counters are checkpointed into a journal: numbered records, each holding the
// counts of some links as true at one outbox sequence, and a counter mark saying up to
// where every link's counts are stored. A checkpoint writes the links clicked since the
// last one; a restart reads the records in order (a later record of a link replaces an
// earlier one), then replays the outbox past the mark, skipping for each link the events
// its last record already covers. That per-record sequence lets one checkpoint span
// many transactions, written in the background, and a crash part-way through counts
// nothing twice.
//
// The journal is appended to, never rewritten in place: a record per link, updated at
// every checkpoint, put one random key per clicked link into Badger's tree, and with a
// million links that cost about an eighth of each redirect's CPU in inserts and
// compaction (bench/README.md). Records of up to 32 KiB are written in sequence, and all
// but small ones live in the value log. To keep the journal bounded, once it holds about
// twice a whole copy of the counters, a rollup writes every clicked link's counts again
// (a slice at each checkpoint, each true at its own sequence) and then deletes the
// records from before it, all of which it has superseded.
//
// A checkpoint is written every checkpointEvery, so a restart after a crash replays
// about a second of clicks (a random read each); a clean stop writes everything.
const checkpointEvery = time.Second

// prefixCheckpoint keys the journal: S number(8, big endian) -> checkpoint record.
const prefixCheckpoint = 'S'

// checkpointVersion is the first byte of a checkpoint record. A record is the version,
// the outbox sequence its counts are true at (uvarint), then per link: the link key's
// length and the key, then the human, bot and test counts (uvarints).
const checkpointVersion = 1

const (
	// recordBytes is the size a record is filled to: large enough that a journal of a
	// million links is a few hundred records, small enough that Badger takes dozens in
	// one transaction.
	recordBytes = 32 << 10
	// rollupSlice is how many links a rollup writes at one checkpoint. The slice is
	// encoded between two commits, so it bounds how long a rollup holds clicks up
	// (about a millisecond); a rollup of a million links takes some sixty checkpoints,
	// written one after another.
	rollupSlice = 16 << 10
	// rollupMinBytes keeps small journals from being rolled up at every checkpoint.
	rollupMinBytes = 1 << 20
)

func checkpointKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCheckpoint}, n)
}

// checkpointRecords encodes the counters of cs as true at seq into records numbered
// from next. It returns them with their total size.
func checkpointRecords(cs []*Counters, seq, next uint64) ([]KV, int64) {
	var (
		kvs   []KV
		total int64
		rec   []byte
	)
	flush := func() {
		if rec == nil {
			return
		}
		kvs = append(kvs, KV{Key: checkpointKey(next + uint64(len(kvs))), Value: rec})
		total += int64(len(rec))
		rec = nil
	}
	for _, c := range cs {
		if rec == nil {
			rec = binary.AppendUvarint(append(make([]byte, 0, recordBytes+256), checkpointVersion), seq)
		}
		rec = binary.AppendUvarint(rec, uint64(len(c.key)))
		rec = append(rec, c.key...)
		rec = binary.AppendUvarint(rec, uint64(c.Human.Load()))
		rec = binary.AppendUvarint(rec, uint64(c.Bot.Load()))
		rec = binary.AppendUvarint(rec, uint64(c.Test.Load()))
		if len(rec) >= recordBytes {
			flush()
		}
	}
	flush()
	return kvs, total
}

// checkpointSize is about the size of the records holding cs: their entries.
func checkpointSize(cs []*Counters) int64 {
	var n int
	for _, c := range cs {
		n += uvarintLen(uint64(len(c.key))) + len(c.key) +
			uvarintLen(uint64(c.Human.Load())) + uvarintLen(uint64(c.Bot.Load())) + uvarintLen(uint64(c.Test.Load()))
	}
	return int64(n)
}

// clicked filters out the counters still at zero, in place: a link never clicked needs
// no record, its counts start at zero without one (they never go down, so no record of
// it can say otherwise).
func clicked(cs []*Counters) []*Counters {
	return slices.DeleteFunc(cs, func(c *Counters) bool {
		return c.Human.Load() == 0 && c.Bot.Load() == 0 && c.Test.Load() == 0
	})
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// errCheckpointRecord is wrapped by every error of decodeCheckpoint.
var errCheckpointRecord = errors.New("malformed counter checkpoint record")

// decodeCheckpoint reads a checkpoint record and gives fn each link's counts with the
// sequence they are true at; fn must not keep key. A malformed record is an error, and
// fn sees none of it: the record is checked whole before the first call.
func decodeCheckpoint(v []byte, fn func(seq uint64, key []byte, human, bot, test int64)) error {
	if err := walkCheckpoint(v, nil); err != nil {
		return err
	}
	return walkCheckpoint(v, fn)
}

func walkCheckpoint(v []byte, fn func(seq uint64, key []byte, human, bot, test int64)) error {
	if len(v) == 0 || v[0] != checkpointVersion {
		return fmt.Errorf("%w: not version %d", errCheckpointRecord, checkpointVersion)
	}
	p := v[1:]
	uvarint := func(what string) (uint64, error) {
		n, w := binary.Uvarint(p)
		if w <= 0 {
			return 0, fmt.Errorf("%w: %s cut short at byte %d", errCheckpointRecord, what, len(v)-len(p))
		}
		p = p[w:]
		return n, nil
	}
	seq, err := uvarint("sequence")
	if err != nil {
		return err
	}
	if len(p) == 0 {
		return fmt.Errorf("%w: no links", errCheckpointRecord)
	}
	var counts [3]int64
	for len(p) > 0 {
		n, err := uvarint("key length")
		if err != nil {
			return err
		}
		if n == 0 || n > uint64(len(p)) {
			return fmt.Errorf("%w: key of %d bytes at byte %d", errCheckpointRecord, n, len(v)-len(p))
		}
		key := p[:n]
		p = p[n:]
		for i, what := range [...]string{"human count", "bot count", "test count"} {
			c, err := uvarint(what)
			if err != nil {
				return err
			}
			if c > math.MaxInt64 {
				return fmt.Errorf("%w: %s %d out of range", errCheckpointRecord, what, c)
			}
			counts[i] = int64(c)
		}
		if fn != nil {
			fn(seq, key, counts[0], counts[1], counts[2])
		}
	}
	return nil
}

// journal is where the checkpoint records stand. restore sets it up; then the
// committer's goroutine owns it.
type journal struct {
	next  uint64 // number of the next record
	bytes int64  // size of the records stored
	// whole is the size of the last whole copy of every link's counts (a rollup's), or
	// an estimate from the restore.
	whole  int64
	rollup *rollup // in progress, or nil
	// minBytes and slice are rollupMinBytes and rollupSlice; tests make them small.
	minBytes int64
	slice    int
}

// rollup is a rewrite of every link's counts into the journal.
type rollup struct {
	from  uint64 // number of its first record: every earlier one goes when it is done
	pos   int    // index of the next counters to write (DB.countersFrom)
	bytes int64  // size of the records written since it started, its own and others
	whole int64  // size of its own entries: a whole copy
	start time.Time
}

// due reports whether the journal has grown enough to be rolled up.
func (j *journal) due() bool {
	return j.rollup == nil && j.bytes > 2*j.whole+j.minBytes
}

// txnEntries is how many entries of about size bytes (key and value) to write per
// transaction: 2,048, or fewer if the memtables are so small that Badger's limits on
// a transaction (a share of a memtable, in entries and in bytes) would refuse as many.
func (db *DB) txnEntries(size int) int {
	return int(max(1, min(2048, db.bdb.MaxBatchCount()/2, db.bdb.MaxBatchSize()/int64(2*size))))
}

// checkpointStep names the steps of writing a checkpoint, for tests that stop one there.
type checkpointStep int

const (
	stepRecords checkpointStep = iota // before a transaction of records
	stepMark                          // before the mark moves
	stepDrop                          // before a rollup's superseded records go
)

// writeCheckpoint writes checkpoint records true at seq, in as many transactions as
// they need, then moves the counter mark to seq. With dropBefore > 0 (a rollup's last
// slice) it then deletes the records numbered below it, which the rollup superseded.
func (db *DB) writeCheckpoint(kvs []KV, seq, dropBefore uint64) error {
	fault := func(step checkpointStep) error {
		if db.checkpointFault == nil {
			return nil
		}
		return db.checkpointFault(step, dropBefore > 0)
	}
	// Values this size go to the value log: the transaction holds their pointers.
	chunk := db.txnEntries(64)
	if db.checkpointTxnRecords > 0 {
		chunk = db.checkpointTxnRecords
	}
	for len(kvs) > 0 {
		if err := fault(stepRecords); err != nil {
			return err
		}
		n := min(len(kvs), chunk)
		err := db.bdb.Update(func(txn *badger.Txn) error {
			for _, kv := range kvs[:n] {
				if err := txn.Set(kv.Key, kv.Value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: write counter checkpoint: %w", err)
		}
		kvs = kvs[n:]
	}
	if err := fault(stepMark); err != nil {
		return err
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(metaKey(metaCountersSeq), binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return fmt.Errorf("storage: move the counter mark: %w", err)
	}
	if dropBefore > 0 {
		// The rollup's records reach the disk before the deletes of what they replace:
		// they went to the value log, the deletes go to the write-ahead log, and without
		// SyncWrites a power loss could keep the deletes and lose the records.
		if err := db.bdb.Sync(); err != nil {
			return fmt.Errorf("storage: sync the rollup's records: %w", err)
		}
		if err := fault(stepDrop); err != nil {
			return err
		}
		return db.dropCheckpoints(dropBefore)
	}
	return nil
}

// dropCheckpoints deletes the checkpoint records numbered below n. A drop cut short
// leaves records a later rollup deletes; they are superseded either way.
func (db *DB) dropCheckpoints(n uint64) error {
	var keys [][]byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCheckpoint}})
		defer it.Close()
		end := checkpointKey(n)
		for it.Rewind(); it.Valid() && string(it.Item().Key()) < string(end); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: find rolled-up checkpoint records: %w", err)
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("storage: delete rolled-up checkpoint records: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("storage: delete rolled-up checkpoint records: %w", err)
	}
	return nil
}

// counterMark reads the outbox sequence up to which every link's counters are stored.
func (db *DB) counterMark() (seq uint64, err error) {
	err = db.bdb.View(func(txn *badger.Txn) error {
		seq, err = readUint64(txn, metaCountersSeq)
		return err
	})
	return seq, err
}

// checkpointRun is a checkpoint being written in the background.
type checkpointRun struct {
	links []*Counters // clicked since the last one; dirty again if the write fails
	seq   uint64
	at    time.Time
	bytes int64
	// drop is set on a rollup's last slice to the rollup's first record number:
	// written, the run ends the rollup, and the records below it go.
	drop uint64
	done chan error
}

// maybeCheckpoint starts a checkpoint in the background when one is due and none is
// being written. It runs on the committer's goroutine, between commits, so the
// counters it copies are true at the outbox head. During a rollup the next one starts
// as soon as the last is written.
func (w *Committer) maybeCheckpoint() {
	if w.writing != nil {
		return
	}
	last := w.db.OutboxHead() - 1
	if w.journal.rollup == nil && (time.Since(w.lastCheckpoint) < w.checkpointEvery || len(w.dirty) == 0 && last == w.checkpointSeq) {
		return
	}
	run, kvs := w.newRun(last, true)
	go func() { run.done <- w.db.writeCheckpoint(kvs, run.seq, run.drop) }()
}

// newRun encodes a checkpoint true at last: the links clicked since the last one and,
// with rollups on, the next slice of a rollup, starting one if the journal is due. The
// run becomes the one being written.
func (w *Committer) newRun(last uint64, rollups bool) (*checkpointRun, []KV) {
	j := &w.journal
	if rollups && j.due() {
		j.rollup = &rollup{from: j.next, start: time.Now()}
	}
	run := &checkpointRun{links: w.takeDirty(), seq: last, at: time.Now(), done: make(chan error, 1)}
	links := run.links
	if r := j.rollup; rollups && r != nil {
		// A link both clicked and in the slice is written twice, the same counts at the
		// same sequence: cheaper than finding it.
		var (
			slice []*Counters
			end   bool
		)
		slice, r.pos, end = w.db.countersFrom(r.pos, j.slice)
		slice = clicked(slice)
		links = append(slices.Clip(links), slice...) // run.links stays the clicked ones
		r.whole += checkpointSize(slice)
		if end {
			run.drop = r.from
		}
	}
	kvs, n := checkpointRecords(links, last, j.next)
	run.bytes = n
	j.next += uint64(len(kvs))
	w.writing = run
	return run, kvs
}

// checkpointDone takes the result of the checkpoint being written.
func (w *Committer) checkpointDone(err error) {
	run := w.writing
	w.writing = nil
	j := &w.journal
	// Records of a failed write may be stored in part: count them all.
	j.bytes += run.bytes
	if err != nil {
		w.db.log.Error("counter checkpoint failed; it is tried again, and a restart meanwhile replays the outbox", "err", err)
		for _, c := range run.links {
			w.dirty[c] = struct{}{}
		}
		// A slice may be missing: the rollup cannot supersede what came before it. A
		// later one starts over; the records written stay valid.
		j.rollup = nil
		return
	}
	w.lastCheckpoint, w.checkpointSeq = run.at, run.seq
	if r := j.rollup; r != nil {
		r.bytes += run.bytes
		if run.drop > 0 {
			w.db.log.Debug("counter checkpoint journal rolled up", "bytes", r.bytes, "whole_copy_bytes", r.whole, "records_from", r.from,
				"took", time.Since(r.start).Round(time.Millisecond).String())
			j.bytes, j.whole, j.rollup = r.bytes, r.whole, nil
		}
	}
}

// checkpointNow writes every changed counter and waits: the last thing a clean stop
// does, so a restart has nothing to replay. A rollup in progress is left: the records
// it wrote are valid, and a later one starts over.
func (w *Committer) checkpointNow() {
	if w.writing != nil {
		w.checkpointDone(<-w.writing.done)
	}
	last := w.db.OutboxHead() - 1
	if len(w.dirty) == 0 && last == w.checkpointSeq {
		return
	}
	w.journal.rollup = nil
	run, kvs := w.newRun(last, false)
	w.checkpointDone(w.db.writeCheckpoint(kvs, run.seq, 0))
}

func (w *Committer) takeDirty() []*Counters {
	cs := make([]*Counters, 0, len(w.dirty))
	for c := range w.dirty {
		cs = append(cs, c)
	}
	clear(w.dirty)
	return cs
}
