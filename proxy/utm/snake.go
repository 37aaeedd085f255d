package utm

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Snake lowercases s and converts it to snake_case, the only form a UTM value is stored
// in, so that "Spring Sale", "spring-sale" and "SPRING_SALE" all report as one campaign:
//
//   - accents are folded (é→e) by NFKD decomposition and dropping the combining marks;
//     NFKD also turns compatibility forms into ASCII (full-width "ＳＭＳ"→"sms", "ﬁ"→"fi");
//   - a few Latin letters NFKD leaves alone are spelled out (ß→ss, æ→ae, ø→o, ł→l, …);
//   - apostrophes are dropped rather than treated as separators, so "Mother's Day" and
//     "Mothers Day" both give "mothers_day" instead of fragmenting into two campaigns;
//   - every run of anything else outside [a-z0-9] (spaces, punctuation, emoji, other
//     scripts, invalid bytes) becomes a single '_', and leading/trailing '_' are trimmed.
//
// The result matches ^[a-z0-9]+(_[a-z0-9]+)*$ or is empty, and Snake(Snake(s)) ==
// Snake(s). Snake never rejects input; Policy.Normalize decides what is acceptable.
func Snake(s string) string {
	// Already-canonical values are the common case on the link API and cost nothing:
	// returning s itself avoids an allocation.
	if isCanonical(s) {
		return s
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			// Decompose only when there is something to decompose: NFKD allocates.
			s = norm.NFKD.String(s)
			break
		}
	}
	b := make([]byte, 0, len(s))
	pending := false // a separator is owed before the next letter or digit
	for _, r := range s {
		var c byte   // one ASCII letter or digit to append, or
		var w string // a spelled-out letter, or neither: a separator
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			c = byte(r)
		case 'A' <= r && r <= 'Z':
			c = byte(r) + ('a' - 'A')
		case isApostrophe(r):
			continue // part of the word, not a boundary
		case r >= utf8.RuneSelf && r != utf8.RuneError && unicode.Is(unicode.M, r):
			// A combining mark left by NFKD (the accent of é): dropped so that the base
			// letter stays joined to its word.
			continue
		default:
			if w = foldLetter(r); w == "" {
				pending = true
				continue
			}
		}
		if pending && len(b) > 0 {
			b = append(b, '_')
		}
		pending = false
		if w != "" {
			b = append(b, w...)
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// isCanonical reports whether s is already what Snake would return for it: non-empty,
// only [a-z0-9_], no leading, trailing or doubled '_'.
func isCanonical(s string) bool {
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '_':
			if s[i-1] == '_' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// isApostrophe covers the apostrophes phones and word processors actually produce:
// ASCII, the typographic right and left single quotes, and the modifier letter.
func isApostrophe(r rune) bool {
	return r == '\'' || r == '\u2019' || r == '\u2018' || r == '\u02bc'
}

// foldLetter spells out Latin letters that have no NFKD decomposition, so that names in
// German, Nordic, Polish, Croatian and Turkish keep their letters instead of becoming
// separators ("Straße" gives "strasse", not "stra_e").
func foldLetter(r rune) string {
	switch r {
	case 'ß', 'ẞ':
		return "ss"
	case 'æ', 'Æ':
		return "ae"
	case 'œ', 'Œ':
		return "oe"
	case 'ø', 'Ø':
		return "o"
	case 'ł', 'Ł':
		return "l"
	case 'đ', 'Đ', 'ð', 'Ð':
		return "d"
	case 'þ', 'Þ':
		return "th"
	case 'ħ', 'Ħ':
		return "h"
	case 'ı':
		return "i"
	}
	return ""
}
