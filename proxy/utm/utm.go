// Package utm is clickgate's UTM naming policy: the one place that decides what the UTM
// parameters of a short link look like. Analytics tools group by exact string, so "SMS"
// next to "sms", or "promo" next to "promotional", splits one marketer's numbers into
// several rows. Every value is therefore stored in a single canonical form (lowercase
// snake_case, the medium from a fixed list), and the link API either rewrites input into
// that form and says what it changed, or, under a strict policy, refuses it.
//
// Everything here is a pure function of its arguments; the only package state is
// read-only tables.
package utm

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Values are the five UTM parameters of a link.
type Values struct {
	Source   string `json:"source"`
	Medium   string `json:"medium"`
	Campaign string `json:"campaign"`
	Content  string `json:"content,omitempty"` // the A/B variant
	Term     string `json:"term,omitempty"`
}

// Change records one value the policy rewrote, so the API can tell the caller exactly
// what it stored instead of silently storing something else.
type Change struct {
	Field string `json:"field"` // "utm.medium", …
	From  string `json:"from"`
	To    string `json:"to"`
}

// FieldError is a rejected value. Field names the value as the link API's JSON does
// ("utm.campaign") so that a client can point at the offending input; Message says what
// is wrong without repeating the field path.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error returns "field: message".
func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Policy is the naming policy. The zero value is usable and behaves like DefaultPolicy
// in lenient mode: nil Mediums and nil Aliases mean the defaults, MaxLen ≤ 0 means
// DefaultMaxLen. To have no aliases at all, set Aliases to an empty non-nil map.
type Policy struct {
	// Strict rejects any value that is not already canonical instead of rewriting it,
	// for teams that want their tooling fixed rather than silently corrected.
	Strict bool
	// Mediums lists the allowed utm_medium values, canonical snake_case (ParseMediums
	// produces such a list). Entries that are not canonical can never match.
	Mediums []string
	// Aliases maps a snake_case variant onto a medium ("promo" → "promotional"). An
	// alias whose target is not in Mediums is ignored, so a shortened medium list does
	// not need a matching alias table.
	Aliases map[string]string
	// MaxLen bounds a normalised campaign, content or term in bytes; raw input longer
	// than 4×MaxLen is refused before any work is done on it.
	MaxLen int
}

// DefaultMaxLen is the default Policy.MaxLen: enough for any real campaign name while
// keeping redirect URLs, click records and report keys small.
const DefaultMaxLen = 100

// rawFactor bounds raw input relative to MaxLen: generous enough for accents, emoji and
// padding that normalisation removes, small enough that a 10 KB value is refused
// before NFKD and allocation.
const rawFactor = 4

// Source is the only utm_source clickgate emits: every link goes out by SMS.
const Source = "sms"

// defaultMediums is the product's medium list, in the order it is presented.
var defaultMediums = [...]string{"promotional", "transactional", "abandoned_cart", "welcome_series"}

// defaultAliases maps the variants marketers actually type onto the default mediums.
// Keys are in Snake form because lookup happens after Snake; keys that would already
// resolve (e.g. "abandoned-cart", "Welcome Series") need no entry.
var defaultAliases = map[string]string{
	"promo":              "promotional",
	"promos":             "promotional",
	"promotion":          "promotional",
	"promotions":         "promotional",
	"promotional_sms":    "promotional",
	"marketing":          "promotional",
	"marketing_sms":      "promotional",
	"transaction":        "transactional",
	"transactions":       "transactional",
	"transactional_sms":  "transactional",
	"cart":               "abandoned_cart",
	"abandoned":          "abandoned_cart",
	"abandoned_carts":    "abandoned_cart",
	"cart_abandonment":   "abandoned_cart",
	"cart_abandoned":     "abandoned_cart",
	"abandon_cart":       "abandoned_cart",
	"abandoned_checkout": "abandoned_cart",
	"cart_recovery":      "abandoned_cart",
	"welcome":            "welcome_series",
	"welcome_flow":       "welcome_series",
	"welcome_sequence":   "welcome_series",
	"welcome_message":    "welcome_series",
	"onboarding":         "welcome_series",
}

// DefaultPolicy returns the product policy: lenient, the default mediums and aliases,
// MaxLen 100. The slice and map are fresh copies, so callers may modify them.
func DefaultPolicy() Policy {
	aliases := make(map[string]string, len(defaultAliases))
	for k, v := range defaultAliases {
		aliases[k] = v
	}
	return Policy{
		Mediums: append([]string(nil), defaultMediums[:]...),
		Aliases: aliases,
		MaxLen:  DefaultMaxLen,
	}
}

