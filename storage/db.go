// Package storage keeps everything clickgate must not lose, in one Badger directory:
// links, clicks, per-link counters, recipient tokens, and the outbox log that Kafka and
// plugins read at their own cursors. It knows nothing about HTTP; the proxy calls it.
package storage

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Options size the database. Badger's defaults take several hundred megabytes (five 64 MB
// memtables and a 256 MB block cache); an edge runs beside other things, so the defaults
// here are chosen for a small, predictable footprint.
type Options struct {
	// Dir is the Badger directory. Only one process may open it at a time.
	Dir string
	// MemTableMB is the size of one memtable. Default 16. Bigger means fewer flushes at
	// the price of memory: Badger keeps two, and flushing one builds a table about as big
	// in memory (32 used 200 MiB more at peak than 16 under a redirect flood, for no
	// measurable throughput).
	MemTableMB int64
	// BlockCacheMB caches decompressed table blocks for reads. Default 32.
	BlockCacheMB int64
	// IndexCacheMB caches table indexes and bloom filters. Default 16; 0 would keep
	// every index in memory, which grows without bound with the data.
	IndexCacheMB int64
	// SyncWrites fsyncs every commit. Default false: writes go through the memory-mapped
	// log, so they survive a process crash (kill -9) but not a power loss. Turning it on
	// costs one fsync per group commit.
	SyncWrites bool
	// Logger receives Badger's warnings and errors.
	Logger *slog.Logger

	// valueLogFileMB sizes value log files (default 256); tests make them small so that
	// a few megabytes of garbage fill one.
	valueLogFileMB int64
	// counterHash replaces the hash of link keys the counters are found by; tests make
	// every key collide.
	counterHash func(string) uint64
}

// valueThreshold is the value size from which Badger keeps a value in its value log and
// only a pointer in the LSM tree. Click records (200 bytes and more: a destination, a
// User-Agent) then leave the tree, which otherwise copies every one of them again at
// each level compaction: one hot link went from about 56 to 36–47 µs of CPU per
// redirect (noisy runs, `make bench` and checks/perf-vs-nginx). Counters, the visitor
// index's touch entries (about 30 to 80 bytes) and report cells of a few visitors stay
// under it, in the tree, where a scan or a read of them costs no second read; a cell
// whose visitor sketch has grown goes out like a click.
const valueThreshold = 160

// valueLogGCEvery is how often the value log is searched for files mostly garbage
// (outbox entries trimmed, report cells written again) to rewrite.
const valueLogGCEvery = 5 * time.Minute

// DB is the open store.
type DB struct {
	bdb *badger.DB
	log *slog.Logger

	countersMu      sync.Mutex
	counterIndex    map[uint64]uint32 // a link key's hash -> its counters' position
	counterCollided map[string]uint32 // keys whose hash another key had first
	counterHash     func(string) uint64
	keyChunk        []byte       // the key arena's chunk being filled (counters.go)
	countersChunks  [][]Counters // every counters, in the order they were made
	countersLen     int

	outboxMu     sync.Mutex // guards outboxNext and outboxSignal
	outboxNext   uint64
	clickHead    uint64 // outbox sequence just past the last committed click
	outboxSignal chan struct{}
	retention    retention
	index        indexer
	recent       recent // the committer's last batches, for the index consumer
	// reportsFlushEvery, crashIndex and crashCommitter are test seams: how often report
	// counters are written, whether stopping drops them unwritten as a crash would, and
	// whether stopping skips the closing counter checkpoint, as a crash would.
	reportsFlushEvery atomic.Int64 // nanoseconds
	crashIndex        atomic.Bool
	crashCommitter    atomic.Bool
	// checkpointFault, when set before Run (tests only), is asked before each step of
	// writing a checkpoint; an error stops the write there, as a crash would.
	checkpointFault func(step checkpointStep, endsRollup bool) error
	// checkpointTxnRecords, when above 0 (tests only), is how many records a checkpoint
	// writes per transaction, so that a few thousand links span several.
	checkpointTxnRecords int
	// flushFault, when set (tests only), is asked at the end of each transaction of a
	// report flush, its cells staged; an error aborts that transaction.
	flushFault func() error

	clicks *Committer
	seen   *seenFilter // the dedupe keys held, for conversions never seen before
	// idx holds the visitor index (visitorIndexDir). Its keys are random (a visitor
	// each), the main store's mostly arrive in order (clicks, the outbox, the day's
	// cells): in one tree every compaction rewrote both, and storing and indexing ten
	// million clicks took about a third longer (bench/README.md).
	idx *badger.DB
	// deadMu orders the rewrite of a dead letter after a replay against its purge, so a
	// purge is never undone (Badger's conflict detection is off).
	deadMu sync.Mutex
}

