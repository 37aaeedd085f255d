package storage

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
)

// cellCache keeps report cell records as they were last written, so that a cell the
// index consumer counts into again is decoded from memory instead of read from Badger.
// With a million links clicked uniformly, the decoded cells kept after a flush
// (reportsCacheCells) are a fraction of the day's, and every other click was a Badger
// lookup: about a tenth of the server's CPU, most of it table blocks read and
// decompressed through a block cache a million cells do not fit in.
//
// Records are packed into chunks and found by a hash of their key: a million cells of a
// few visitors each are about 100 MB of chunks and 20 of index, and, as with the
// counters' keys, nothing for the collector to trace. An entry has room to grow, so a
// cell written again usually stays where it is; an entry that moves leaves garbage,
// which compaction reclaims once it is half as much as what is live. Compaction also
// forgets the cells of days before yesterday, and runs for that alone when the cache
// is full on a day it has not yet compacted; past its budget the cache takes no new
// cells: those are read from the store as before.
//
// The cache belongs to the index consumer's goroutine. What it holds is only ever what
// the store holds: a record is put after the transaction that wrote it has committed,
// and a cache is dropped with the pending counters whenever counting starts over.
type cellCache struct {
	seed   maphash.Seed
	index  map[uint64]uint64 // hash of a cell key -> chunk number<<32 | offset of its entry
	chunks [][]byte          // entries back to back; a chunk's length is where it ends
	// first is the number of chunks[0]. Numbers are not reused (a position keeps 32 bits
	// of one: 4 PiB of entries), so an entry compaction has not moved yet cannot be taken
	// for one it has.
	first uint64
	// compactedOn is the day of the last compaction: until the day after, there is no
	// earlier day's cell for one to drop.
	compactedOn Day
	live        int // bytes of the entries the index points at
	total       int // bytes of every entry in the chunks
	budget      int // live bytes past which no new cell is taken
	chunk       int // chunk size
	// mask is applied to every hash: all ones, or fewer bits in tests that want keys
	// to share a hash.
	mask uint64
	// minGarbage is cellCacheMinGarbage; tests make it small.
	minGarbage int
}

const (
	// cellCacheBudget bounds the bytes of the records the cache holds (its index adds
	// about a fifth, garbage up to half): some million cells.
	cellCacheBudget = 128 << 20
	// cellCacheChunk is the size of the cache's chunks. A record that does not fit in
	// one (a cell with an unusual number of conversion types) is not cached.
	cellCacheChunk = 1 << 20
	// cellCacheMinGarbage keeps a small cache from being compacted at every write.
	cellCacheMinGarbage = 4 << 20
)

func newCellCache() *cellCache {
	return &cellCache{seed: maphash.MakeSeed(), index: map[uint64]uint64{}, budget: cellCacheBudget, chunk: cellCacheChunk, mask: ^uint64(0), minGarbage: cellCacheMinGarbage}
}

// An entry is the key's length (uvarint), the key, the room for the record and the
// record's length (4 bytes each, little endian), then the record and the rest of the
// room.
const entryRoomLen = 8

// entrySize is the size of an entry of a key of keyLen bytes with room bytes for its
// record.
func entrySize(keyLen, room int) int {
	return uvarintLen(uint64(keyLen)) + keyLen + entryRoomLen + room
}

// roomFor gives a record of n bytes space for a few more visitors and digits.
func roomFor(n int) int { return n + min(n/4, 64) + 8 }

// entry is an entry decoded: its key, its record, and where they are.
type entry struct {
	key, rec []byte
	chunk    []byte
	recAt    int // offset of the record in chunk
	room     int
	size     int // of the whole entry
}

func (c *cellCache) at(pos uint64) entry {
	ch := c.chunks[pos>>32-c.first]
	off := int(uint32(pos))
	kl, w := binary.Uvarint(ch[off:])
	p := off + w
	e := entry{key: ch[p : p+int(kl)], chunk: ch}
	p += int(kl)
	e.room = int(binary.LittleEndian.Uint32(ch[p:]))
	n := int(binary.LittleEndian.Uint32(ch[p+4:]))
	e.recAt = p + entryRoomLen
	e.rec = ch[e.recAt : e.recAt+n : e.recAt+n]
	e.size = e.recAt + e.room - off
	return e
}

