package links

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/storage"
)

// These fuzz targets complement FuzzValidSlug, FuzzValidateDestination,
// FuzzAppendLocation and FuzzApplySpec in links_fuzz_test.go.

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ValidToken is exactly "1 to 32 of [A-Za-z0-9_-]", for strings and bytes alike, and every
// valid slug up to 32 bytes is a valid token.
func FuzzValidToken(f *testing.F) {
	for _, s := range []string{"", "a", "Ab3-_", "a/b", "é", strings.Repeat("t", 32), strings.Repeat("t", 33), "healthz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := ValidToken(s)
		if ok != ValidToken([]byte(s)) {
			t.Fatalf("string and []byte disagree on %q", s)
		}
		if ok != tokenRE.MatchString(s) {
			t.Fatalf("ValidToken(%q) = %v", s, ok)
		}
		if len(s) <= MaxTokenLen && ValidSlug(s) == nil && !ok {
			t.Fatalf("valid slug %q is not a valid token", s)
		}
	})
}

// Rules.destination either refuses a destination or returns a valid one that is the input
// with its utm_* pairs (and only those) taken out, and warns exactly when it changed it.
func FuzzRulesDestination(f *testing.F) {
	for _, s := range []string{
		"https://x.example/p?a=1&utm_source=x&b=%20&UTM_Medium=y#f", "https://x.example/p?utm%5Fcampaign=z", "https://x.example/?cgid=1",
		"https://bücher.example/straße?q=ü&utm_term=x#ä",
		"https://x.example/p?&&utm_id=1&&#utm_term=x", "https://[2001:db8::1]:8443/p?utm_content=a", "http://x.example?utm_term",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := testRules()
		out, w, err := r.destination(in, "destination")
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "destination" || out != "" || w != nil {
				t.Fatalf("%q: %q %q %v", in, out, w, err)
			}
			return
		}
		if ValidateDestination(in) != nil {
			t.Fatalf("accepted invalid %q", in)
		}
		if err := ValidateDestination(out); err != nil {
			t.Fatalf("%q -> invalid %q: %v", in, out, err)
		}
		// The destination as ASCII first (one warning when that changed it), then without
		// its UTM pairs (one more when that did).
		ref, err := asciiDestination(in)
		if err != nil || !isASCII(out) {
			t.Fatalf("%q -> %q: ASCII form %q, %v", in, out, ref, err)
		}
		warnings := 0
		if ref != in {
			warnings++
		}
		if out != ref {
			warnings++
		}
		if len(w) != warnings || len(out) > len(ref) {
			t.Fatalf("%q -> %q with warnings %q", in, out, w)
		}
		inBase, inQ, _, inFrag := splitDestination(ref)
		outBase, outQ, _, outFrag := splitDestination(out)
		if inBase != outBase || inFrag != outFrag {
			t.Fatalf("%q -> %q: base or fragment changed", in, out)
		}
		nonEmpty := func(q string) []string {
			var ps []string
			for _, p := range strings.Split(q, "&") {
				if p != "" {
					ps = append(ps, p)
				}
			}
			return ps
		}
		var want []string // the input's pairs without utm_*
		for _, p := range nonEmpty(inQ) {
			if queryKey(p) == r.ClickParam {
				t.Fatalf("%q carries the click parameter and was accepted", in)
			}
			if !isUTMKey(queryKey(p)) {
				want = append(want, p)
			}
		}
		got := nonEmpty(outQ)
		for _, p := range got {
			if isUTMKey(queryKey(p)) {
				t.Fatalf("%q -> %q still carries %q", in, out, p)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q -> %q: pairs %q, want %q", in, out, got, want)
		}
	})
}

