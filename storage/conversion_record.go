package storage

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/segmentio/encoding/json"
)

// A conversion record is written once at intake and read by the index consumer, the
// Kafka relay, every plugin's delivery loop and the admin API. As JSON it cost a tenth of
// the intake's CPU to encode and as much again to decode in the index consumer alone
// (three touch lists with a UTM each), so it is stored in the binary form below.
// Records written as JSON before it are still read: they start with '{', which the
// binary form never does.
//
//	conversionRecordV1 flags revision(varint)
//	strings: ID EventID Type Status Currency ClickID VisitorID Reason Source
//	[value float64 bits, little endian]      when flags has convHasValue
//	[occurred_at] [received_at]              varint Unix nanoseconds, when present
//	identities: uvarint count, then kind and value strings
//	[last touch] [first touch]               when present
//	linear: uvarint count, then touches
//	[status changed at]                      varint Unix nanoseconds, when present
//
// A string is a uvarint length and its bytes. A touch is ClickID Slug Domain Campaign
// and the five UTM strings, the variant as uvarint (0 for none, else variant+1), a flag
// byte (click time present), the click time, seconds to convert as varint and the
// credit's float64 bits.
const conversionRecordV1 = 0xC1

const (
	convHasValue = 1 << iota
	convHasOccurred
	convHasReceived
	convHasLast
	convHasFirst
	convHasStatusChanged

	convFlagsKnown = convHasStatusChanged<<1 - 1
)

// AppendConversion appends the record of c to dst.
func AppendConversion(dst []byte, c *Conversion) []byte {
	var flags byte
	if c.Value != nil {
		flags |= convHasValue
	}
	if !c.OccurredAt.IsZero() {
		flags |= convHasOccurred
	}
	if !c.ReceivedAt.IsZero() {
		flags |= convHasReceived
	}
	if c.LastClick != nil {
		flags |= convHasLast
	}
	if c.FirstClick != nil {
		flags |= convHasFirst
	}
	if !c.StatusChangedAt.IsZero() {
		flags |= convHasStatusChanged
	}
	dst = binary.AppendVarint(append(dst, conversionRecordV1, flags), int64(c.Revision))
	for _, s := range [...]string{c.ID, c.EventID, c.Type, c.Status, c.Currency, c.ClickID, c.VisitorID, c.Reason, c.Source} {
		dst = appendString(dst, s)
	}
	if c.Value != nil {
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(*c.Value))
	}
	if flags&convHasOccurred != 0 {
		dst = binary.AppendVarint(dst, c.OccurredAt.UnixNano())
	}
	if flags&convHasReceived != 0 {
		dst = binary.AppendVarint(dst, c.ReceivedAt.UnixNano())
	}
	dst = binary.AppendUvarint(dst, uint64(len(c.Identities)))
	for _, id := range c.Identities {
		dst = appendString(appendString(dst, id.Kind), id.Value)
	}
	if c.LastClick != nil {
		dst = appendTouch(dst, c.LastClick)
	}
	if c.FirstClick != nil {
		dst = appendTouch(dst, c.FirstClick)
	}
	dst = binary.AppendUvarint(dst, uint64(len(c.Linear)))
	for i := range c.Linear {
		dst = appendTouch(dst, &c.Linear[i])
	}
	if flags&convHasStatusChanged != 0 {
		dst = binary.AppendVarint(dst, c.StatusChangedAt.UnixNano())
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendTouch(dst []byte, t *Touch) []byte {
	for _, s := range [...]string{t.ClickID, t.Slug, t.Domain, t.Campaign, t.UTM.Source, t.UTM.Medium, t.UTM.Campaign, t.UTM.Content, t.UTM.Term} {
		dst = appendString(dst, s)
	}
	var variant uint64
	if t.Variant != nil && *t.Variant >= 0 {
		variant = uint64(*t.Variant) + 1
	}
	dst = binary.AppendUvarint(dst, variant)
	if t.ClickTime.IsZero() {
		dst = append(dst, 0)
	} else {
		dst = binary.AppendVarint(append(dst, 1), t.ClickTime.UnixNano())
	}
	dst = binary.AppendVarint(dst, t.SecondsToConvert)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(t.Credit))
}

// DecodeConversion decodes a conversion record (binary, or JSON from before the binary
// form). As with DecodeClick, the strings of a binary record share one copy of it: a
// caller keeping one of them for long should copy it.
func DecodeConversion(b []byte) (*Conversion, error) {
	if len(b) > 0 && b[0] == '{' {
		c := Conversion{Revision: -1}
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("conversion record: %w", ErrCorrupt)
		}
		return &c, nil
	}
	c, err := decodeConversionV1(b)
	if err != nil {
		return nil, fmt.Errorf("conversion record: %w", err)
	}
	return c, nil
}