// get returns the record of key, which stays valid until the next put.
func (c *cellCache) get(key []byte) ([]byte, bool) {
	pos, ok := c.index[maphash.Bytes(c.seed, key)&c.mask]
	if !ok {
		return nil, false
	}
	e := c.at(pos)
	if !bytes.Equal(e.key, key) {
		return nil, false // another key with the same hash
	}
	return e.rec, true
}

// put records that the store now holds rec for key; today decides which cells
// compaction keeps.
func (c *cellCache) put(key string, rec []byte, today Day) {
	h := maphash.String(c.seed, key) & c.mask
	if pos, ok := c.index[h]; ok {
		e := c.at(pos)
		if string(e.key) == key && len(rec) <= e.room {
			binary.LittleEndian.PutUint32(e.chunk[e.recAt-4:], uint32(len(rec)))
			copy(e.chunk[e.recAt:], rec)
			return
		}
		// The old record is stale, or the entry is another key's with the same hash:
		// either way it goes, and that key is read from the store when next needed.
		delete(c.index, h)
		c.live -= e.size
	}
	room := roomFor(len(rec))
	if n := entrySize(len(key), room); n <= c.chunk {
		if c.live+n > c.budget && c.compactedOn < today {
			// Full, perhaps of days gone by: without this, nothing of the new day
			// would be cached until enough garbage called for a compaction.
			c.compact(today)
		}
		if c.live+n <= c.budget {
			c.index[h] = appendEntry(c, key, rec, room)
			c.live += n
		}
	}
	if g := c.total - c.live; g > max(c.live/2, c.minGarbage) {
		c.compact(today)
	}
}

// appendEntry writes an entry at the end of the last chunk, or of a new one, and returns
// its position.
func appendEntry[K string | []byte](c *cellCache, key K, rec []byte, room int) uint64 {
	n := entrySize(len(key), room)
	last := len(c.chunks) - 1
	if last < 0 || cap(c.chunks[last])-len(c.chunks[last]) < n {
		c.chunks = append(c.chunks, make([]byte, 0, c.chunk))
		last++
	}
	ch := c.chunks[last]
	pos := (c.first+uint64(last))<<32 | uint64(len(ch))
	ch = binary.AppendUvarint(ch, uint64(len(key)))
	ch = append(ch, key...)
	ch = binary.LittleEndian.AppendUint32(ch, uint32(room))
	ch = binary.LittleEndian.AppendUint32(ch, uint32(len(rec)))
	ch = append(ch, rec...)
	ch = append(ch, make([]byte, room-len(rec))...)
	c.chunks[last] = ch
	c.total += n
	return pos
}

// compact moves the live entries of today and yesterday into new chunks, letting each
// old chunk go once its entries have moved, so that compacting takes little more memory
// than the cache held; it forgets the cells of earlier days (conversions reach them now
// and then; the store has them). The index is made anew: a map never shrinks.
func (c *cellCache) compact(today Day) {
	old := &cellCache{chunks: c.chunks, first: c.first, index: c.index}
	c.chunks, c.first, c.live, c.total = nil, c.first+uint64(len(c.chunks)), 0, 0
	c.index, c.compactedOn = make(map[uint64]uint64, len(old.index)), today
	for i := range old.chunks {
		for off := 0; off < len(old.chunks[i]); {
			pos := (old.first+uint64(i))<<32 | uint64(off)
			e := old.at(pos)
			off += e.size
			h := maphash.Bytes(c.seed, e.key) & c.mask
			if p, ok := old.index[h]; !ok || p != pos || cellDay(e.key)+1 < today {
				continue // moved before, replaced, or of a day gone by
			}
			c.index[h] = appendEntry(c, e.key, e.rec, e.room)
			c.live += e.size
		}
		old.chunks[i] = nil
	}
}

// cellDay is the day in a cell key (appendCellKey).
func cellDay(key []byte) Day {
	if len(key) < 6 {
		return 0
	}
	return Day(binary.BigEndian.Uint32(key[2:]))
}