// field names one UTM value: its path in API errors and its noun in messages.
type field struct{ path, noun string }

var (
	fieldSource   = field{"utm.source", "source"}
	fieldMedium   = field{"utm.medium", "medium"}
	fieldCampaign = field{"utm.campaign", "campaign"}
	fieldContent  = field{"utm.content", "content"}
	fieldTerm     = field{"utm.term", "term"}
)

func (f field) errorf(format string, args ...any) *FieldError {
	return &FieldError{Field: f.path, Message: fmt.Sprintf(format, args...)}
}

// Normalize returns the canonical form of v and the changes made to get there, or a
// *FieldError for the first field (in the order source, medium, campaign, content,
// term) that cannot be accepted. On error the Values are zero and the changes nil: a
// caller can never store a half-normalised link.
//
// An empty source becomes "sms" without a reported change (it is the only value there
// is); any other source must normalise to "sms". In strict mode every supplied value
// must already be canonical, and the error names the canonical form to use instead.
func (p Policy) Normalize(v Values) (Values, []Change, error) {
	maxLen := p.MaxLen
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	maxRaw := maxLen * rawFactor
	if maxRaw/rawFactor != maxLen || maxRaw < 0 { // overflow: any length is within bounds
		maxRaw = int(^uint(0) >> 1)
	}

	var out Values
	var changes []Change
	// record keeps a rewrite in lenient mode and refuses it in strict mode.
	record := func(f field, from, to string) *FieldError {
		if from == to {
			return nil
		}
		if p.Strict {
			return f.errorf("%s %s is not in canonical form; use %q", f.noun, quote(from), to)
		}
		changes = append(changes, Change{Field: f.path, From: from, To: to})
		return nil
	}

	// Source.
	if v.Source == "" {
		out.Source = Source
	} else {
		if err := checkRaw(fieldSource, v.Source, maxRaw); err != nil {
			return Values{}, nil, err
		}
		if Snake(v.Source) != Source {
			return Values{}, nil, fieldSource.errorf("utm_source is always %s; got %s", Source, quote(v.Source))
		}
		out.Source = Source
		if err := record(fieldSource, v.Source, Source); err != nil {
			return Values{}, nil, err
		}
	}

	// Medium.
	mediums := p.Mediums
	if len(mediums) == 0 {
		mediums = defaultMediums[:]
	}
	if v.Medium == "" {
		return Values{}, nil, fieldMedium.errorf("medium is required; use one of %s", strings.Join(mediums, ", "))
	}
	if err := checkRaw(fieldMedium, v.Medium, maxRaw); err != nil {
		return Values{}, nil, err
	}
	snake := Snake(v.Medium)
	if snake == "" {
		return Values{}, nil, fieldMedium.errorf("medium %s has no letters or digits; use one of %s", quote(v.Medium), strings.Join(mediums, ", "))
	}
	m, ok := p.resolveMedium(snake, mediums)
	if !ok {
		return Values{}, nil, fieldMedium.errorf("medium %s is not allowed; use one of %s", quote(v.Medium), strings.Join(mediums, ", "))
	}
	out.Medium = m
	if err := record(fieldMedium, v.Medium, m); err != nil {
		return Values{}, nil, err
	}

	// Campaign, content, term: free-form names, snake_cased. Written out rather than
	// looped over pointers into out, which would move out to the heap and cost the
	// canonical (common) case an allocation.
	var err *FieldError
	if out.Campaign, err = normalizeName(fieldCampaign, v.Campaign, true, maxLen, maxRaw); err != nil {
		return Values{}, nil, err
	}
	if err = record(fieldCampaign, v.Campaign, out.Campaign); err != nil {
		return Values{}, nil, err
	}
	if out.Content, err = normalizeName(fieldContent, v.Content, false, maxLen, maxRaw); err != nil {
		return Values{}, nil, err
	}
	if err = record(fieldContent, v.Content, out.Content); err != nil {
		return Values{}, nil, err
	}
	if out.Term, err = normalizeName(fieldTerm, v.Term, false, maxLen, maxRaw); err != nil {
		return Values{}, nil, err
	}
	if err = record(fieldTerm, v.Term, out.Term); err != nil {
		return Values{}, nil, err
	}
	return out, changes, nil
}