// Snapshot reads the store as of one moment, in one Badger transaction (and one of the
// visitor index's store): attribution's reads see the same clicks and identities, and
// pay for one transaction instead of one per read. It may be read from several
// goroutines at once (reads on a read-only Badger transaction change only atomic
// counters). Close it when every read is done.
type Snapshot struct {
	txn  *badger.Txn
	itxn *badger.Txn // the visitor index's

	// A snapshot's first visitor read takes an iterator bound to the visitor's prefix:
	// Badger makes it of the one or two tables a level whose key range holds the
	// visitor. Later reads take an iterator over the whole visitor index (every level-0
	// table and every level) from idle, reverse iterators earlier reads have finished with,
	// and seek it again: a batch of conversions sharing a snapshot makes a few and
	// seeks them a hundred times. With 10,000,000 clicks stored (four alternating
	// pairs), conversions one per request went from 10,000 to 11,300/s on average with
	// the prefix-bound first read; a batch's profile is the same either way.
	reads atomic.Int32
	mu    sync.Mutex // guards idle
	idle  []*badger.Iterator
}

// ErrStoreClosed is returned for a snapshot asked of a closed store.
var ErrStoreClosed = errors.New("storage: the store is closed")

// Snapshot returns a snapshot of the store as of now, or ErrStoreClosed once the store is
// closed: a request still in flight at shutdown then gets an error rather than a
// transaction on a closed Badger (whose iterators panic). The check narrows that window;
// shutdown closes the store only after in-flight requests drained or timed out.
func (db *DB) Snapshot() (*Snapshot, error) {
	if db.bdb.IsClosed() {
		return nil, ErrStoreClosed
	}
	return &Snapshot{txn: db.bdb.NewTransaction(false), itxn: db.idx.NewTransaction(false)}, nil
}

// reverse returns a reverse iterator for a read of prefix and the function that gives
// it back: the snapshot's first read gets one bound to prefix, later reads an idle one
// over the whole store, or a new one.
func (s *Snapshot) reverse(prefix []byte) (*badger.Iterator, func()) {
	if s.reads.Add(1) == 1 {
		it := s.itxn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix})
		return it, it.Close
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var it *badger.Iterator
	if n := len(s.idle); n > 0 {
		it = s.idle[n-1]
		s.idle = s.idle[:n-1]
	} else {
		it = s.itxn.NewIterator(badger.IteratorOptions{Reverse: true})
	}
	return it, func() {
		s.mu.Lock()
		s.idle = append(s.idle, it)
		s.mu.Unlock()
	}
}

// Close releases the snapshot. Every read through it must be over; it may be called more
// than once.
func (s *Snapshot) Close() {
	s.mu.Lock()
	for _, it := range s.idle {
		it.Close()
	}
	s.idle = nil
	s.mu.Unlock()
	s.txn.Discard()
	s.itxn.Discard()
}

