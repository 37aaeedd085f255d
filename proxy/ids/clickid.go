// Package ids issues the identifiers clickgate hands out at the edge: click IDs, which
// travel to the destination in the click parameter and come back with conversions, and
// visitor IDs, which live in the cg_vid cookie.
package ids

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// ClickID is a 128-bit click identifier:
//
//	bytes 0-5   milliseconds since the Unix epoch (big endian), so IDs sort by time
//	bytes 6-7   the edge's node number, so edges never collide
//	bytes 8-11  a per-process counter, so one edge issues many IDs per millisecond
//	bytes 12-13 random, so IDs are not guessable in sequence
//	bytes 14-15 a checksum of bytes 0-13, so typos and forgeries fail on decode
//
// Its text form is 26 characters of lowercase Crockford base32, which sorts in the same
// order as the bytes and needs no escaping in a URL.
type ClickID [16]byte

// ClickIDLen is the length of a click ID's text form.
const ClickIDLen = 26

// alphabet is Crockford's base32 in lowercase: ASCII order matches value order, and the
// letters i, l, o, u are left out so IDs read back unambiguously.
const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"

var decodeTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(alphabet); i++ {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// Errors returned when a click or visitor ID does not decode.
var (
	ErrLength   = errors.New("wrong length")
	ErrAlphabet = errors.New("character outside the ID alphabet")
	ErrChecksum = errors.New("checksum mismatch")
)

// ClickIDs issues click IDs for one edge. It is safe for concurrent use and takes no lock.
type ClickIDs struct {
	node    uint16
	counter atomic.Uint32
}

// NewClickIDs returns a generator for the given node number.
func NewClickIDs(node uint16) *ClickIDs {
	g := &ClickIDs{node: node}
	// A random start keeps the counter from repeating values after a restart within the
	// same millisecond.
	g.counter.Store(rand.Uint32())
	return g
}

// NodeNumber maps a node ID (CLICKGATE_NODE_ID) to the 16 bits stored in every click ID:
// a decimal number from 0 to 65535 is used as is, any other name is hashed. Operators who
// run many edges give them distinct numbers to rule out collisions.
func NodeNumber(nodeID string) uint16 {
	if n, err := strconv.ParseUint(nodeID, 10, 16); err == nil {
		return uint16(n)
	}
	h := fnv.New32a()
	h.Write([]byte(nodeID))
	s := h.Sum32()
	return uint16(s>>16) ^ uint16(s)
}

// New returns a fresh click ID stamped with t.
func (g *ClickIDs) New(t time.Time) ClickID {
	var id ClickID
	ms := uint64(t.UnixMilli())
	id[0] = byte(ms >> 40)
	id[1] = byte(ms >> 32)
	id[2] = byte(ms >> 24)
	id[3] = byte(ms >> 16)
	id[4] = byte(ms >> 8)
	id[5] = byte(ms)
	binary.BigEndian.PutUint16(id[6:8], g.node)
	binary.BigEndian.PutUint32(id[8:12], g.counter.Add(1))
	binary.BigEndian.PutUint16(id[12:14], uint16(rand.Uint32()))
	binary.BigEndian.PutUint16(id[14:16], checksum(id[:14]))
	return id
}

// Time returns the millisecond timestamp inside the ID.
func (id ClickID) Time() time.Time {
	ms := uint64(id[0])<<40 | uint64(id[1])<<32 | uint64(id[2])<<24 | uint64(id[3])<<16 | uint64(id[4])<<8 | uint64(id[5])
	return time.UnixMilli(int64(ms))
}

// Node returns the node number inside the ID.
func (id ClickID) Node() uint16 { return binary.BigEndian.Uint16(id[6:8]) }

// IsZero reports whether id is the zero value.
func (id ClickID) IsZero() bool { return id == ClickID{} }

// String returns the 26-character text form.
func (id ClickID) String() string { return string(id.Append(nil)) }

// Append appends the text form to dst.
func (id ClickID) Append(dst []byte) []byte { return appendBase32(dst, id) }

// MarshalText implements encoding.TextMarshaler.
func (id ClickID) MarshalText() ([]byte, error) { return id.Append(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler with full validation.
func (id *ClickID) UnmarshalText(b []byte) error {
	v, err := ParseClickID(b)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseClickID decodes and validates a click ID's text form.
func ParseClickID[T ~string | ~[]byte](s T) (ClickID, error) {
	id, err := decodeBase32(s)
	if err != nil {
		return ClickID{}, fmt.Errorf("click id: %w", err)
	}
	if binary.BigEndian.Uint16(id[14:16]) != checksum(id[:14]) {
		return ClickID{}, fmt.Errorf("click id: %w", ErrChecksum)
	}
	return id, nil
}

// checksum is FNV-1a folded to 16 bits: cheap, and enough to reject mistyped or made-up
// IDs before they reach storage. It is not a secret; forgery resistance is not its job.
func checksum(b []byte) uint16 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return uint16(h>>16) ^ uint16(h)
}

func appendBase32(dst []byte, v [16]byte) []byte {
	hi := binary.BigEndian.Uint64(v[0:8])
	lo := binary.BigEndian.Uint64(v[8:16])
	var out [ClickIDLen]byte
	// 128 bits in 26 five-bit groups: the first character carries only the top 3 bits.
	for i := ClickIDLen - 1; i >= 0; i-- {
		out[i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return append(dst, out[:]...)
}

func decodeBase32[T ~string | ~[]byte](s T) ([16]byte, error) {
	var v [16]byte
	if len(s) != ClickIDLen {
		return v, ErrLength
	}
	var hi, lo uint64
	for i := 0; i < ClickIDLen; i++ {
		d := decodeTable[s[i]]
		if d == 0xff || (i == 0 && d > 7) {
			return v, ErrAlphabet
		}
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(d)
	}
	binary.BigEndian.PutUint64(v[0:8], hi)
	binary.BigEndian.PutUint64(v[8:16], lo)
	return v, nil
}
