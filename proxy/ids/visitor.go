package ids

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// VisitorID identifies a browser through the cg_vid cookie. It is 128 random bits with the
// same text form as a click ID, so one validator serves both and a tampered cookie is
// recognised and replaced.
type VisitorID [16]byte

// NewVisitorID returns a random visitor ID. math/rand/v2's global source is a per-thread
// ChaCha8 seeded by the OS: unpredictable and lock-free, which the hot path needs.
func NewVisitorID() VisitorID {
	var v VisitorID
	binary.LittleEndian.PutUint64(v[0:8], rand.Uint64())
	binary.LittleEndian.PutUint64(v[8:16], rand.Uint64())
	v[0] &= 0x07 // keep the top character of the text form in range
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
