package storage

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Link counters are checkpointed: each link's counts are written with the outbox
// sequence they are true at, and the counter mark says up to where every link's are. A
// restart loads them and replays the outbox past the mark, skipping for each link the
// events its own sequence already covers. That per-link sequence lets one checkpoint
// span many transactions (clicks on more than some 26,000 links in a second fit in no
// single one) written in the background, and a crash part-way through counts nothing
// twice.
//
// A checkpoint is written every checkpointEvery, so a restart after a crash replays
// about a second of clicks (a random read each); a clean stop writes everything.
const checkpointEvery = time.Second

// txnEntries is how many entries of about size bytes (key and value) to write per
// transaction: 2,048, or fewer if the memtables are so small that Badger's limits on
// a transaction (a share of a memtable, in entries and in bytes) would refuse as many.
func (db *DB) txnEntries(size int) int {
	return int(max(1, min(2048, db.bdb.MaxBatchCount()/2, db.bdb.MaxBatchSize()/int64(2*size))))
}

// countersLen is the size of a counters record: human, bot, test and the outbox
// sequence they are true at. Records from before the sequence have only the counts.
const (
	countersLen   = 32
	countersLenV1 = 24
)

func appendCounters(dst []byte, c *Counters, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Human.Load()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Bot.Load()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(c.Test.Load()))
	return binary.BigEndian.AppendUint64(dst, seq)
}

// decodeCounters loads a counters record into c and returns its sequence (0 for a
// record without one).
func decodeCounters(v []byte, c *Counters) (seq uint64, err error) {
	if len(v) != countersLen && len(v) != countersLenV1 {
		return 0, fmt.Errorf("counters of %q: %d bytes", c.key, len(v))
	}
	c.Human.Store(int64(binary.BigEndian.Uint64(v[0:])))
	c.Bot.Store(int64(binary.BigEndian.Uint64(v[8:])))
	c.Test.Store(int64(binary.BigEndian.Uint64(v[16:])))
	if len(v) == countersLen {
		seq = binary.BigEndian.Uint64(v[24:])
	}
	return seq, nil
}

// counterRecords encodes the counters of cs as true at seq, keys and values in one
// arena.
func counterRecords(cs []*Counters, seq uint64) []KV {
	size := 0
	for _, c := range cs {
		size += 1 + len(c.key) + countersLen
	}
	arena := make([]byte, 0, size)
	kvs := make([]KV, len(cs))
	for i, c := range cs {
		s := len(arena)
		arena = append(append(arena, prefixCounters), c.key...)
		k := len(arena)
		arena = appendCounters(arena, c, seq)
		kvs[i] = KV{Key: arena[s:k:k], Value: arena[k:len(arena):len(arena)]}
	}
	return kvs
}

// writeCheckpoint writes counter records true at seq, in as many transactions as they
// need, then moves the counter mark to seq.
func (db *DB) writeCheckpoint(kvs []KV, seq uint64) error {
	chunk := db.txnEntries(64 + countersLen)
	for len(kvs) > 0 {
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
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(metaKey(metaCountersSeq), binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return fmt.Errorf("storage: move the counter mark: %w", err)
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
	links []*Counters // written; dirty again if the write fails
	seq   uint64
	at    time.Time
	done  chan error
}

// maybeCheckpoint starts a checkpoint in the background when one is due and none is
// being written. It runs on the committer's goroutine, between commits, so the
// counters it copies are true at the outbox head.
func (w *Committer) maybeCheckpoint() {
	if w.writing != nil {
		return
	}
	last := w.db.OutboxHead() - 1
	if time.Since(w.lastCheckpoint) < w.checkpointEvery || len(w.dirty) == 0 && last == w.checkpointSeq {
		return
	}
	run := &checkpointRun{links: w.takeDirty(), seq: last, at: time.Now(), done: make(chan error, 1)}
	kvs := counterRecords(run.links, last)
	w.writing = run
	go func() { run.done <- w.db.writeCheckpoint(kvs, last) }()
}

// checkpointDone takes the result of the checkpoint being written.
func (w *Committer) checkpointDone(err error) {
	run := w.writing
	w.writing = nil
	if err != nil {
		w.db.log.Error("counter checkpoint failed; it is tried again, and a restart meanwhile replays the outbox", "err", err)
		for _, c := range run.links {
			w.dirty[c] = struct{}{}
		}
		return
	}
	w.lastCheckpoint, w.checkpointSeq = run.at, run.seq
}

// checkpointNow writes every changed counter and waits: the last thing a clean stop
// does, so a restart has nothing to replay.
func (w *Committer) checkpointNow() {
	if w.writing != nil {
		w.checkpointDone(<-w.writing.done)
	}
	last := w.db.OutboxHead() - 1
	if len(w.dirty) == 0 && last == w.checkpointSeq {
		return
	}
	w.writing = &checkpointRun{links: w.takeDirty(), seq: last, at: time.Now()}
	w.checkpointDone(w.db.writeCheckpoint(counterRecords(w.writing.links, last), last))
}

func (w *Committer) takeDirty() []*Counters {
	cs := make([]*Counters, 0, len(w.dirty))
	for c := range w.dirty {
		cs = append(cs, c)
	}
	clear(w.dirty)
	return cs
}
