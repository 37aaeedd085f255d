package utm

import (
	"errors"
	"strings"
	"testing"
)

func FuzzNormalize(f *testing.F) {
	f.Add("sms", "promotional", "spring_sale", "", "", false)
	f.Add("", "Promo", "Spring Sale 2026!", "Variant A", "Red Shoes", false)
	f.Add(" SMS ", "Abandoned-Cart", "Black-Friday--VIP", "b", "Été", true)
	f.Add("email", "newsletter", "", "", "", false)
	f.Add("sms", "welcomeseries", "Mother's Day 🎉", "Straße", "ＳＭＳ", false)
	f.Add("sms", "promo", "x\r\nSet-Cookie: a", "\x00", "\xff", false)
	f.Add("sms", "cart", strings.Repeat("a-", 150), "!!!", "   ", true)
	f.Fuzz(func(t *testing.T, source, medium, campaign, content, term string, strict bool) {
		p := DefaultPolicy()
		p.Strict = strict
		in := Values{source, medium, campaign, content, term}
		out, changes, err := p.Normalize(in)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is %T, not *FieldError", err, err)
			}
			switch fe.Field {
			case "utm.source", "utm.medium", "utm.campaign", "utm.content", "utm.term":
			default:
				t.Fatalf("error names field %q", fe.Field)
			}
			if fe.Message == "" {
				t.Fatal("empty error message")
			}
			if out != (Values{}) || changes != nil {
				t.Fatalf("error %v with partial result %+v %v", err, out, changes)
			}
			return
		}

		// Canonical output.
		if out.Source != "sms" || !contains(p.Mediums, out.Medium) {
			t.Fatalf("source/medium %q/%q", out.Source, out.Medium)
		}
		for _, s := range []string{out.Campaign, out.Content, out.Term} {
			if s != "" && (!canonicalRE.MatchString(s) || !isCanonical(s) || len(s) > p.MaxLen) {
				t.Fatalf("non-canonical output %q in %+v", s, out)
			}
		}
		if out.Campaign == "" || (content != "") != (out.Content != "") || (term != "") != (out.Term != "") {
			t.Fatalf("a value appeared or disappeared: %+v → %+v", in, out)
		}

		// Changes describe exactly the rewrites, and strict mode makes none.
		if strict && changes != nil {
			t.Fatalf("strict mode reported changes %v", changes)
		}
		fields := map[string][2]string{
			"utm.source": {source, out.Source}, "utm.medium": {medium, out.Medium},
			"utm.campaign": {campaign, out.Campaign}, "utm.content": {content, out.Content},
			"utm.term": {term, out.Term},
		}
		for _, c := range changes {
			f, ok := fields[c.Field]
			if !ok || c.From != f[0] || c.To != f[1] || c.From == c.To {
				t.Fatalf("change %+v does not match %+v → %+v", c, in, out)
			}
			delete(fields, c.Field) // at most one change per field
		}
		for name, f := range fields {
			if f[0] != f[1] && !(name == "utm.source" && f[0] == "") {
				t.Fatalf("%s rewritten %q → %q without a change", name, f[0], f[1])
			}
		}

		// Fixed point: the output normalises to itself with no changes, strict or not.
		for _, s := range []bool{false, true} {
			p.Strict = s
			again, changes, err := p.Normalize(out)
			if err != nil || again != out || changes != nil {
				t.Fatalf("strict=%v Normalize(%+v) = %+v, %v, %v", s, out, again, changes, err)
			}
		}
		_ = out.AppendQuery(nil)
	})
}