// recordReader reads a binary record. Its strings are substrings of one copy of the
// record, so a decode costs one string allocation however many fields it has; a
// reader's first error sticks and every later read returns zero values.
type recordReader struct {
	s   string
	off int
	err error
}

func (r *recordReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s at byte %d: %w", what, r.off, ErrCorrupt)
	}
}

func (r *recordReader) byte() byte {
	if r.err != nil || r.off >= len(r.s) {
		r.fail("truncated")
		return 0
	}
	r.off++
	return r.s[r.off-1]
}

func (r *recordReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if r.off >= len(r.s) {
			r.fail("bad varint")
			return 0
		}
		c := r.s[r.off]
		r.off++
		if shift == 63 && c > 1 {
			r.fail("varint overflow")
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v
		}
	}
}

func (r *recordReader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *recordReader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)-r.off) {
		r.fail("string longer than the record")
		return ""
	}
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *recordReader) float64() float64 {
	if r.err != nil || len(r.s)-r.off < 8 {
		r.fail("truncated float")
		return 0
	}
	v := binary.LittleEndian.Uint64([]byte(r.s[r.off : r.off+8]))
	r.off += 8
	return math.Float64frombits(v)
}

func (r *recordReader) time() time.Time {
	return time.Unix(0, r.varint()).UTC()
}

// count reads a list length, refusing one the rest of the record cannot hold at min
// bytes an item, so a hostile length cannot make a huge allocation.
func (r *recordReader) count(min int) int {
	n := r.uvarint()
	if r.err == nil && n > uint64((len(r.s)-r.off)/min) {
		r.fail("list longer than the record")
		return 0
	}
	return int(n)
}

// minTouch is the smallest encoded touch: nine empty strings, a variant, a flag, seconds
// to convert and eight bytes of credit.
const minTouch = 9 + 1 + 1 + 1 + 8

func decodeConversionV1(b []byte) (*Conversion, error) {
	if len(b) < 2 || b[0] != conversionRecordV1 {
		return nil, fmt.Errorf("not a conversion record: %w", ErrCorrupt)
	}
	flags := b[1]
	if flags&^convFlagsKnown != 0 {
		return nil, fmt.Errorf("unknown conversion record flags %#x: %w", flags, ErrCorrupt)
	}
	r := &recordReader{s: string(b), off: 2}
	c := &Conversion{Revision: int(r.varint())}
	if c.Revision < -1 {
		r.fail("negative revision")
	}
	for _, p := range [...]*string{&c.ID, &c.EventID, &c.Type, &c.Status, &c.Currency, &c.ClickID, &c.VisitorID, &c.Reason, &c.Source} {
		*p = r.string()
	}
	if flags&convHasValue != 0 {
		v := r.float64()
		c.Value = &v
	}
	if flags&convHasOccurred != 0 {
		c.OccurredAt = r.time()
	}
	if flags&convHasReceived != 0 {
		c.ReceivedAt = r.time()
	}
	if n := r.count(2); n > 0 {
		c.Identities = make([]IdentityRef, n)
		for i := range c.Identities {
			c.Identities[i] = IdentityRef{Kind: r.string(), Value: r.string()}
		}
	}
	if flags&convHasLast != 0 {
		c.LastClick = r.touch(new(Touch))
	}
	if flags&convHasFirst != 0 {
		c.FirstClick = r.touch(new(Touch))
	}
	if n := r.count(minTouch); n > 0 {
		c.Linear = make([]Touch, n)
		for i := range c.Linear {
			r.touch(&c.Linear[i])
		}
	}
	if flags&convHasStatusChanged != 0 {
		c.StatusChangedAt = r.time()
	}
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, r.err
	}
	return c, nil
}

func (r *recordReader) touch(t *Touch) *Touch {
	for _, p := range [...]*string{&t.ClickID, &t.Slug, &t.Domain, &t.Campaign, &t.UTM.Source, &t.UTM.Medium, &t.UTM.Campaign, &t.UTM.Content, &t.UTM.Term} {
		*p = r.string()
	}
	if v := r.uvarint(); v > 0 {
		if v > 1<<16 {
			r.fail("variant out of range")
		}
		n := int(v - 1)
		t.Variant = &n
	}
	switch r.byte() {
	case 0:
	case 1:
		t.ClickTime = r.time()
	default:
		r.fail("bad click time flag")
	}
	t.SecondsToConvert = r.varint()
	t.Credit = r.float64()
	return t
}
