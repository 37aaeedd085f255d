package ids

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"
)

// VisitorID identifies a browser through the cg_vid cookie:
//
//	bytes 0-5   milliseconds since the Unix epoch when it was issued (big endian)
//	bytes 6-15  random
//
// It has the same text form as a click ID, so one validator serves both and a tampered
// cookie is recognised and replaced. The time comes first because most SMS taps come from
// a browser clickgate has not seen: their visitor index entries then land at the end of
// Badger's sorted memtable, where inserting is cheap, instead of at random places in it.
// Eighty random bits keep IDs unguessable.
type VisitorID [16]byte

// NewVisitorID returns a visitor ID issued at t. math/rand/v2's global source is a
// per-thread ChaCha8 seeded by the OS: unpredictable and lock-free, which the hot path
// needs.
func NewVisitorID(t time.Time) VisitorID {
	var v VisitorID
	binary.BigEndian.PutUint64(v[0:8], uint64(t.UnixMilli())<<16)
	binary.LittleEndian.PutUint64(v[6:14], rand.Uint64())
	binary.LittleEndian.PutUint16(v[14:16], uint16(rand.Uint32()))
	v[0] &= 0x07 // keep the top character of the text form in range (until the year 2248)
	return v
}

// Append appends the 26-character text form to dst.
func (v VisitorID) Append(dst []byte) []byte { return appendBase32(dst, v) }

// String returns the text form.
func (v VisitorID) String() string { return string(v.Append(nil)) }

// ParseVisitorID validates a visitor ID's text form.
func ParseVisitorID[T ~string | ~[]byte](s T) (VisitorID, error) {
	v, err := decodeBase32(s)
	if err != nil {
		return VisitorID{}, fmt.Errorf("visitor id: %w", err)
	}
	return v, nil
}
