package storage

import (
	"encoding/binary"
	"fmt"
	"time"
)

// A human click's visitor index entry holds what attribution reads of it, and no more:
// every click is indexed, most never convert, so each byte here is written, compacted
// and, for the few that convert, read back through the index's blocks.
//
//	touchEntryV1
//	varint   click time in microseconds, less the millisecond its ID begins with
//	uvarint  variant + 1
//	strings  Domain Slug Campaign, UTM Source Medium Campaign Content Term
//
// A string is a uvarint length and its bytes. The click ID is the entry's key, so it is
// not repeated. Entries from before this form hold a whole click record (AppendClick),
// which begins with the click ID: a click ID's first byte does not reach the tag before
// the year 9800.
const touchEntryV1 = 0xe1

// appendTouchEntry appends the visitor index entry of the human click c to dst.
func appendTouchEntry(dst []byte, c *Click) []byte {
	dst = append(dst, touchEntryV1)
	dst = binary.AppendVarint(dst, c.Time.UnixMicro()-int64(clickIDMillis(c.ID))*1000)
	dst = binary.AppendUvarint(dst, uint64(c.Variant+1))
	for _, s := range [...]string{
		c.Domain, c.Slug, c.Campaign,
		c.UTM.Source, c.UTM.Medium, c.UTM.Campaign, c.UTM.Content, c.UTM.Term,
	} {
		if len(s) > maxField {
			s = s[:maxField]
		}
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// decodeTouchEntry decodes an entry written by appendTouchEntry for the click id. The
// touch's strings share one copy of the entry.
func decodeTouchEntry(id [16]byte, b []byte) (*Click, error) {
	if len(b) == 0 || b[0] != touchEntryV1 {
		return nil, fmt.Errorf("touch entry: not one: %w", ErrCorrupt)
	}
	c := &Click{ID: id}
	r := &recordReader{s: string(b[1:])}
	c.Time = time.UnixMicro(int64(clickIDMillis(id))*1000 + r.varint()).UTC()
	if v := r.uvarint(); v > 1<<16 {
		r.fail("touch variant out of range")
	} else {
		c.Variant = int(v) - 1
	}
	for _, p := range [...]*string{
		&c.Domain, &c.Slug, &c.Campaign,
		&c.UTM.Source, &c.UTM.Medium, &c.UTM.Campaign, &c.UTM.Content, &c.UTM.Term,
	} {
		*p = r.string()
	}
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("touch entry: %w", r.err)
	}
	return c, nil
}

// decodeVisitorEntry decodes a human click's visitor index entry in either form: a
// touch entry, or a whole click record indexed before touches had a form of their own.
func decodeVisitorEntry(id [16]byte, v []byte) (*Click, error) {
	if len(v) > 0 && v[0] == touchEntryV1 {
		return decodeTouchEntry(id, v)
	}
	return DecodeClick(v)
}

// clickIDMillis is the millisecond a click ID begins with.
func clickIDMillis(id [16]byte) uint64 {
	return binary.BigEndian.Uint64(id[:8]) >> 16
}
