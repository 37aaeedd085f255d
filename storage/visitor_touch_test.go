package storage

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// touchOf is what a visitor index entry keeps of c: the click without its request
// details, strings capped as a click record caps them.
func touchOf(c *Click) Click {
	capped := func(s string) string { return s[:min(len(s), maxField)] }
	return Click{
		ID: c.ID, Time: c.Time, Domain: capped(c.Domain), Slug: capped(c.Slug), Campaign: capped(c.Campaign),
		UTM: UTM{
			Source: capped(c.UTM.Source), Medium: capped(c.UTM.Medium), Campaign: capped(c.UTM.Campaign),
			Content: capped(c.UTM.Content), Term: capped(c.UTM.Term),
		},
		Variant: c.Variant,
	}
}

func TestTouchEntryRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 28, 9, 30, 0, 123_456_000, time.UTC)
	idAt := func(ms int64) [16]byte {
		var id [16]byte
		binary.BigEndian.PutUint64(id[:8], uint64(ms)<<16)
		binary.BigEndian.PutUint64(id[8:], 0xfeedface)
		return id
	}
	cases := map[string]func(c *Click){
		"as the redirect writes it": func(*Click) {},
		"with a variant":            func(c *Click) { c.Variant = 3 },
		"every field empty":         func(c *Click) { *c = Click{ID: c.ID, Time: c.Time, Variant: -1} },
		"time before its ID's millisecond": func(c *Click) {
			c.Time = at.Add(-time.Hour)
		},
		"time far past its ID's millisecond": func(c *Click) { c.Time = at.AddDate(300, 0, 0) },
		"a zero ID, a time before 1970": func(c *Click) {
			c.ID = [16]byte{}
			c.Time = time.UnixMicro(-5).UTC()
		},
		"long fields": func(c *Click) {
			c.Domain, c.UTM.Term = strings.Repeat("d", 1000), strings.Repeat("t", maxField+1)
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := &Click{
				ID: idAt(at.UnixMilli()), Time: at, Node: "n1", Domain: "go.example.com", Slug: "spring",
				Campaign: "spring-sale", UTM: UTM{Source: "sms", Medium: "promotional", Campaign: "spring", Content: "a", Term: "t"},
				Variant: -1, Destination: "https://shop.example.com/", VisitorID: "v1", IP: "127.0.0.1",
				UserAgent: "ua", Token: "tok", IdentityKind: "email", IdentityValue: "h",
			}
			mutate(c)
			entry := appendTouchEntry(nil, c)
			got, err := decodeTouchEntry(c.ID, entry)
			if err != nil {
				t.Fatal(err)
			}
			want := touchOf(c)
			if got.Time.Equal(want.Time) {
				got.Time = want.Time
			}
			if *got != want {
				t.Fatalf("decoded\n %+v\nwant\n %+v", *got, want)
			}
			if whole := AppendClick(nil, &want); len(entry) > len(whole)-16 {
				t.Errorf("entry of %d bytes, a whole record of the same touch %d", len(entry), len(whole))
			}
		})
	}
}

func TestDecodeTouchEntryHostile(t *testing.T) {
	var id [16]byte
	good := appendTouchEntry(nil, &Click{ID: id, Time: time.UnixMilli(0), Slug: "s", Variant: -1})
	cases := map[string][]byte{
		"empty":                   {},
		"another tag":             append([]byte{touchEntryV1 + 1}, good[1:]...),
		"the tag alone":           {touchEntryV1},
		"a whole click record":    AppendClick(nil, &Click{ID: id, Slug: "s"}),
		"a kind byte":             {byte(KindHuman)},
		"truncated":               good[:len(good)-1],
		"trailing bytes":          append(append([]byte{}, good...), 0),
		"time varint overflows":   {touchEntryV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"variant out of range":    {touchEntryV1, 0, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0},
		"length past the end":     {touchEntryV1, 0, 0, 5, 'a'},
		"length overflows int":    {touchEntryV1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"one string short":        {touchEntryV1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"string length truncated": {touchEntryV1, 0, 0, 0x80},
	}
	for name, b := range cases {
		if c, err := decodeTouchEntry(id, b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %+v, %v; want ErrCorrupt", name, c, err)
		}
	}
}

func FuzzDecodeTouchEntry(f *testing.F) {
	at := time.Date(2026, 11, 28, 9, 30, 0, 123_456_000, time.UTC)
	var id [16]byte
	binary.BigEndian.PutUint64(id[:8], uint64(at.UnixMilli())<<16)
	f.Add(id[:], appendTouchEntry(nil, &Click{ID: id, Time: at, Slug: "s", UTM: UTM{Source: "sms"}, Variant: 2}))
	f.Add(id[:], AppendClick(nil, testClick(1, "s", false)))
	f.Fuzz(func(t *testing.T, rawID, b []byte) {
		var id [16]byte
		copy(id[:], rawID)
		c, err := decodeTouchEntry(id, b)
		if err != nil {
			return
		}
		again, err := decodeTouchEntry(id, appendTouchEntry(nil, c))
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if !again.Time.Equal(c.Time) {
			t.Fatalf("re-encoded entry decodes to %s, not %s", again.Time, c.Time)
		}
		// The decoder takes strings of any length; the encoder caps them, as it caps a
		// click's.
		again.Time = c.Time
		if want := touchOf(c); *again != want {
			t.Fatalf("re-encoded entry decodes to\n %+v\nnot\n %+v", *again, want)
		}
	})
}
