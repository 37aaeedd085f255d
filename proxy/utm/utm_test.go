package utm

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// ok is a canonical link every case starts from.
var ok = Values{Source: "sms", Medium: "promotional", Campaign: "spring_sale"}

func with(f func(*Values)) Values {
	v := ok
	f(&v)
	return v
}

func TestNormalizeLenient(t *testing.T) {
	p := DefaultPolicy()
	tests := []struct {
		name    string
		in      Values
		want    Values
		changes []Change
	}{
		{"canonical", ok, ok, nil},
		{"all fields canonical",
			Values{"sms", "abandoned_cart", "bf_2026", "variant_a", "shoes"},
			Values{"sms", "abandoned_cart", "bf_2026", "variant_a", "shoes"}, nil},
		{"empty source defaults silently",
			with(func(v *Values) { v.Source = "" }), ok, nil},
		{"source case", with(func(v *Values) { v.Source = "SMS" }), ok,
			[]Change{{"utm.source", "SMS", "sms"}}},
		{"source padded", with(func(v *Values) { v.Source = " Sms " }), ok,
			[]Change{{"utm.source", " Sms ", "sms"}}},
		{"medium case", with(func(v *Values) { v.Medium = "Promotional" }), ok,
			[]Change{{"utm.medium", "Promotional", "promotional"}}},
		{"medium alias", with(func(v *Values) { v.Medium = "promo" }), ok,
			[]Change{{"utm.medium", "promo", "promotional"}}},
		{"medium alias after snake", with(func(v *Values) { v.Medium = " Welcome-Flow " }),
			with(func(v *Values) { v.Medium = "welcome_series" }),
			[]Change{{"utm.medium", " Welcome-Flow ", "welcome_series"}}},
		{"medium hyphenated", with(func(v *Values) { v.Medium = "Abandoned-Cart" }),
			with(func(v *Values) { v.Medium = "abandoned_cart" }),
			[]Change{{"utm.medium", "Abandoned-Cart", "abandoned_cart"}}},
		{"medium without underscores", with(func(v *Values) { v.Medium = "WelcomeSeries" }),
			with(func(v *Values) { v.Medium = "welcome_series" }),
			[]Change{{"utm.medium", "WelcomeSeries", "welcome_series"}}},
		{"campaign", with(func(v *Values) { v.Campaign = "Spring Sale 2026!" }),
			with(func(v *Values) { v.Campaign = "spring_sale_2026" }),
			[]Change{{"utm.campaign", "Spring Sale 2026!", "spring_sale_2026"}}},
		{"content and term", with(func(v *Values) { v.Content = "Variant A"; v.Term = "Red Shoes" }),
			with(func(v *Values) { v.Content = "variant_a"; v.Term = "red_shoes" }),
			[]Change{{"utm.content", "Variant A", "variant_a"}, {"utm.term", "Red Shoes", "red_shoes"}}},
		{"every field, in order",
			Values{"SMS", "Promo", "Black-Friday--VIP", "B", "Été"},
			Values{"sms", "promotional", "black_friday_vip", "b", "ete"},
			[]Change{
				{"utm.source", "SMS", "sms"},
				{"utm.medium", "Promo", "promotional"},
				{"utm.campaign", "Black-Friday--VIP", "black_friday_vip"},
				{"utm.content", "B", "b"},
				{"utm.term", "Été", "ete"},
			}},
		{"campaign at MaxLen", with(func(v *Values) { v.Campaign = strings.Repeat("a", 100) }),
			with(func(v *Values) { v.Campaign = strings.Repeat("a", 100) }), nil},
		{"raw longer than MaxLen that shrinks", with(func(v *Values) { v.Campaign = strings.Repeat("-", 300) + "x" }),
			with(func(v *Values) { v.Campaign = "x" }),
			[]Change{{"utm.campaign", strings.Repeat("-", 300) + "x", "x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changes, err := p.Normalize(tt.in)
			if err != nil {
				t.Fatalf("Normalize(%+v): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("Normalize(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !reflect.DeepEqual(changes, tt.changes) {
				t.Errorf("changes = %+v, want %+v", changes, tt.changes)
			}
		})
	}
}

func TestNormalizeStrict(t *testing.T) {
	p := DefaultPolicy()
	p.Strict = true
	// Canonical input passes unchanged, and an omitted source is not a rewrite.
	for _, in := range []Values{ok, with(func(v *Values) { v.Source = "" }),
		{"sms", "welcome_series", "x", "variant_b", "t"}} {
		got, changes, err := p.Normalize(in)
		if err != nil || changes != nil || got.Source != "sms" || got.Medium != in.Medium {
			t.Errorf("strict Normalize(%+v) = %+v, %v, %v", in, got, changes, err)
		}
	}
	// Each field that lenient mode would rewrite is refused, naming the field and the
	// canonical value to use.
	tests := []struct {
		in        Values
		field     string
		suggested string
	}{
		{with(func(v *Values) { v.Source = "SMS" }), "utm.source", `"sms"`},
		{with(func(v *Values) { v.Source = " sms" }), "utm.source", `"sms"`},
		{with(func(v *Values) { v.Medium = "Promotional" }), "utm.medium", `"promotional"`},
		{with(func(v *Values) { v.Medium = "promo" }), "utm.medium", `"promotional"`},
		{with(func(v *Values) { v.Campaign = "Spring Sale" }), "utm.campaign", `"spring_sale"`},
		{with(func(v *Values) { v.Campaign = "spring-sale" }), "utm.campaign", `"spring_sale"`},
		{with(func(v *Values) { v.Campaign = "_spring" }), "utm.campaign", `"spring"`},
		{with(func(v *Values) { v.Content = "A" }), "utm.content", `"a"`},
		{with(func(v *Values) { v.Term = "red shoes" }), "utm.term", `"red_shoes"`},
	}
	for _, tt := range tests {
		got, changes, err := p.Normalize(tt.in)
		fe := fieldError(t, err)
		if fe == nil {
			t.Errorf("strict Normalize(%+v) accepted: %+v", tt.in, got)
			continue
		}
		if fe.Field != tt.field || !strings.Contains(fe.Message, tt.suggested) || !strings.Contains(fe.Message, "canonical") {
			t.Errorf("strict Normalize(%+v): %v; want field %s suggesting %s", tt.in, err, tt.field, tt.suggested)
		}
		if got != (Values{}) || changes != nil {
			t.Errorf("strict Normalize(%+v) returned a partial result %+v %v", tt.in, got, changes)
		}
	}
}

// fieldError asserts err is nil or a *FieldError and returns it.
func fieldError(t *testing.T, err error) *FieldError {
	t.Helper()
	if err == nil {
		return nil
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FieldError", err, err)
	}
	return fe
}

// TestNormalizeErrors covers input refused in both modes.
func TestNormalizeErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    Values
		field string
		msg   string // a substring of the message
	}{
		{"other source", with(func(v *Values) { v.Source = "email" }), "utm.source", "utm_source is always sms"},
		{"source sms-ish", with(func(v *Values) { v.Source = "s.m.s" }), "utm.source", "always sms"},
		{"medium missing", with(func(v *Values) { v.Medium = "" }), "utm.medium", "required"},
		{"medium unknown", with(func(v *Values) { v.Medium = "newsletter" }), "utm.medium",
			"use one of promotional, transactional, abandoned_cart, welcome_series"},
		{"medium punctuation", with(func(v *Values) { v.Medium = "!!" }), "utm.medium", "no letters or digits"},
		{"campaign missing", with(func(v *Values) { v.Campaign = "" }), "utm.campaign", "required"},
		{"campaign punctuation", with(func(v *Values) { v.Campaign = "?!" }), "utm.campaign", "no letters or digits"},
		{"campaign emoji only", with(func(v *Values) { v.Campaign = "🎉🎉" }), "utm.campaign", "no letters or digits"},
		{"campaign too long", with(func(v *Values) { v.Campaign = strings.Repeat("a", 101) }), "utm.campaign", "at most 100"},
		{"campaign too long after snake", with(func(v *Values) { v.Campaign = strings.Repeat("a ", 60) }), "utm.campaign", "once normalised"},
		{"content punctuation", with(func(v *Values) { v.Content = "--" }), "utm.content", "no letters or digits"},
		{"term spaces", with(func(v *Values) { v.Term = "   " }), "utm.term", "no letters or digits"},
	}
	for _, strict := range []bool{false, true} {
		p := DefaultPolicy()
		p.Strict = strict
		for _, tt := range tests {
			got, changes, err := p.Normalize(tt.in)
			fe := fieldError(t, err)
			if fe == nil {
				t.Errorf("strict=%v %s: accepted as %+v", strict, tt.name, got)
				continue
			}
			if fe.Field != tt.field || !strings.Contains(fe.Message, tt.msg) {
				t.Errorf("strict=%v %s: %v; want %s with %q", strict, tt.name, err, tt.field, tt.msg)
			}
			if got != (Values{}) || changes != nil {
				t.Errorf("strict=%v %s: partial result %+v %v", strict, tt.name, got, changes)
			}
		}
	}
}

func TestNormalizeHostile(t *testing.T) {
	big := strings.Repeat("a", 10<<10)
	hostile := []struct {
		name, value, msg string
	}{
		{"NUL", "spring\x00sale", "control character (U+0000)"},
		{"CR", "spring\rsale", "control character"},
		{"LF", "spring\nsale", "control character"},
		{"CRLF injection", "x\r\nSet-Cookie: a=b", "control character"},
		{"TAB", "spring\tsale", "control character (U+0009)"},
		{"DEL", "spring\x7fsale", "control character"},
		{"C1 control", "spring\u0085sale", "control character (U+0085)"},
		{"ESC", "\x1b[31mred", "control character"},
		{"invalid UTF-8", "spring\xffsale", "not valid UTF-8"},
		{"truncated UTF-8", "caf\xc3", "not valid UTF-8"},
		{"overlong encoding", "\xc0\xaf", "not valid UTF-8"},
		{"surrogate", "\xed\xa0\x80", "not valid UTF-8"},
		{"10 KB", big, "at most 400"},
		{"10 KB of separators", strings.Repeat("-", 10<<10), "at most 400"},
		{"10 KB of emoji", strings.Repeat("🔥", 2500), "at most 400"},
		{"only punctuation", "!@#$%^&*()", "no letters or digits"},
		{"only spaces", "     ", "no letters or digits"},
		{"only underscores", "____", "no letters or digits"},
	}
	fields := []struct {
		path string
		set  func(*Values, string)
	}{
		{"utm.source", func(v *Values, s string) { v.Source = s }},
		{"utm.medium", func(v *Values, s string) { v.Medium = s }},
		{"utm.campaign", func(v *Values, s string) { v.Campaign = s }},
		{"utm.content", func(v *Values, s string) { v.Content = s }},
		{"utm.term", func(v *Values, s string) { v.Term = s }},
	}
	for _, strict := range []bool{false, true} {
		p := DefaultPolicy()
		p.Strict = strict
		for _, h := range hostile {
			for _, f := range fields {
				in := ok
				f.set(&in, h.value)
				got, changes, err := p.Normalize(in)
				fe := fieldError(t, err)
				if fe == nil {
					t.Errorf("strict=%v %s in %s: accepted as %+v", strict, h.name, f.path, got)
					continue
				}
				if fe.Field != f.path {
					t.Errorf("strict=%v %s in %s: error names %s: %v", strict, h.name, f.path, fe.Field, err)
				}
				// The source check is "is it sms", so its message differs for benign junk.
				if f.path != "utm.source" || strings.Contains(h.msg, "control") || strings.Contains(h.msg, "UTF-8") || strings.Contains(h.msg, "at most") {
					if !strings.Contains(fe.Message, h.msg) {
						t.Errorf("strict=%v %s in %s: %q, want it to mention %q", strict, h.name, f.path, fe.Message, h.msg)
					}
				}
				if got != (Values{}) || changes != nil {
					t.Errorf("strict=%v %s in %s: partial result %+v %v", strict, h.name, f.path, got, changes)
				}
				if len(err.Error()) > 300 {
					t.Errorf("%s in %s: error message is %d bytes", h.name, f.path, len(err.Error()))
				}
				if strings.ContainsAny(err.Error(), "\x00\r\n\t\x1b") || !isValidUTF8(err.Error()) {
					t.Errorf("%s in %s: error message carries raw input: %q", h.name, f.path, err.Error())
				}
			}
		}
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\ufffd") == s }

func TestErrorOrder(t *testing.T) {
	// The first bad field in source, medium, campaign, content, term order is reported.
	_, _, err := DefaultPolicy().Normalize(Values{Source: "email", Medium: "nope", Campaign: ""})
	if fe := fieldError(t, err); fe == nil || fe.Field != "utm.source" {
		t.Fatalf("got %v, want the utm.source error", err)
	}
	_, _, err = DefaultPolicy().Normalize(Values{Medium: "promo", Campaign: "", Term: "\x00"})
	if fe := fieldError(t, err); fe == nil || fe.Field != "utm.campaign" {
		t.Fatalf("got %v, want the utm.campaign error", err)
	}
}

func TestFieldError(t *testing.T) {
	_, _, err := DefaultPolicy().Normalize(with(func(v *Values) { v.Campaign = "" }))
	if got, want := err.Error(), "utm.campaign: campaign is required, e.g. spring_sale_2026"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	_, _, err = DefaultPolicy().Normalize(with(func(v *Values) { v.Source = strings.Repeat("x", 300) }))
	if len(err.Error()) > 150 || !strings.Contains(err.Error(), "…") {
		t.Errorf("long value not shortened in %q", err)
	}
}

func TestAliases(t *testing.T) {
	p := DefaultPolicy()
	tests := map[string]string{
		"promo": "promotional", "Promotion": "promotional", "MARKETING": "promotional",
		"promos": "promotional", "Promotional SMS": "promotional",
		"transaction": "transactional", "transactional_sms": "transactional", "Transactional-SMS": "transactional",
		"cart": "abandoned_cart", "abandoned": "abandoned_cart", "AbandonedCart": "abandoned_cart",
		"cart_abandonment": "abandoned_cart", "Cart Abandonment": "abandoned_cart", "abandoned carts": "abandoned_cart",
		"welcome": "welcome_series", "welcome_flow": "welcome_series", "Onboarding": "welcome_series",
		"welcome series": "welcome_series",
	}
	for in, want := range tests {
		got, _, err := p.Normalize(with(func(v *Values) { v.Medium = in }))
		if err != nil || got.Medium != want {
			t.Errorf("medium %q = %q, %v; want %q", in, got.Medium, err, want)
		}
	}
	// Every default alias is a Snake-form key pointing at a default medium; a key that is
	// not in Snake form could never be looked up.
	for k, v := range defaultAliases {
		if Snake(k) != k || !contains(defaultMediums[:], v) {
			t.Errorf("default alias %q → %q is unreachable or dangling", k, v)
		}
		if contains(defaultMediums[:], k) {
			t.Errorf("default alias %q shadows a medium", k)
		}
	}
}

func TestConfigurableMediums(t *testing.T) {
	p := DefaultPolicy()
	p.Mediums = []string{"promotional", "back_in_stock", "promo"}
	tests := []struct {
		in, want string // want "" means rejected
	}{
		{"promotional", "promotional"},
		{"Back In Stock", "back_in_stock"},
		{"backinstock", "back_in_stock"},
		{"promo", "promo"},           // in the list: the list wins over the alias
		{"promotion", "promotional"}, // alias still applies
		{"transactional", ""},        // a default medium, but not in this list
		{"cart", ""},                 // alias onto a medium not in this list
		{"welcome_series", ""},
	}
	for _, tt := range tests {
		got, _, err := p.Normalize(with(func(v *Values) { v.Medium = tt.in }))
		if tt.want == "" {
			fe := fieldError(t, err)
			if fe == nil || fe.Field != "utm.medium" || !strings.Contains(fe.Message, "promotional, back_in_stock, promo") {
				t.Errorf("medium %q with custom list: %+v, %v; want a utm.medium error listing the mediums", tt.in, got, err)
			}
			continue
		}
		if err != nil || got.Medium != tt.want {
			t.Errorf("medium %q with custom list = %q, %v; want %q", tt.in, got.Medium, err, tt.want)
		}
	}

	// Custom aliases replace the defaults; an empty map means none at all.
	p.Aliases = map[string]string{"bis": "back_in_stock"}
	if got, _, err := p.Normalize(with(func(v *Values) { v.Medium = "BIS" })); err != nil || got.Medium != "back_in_stock" {
		t.Errorf("custom alias: %+v, %v", got, err)
	}
	if _, _, err := p.Normalize(with(func(v *Values) { v.Medium = "promotion" })); err == nil {
		t.Error("default alias applied although Aliases was replaced")
	}
	p.Aliases = map[string]string{}
	if _, _, err := p.Normalize(with(func(v *Values) { v.Medium = "bis" })); err == nil {
		t.Error("alias applied with an empty alias map")
	}

	// A non-canonical list entry can never be produced, which keeps output canonical.
	p = Policy{Mediums: []string{"Promo Blast"}, Aliases: map[string]string{"blast": "Promo Blast"}}
	for _, in := range []string{"Promo Blast", "promo_blast", "blast"} {
		if got, _, err := p.Normalize(with(func(v *Values) { v.Medium = in })); err == nil {
			t.Errorf("non-canonical medium entry produced %+v", got)
		}
	}
}

func TestZeroPolicy(t *testing.T) {
	var p Policy
	got, changes, err := p.Normalize(Values{Medium: "Promo", Campaign: "X"})
	want := Values{Source: "sms", Medium: "promotional", Campaign: "x"}
	if err != nil || got != want || len(changes) != 2 {
		t.Errorf("zero Policy: %+v, %v, %v", got, changes, err)
	}
	if _, _, err := p.Normalize(Values{Medium: "promo", Campaign: strings.Repeat("a", 101)}); err == nil {
		t.Error("zero Policy did not apply the default MaxLen")
	}
	// MaxLen so large that 4×MaxLen overflows must not wrap round to a negative bound.
	p.MaxLen = int(^uint(0)>>1) / 2
	if _, _, err := p.Normalize(Values{Medium: "promo", Campaign: "a"}); err != nil {
		t.Errorf("huge MaxLen: %v", err)
	}
}

func TestCustomMaxLen(t *testing.T) {
	p := DefaultPolicy()
	p.MaxLen = 10
	if _, _, err := p.Normalize(with(func(v *Values) { v.Campaign = strings.Repeat("a", 10) })); err != nil {
		t.Errorf("10 bytes at MaxLen 10: %v", err)
	}
	if _, _, err := p.Normalize(with(func(v *Values) { v.Campaign = "x"; v.Term = strings.Repeat("a", 11) })); err == nil {
		t.Error("11 bytes accepted at MaxLen 10")
	}
	if _, _, err := p.Normalize(with(func(v *Values) { v.Campaign = "x"; v.Content = strings.Repeat(" ", 40) + "a" })); err == nil || !strings.Contains(err.Error(), "at most 40") {
		t.Errorf("41 raw bytes at MaxLen 10: %v", err)
	}
}

func TestDefaultPolicyIsACopy(t *testing.T) {
	p := DefaultPolicy()
	p.Mediums[0] = "changed"
	p.Aliases["promo"] = "changed"
	q := DefaultPolicy()
	if q.Mediums[0] != "promotional" || q.Aliases["promo"] != "promotional" {
		t.Fatal("DefaultPolicy shares its tables with callers")
	}
	if q.Strict || q.MaxLen != 100 {
		t.Fatalf("DefaultPolicy = %+v", q)
	}
}

func TestJSON(t *testing.T) {
	b, _ := json.Marshal(Values{Source: "sms", Medium: "promotional", Campaign: "x"})
	if got, want := string(b), `{"source":"sms","medium":"promotional","campaign":"x"}`; got != want {
		t.Errorf("Values JSON = %s, want %s", got, want)
	}
	b, _ = json.Marshal(Change{"utm.medium", "promo", "promotional"})
	if got, want := string(b), `{"field":"utm.medium","from":"promo","to":"promotional"}`; got != want {
		t.Errorf("Change JSON = %s, want %s", got, want)
	}
}

func TestParseMediums(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string // a substring of the error; "" means success
	}{
		{"promotional,transactional,abandoned_cart,welcome_series",
			[]string{"promotional", "transactional", "abandoned_cart", "welcome_series"}, ""},
		{"promotional", []string{"promotional"}, ""},
		{" promotional , transactional ", []string{"promotional", "transactional"}, ""},
		{"Promotional,Back In Stock", []string{"promotional", "back_in_stock"}, ""},
		{"Été", []string{"ete"}, ""},
		{"", nil, "no mediums"},
		{"  ", nil, "no mediums"},
		{",", nil, "medium 1 is empty"},
		{"promotional,", nil, "medium 2 is empty"},
		{"a,,b", nil, "medium 2 is empty"},
		{"promotional, !!", nil, "medium 2"},
		{"promotional,Promotional", nil, "duplicates medium 1"},
		{"back-in-stock,back_in_stock", nil, "duplicates"},
		{"a\x00b", nil, "control character"},
		{"a\nb", nil, "control character"},
		{"a\xffb", nil, "UTF-8"},
		{strings.Repeat("a", 101), nil, "at most 100"},
		{strings.Repeat("a,", 64) + "a", nil, "at most 64"},
	}
	for _, tt := range tests {
		got, err := ParseMediums(tt.in)
		if tt.err == "" {
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseMediums(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || got != nil {
			t.Errorf("ParseMediums(%q) = %q, %v; want error with %q", tt.in, got, err, tt.err)
		}
	}
	// Whatever ParseMediums returns works as a Policy medium list.
	ms, err := ParseMediums("Back In Stock, Flash Sale")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Mediums: ms, Strict: true}
	for _, m := range ms {
		if _, _, err := p.Normalize(Values{Medium: m, Campaign: "x"}); err != nil {
			t.Errorf("parsed medium %q refused in strict mode: %v", m, err)
		}
	}
}

func TestAppendQuery(t *testing.T) {
	tests := []struct {
		v    Values
		want string
	}{
		{Values{"sms", "promotional", "spring_sale", "", ""},
			"utm_source=sms&utm_medium=promotional&utm_campaign=spring_sale"},
		{Values{"sms", "promotional", "spring_sale", "variant_a", ""},
			"utm_source=sms&utm_medium=promotional&utm_campaign=spring_sale&utm_content=variant_a"},
		{Values{"sms", "promotional", "spring_sale", "", "shoes"},
			"utm_source=sms&utm_medium=promotional&utm_campaign=spring_sale&utm_term=shoes"},
		{Values{"sms", "abandoned_cart", "c", "b", "t"},
			"utm_source=sms&utm_medium=abandoned_cart&utm_campaign=c&utm_content=b&utm_term=t"},
		// Values that bypassed Normalize are escaped, never injected.
		{Values{"sms", "a&utm_x=1", "x y#z", "é", "100%\r\n"},
			"utm_source=sms&utm_medium=a%26utm_x%3D1&utm_campaign=x%20y%23z&utm_content=%C3%A9&utm_term=100%25%0D%0A"},
		{Values{}, "utm_source=&utm_medium=&utm_campaign="},
	}
	for _, tt := range tests {
		if got := string(tt.v.AppendQuery(nil)); got != tt.want {
			t.Errorf("AppendQuery(%+v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	// It appends to what is there.
	dst := []byte("https://x.example/?a=1&")
	if got := string(tests[0].v.AppendQuery(dst)); got != "https://x.example/?a=1&"+tests[0].want {
		t.Errorf("AppendQuery onto a prefix = %q", got)
	}
	// A buffer with room is reused.
	buf := make([]byte, 0, 256)
	v := Values{"sms", "promotional", "spring_sale", "variant_a", "shoes"}
	if n := testing.AllocsPerRun(100, func() { buf = v.AppendQuery(buf[:0]) }); n != 0 {
		t.Errorf("AppendQuery into a large enough buffer allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = v.AppendQuery(nil) }); n != 1 {
		t.Errorf("AppendQuery(nil) allocates %v times, want 1", n)
	}
}

func TestNormalizeCanonicalDoesNotAllocate(t *testing.T) {
	p := DefaultPolicy()
	v := Values{"sms", "promotional", "spring_sale_2026", "variant_a", "shoes"}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = p.Normalize(v) }); n != 0 {
		t.Errorf("Normalize of canonical values allocates %v times", n)
	}
}
