package storage

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/dgraph-io/badger/v4"
)

// cellDays remembers, for today and the day before, which report cells the store may
// hold, so that counting a link's first click of the day starts its cell at zero
// without asking Badger. With a million links nearly every click of a day is a link's
// first, and a lookup of a key the store does not have (every memtable, every level-0
// table, a table's bloom filter per level) was about a twentieth of a redirect's CPU.
//
// Like the dedupe filter (seen.go), it may answer "may hold" for a cell the store does
// not have (a false positive, a flush that failed), which costs one lookup, but never
// "does not hold" for one it has: a day's filter starts from a scan of that day's cell
// keys, and while the day has a filter each of its cells is added before it is first
// written. A day whose filter was dropped never gets one again (today only moves
// forward here, whatever the wall clock does): cells of it counted since were not
// added. Cells are written only by the index consumer, one goroutine, which owns this.
type cellDays struct {
	seed  maphash.Seed
	days  map[Day]*bloomSet
	today Day // the latest day seen
}

// cellDaysBack is how many days before today keep a filter. Clicks are counted on the
// day they happened, so only those counted late (around midnight, or after the consumer
// was held up) fall on the day before; conversions reach older cells a few at a time,
// and those are read as before.
const cellDaysBack = 1

// cellDayMinKeys sizes a day's first filter layer when the store has few of its cells
// (80 KiB).
const cellDayMinKeys = 1 << 16

func newCellDays() *cellDays {
	return &cellDays{seed: maphash.MakeSeed(), days: map[Day]*bloomSet{}}
}

// mayHold reports whether the store may hold the cell of day d whose key is k, and
// notes that from now on it may: the caller counts in the cell, which its next flush
// writes. now is the wall clock's day; txn reads a day's keys the first time it is
// asked about.
func (s *cellDays) mayHold(txn *badger.Txn, now, d Day, k string) bool {
	s.today = max(s.today, now)
	if d+cellDaysBack < s.today {
		return true
	}
	set := s.days[d]
	if set == nil {
		for old := range s.days {
			if old+cellDaysBack < s.today {
				delete(s.days, old)
			}
		}
		set = s.load(txn, d)
		s.days[d] = set
	}
	h := maphash.String(s.seed, k)
	if set.has(h) {
		return true
	}
	set.insert(h)
	return false
}

// load reads the keys of day d's cells, not their values, into a new filter with room
// for as many again.
func (s *cellDays) load(txn *badger.Txn, d Day) *bloomSet {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: binary.BigEndian.AppendUint32([]byte{prefixReport, rCell}, uint32(d))})
	defer it.Close()
	var hashes []uint64
	for it.Rewind(); it.Valid(); it.Next() {
		hashes = append(hashes, maphash.Bytes(s.seed, it.Item().Key()))
	}
	set := newBloomSet(max(cellDayMinKeys, 2*len(hashes)))
	for _, h := range hashes {
		set.insert(h)
	}
	return &set
}
