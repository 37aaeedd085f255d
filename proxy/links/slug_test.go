package links

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/utm"
	"github.com/clickgate/clickgate/storage"
)

// Helpers shared by the table tests of this package (slug_test.go, destination_test.go,
// link_test.go, location_test.go, index_test.go, fuzz_test.go).

// testRules are the product rules: the default UTM policy and the "cgid" click parameter.
func testRules() *Rules { return &Rules{UTM: utm.DefaultPolicy(), ClickParam: "cgid"} }

// openTestDB opens a throwaway store, closed when the test ends.
func openTestDB(tb testing.TB) *storage.DB {
	tb.Helper()
	db, err := storage.Open(storage.Options{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// seededVisitors returns n visitor IDs in their cookie text form, drawn from a fixed seed
// so distribution tests are stable.
func seededVisitors(n int, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([][]byte, n)
	for i := range out {
		var v ids.VisitorID
		binary.LittleEndian.PutUint64(v[0:8], rng.Uint64())
		binary.LittleEndian.PutUint64(v[8:16], rng.Uint64())
		v[0] &= 0x07 // as ids.NewVisitorID does
		out[i] = v.Append(nil)
	}
	return out
}

func TestValidSlugRejectsHostileInput(t *testing.T) {
	cases := []struct {
		name, slug, why string // why: a word the error must contain
	}{
		{"empty", "", "empty"},
		{"65 bytes", strings.Repeat("a", MaxSlugLen+1), "longer"},
		{"1000 bytes", strings.Repeat("a", 1000), "longer"},
		{"slash", "a/b", "may only contain"},
		{"leading slash", "/ab", "may only contain"},
		{"dot", "a.b", "may only contain"},
		{"dot dot", "..", "may only contain"},
		{"percent", "a%b", "may only contain"},
		{"percent-encoded slash", "a%2Fb", "may only contain"},
		{"unicode letter", "ünï", "may only contain"},
		{"fullwidth a", "\uff41", "may only contain"},
		{"NUL", "a\x00b", "may only contain"},
		{"CRLF", "a\r\nb", "may only contain"},
		{"LF", "a\n", "may only contain"},
		{"TAB", "a\tb", "may only contain"},
		{"space", "a b", "may only contain"},
		{"question mark", "a?b", "may only contain"},
		{"hash", "a#b", "may only contain"},
		{"plus", "a+b", "may only contain"},
		{"tilde", "a~b", "may only contain"},
		{"backslash", `a\b`, "may only contain"},
		{"invalid UTF-8", "a\xffb", "may only contain"},
		{"reserved healthz", "healthz", "reserved"},
		{"reserved HEALTHZ", "HEALTHZ", "reserved"},
		{"reserved HealthZ", "HealthZ", "reserved"},
		{"reserved readyz", "ReadyZ", "reserved"},
		{"reserved metrics", "mEtRiCs", "reserved"},
		{"reserved v1", "V1", "reserved"},
		{"reserved api", "API", "reserved"},
		{"reserved ui", "Ui", "reserved"},
		// These contain '.', so the character check refuses them first.
		{"reserved robots.txt", "Robots.TXT", "may only contain"},
		{"reserved favicon.ico", "favicon.ico", "may only contain"},
		{"reserved .well-known", ".well-known", "may only contain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidSlug(c.slug)
			if err == nil {
				t.Fatalf("ValidSlug(%q) accepted", c.slug)
			}
			if !strings.Contains(err.Error(), c.why) {
				t.Fatalf("ValidSlug(%q) = %v, want an error about %q", c.slug, err, c.why)
			}
		})
	}
}

func TestValidSlugAccepts(t *testing.T) {
	for _, s := range []string{"a", "Z", "0", "-", "_", "spring-sale_2026", "SpringSale", strings.Repeat("x", MaxSlugLen),
		"healthz2", "v2", "apis", "ui-", "_api", "metrics_"} {
		if err := ValidSlug(s); err != nil {
			t.Errorf("ValidSlug(%q): %v", s, err)
		}
	}
}

func TestValidToken(t *testing.T) {
	bad := []string{"", strings.Repeat("t", MaxTokenLen+1), "a/b", "a.b", "a%41", "é", "a\x00", "a\r\n", "a b", "a+b", "a?b", "a#b", "\xff"}
	for _, s := range bad {
		if ValidToken(s) || ValidToken([]byte(s)) {
			t.Errorf("ValidToken(%q) accepted", s)
		}
	}
	good := []string{"a", "-", "_", strings.Repeat("Z", MaxTokenLen), "Ab3-_x", NewToken()}
	for _, s := range good {
		if !ValidToken(s) || !ValidToken([]byte(s)) {
			t.Errorf("ValidToken(%q) refused", s)
		}
	}
}

func TestUnambiguousAlphabet(t *testing.T) {
	// Digits 2-9, a-z without l, A-Z without I and O: 57 characters. (The comments in
	// slug.go say 56; the sampling uses len(unambiguous), so it is unbiased either way.)
	var want []byte
	for c := byte('0'); c <= 'z'; c++ {
		if slugByte(c) && c != '-' && c != '_' && strings.IndexByte("0O1lI", c) < 0 {
			want = append(want, c)
		}
	}
	if len(want) != 57 {
		t.Fatalf("test bug: expected alphabet %s", want)
	}
	if len(unambiguous) != len(want) {
		t.Fatalf("alphabet has %d characters, want %d (%s)", len(unambiguous), len(want), want)
	}
	seen := map[byte]bool{}
	for i := 0; i < len(unambiguous); i++ {
		c := unambiguous[i]
		if seen[c] || strings.IndexByte("0O1lI", c) >= 0 || !slugByte(c) {
			t.Fatalf("alphabet character %q is duplicated, ambiguous or not a slug byte", c)
		}
		seen[c] = true
	}
}

// TestNewSlugAndToken draws 100,000 slugs and 100,000 tokens: right length, only the
// unambiguous alphabet, valid as slug or token, no duplicate, and a roughly uniform
// distribution of characters overall and at every position (a rejection-sampling bug
// would favour the first characters of the alphabet).
func TestNewSlugAndToken(t *testing.T) {
	const n = 100000
	for _, g := range []struct {
		name   string
		new    func() string
		length int
	}{{"slug", NewSlug, GeneratedSlugLen}, {"token", NewToken, TokenLen}} {
		t.Run(g.name, func(t *testing.T) {
			seen := make(map[string]struct{}, n)
			dups := 0
			perPos := make([][256]int, g.length)
			var total [256]int
			for i := 0; i < n; i++ {
				s := g.new()
				if len(s) != g.length {
					t.Fatalf("%q has length %d, want %d", s, len(s), g.length)
				}
				if _, dup := seen[s]; dup {
					// Birthday bound: 100,000 draws from 57^7 collide with probability
					// about 0.26% (57^8: 0.005%); two collisions, about 3e-6.
					if dups++; dups > 1 {
						t.Fatalf("second duplicate %q after %d draws", s, i)
					}
					t.Logf("duplicate %q after %d draws (expected about once in 400 runs for slugs)", s, i)
				}
				seen[s] = struct{}{}
				for j := 0; j < len(s); j++ {
					if strings.IndexByte(unambiguous, s[j]) < 0 {
						t.Fatalf("%q contains %q, outside the alphabet", s, s[j])
					}
					perPos[j][s[j]]++
					total[s[j]]++
				}
				if i < 1000 {
					if err := ValidSlug(s); err != nil {
						t.Fatalf("generated %q is not a valid slug: %v", s, err)
					}
					if !ValidToken(s) {
						t.Fatalf("generated %q is not a valid token", s)
					}
				}
			}
			// Chi-square with 56 degrees of freedom: mean 56, sd 10.6. 150 is far out in
			// the tail (p < 1e-9) for a uniform source; the 5:4 bias on 28 characters that
			// plain b%57 would give scores in the thousands.
			chi := func(counts *[256]int, draws int) float64 {
				want := float64(draws) / float64(len(unambiguous))
				x := 0.0
				for i := 0; i < len(unambiguous); i++ {
					d := float64(counts[unambiguous[i]]) - want
					x += d * d / want
				}
				return x
			}
			for j := range perPos {
				if x := chi(&perPos[j], n); x > 150 {
					t.Errorf("position %d: chi-square %.1f over 56 degrees of freedom", j, x)
				}
			}
			if x := chi(&total, n*g.length); x > 150 {
				t.Errorf("all positions: chi-square %.1f over 56 degrees of freedom", x)
			}
		})
	}
}
