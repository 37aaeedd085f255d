package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ClickKind says how a click counts.
type ClickKind uint8

// Click kinds: only human clicks count as clicks in reports, take max_clicks slots and
// are attribution touches.
const (
	KindHuman ClickKind = iota
	KindBot
	KindTest
)

// Click is one stored tap on a short link.
type Click struct {
	ID          [16]byte
	Time        time.Time
	Node        string
	Domain      string
	Slug        string
	Campaign    string
	UTM         UTM
	Variant     int // index into the link's variants, -1 when the link has none
	Destination string
	VisitorID   string
	NewVisitor  bool
	// Identity captured at the click: Kind is customer_id, email or phone; Value is the
	// customer ID as given, or a keyed hash of the normalised email or phone; Source is
	// "token" or "param:<name>".
	IdentityKind   string
	IdentityValue  string
	IdentitySource string
	Token          string
	IP             string
	UserAgent      string
	Referrer       string
	Bot            bool
	BotReason      string
	Test           bool
	// SealedUser is the identity parameter's plain value, sealed (see identity.Sealer),
	// kept only when the operator opts in to forwarding identifiers captured at clicks.
	SealedUser string
}

// Kind returns how the click counts.
func (c *Click) Kind() ClickKind {
	switch {
	case c.Test:
		return KindTest
	case c.Bot:
		return KindBot
	}
	return KindHuman
}

const (
	// Version 2 appended SealedUser; version 1 records are still read.
	clickRecordV1 = 1
	clickRecordV2 = 2

	flagBot        = 1 << 0
	flagTest       = 1 << 1
	flagNewVisitor = 1 << 2

	// Field caps: a click record is written on every redirect, so whatever a client
	// sends is bounded before it reaches the disk.
	maxUserAgent   = 512
	maxReferrer    = 1024
	maxDestination = 8192
	maxField       = 256
	maxSealed      = 512 // a sealed identity: nonce, JSON of one normalised value, tag
)

// AppendClick appends the binary record of c to dst. The record starts with the click ID
// so the committer can key it without decoding. It allocates nothing when dst has room.
func AppendClick(dst []byte, c *Click) []byte {
	var flags byte
	if c.Bot {
		flags |= flagBot
	}
	if c.Test {
		flags |= flagTest
	}
	if c.NewVisitor {
		flags |= flagNewVisitor
	}
	dst = append(dst, c.ID[:]...)
	dst = append(dst, clickRecordV2, flags)
	dst = binary.AppendVarint(dst, c.Time.UnixMicro())
	dst = binary.AppendUvarint(dst, uint64(c.Variant+1))
	for _, f := range [...]struct {
		s   string
		max int
	}{
		{c.Node, maxField}, {c.Domain, maxField}, {c.Slug, maxField}, {c.Campaign, maxField},
		{c.UTM.Source, maxField}, {c.UTM.Medium, maxField}, {c.UTM.Campaign, maxField},
		{c.UTM.Content, maxField}, {c.UTM.Term, maxField},
		{c.Destination, maxDestination}, {c.VisitorID, maxField},
		{c.IdentityKind, maxField}, {c.IdentityValue, maxField}, {c.IdentitySource, maxField},
		{c.Token, maxField}, {c.IP, maxField}, {c.UserAgent, maxUserAgent},
		{c.Referrer, maxReferrer}, {c.BotReason, maxField}, {c.SealedUser, maxSealed},
	} {
		s := f.s
		if len(s) > f.max {
			s = s[:f.max]
		}
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// ErrCorrupt is returned for a record that does not decode.
var ErrCorrupt = errors.New("corrupt record")

// DecodeClick decodes a record written by AppendClick. The click's strings share one
// copy of the record (one allocation, not one per field): a caller keeping one of them
// for long should copy it.
func DecodeClick(b []byte) (*Click, error) {
	if len(b) < 18 {
		return nil, fmt.Errorf("click record of %d bytes: %w", len(b), ErrCorrupt)
	}
	c := &Click{}
	copy(c.ID[:], b)
	version := b[16]
	if version != clickRecordV1 && version != clickRecordV2 {
		return nil, fmt.Errorf("click record version %d: %w", b[16], ErrCorrupt)
	}
	flags := b[17]
	c.Bot, c.Test, c.NewVisitor = flags&flagBot != 0, flags&flagTest != 0, flags&flagNewVisitor != 0
	r := &recordReader{s: string(b[18:])}
	c.Time = time.UnixMicro(r.varint()).UTC()
	if v := r.uvarint(); v > 1<<16 {
		r.fail("click variant out of range")
	} else {
		c.Variant = int(v) - 1
	}
	fields := [...]*string{
		&c.Node, &c.Domain, &c.Slug, &c.Campaign,
		&c.UTM.Source, &c.UTM.Medium, &c.UTM.Campaign, &c.UTM.Content, &c.UTM.Term,
		&c.Destination, &c.VisitorID, &c.IdentityKind, &c.IdentityValue, &c.IdentitySource,
		&c.Token, &c.IP, &c.UserAgent, &c.Referrer, &c.BotReason, &c.SealedUser,
	}
	n := len(fields)
	if version == clickRecordV1 {
		n-- // no SealedUser
	}
	for _, p := range fields[:n] {
		*p = r.string()
	}
	if r.err == nil && r.off != len(r.s) {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("click record: %w", r.err)
	}
	return c, nil
}

// GetClick reads one click by ID.
func (db *DB) GetClick(id [16]byte) (*Click, error) {
	s, err := db.Snapshot()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.GetClick(id)
}

// GetClick is DB.GetClick as of the snapshot.
func (s *Snapshot) GetClick(id [16]byte) (*Click, error) {
	c, err := getClick(s.txn, id)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get click: %w", err)
	}
	return c, nil
}

func getClick(txn *badger.Txn, id [16]byte) (*Click, error) {
	it, err := txn.Get(clickKey(id))
	if err != nil {
		return nil, err
	}
	var c *Click
	err = it.Value(func(v []byte) error {
		var err error
		c, err = DecodeClick(v)
		return err
	})
	return c, err
}
