package utm

import (
	"regexp"
	"strings"
	"testing"
)

// canonicalRE is what every stored UTM value must look like.
var canonicalRE = regexp.MustCompile(`^[a-z0-9_]+$`)

func TestSnake(t *testing.T) {
	tests := []struct{ in, want string }{
		// Already canonical: returned as is.
		{"spring_sale", "spring_sale"},
		{"a", "a"},
		{"2026", "2026"},
		// Case.
		{"SMS", "sms"},
		{"Spring", "spring"},
		{"SpringSale", "springsale"}, // no camelCase splitting: "SpringSale" and "springsale" must agree
		// Spaces, hyphens, dots, repeated separators.
		{"Spring Sale 2026!", "spring_sale_2026"},
		{"Black-Friday--VIP", "black_friday_vip"},
		{"  padded  ", "padded"},
		{"v1.2.3", "v1_2_3"},
		{"a   b", "a_b"},
		{"a__b", "a_b"},
		{"a_-_.b", "a_b"},
		{"a/b\\c", "a_b_c"},
		{"utm+term%20x", "utm_term_20x"},
		// Leading and trailing junk.
		{"__x__", "x"},
		{"!!!promo???", "promo"},
		{"--- welcome ---", "welcome"},
		{"#1 deal", "1_deal"},
		// Accents and compatibility forms.
		{"Été Soldes", "ete_soldes"},
		{"Crème Brûlée", "creme_brulee"},
		{"Año Nuevo", "ano_nuevo"},
		{"Ärger Über Öl", "arger_uber_ol"},
		{"İstanbul", "istanbul"},
		{"ＳＭＳ", "sms"},    // full-width
		{"ﬁnal", "final"}, // ligature
		{"x²", "x2"},
		{"e\u0301te\u0301", "ete"}, // already decomposed
		// Letters NFKD does not decompose.
		{"Straße", "strasse"},
		{"Ærø", "aero"},
		{"Łódź", "lodz"},
		{"Œuvre", "oeuvre"},
		{"Þór", "thor"},
		// Apostrophes join rather than split.
		{"Mother's Day", "mothers_day"},
		{"Mother’s Day", "mothers_day"},
		{"'quoted'", "quoted"},
		// Emoji and other scripts are separators.
		{"🔥 Hot Deals 🔥", "hot_deals"},
		{"sale🎉2026", "sale_2026"},
		{"👍🏽", ""},
		{"распродажа", ""},
		{"sale 特卖 2026", "sale_2026"},
		// Nothing left.
		{"", ""},
		{"   ", ""},
		{"!!!", ""},
		{"_", ""},
		// Invalid UTF-8 is a separator, never a panic.
		{"a\xffb", "a_b"},
		{"\xc3", ""},
	}
	for _, tt := range tests {
		got := Snake(tt.in)
		if got != tt.want {
			t.Errorf("Snake(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if again := Snake(got); again != got {
			t.Errorf("Snake(Snake(%q)) = %q, not a fixed point", tt.in, again)
		}
	}
}

func TestSnakeCanonicalDoesNotAllocate(t *testing.T) {
	s := "spring_sale_2026"
	if n := testing.AllocsPerRun(100, func() { _ = Snake(s) }); n != 0 {
		t.Errorf("Snake of a canonical value allocates %v times", n)
	}
}

func TestIsCanonical(t *testing.T) {
	for _, s := range []string{"a", "a_b", "abc123", "1"} {
		if !isCanonical(s) {
			t.Errorf("isCanonical(%q) = false", s)
		}
	}
	for _, s := range []string{"", "_", "_a", "a_", "a__b", "A", "a-b", "a b", "é"} {
		if isCanonical(s) {
			t.Errorf("isCanonical(%q) = true", s)
		}
	}
}

func FuzzSnake(f *testing.F) {
	for _, s := range []string{
		"", "sms", "Spring Sale 2026!", "Black-Friday--VIP", "Été", "Straße", "Mother's Day",
		"🔥", "a\xffb", "\x00\r\n", "ＳＭＳ", "ﬁ", "e\u0301", "\u0301", "_a_", strings.Repeat("a-", 50),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Snake(s)
		if got != "" && !canonicalRE.MatchString(got) {
			t.Fatalf("Snake(%q) = %q, not [a-z0-9_]", s, got)
		}
		if got != "" && !isCanonical(got) {
			t.Fatalf("Snake(%q) = %q has leading, trailing or doubled '_'", s, got)
		}
		if again := Snake(got); again != got {
			t.Fatalf("Snake(%q) = %q, but Snake of that = %q", s, got, again)
		}
		if isCanonical(s) && got != s {
			t.Fatalf("canonical %q changed to %q", s, got)
		}
	})
}