// Open opens (or creates) the store and restores what a crash may have left behind:
// the outbox sequence and the per-link counters, replayed from the outbox past their
// last checkpoint.
func Open(opt Options) (*DB, error) {
	if opt.Dir == "" {
		return nil, errors.New("storage: no directory")
	}
	if opt.MemTableMB <= 0 {
		opt.MemTableMB = 16
	}
	if opt.BlockCacheMB <= 0 {
		opt.BlockCacheMB = 32
	}
	if opt.IndexCacheMB <= 0 {
		opt.IndexCacheMB = 16
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.valueLogFileMB <= 0 {
		opt.valueLogFileMB = 256
	}
	bo := badger.DefaultOptions(opt.Dir).
		WithMemTableSize(opt.MemTableMB << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(opt.BlockCacheMB << 20).
		WithIndexCacheSize(opt.IndexCacheMB << 20).
		WithValueLogFileSize(opt.valueLogFileMB << 20).
		WithValueThreshold(valueThreshold).
		// A compaction runs up to a dozen table builders at once, each holding about
		// twice its table in memory: with Badger's 2 MB base tables they were some
		// 380 MB of a million-link server's heap, with 512 KB 160 MB, with no loss of
		// redirect throughput measured. The tree holds keys and value pointers, so
		// tables stay few.
		WithBaseTableSize(512 << 10).
		WithNumCompactors(2).
		WithSyncWrites(opt.SyncWrites).
		// Clicks never conflict with each other (each has a fresh key), and conflict
		// tracking costs a map insert per key on the hot path.
		WithDetectConflicts(false).
		// Badger's expvar metrics cost map lookups on every write; ours are enough.
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{opt.Logger.With("component", "badger")})
	bdb, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", opt.Dir, err)
	}
	// The visitor index's entries are written once and never rewritten or deleted, so its
	// value log gathers no garbage and needs no collector.
	idxDir := filepath.Join(opt.Dir, visitorIndexDir)
	// Half the memtable and a quarter of the block cache: with the main store's sizes, a
	// redirect over 100,000 links cost about a tenth more CPU (two pairs of runs); with
	// these, the same as with one store. The memtable is the likelier cause: this block
	// cache fills only as conversions read, and 64 MB of it read no faster than 8.
	idx, err := badger.Open(bo.WithDir(idxDir).WithValueDir(idxDir).
		WithMemTableSize(max(opt.MemTableMB/2, 1) << 20).WithBlockCacheSize(max(opt.BlockCacheMB/4, 1) << 20).
		WithLogger(badgerLogger{opt.Logger.With("component", "badger", "store", "visitor-index")}))
	if err != nil {
		bdb.Close()
		return nil, fmt.Errorf("storage: open %s: %w", idxDir, err)
	}
	seed := maphash.MakeSeed()
	db := &DB{bdb: bdb, idx: idx, log: opt.Logger, outboxSignal: make(chan struct{}), seen: newSeenFilter(),
		counterIndex: map[uint64]uint32{}, counterCollided: map[string]uint32{},
		counterHash: func(k string) uint64 { return maphash.String(seed, k) }}
	if opt.counterHash != nil {
		db.counterHash = opt.counterHash
	}
	fail := func(err error) (*DB, error) {
		idx.Close()
		bdb.Close()
		return nil, err
	}
	if err := db.moveVisitorIndex(); err != nil {
		return fail(err)
	}
	if err := db.indexConversionEvents(); err != nil {
		return fail(err)
	}
	// A wait before the index consumer's first advance must wake at it.
	db.index.progress = make(chan struct{})
	db.reportsFlushEvery.Store(int64(reportsFlushEvery))
	mark, journal, err := db.restore()
	if err != nil {
		return fail(err)
	}
	// Where the outbox's live entries begin: a status change keeps the state it replaces
	// only for an event not trimmed yet, which a trim will then delete.
	db.retention.floor.Store(db.oldestOutbox())
	start := time.Now()
	n, err := db.seen.load(bdb)
	if err != nil {
		return fail(fmt.Errorf("storage: load dedupe keys: %w", err))
	}
	db.log.Info("dedupe keys loaded", "keys", n, "took", time.Since(start).Round(time.Millisecond).String())
	db.clicks = newCommitter(db)
	db.clicks.checkpointSeq = mark
	db.clicks.journal = journal
	db.Register(indexConsumer)
	db.Register(reportsConsumer)
	return db, nil
}

// Committer returns the group committer that makes clicks and other events durable.
func (db *DB) Committer() *Committer { return db.clicks }

// Run runs the background work (the group committer, the visitor index and the report
// counters) until ctx ends.
func (db *DB) Run(ctx context.Context) {
	done := make(chan struct{}, 2)
	go func() { db.runIndex(ctx); done <- struct{}{} }()
	go func() { db.runValueLogGC(ctx); done <- struct{}{} }()
	db.clicks.run(ctx)
	<-done
	<-done
}

func (db *DB) runValueLogGC(ctx context.Context) {
	t := time.NewTicker(valueLogGCEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := db.collectValueLog(ctx); err != nil {
				db.log.Error("value log garbage collection failed", "err", err)
			} else if n > 0 {
				db.log.Info("value log files rewritten", "files", n)
			}
		}
	}
}

// collectValueLog rewrites value log files of which at least half is garbage, one after
// another until none is left, and returns how many it rewrote.
func (db *DB) collectValueLog(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		err := db.bdb.RunValueLogGC(0.5)
		if errors.Is(err, badger.ErrNoRewrite) || errors.Is(err, badger.ErrRejected) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("storage: value log gc: %w", err)
		}
		n++
	}
	return n, nil
}

// Close flushes and closes the store. Callers stop Run first.
func (db *DB) Close() error {
	// The main store first: a snapshot asked for meanwhile is refused by it (Snapshot)
	// rather than given a transaction on a closed index.
	err := db.bdb.Close()
	if ierr := db.idx.Close(); err == nil && ierr != nil {
		return fmt.Errorf("storage: close the visitor index: %w", ierr)
	}
	if err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// Ping reports whether the store answers a read, for readiness checks.
func (db *DB) Ping() error {
	if db.bdb.IsClosed() {
		return ErrStoreClosed
	}
	return db.bdb.View(func(txn *badger.Txn) error {
		_, err := txn.Get(metaKey(metaOutboxSeq))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
}

// Size returns the on-disk size of the LSM tree and value log in bytes.
func (db *DB) Size() (lsm, vlog int64) {
	l, v := db.bdb.Size()
	il, iv := db.idx.Size()
	return l + il, v + iv
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(trim(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(trim(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(trim(fmt.Sprintf(f, a...))) }
func (b badgerLogger) Debugf(f string, a ...any)   {}

func trim(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