// normalizeName snake_cases a campaign, content or term. An empty optional value stays
// empty; an empty required one, or one with nothing left after Snake, is an error.
func normalizeName(f field, in string, required bool, maxLen, maxRaw int) (string, *FieldError) {
	if in == "" {
		if required {
			return "", f.errorf("%s is required, e.g. spring_sale_2026", f.noun)
		}
		return "", nil
	}
	if err := checkRaw(f, in, maxRaw); err != nil {
		return "", err
	}
	s := Snake(in)
	if s == "" {
		// Dropping the value would silently change the link (an A/B variant would lose
		// its label); the caller should omit it or give a real name.
		return "", f.errorf("%s %s has no letters or digits", f.noun, quote(in))
	}
	if len(s) > maxLen {
		return "", f.errorf("%s is %d bytes once normalised; at most %d are allowed", f.noun, len(s), maxLen)
	}
	return s, nil
}

// resolveMedium maps a Snake'd medium onto the allowed list: exact match first (so a
// list that itself contains "promo" keeps it), then the alias table, then a match that
// ignores underscores ("welcomeseries", "abandonedcart", or "backinstock" for a custom
// "back_in_stock"). Only canonical list entries can be returned, which keeps Normalize's
// output a fixed point.
func (p Policy) resolveMedium(s string, mediums []string) (string, bool) {
	if contains(mediums, s) {
		return s, true
	}
	aliases := p.Aliases
	if aliases == nil {
		aliases = defaultAliases
	}
	if t, ok := aliases[s]; ok && contains(mediums, t) {
		return t, true
	}
	for _, m := range mediums {
		if isCanonical(m) && equalIgnoringUnderscores(m, s) {
			return m, true
		}
	}
	return "", false
}

// contains reports whether the canonical s is in list.
func contains(list []string, s string) bool {
	if !isCanonical(s) {
		return false
	}
	for _, m := range list {
		if m == s {
			return true
		}
	}
	return false
}

func equalIgnoringUnderscores(a, b string) bool {
	i, j := 0, 0
	for {
		for i < len(a) && a[i] == '_' {
			i++
		}
		for j < len(b) && b[j] == '_' {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		if a[i] != b[j] {
			return false
		}
		i++
		j++
	}
}

// checkRaw refuses input no normalisation should be asked to repair: oversized values
// (bounded before any allocation), invalid UTF-8, and control characters. Snake would
// turn a CR, LF or NUL into '_', but such bytes in a link request mean a broken or
// hostile client, and accepting them would hide header-injection attempts behind a
// "normalised" warning.
func checkRaw(f field, s string, maxRaw int) *FieldError {
	if len(s) > maxRaw {
		return f.errorf("%s is %d bytes; at most %d are accepted", f.noun, len(s), maxRaw)
	}
	if !utf8.ValidString(s) {
		return f.errorf("%s is not valid UTF-8", f.noun)
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return f.errorf("%s contains a control character (%U)", f.noun, r)
		}
	}
	return nil
}

// quote quotes s for an error message, shortened so that a long value cannot bloat API
// responses and logs. strconv.Quote escapes anything unprintable.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// maxMediums bounds ParseMediums: a medium list is a handful of channels, and a long one
// is a configuration mistake.
const maxMediums = 64

// ParseMediums parses a comma-separated medium list, as given in CLICKGATE_UTM_MEDIUMS,
// into canonical mediums. Entries are trimmed and snake_cased ("Abandoned Cart" →
// "abandoned_cart"), since configuration is typed by people too; empty entries, entries
// with no letters or digits, control characters, entries longer than DefaultMaxLen and
// duplicates (after normalisation) are errors, because each would make the allowed list
// differ from what its author meant.
func ParseMediums(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("no mediums given; list at least one, e.g. %s", strings.Join(defaultMediums[:], ","))
	}
	if n := strings.Count(s, ",") + 1; n > maxMediums {
		return nil, fmt.Errorf("%d mediums given; at most %d are allowed", n, maxMediums)
	}
	var out []string
	for i, part := range strings.Split(s, ",") {
		raw := strings.TrimSpace(part)
		if raw == "" {
			return nil, fmt.Errorf("medium %d is empty (stray comma?)", i+1)
		}
		if err := checkRaw(field{noun: "medium " + strconv.Itoa(i+1)}, raw, DefaultMaxLen); err != nil {
			return nil, fmt.Errorf("%s", err.Message)
		}
		m := Snake(raw)
		if m == "" {
			return nil, fmt.Errorf("medium %d (%s) has no letters or digits", i+1, quote(raw))
		}
		for j, prev := range out {
			if prev == m {
				return nil, fmt.Errorf("medium %d (%s) duplicates medium %d (%q)", i+1, quote(raw), j+1, prev)
			}
		}
		out = append(out, m)
	}
	return out, nil
}
