package links

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/clickgate/clickgate/storage"
)

// A compiled link is kept in the index as one packed record in an arena rather than as a
// graph of small objects: a million links would otherwise be some ten million pointers
// for the garbage collector to trace and about 800 bytes each, where a record is its
// strings plus a few dozen bytes. The redirect decodes the record into per-request
// scratch (views into the arena, no copies), which costs less than the cache misses of
// chasing the pointers it replaces.
//
// Layout, after a 4-byte little-endian length: domain, slug, campaign (strings are a
// uvarint length and the bytes), a flags byte (bit 0: forward query), the status byte,
// expires_at and max_clicks (varints), the UTM source, medium, campaign and term, then the
// targets (uvarint count; each: prefix, fragment, UTM content, variant + 1 and weight as
// uvarints, the key count and keys) and the identity parameters (uvarint count; each:
// source "param:<name>" and kind).

const flagForwardQuery = 1

// appendRecord appends l's record, length first.
func appendRecord(dst []byte, l *Link) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendStr(dst, l.Domain)
	dst = appendStr(dst, l.Slug)
	dst = appendStr(dst, l.Campaign)
	var flags byte
	if l.ForwardQuery {
		flags |= flagForwardQuery
	}
	dst = append(dst, flags, byte(l.Status))
	dst = binary.AppendVarint(dst, l.ExpiresAt)
	dst = binary.AppendVarint(dst, l.MaxClicks)
	var u storage.UTM
	if len(l.Targets) > 0 {
		u = l.Targets[0].UTM
	}
	dst = appendStr(dst, u.Source)
	dst = appendStr(dst, u.Medium)
	dst = appendStr(dst, u.Campaign)
	dst = appendStr(dst, u.Term)
	dst = binary.AppendUvarint(dst, uint64(len(l.Targets)))
	for i := range l.Targets {
		t := &l.Targets[i]
		dst = appendStr(dst, t.Prefix)
		dst = appendStr(dst, t.Fragment)
		dst = appendStr(dst, t.UTM.Content)
		dst = binary.AppendUvarint(dst, uint64(t.Variant+1))
		dst = binary.AppendUvarint(dst, uint64(t.weight))
		dst = binary.AppendUvarint(dst, uint64(len(t.Keys)))
		for _, k := range t.Keys {
			dst = appendStr(dst, k)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(l.IdentityParams)))
	for _, p := range l.IdentityParams {
		dst = appendStr(dst, p.Source)
		dst = appendStr(dst, p.Kind)
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

func appendStr(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// recordAt returns the record that starts at p (its length, then its body).
func recordAt(p *byte) []byte {
	n := binary.LittleEndian.Uint32(unsafe.Slice(p, 4))
	return unsafe.Slice(p, 4+int(n))
}

// decodeRecord fills dst from a record, reusing dst's slices. Its strings view the
// record's bytes, which the arena never changes or frees while a view exists.
func decodeRecord(dst *Link, rec []byte) error {
	r := reader{b: rec[4:]}
	dst.Domain, dst.Slug, dst.Campaign = r.str(), r.str(), r.str()
	flags, status := r.byte(), r.byte()
	dst.ForwardQuery = flags&flagForwardQuery != 0
	dst.Status = Status(status)
	dst.ExpiresAt, dst.MaxClicks = r.varint(), r.varint()
	var u storage.UTM
	u.Source, u.Medium, u.Campaign, u.Term = r.str(), r.str(), r.str(), r.str()
	n := int(r.uvarint())
	if cap(dst.Targets) < n {
		dst.Targets = make([]Target, n)
	}
	dst.Targets = dst.Targets[:n]
	dst.totalWeight = 0
	for i := range dst.Targets {
		t := &dst.Targets[i]
		t.Prefix, t.Fragment = r.str(), r.str()
		t.UTM = u
		t.UTM.Content = r.str()
		t.Variant = int(r.uvarint()) - 1
		t.weight = uint32(r.uvarint())
		dst.totalWeight += t.weight
		k := int(r.uvarint())
		t.Keys = t.Keys[:0]
		for j := 0; j < k && r.err == nil; j++ {
			t.Keys = append(t.Keys, r.str())
		}
	}
	n = int(r.uvarint())
	dst.IdentityParams = dst.IdentityParams[:0]
	for i := 0; i < n && r.err == nil; i++ {
		src, kind := r.str(), r.str()
		if len(src) < len(paramSource) {
			r.fail()
			break
		}
		dst.IdentityParams = append(dst.IdentityParams, IdentityParam{Name: src[len(paramSource):], Kind: kind, Source: src})
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d bytes after the record", len(r.b))
	}
	return r.err
}

// paramSource prefixes the identity source of a click whose identity came from a query
// parameter.
const paramSource = "param:"

// reader decodes a record. Records are written by appendRecord in this process, so a
// failure is a bug; it is reported rather than read past the end.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("links: truncated record")
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint undoes binary.AppendVarint's zig-zag.
func (r *reader) varint() int64 {
	u := r.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := unsafe.String(unsafe.SliceData(r.b), int(n))
	r.b = r.b[n:]
	return s
}