// refDecodeKey and refEscape restate the forwarding rules independently of location.go.
func refDecodeKey(raw []byte) []byte {
	var out []byte
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && len(raw)-i >= 3 && isHexRef(raw[i+1]) && isHexRef(raw[i+2]):
			v, _ := strconv.ParseUint(string(raw[i+1:i+3]), 16, 8)
			out = append(out, byte(v))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHexRef(c byte) bool { return strings.IndexByte("0123456789abcdefABCDEF", c) >= 0 }

func refEscape(pair []byte) string {
	const keep = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,=:@/?"
	var b strings.Builder
	for i := 0; i < len(pair); i++ {
		c := pair[i]
		if c == '%' && len(pair)-i >= 3 && isHexRef(pair[i+1]) && isHexRef(pair[i+2]) || c != '%' && strings.IndexByte(keep, c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
	}
	return b.String()
}

// AppendLocation against a reference model: for any incoming query, with forwarding on or
// off, on either variant, with or without a click parameter, the Location is the target's
// prefix, then exactly the incoming pairs the link does not own, each escaped where a
// query does not allow the byte, then the click parameter once, then the fragment.
func FuzzAppendLocationForwarding(f *testing.F) {
	mk := func(forward bool) *Link {
		return Compile(&storage.Link{Slug: "ab", ForwardQuery: forward,
			UTM:            storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c"},
			IdentityParams: map[string]string{"rid": "customer_id", "em": "email"},
			Variants: []storage.Variant{
				{Destination: "https://a.example/p?k=1&a+b=2#frag?x=1", Weight: 1, Content: "a"},
				{Destination: "https://b.example/ü?j=%6A", Weight: 1, Content: "b"}}})
	}
	links := [2]*Link{mk(false), mk(true)}
	for _, q := range []string{"a=1", "utm_source=x&cgid=y&UTM_X=1", "CGID=1&CgId=2&x=1;y=2", "%0d%0a=1", "a=<>\"#", "&&&", "k=2&j=2&%6B=3", "rid=1&em=2&RID=3",
		"a=%&b=%4&c=%41", strings.Repeat("k", 65) + "=1", "utm%5Fsource=1&%75tm_x=2", "a+b=1&a%20b=2"} {
		f.Add([]byte(q), true, uint8(0), true)
		f.Add([]byte(q), true, uint8(1), false)
	}
	badByte := regexp.MustCompile(`[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]`)
	f.Fuzz(func(t *testing.T, q []byte, forward bool, variant uint8, click bool) {
		l := links[0]
		if forward {
			l = links[1]
		}
		tg := &l.Targets[int(variant)%len(l.Targets)]
		param, id := "cgid", []byte("01kb5fq2w8s3m4n5p6q7r8s9t0")
		if !click {
			param, id = "", nil
		}
		got := string(l.AppendLocation(nil, tg, q, param, id))

		suffix := tg.Fragment
		if click {
			suffix = "&cgid=" + string(id) + tg.Fragment
		}
		if !strings.HasPrefix(got, tg.Prefix) || !strings.HasSuffix(got, suffix) || len(got) < len(tg.Prefix)+len(suffix) {
			t.Fatalf("%q -> %s", q, got)
		}
		body := got[len(tg.Prefix) : len(got)-len(suffix)]
		if badByte.MatchString(body) {
			t.Fatalf("%q -> forwarded bytes %q", q, body)
		}
		if strings.Contains(got, "&=") || strings.Contains(body, "&&") || body != "" && body[0] != '&' {
			t.Fatalf("%q -> %s: empty pair", q, got)
		}

		// The reference model.
		var want strings.Builder
		if forward {
			for _, pair := range bytes.Split(q, []byte("&")) {
				raw := pair
				if i := bytes.IndexByte(pair, '='); i >= 0 {
					raw = pair[:i]
				}
				k := string(refDecodeKey(raw))
				lk := strings.ToLower(k)
				if k == "" || len(k) > 64 || strings.HasPrefix(lk, "utm_") || k == "rid" || k == "em" ||
					slices.ContainsFunc(tg.Keys, func(d string) bool { return asciiLower(d) == asciiLower(k) }) {
					continue
				}
				if lk == "cgid" { // in any case
					if !click {
						// Forwarded today: see TestAppendLocationWithoutClickParamDropsIncomingClickParam.
						return
					}
					continue
				}
				want.WriteString("&" + refEscape(pair))
			}
		}
		if body != want.String() {
			t.Fatalf("%q (variant %d, forward %v, click %v):\n got %s\nwant %s", q, tg.Variant, forward, click, body, want.String())
		}
		if click {
			n := 0
			for _, pair := range strings.Split(strings.TrimSuffix(got[strings.IndexByte(got, '?')+1:], tg.Fragment), "&") {
				if k, _, _ := strings.Cut(pair, "="); string(refDecodeKey([]byte(k))) == "cgid" {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%q -> %s: %d click parameters", q, got, n)
			}
		}
	})
}

var canonRE = regexp.MustCompile(`^[a-z0-9_]+$`)

// Any JSON, applied as a create or as an update of an A/B link, either fails with a field
// error and no warnings, or leaves a link every part of which is valid and canonical, and
// which compiles into targets that are valid URLs.
func FuzzApplySpecCanonical(f *testing.F) {
	for _, js := range []string{
		`{"destination":"https://x.example/?utm_source=a&k=1#f","utm":{"medium":"Promo","campaign":"Spring Sale","content":"Big Banner","term":"Rain Boots"}}`,
		`{"utm":{"medium":"promotional","campaign":"c"},"variants":[{"destination":"https://a.example/","weight":1,"content":"A"},{"destination":"https://b.example/?utm_content=x","weight":2}]}`,
		`{"slug":"s","domain":"Go.Brand.com","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"},"identity_params":{"rid":"customer_id"},"max_clicks":3,"expires_at":"2099-01-01T00:00:00Z","status":"paused","campaign":" Q2 "}`,
		`{"variants":[]}`, `{"utm":{"medium":"welcome","campaign":"ÉTÉ 2026"}}`, `{"destination":"https://y.example/#x","forward_query":false}`,
		`{"identity_params":{}}`, `{"expires_at":""}`,
	} {
		f.Add([]byte(js), false)
		f.Add([]byte(js), true)
	}
	mediums := testRules().UTM.Mediums
	f.Fuzz(func(t *testing.T, js []byte, update bool) {
		var s Spec
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if dec.Decode(&s) != nil {
			return
		}
		r := testRules()
		var l storage.Link
		if update {
			l = storage.Link{Slug: "ab", Destination: "https://a.example/", Status: storage.StatusActive, ForwardQuery: true, Campaign: "c",
				UTM:      storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c"},
				Variants: []storage.Variant{{Destination: "https://a.example/", Weight: 1, Content: "a"}, {Destination: "https://b.example/", Weight: 1, Content: "b"}}}
		}
		w, err := r.Apply(&l, &s, !update)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || w != nil {
				t.Fatalf("%s: %v (%T), warnings %q", js, err, err, w)
			}
			return
		}
		if update && (l.Slug != "ab" || l.Domain != "") {
			t.Fatalf("%s: update moved the link to %q/%q", js, l.Domain, l.Slug)
		}
		if !update && (l.Slug != "" && ValidSlug(l.Slug) != nil || validDomain(l.Domain) != nil) {
			t.Fatalf("%s: slug %q domain %q", js, l.Slug, l.Domain)
		}
		checkDest := func(d string) {
			if err := ValidateDestination(d); err != nil {
				t.Fatalf("%s: destination %q: %v", js, d, err)
			}
			_, q, _, _ := splitDestination(d)
			for _, p := range strings.Split(q, "&") {
				if k := queryKey(p); isUTMKey(k) || q != "" && k == "cgid" {
					t.Fatalf("%s: destination %q keeps %q", js, d, p)
				}
			}
		}
		checkDest(l.Destination)
		u := l.UTM
		if u.Source != "sms" || !slices.Contains(mediums, u.Medium) || !canonRE.MatchString(u.Campaign) ||
			u.Content != "" && !canonRE.MatchString(u.Content) || u.Term != "" && !canonRE.MatchString(u.Term) {
			t.Fatalf("%s: UTM %+v", js, u)
		}
		if l.Campaign == "" || len(l.Campaign) > maxCampaignLen || strings.ContainsFunc(l.Campaign, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("%s: campaign %q", js, l.Campaign)
		}
		if n := len(l.Variants); n == 1 || n > maxVariants {
			t.Fatalf("%s: %d variants", js, n)
		}
		contents := map[string]bool{}
		for _, v := range l.Variants {
			checkDest(v.Destination)
			if v.Weight < 1 || v.Weight > maxWeight || !canonRE.MatchString(v.Content) || contents[v.Content] {
				t.Fatalf("%s: variant %+v", js, v)
			}
			contents[v.Content] = true
		}
		if len(l.IdentityParams) > maxIdentityParam {
			t.Fatalf("%s: %d identity params", js, len(l.IdentityParams))
		}
		for k, kind := range l.IdentityParams {
			if k == "" || len(k) > 64 || isUTMKey(k) || k == "cgid" || !identity.ValidKind(kind) {
				t.Fatalf("%s: identity param %q=%q", js, k, kind)
			}
		}
		if l.MaxClicks < 0 || !slices.Contains([]string{storage.StatusActive, storage.StatusPaused, storage.StatusArchived}, l.Status) {
			t.Fatalf("%s: max_clicks %d status %q", js, l.MaxClicks, l.Status)
		}
		if l.ExpiresAt != nil && l.ExpiresAt.Location().String() != "UTC" {
			t.Fatalf("%s: expires_at %v not UTC", js, l.ExpiresAt)
		}

		if l.Slug == "" {
			l.Slug = "s"
		}
		c := Compile(&l)
		if len(c.Targets) == 0 || c.totalWeight == 0 {
			t.Fatalf("%s: compiled %+v", js, c)
		}
		for i := range c.Targets {
			tg := &c.Targets[i]
			loc := string(c.AppendLocation(nil, tg, []byte("gclid=1&utm_source=x&cgid=y"), "cgid", []byte("ID")))
			u, err := url.Parse(loc)
			if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
				t.Fatalf("%s: Location %q does not parse: %v", js, loc, err)
			}
			q := u.Query()
			if q.Get("utm_source") != "sms" || q.Get("utm_medium") != l.UTM.Medium || q.Get("utm_campaign") != l.UTM.Campaign ||
				len(q["utm_source"]) != 1 || len(q["cgid"]) != 1 || q.Get("cgid") != "ID" {
				t.Fatalf("%s: Location %q query %v", js, loc, q)
			}
		}
		if p := c.Pick([]byte("05121zy3sxeqecpfsd5zcb4wqj")); p != &c.Targets[max(p.Variant, 0)] {
			t.Fatalf("%s: Pick outside the targets", js)
		}
	})
}

// asciiLower lowers ASCII letters only, as the forwarding rules compare names.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
