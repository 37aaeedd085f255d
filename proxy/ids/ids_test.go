package ids

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestClickIDRoundTrip(t *testing.T) {
	g := NewClickIDs(NodeNumber("edge-fra-1"))
	now := time.UnixMilli(1_790_000_000_123)
	id := g.New(now)
	s := id.String()
	if len(s) != ClickIDLen {
		t.Fatalf("len %d", len(s))
	}
	got, err := ParseClickID(s)
	if err != nil {
		t.Fatal(err)
	}
	if got != id || !got.Time().Equal(now) || got.Node() != NodeNumber("edge-fra-1") {
		t.Fatalf("round trip: %v %v", got, id)
	}
}

func TestClickIDsSortByTimeAndAreUnique(t *testing.T) {
	g := NewClickIDs(7)
	seen := map[string]bool{}
	var list []string
	base := time.UnixMilli(1_700_000_000_000)
	for i := 0; i < 10000; i++ {
		s := g.New(base.Add(time.Duration(i) * time.Millisecond)).String()
		if seen[s] {
			t.Fatalf("duplicate %s", s)
		}
		seen[s] = true
		list = append(list, s)
	}
	if !sort.StringsAreSorted(list) {
		t.Fatal("text forms do not sort by time")
	}
}

func TestNodeNumber(t *testing.T) {
	if NodeNumber("42") != 42 || NodeNumber("65535") != 65535 {
		t.Fatal("numeric node IDs must be used as is")
	}
	if NodeNumber("edge-a") == NodeNumber("edge-b") {
		t.Fatal("distinct names hashed to the same node")
	}
}

func TestParseClickIDHostile(t *testing.T) {
	valid := NewClickIDs(1).New(time.Now()).String()
	flip := []byte(valid)
	if flip[10] == 'a' {
		flip[10] = 'b'
	} else {
		flip[10] = 'a'
	}
	cases := []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrLength},
		{"short", valid[:25], ErrLength},
		{"long", valid + "0", ErrLength},
		{"uppercase", strings.ToUpper(valid), ErrAlphabet},
		{"ambiguous letter", "u" + valid[1:], ErrAlphabet},
		{"first char overflow", "8" + valid[1:], ErrAlphabet},
		{"percent", "%2" + valid[2:], ErrAlphabet},
		{"crlf", valid[:24] + "\r\n", ErrAlphabet},
		{"nul", valid[:25] + "\x00", ErrAlphabet},
		{"non-ascii", valid[:24] + "é", ErrAlphabet},
		{"one char changed", string(flip), ErrChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseClickID(c.in)
			if !errors.Is(err, c.want) {
				t.Fatalf("ParseClickID(%q) = %v, want %v", c.in, err, c.want)
			}
		})
	}
}

func TestVisitorID(t *testing.T) {
	now := time.Now()
	v := NewVisitorID(now)
	got, err := ParseVisitorID(v.String())
	if err != nil || got != v {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if NewVisitorID(now) == v {
		t.Fatal("visitor IDs issued in the same millisecond repeat")
	}
	if _, err := ParseVisitorID("not-a-visitor-id-at-all!!!"); err == nil {
		t.Fatal("garbage accepted")
	}
	// Later IDs sort after earlier ones, in bytes and in text, so new visitors' index
	// entries are appended rather than inserted.
	later := NewVisitorID(now.Add(time.Millisecond))
	if bytes.Compare(later[:], v[:]) <= 0 || later.String() <= v.String() {
		t.Fatalf("%s issued after %s sorts before it", later, v)
	}
	// A millisecond of IDs differ in their 80 random bits.
	seen := map[VisitorID]bool{}
	for range 10000 {
		id := NewVisitorID(now)
		if seen[id] || !bytes.Equal(id[:6], v[:6]) {
			t.Fatalf("visitor ID %s repeats or does not start with the time", id)
		}
		seen[id] = true
	}
}

func TestNoAllocs(t *testing.T) {
	g := NewClickIDs(1)
	buf := make([]byte, 0, 64)
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { buf = g.New(now).Append(buf[:0]) }); n != 0 {
		t.Fatalf("click ID generation allocates %v", n)
	}
	s := []byte(g.New(now).String())
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseClickID(s) }); n != 0 {
		t.Fatalf("click ID parse allocates %v", n)
	}
}

func FuzzParseClickID(f *testing.F) {
	f.Add(NewClickIDs(3).New(time.Now()).String())
	f.Add("")
	f.Add("zzzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseClickID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("accepted %q but re-encodes as %q", s, id.String())
		}
	})
}

func FuzzParseVisitorID(f *testing.F) {
	f.Add(NewVisitorID(time.Now()).String())
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVisitorID(s)
		if err == nil && v.String() != s {
			t.Fatalf("accepted %q but re-encodes as %q", s, v.String())
		}
	})
}
