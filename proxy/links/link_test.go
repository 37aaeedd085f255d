package links

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/storage"
)

// decodeSpec decodes a Spec the way the admin API does (unknown fields refused).
func decodeSpec(tb testing.TB, js string) *Spec {
	tb.Helper()
	var s Spec
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		tb.Fatalf("test spec %s: %v", js, err)
	}
	return &s
}

const validUTM = `"utm":{"medium":"promotional","campaign":"spring"}`

// withBase adds a valid destination and utm object to the fields given.
func withBase(fields string) string {
	if fields != "" {
		fields += ","
	}
	return `{` + fields + `"destination":"https://x.example/",` + validUTM + `}`
}

func variantsJSON(vs ...string) string { return `"variants":[` + strings.Join(vs, ",") + `]` }

func variantJSON(dest string, weight int, content string) string {
	return fmt.Sprintf(`{"destination":%q,"weight":%d,"content":%q}`, dest, weight, content)
}

func TestApplyRejectsHostileSpec(t *testing.T) {
	okA := variantJSON("https://a.example/", 1, "a")
	okB := variantJSON("https://b.example/", 1, "b")
	many := make([]string, maxVariants+1)
	for i := range many {
		many[i] = variantJSON("https://a.example/", 1, fmt.Sprintf("v%d", i))
	}
	nineIdentities := `"identity_params":{"a":"email","b":"email","c":"email","d":"email","e":"email","f":"email","g":"email","h":"email","i":"email"}`
	cases := []struct {
		name, spec string
		update     bool // Apply to an existing link instead of a create
		field      string
	}{
		{"slug with slash", withBase(`"slug":"a/b"`), false, "slug"},
		{"slug with dot", withBase(`"slug":"a.b"`), false, "slug"},
		{"slug reserved", withBase(`"slug":"Metrics"`), false, "slug"},
		{"slug too long", withBase(`"slug":"` + strings.Repeat("s", 65) + `"`), false, "slug"},
		{"slug unicode", withBase(`"slug":"\u00fcber"`), false, "slug"},
		{"slug CRLF", withBase(`"slug":"a\r\nb"`), false, "slug"},
		{"domain with space", withBase(`"domain":"evil example"`), false, "domain"},
		{"domain empty label", withBase(`"domain":"x..example"`), false, "domain"},
		{"domain trailing dot", withBase(`"domain":"x.example."`), false, "domain"},
		{"domain underscore", withBase(`"domain":"a_b.example"`), false, "domain"},
		{"domain with port", withBase(`"domain":"x.example:443"`), false, "domain"},
		{"domain with slash", withBase(`"domain":"x.example/p"`), false, "domain"},
		{"domain too long", withBase(`"domain":"` + strings.Repeat("a.", 127) + `ab"`), false, "domain"},
		{"domain label too long", withBase(`"domain":"` + strings.Repeat("a", 64) + `.example"`), false, "domain"},
		{"destination missing", `{` + validUTM + `}`, false, "destination"},
		{"destination empty", `{"destination":"",` + validUTM + `}`, false, "destination"},
		{"destination javascript", `{"destination":"javascript:alert(1)",` + validUTM + `}`, false, "destination"},
		{"destination scheme-relative", `{"destination":"//evil.example/",` + validUTM + `}`, false, "destination"},
		{"destination userinfo", `{"destination":"https://good.example@evil.example/",` + validUTM + `}`, false, "destination"},
		{"destination CRLF", `{"destination":"https://x.example/\r\nSet-Cookie: a=b",` + validUTM + `}`, false, "destination"},
		{"destination with click parameter", `{"destination":"https://x.example/?cgid=1",` + validUTM + `}`, false, "destination"},
		{"destination empty variants", `{"variants":[],` + validUTM + `}`, false, "destination"},
		{"utm missing", `{"destination":"https://x.example/"}`, false, "utm"},
		{"utm source not sms", `{"destination":"https://x.example/","utm":{"source":"email","medium":"promotional","campaign":"c"}}`, false, "utm.source"},
		{"utm medium missing", `{"destination":"https://x.example/","utm":{"campaign":"c"}}`, false, "utm.medium"},
		{"utm medium unknown", `{"destination":"https://x.example/","utm":{"medium":"carrier_pigeon","campaign":"c"}}`, false, "utm.medium"},
		{"utm medium control", `{"destination":"https://x.example/","utm":{"medium":"promo\u0000","campaign":"c"}}`, false, "utm.medium"},
		{"utm campaign missing", `{"destination":"https://x.example/","utm":{"medium":"promotional"}}`, false, "utm.campaign"},
		{"utm campaign no letters", `{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"!!!"}}`, false, "utm.campaign"},
		{"utm campaign CRLF", `{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"a\r\nb"}}`, false, "utm.campaign"},
		{"utm campaign too long", `{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"` + strings.Repeat("c", 101) + `"}}`, false, "utm.campaign"},
		{"utm content no letters", `{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c","content":"---"}}`, false, "utm.content"},
		{"utm term control", `{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c","term":"a\u0007"}}`, false, "utm.term"},
		{"campaign too long", withBase(`"campaign":"` + strings.Repeat("c", 101) + `"`), false, "campaign"},
		{"campaign LF", withBase(`"campaign":"a\nb"`), false, "campaign"},
		{"campaign DEL", withBase(`"campaign":"a\u007fb"`), false, "campaign"},
		{"campaign too long once normalised", withBase(`"campaign":"` + strings.Repeat("㎯", 33) + `"`), false, "campaign"},
		{"one variant", withBase(variantsJSON(okA)), false, "variants"},
		{"27 variants", withBase(variantsJSON(many...)), false, "variants"},
		{"variant weight 0", withBase(variantsJSON(variantJSON("https://a.example/", 0, "a"), okB)), false, "variants[0].weight"},
		{"variant weight negative", withBase(variantsJSON(okA, variantJSON("https://b.example/", -1, "b"))), false, "variants[1].weight"},
		{"variant weight too big", withBase(variantsJSON(okA, variantJSON("https://b.example/", maxWeight+1, "b"))), false, "variants[1].weight"},
		{"variant destination ftp", withBase(variantsJSON(okA, variantJSON("ftp://b.example/", 1, "b"))), false, "variants[1].destination"},
		{"variant destination relative", withBase(variantsJSON(variantJSON("/b", 1, "a"), okB)), false, "variants[0].destination"},
		{"variant destination click parameter", withBase(variantsJSON(okA, variantJSON("https://b.example/?cgid=x", 1, "b"))), false, "variants[1].destination"},
		{"variant content duplicate", withBase(variantsJSON(okA, variantJSON("https://b.example/", 1, "A"))), false, "variants[1].content"},
		{"variant content no letters", withBase(variantsJSON(okA, variantJSON("https://b.example/", 1, "!!"))), false, "variants[1].content"},
		{"identity params too many", withBase(nineIdentities), false, "identity_params"},
		{"identity param empty name", withBase(`"identity_params":{"":"email"}`), false, "identity_params."},
		{"identity param space", withBase(`"identity_params":{"a b":"email"}`), false, "identity_params.a b"},
		{"identity param unicode", withBase(`"identity_params":{"é":"email"}`), false, "identity_params.é"},
		{"identity param too long", withBase(`"identity_params":{"` + strings.Repeat("k", 65) + `":"email"}`), false, "identity_params." + strings.Repeat("k", 65)},
		{"identity param utm", withBase(`"identity_params":{"UTM_Source":"email"}`), false, "identity_params.UTM_Source"},
		{"identity param click", withBase(`"identity_params":{"cgid":"email"}`), false, "identity_params.cgid"},
		{"identity kind unknown", withBase(`"identity_params":{"rid":"ssn"}`), false, "identity_params.rid"},
		{"max_clicks negative", withBase(`"max_clicks":-1`), false, "max_clicks"},
		{"expires_at date only", withBase(`"expires_at":"2099-01-01"`), false, "expires_at"},
		{"expires_at words", withBase(`"expires_at":"tomorrow"`), false, "expires_at"},
		{"expires_at past", withBase(`"expires_at":"2001-01-01T00:00:00Z"`), false, "expires_at"},
		{"status unknown", withBase(`"status":"deleted"`), false, "status"},
		{"status empty", withBase(`"status":""`), false, "status"},
		{"status wrong case", withBase(`"status":"Active"`), false, "status"},
		{"update slug", `{"slug":"other"}`, true, "slug"},
		{"update domain", `{"domain":"x.example"}`, true, "slug"},
		{"update destination", `{"destination":"data:text/html,x"}`, true, "destination"},
		{"update utm", `{"utm":{"medium":"nope","campaign":"c"}}`, true, "utm.medium"},
		{"update status", `{"status":"gone"}`, true, "status"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var l storage.Link
			if c.update {
				l = storage.Link{Slug: "s", Destination: "https://x.example/", Status: storage.StatusActive,
					UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c"}, Campaign: "c"}
			}
			w, err := testRules().Apply(&l, decodeSpec(t, c.spec), !c.update)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v (%T), want a *FieldError for %s", err, err, c.field)
			}
			if fe.Field != c.field {
				t.Fatalf("field %q (%v), want %q", fe.Field, fe, c.field)
			}
			if fe.Message == "" || fe.Error() != fe.Field+": "+fe.Message {
				t.Fatalf("error text %q", fe.Error())
			}
			if w != nil {
				t.Fatalf("warnings %q returned with an error", w)
			}
		})
	}
}

// Rules.Domains restricts where links may be created; no domain stays allowed.
func TestApplyDomainAllowList(t *testing.T) {
	r := testRules()
	r.Domains = []string{"go.brand.com"}
	for _, c := range []struct {
		domain string
		ok     bool
	}{{"go.brand.com", true}, {" GO.Brand.COM ", true}, {"", true}, {"evil.example", false}, {"brand.com", false}} {
		var l storage.Link
		_, err := r.Apply(&l, decodeSpec(t, withBase(fmt.Sprintf(`"domain":%q`, c.domain))), true)
		var fe *FieldError
		switch {
		case c.ok && err != nil:
			t.Errorf("domain %q: %v", c.domain, err)
		case !c.ok && (!errors.As(err, &fe) || fe.Field != "domain"):
			t.Errorf("domain %q: err %v, want a domain error", c.domain, err)
		case c.ok && l.Domain != strings.ToLower(strings.TrimSpace(c.domain)):
			t.Errorf("domain %q stored as %q", c.domain, l.Domain)
		}
	}
}

// A create that fails stores nothing and indexes nothing; an update that fails leaves the
// stored and indexed link exactly as it was.
func TestServiceRejectsHostileSpecWithoutSideEffects(t *testing.T) {
	db := openTestDB(t)
	svc := &Service{DB: db, Index: NewIndex(), Rules: testRules(), PublicURL: "https://go.example"}
	bad := []string{
		withBase(`"slug":"a/b"`),
		withBase(`"slug":"healthz"`),
		`{"slug":"nodest",` + validUTM + `}`,
		`{"slug":"js","destination":"javascript:alert(1)",` + validUTM + `}`,
		`{"slug":"noutm","destination":"https://x.example/"}`,
		withBase(`"slug":"neg","max_clicks":-1`),
		withBase(`"slug":"past","expires_at":"2001-01-01T00:00:00Z"`),
		withBase(`"slug":"idp","identity_params":{"utm_source":"email"}`),
	}
	for _, js := range bad {
		res := svc.CreateMany([]*Spec{decodeSpec(t, js)})
		var fe *FieldError
		if len(res) != 1 || res[0].Created != nil || !errors.As(res[0].Err, &fe) {
			t.Errorf("%s: %+v, want a field error and no link", js, res)
		}
	}
	if n := svc.Index.Len(); n != 0 {
		t.Fatalf("index holds %d links after only bad creates", n)
	}
	stored := 0
	if err := db.ScanLinks("", func(*storage.Link) bool { stored++; return true }); err != nil || stored != 0 {
		t.Fatalf("storage holds %d links after only bad creates (%v)", stored, err)
	}

	// A bulk create keeps the good ones and reports the bad one in its place.
	res := svc.CreateMany([]*Spec{decodeSpec(t, withBase(`"slug":"good"`)), decodeSpec(t, withBase(`"slug":"a.b"`))})
	if res[0].Err != nil || res[1].Err == nil || res[1].Created != nil || svc.Index.Len() != 1 {
		t.Fatalf("bulk create: %+v %+v, %d indexed", res[0], res[1], svc.Index.Len())
	}

	before, err := db.GetLink("", "good")
	if err != nil {
		t.Fatal(err)
	}
	indexed := svc.Index.Get(storage.LinkKey("", "good")).Link()
	for _, js := range []string{
		`{"destination":"https://evil.example@x/"}`,
		`{"destination":"https://new.example/","utm":{"medium":"carrier_pigeon","campaign":"c"}}`,
		`{"destination":"https://new.example/","status":"deleted"}`,
		`{"max_clicks":5,"identity_params":{"cgid":"email"}}`,
		`{"slug":"renamed"}`,
	} {
		if _, err := svc.Update("", "good", decodeSpec(t, js)); err == nil {
			t.Errorf("update %s accepted", js)
		}
	}
	after, err := db.GetLink("", "good")
	if err != nil || !reflect.DeepEqual(before, after) {
		t.Fatalf("stored link changed by failed updates:\n%+v\n%+v", before, after)
	}
	if !reflect.DeepEqual(svc.Index.Get(storage.LinkKey("", "good")).Link(), indexed) {
		t.Fatal("indexed link swapped by a failed update")
	}
}

func TestApplyCreateDefaultsAndNormalisation(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	r := testRules()
	r.Now = func() time.Time { return now }

	var l storage.Link
	w, err := r.Apply(&l, decodeSpec(t, `{"destination":"https://x.example/p?utm_source=old&k=1","utm":{"medium":"Promo","campaign":"Spring Sale","term":"Rain Boots"},`+
		`"identity_params":{"rid":"customer_id"},"max_clicks":10,"expires_at":"2026-06-02T00:00:00+02:00"}`), true)
	if err != nil {
		t.Fatal(err)
	}
	want := storage.Link{
		Destination:    "https://x.example/p?k=1",
		UTM:            storage.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale", Term: "rain_boots"},
		Campaign:       "spring_sale",
		ForwardQuery:   true,
		IdentityParams: map[string]string{"rid": "customer_id"},
		MaxClicks:      10,
		Status:         storage.StatusActive,
	}
	exp := time.Date(2026, 6, 1, 22, 0, 0, 0, time.UTC)
	want.ExpiresAt = &exp
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("got  %+v\nwant %+v", l, want)
	}
	joined := strings.Join(w, "\n")
	for _, s := range []string{"removed utm_source=old", `utm.medium: "Promo" normalised to "promotional"`,
		`utm.campaign: "Spring Sale" normalised to "spring_sale"`, `utm.term: "Rain Boots" normalised to "rain_boots"`} {
		if !strings.Contains(joined, s) {
			t.Errorf("warnings %q lack %q", w, s)
		}
	}

	// Variants only: the destination is the first variant's, contents default and are named.
	l = storage.Link{}
	w, err = r.Apply(&l, decodeSpec(t, `{`+validUTM+`,"forward_query":false,"campaign":" Q2 push ",`+
		variantsJSON(variantJSON("https://a.example/?utm_content=x", 3, ""), variantJSON("https://b.example/", 1, "Big Banner"))+`}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if l.Destination != "https://a.example/" || l.ForwardQuery || l.Campaign != "q2_push" ||
		!reflect.DeepEqual(l.Variants, []storage.Variant{{Destination: "https://a.example/", Weight: 3, Content: "variant_a"},
			{Destination: "https://b.example/", Weight: 1, Content: "big_banner"}}) {
		t.Fatalf("variants link %+v", l)
	}
	joined = strings.Join(w, "\n")
	for _, s := range []string{"variants[0].destination: removed utm_content=x", `variants[0].content: none given, using "variant_a"`,
		`variants[1].content: "Big Banner" normalised to "big_banner"`, `campaign: "Q2 push" normalised to "q2_push"`} {
		if !strings.Contains(joined, s) {
			t.Errorf("warnings %q lack %q", w, s)
		}
	}
}

func TestApplyUpdate(t *testing.T) {
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	base := storage.Link{Slug: "s", Destination: "https://x.example/", Status: storage.StatusActive, ForwardQuery: true,
		UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c"}, Campaign: "c", ExpiresAt: &exp,
		IdentityParams: map[string]string{"rid": "email"}, MaxClicks: 3}
	l := base
	// Only the named fields change; an expired date may be set on update; empty values clear.
	if _, err := testRules().Apply(&l, decodeSpec(t, `{"status":"paused","expires_at":"2001-01-01T00:00:00Z","identity_params":{},"max_clicks":0}`), false); err != nil {
		t.Fatal(err)
	}
	if l.Status != storage.StatusPaused || l.ExpiresAt == nil || l.ExpiresAt.Year() != 2001 || l.IdentityParams != nil || l.MaxClicks != 0 ||
		l.Destination != base.Destination || l.UTM != base.UTM || !l.ForwardQuery {
		t.Fatalf("updated %+v", l)
	}
	if _, err := testRules().Apply(&l, decodeSpec(t, `{"expires_at":""}`), false); err != nil || l.ExpiresAt != nil {
		t.Fatalf("clearing expires_at: %v %v", err, l.ExpiresAt)
	}
	// An empty variant list removes the A/B test.
	l.Variants = []storage.Variant{{Destination: "https://a.example/", Weight: 1, Content: "a"}, {Destination: "https://b.example/", Weight: 1, Content: "b"}}
	if _, err := testRules().Apply(&l, decodeSpec(t, `{"variants":[]}`), false); err != nil || l.Variants != nil {
		t.Fatalf("clearing variants: %v %v", err, l.Variants)
	}
}

func TestCompile(t *testing.T) {
	u := storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c", Content: "k", Term: "t"}
	const q = "utm_source=sms&utm_medium=promotional&utm_campaign=c&utm_content=k&utm_term=t"
	cases := []struct {
		dest, prefix, fragment string
		keys                   []string
	}{
		{"https://x.example", "https://x.example?" + q, "", nil},
		{"https://x.example/p", "https://x.example/p?" + q, "", nil},
		{"https://x.example/p?", "https://x.example/p?" + q, "", nil},
		{"https://x.example/p?k=1&j&%6C=2&a+b=3#f?x=1", "https://x.example/p?k=1&j&%6C=2&a+b=3&" + q, "#f?x=1", []string{"k", "j", "l", "a b"}},
		{"https://x.example/a*b;c!d/%2F/ü?x=%2F#", "https://x.example/a*b;c!d/%2F/ü?x=%2F&" + q, "#", []string{"x"}},
	}
	for _, c := range cases {
		l := Compile(&storage.Link{Slug: "s", Destination: c.dest, UTM: u})
		tg := l.Targets[0]
		if len(l.Targets) != 1 || tg.Prefix != c.prefix || tg.Fragment != c.fragment || !reflect.DeepEqual(tg.Keys, c.keys) || tg.Variant != -1 || tg.UTM != u {
			t.Errorf("%s: %+v", c.dest, tg)
		}
	}

	exp := time.Unix(1700000000, 5)
	l := Compile(&storage.Link{Slug: "ab", UTM: u, Status: storage.StatusPaused, ExpiresAt: &exp, MaxClicks: 7,
		IdentityParams: map[string]string{"rid": "customer_id"},
		Variants:       []storage.Variant{{Destination: "https://a.example/?v=1", Weight: 2, Content: "alpha"}, {Destination: "https://b.example/#b", Weight: 5, Content: "beta"}}})
	if l.Status != Paused || l.ExpiresAt != exp.UnixNano() || l.MaxClicks != 7 || l.totalWeight != 7 || len(l.Targets) != 2 {
		t.Fatalf("compiled %+v", l)
	}
	if !reflect.DeepEqual(l.IdentityParams, []IdentityParam{{Name: "rid", Kind: "customer_id", Source: "param:rid"}}) {
		t.Fatalf("identity params %+v", l.IdentityParams)
	}
	a, b := l.Targets[0], l.Targets[1]
	if a.Prefix != "https://a.example/?v=1&utm_source=sms&utm_medium=promotional&utm_campaign=c&utm_content=alpha&utm_term=t" ||
		a.Variant != 0 || a.UTM.Content != "alpha" || !reflect.DeepEqual(a.Keys, []string{"v"}) {
		t.Fatalf("variant a %+v", a)
	}
	if b.Prefix != "https://b.example/?utm_source=sms&utm_medium=promotional&utm_campaign=c&utm_content=beta&utm_term=t" ||
		b.Fragment != "#b" || b.Variant != 1 || b.Keys != nil {
		t.Fatalf("variant b %+v", b)
	}

	// Gone.
	now := time.Unix(1800000000, 0)
	for _, c := range []struct {
		st   string
		exp  *time.Time
		want string
	}{
		{storage.StatusActive, nil, ""}, {"", nil, ""}, {storage.StatusPaused, nil, "paused"}, {storage.StatusArchived, &exp, "archived"},
		{storage.StatusActive, &exp, "expired"}, {storage.StatusActive, &now, "expired"}, {storage.StatusActive, ptr(now.Add(time.Nanosecond)), ""},
	} {
		if got := Compile(&storage.Link{Slug: "s", Destination: "https://x.example/", Status: c.st, ExpiresAt: c.exp}).Gone(now); got != c.want {
			t.Errorf("status %q expires %v: Gone %q, want %q", c.st, c.exp, got, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func abLink(slug string, weights ...int) *Link {
	vs := make([]storage.Variant, len(weights))
	for i, w := range weights {
		vs[i] = storage.Variant{Destination: fmt.Sprintf("https://%c.example/", 'a'+i), Weight: w, Content: string(rune('a' + i))}
	}
	return Compile(&storage.Link{Slug: slug, Variants: vs, UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c"}})
}

func TestPickDistribution(t *testing.T) {
	const n = 20000
	visitors := seededVisitors(n, 1)
	cases := []struct {
		name    string
		weights []int
	}{{"80/20", []int{80, 20}}, {"1/1/1", []int{1, 1, 1}}, {"1/1", []int{1, 1}}, {"5/3/2", []int{5, 3, 2}}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := abLink("spring", c.weights...)
			counts := make([]int, len(c.weights))
			for _, v := range visitors {
				p := l.Pick(v)
				if p != l.Pick(v) || p != l.Pick(append([]byte(nil), v...)) {
					t.Fatalf("visitor %s: different variants for the same visitor", v)
				}
				if p != &l.Targets[p.Variant] {
					t.Fatalf("Pick returned a target outside the link")
				}
				counts[p.Variant]++
			}
			total := 0
			for _, w := range c.weights {
				total += w
			}
			for i, w := range c.weights {
				// Binomial(n, p): allow 5 standard deviations.
				p := float64(w) / float64(total)
				mean, sd := n*p, math.Sqrt(n*p*(1-p))
				if d := float64(counts[i]) - mean; d > 5*sd || d < -5*sd {
					t.Errorf("variant %d: %d of %d, want %.0f ± %.0f", i, counts[i], n, mean, 5*sd)
				}
			}
		})
	}

	// A link without variants has one target, whatever the visitor.
	one := Compile(&storage.Link{Slug: "x", Destination: "https://x.example/"})
	for _, v := range [][]byte{nil, {}, []byte("v"), visitors[0]} {
		if one.Pick(v) != &one.Targets[0] {
			t.Fatal("single target not returned")
		}
	}
}

// A visitor's variant on one link says nothing about its variant on another: Pick mixes
// the hash, so A/B tests across links split the audience independently.
func TestPickIndependentAcrossLinks(t *testing.T) {
	const n = 20000
	visitors := seededVisitors(n, 2)
	for _, pair := range [][2]string{{"spring", "summer"}, {"spring", "summer1"}, {"sale-a", "sale-b"}, {"Xk3pQ7r", "m9TzW2a"}} {
		for _, w := range [][]int{{1, 1}, {50, 50}, {1, 1, 1, 1}, {1, 1, 1}, {5, 3, 2}, {80, 20}} {
			a, b := abLink(pair[0], w...), abLink(pair[1], w...)
			agree, want := 0, 0.0
			for _, v := range visitors {
				if a.Pick(v).Variant == b.Pick(v).Variant {
					agree++
				}
			}
			total := 0
			for _, x := range w {
				total += x
			}
			for _, x := range w {
				p := float64(x) / float64(total)
				want += p * p // both links pick the same variant independently
			}
			mean, sd := n*want, math.Sqrt(n*want*(1-want))
			if d := float64(agree) - mean; d > 6*sd || d < -6*sd {
				t.Errorf("slugs %v weights %v: same variant on both links for %d of %d visitors, want %.0f ± %.0f if independent",
					pair, w, agree, n, mean, 6*sd)
			}
		}
	}
}

// A link's report campaign follows its utm_campaign through an update, unless it was
// given apart, which an update of the UTM values leaves alone.
func TestUpdateKeepsTheCampaignWithItsUTM(t *testing.T) {
	r := testRules()
	for _, tc := range []struct {
		create, want string
	}{
		{`{` + validUTM + `,"destination":"https://x.example/"}`, "cyber_monday"},
		{`{` + validUTM + `,"destination":"https://x.example/","campaign":"q4"}`, "q4"},
	} {
		var l storage.Link
		if _, err := r.Apply(&l, decodeSpec(t, tc.create), true); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Apply(&l, decodeSpec(t, `{"utm":{"medium":"promotional","campaign":"Cyber Monday"}}`), false); err != nil {
			t.Fatal(err)
		}
		if l.Campaign != tc.want || l.UTM.Campaign != "cyber_monday" {
			t.Errorf("%s, then utm.campaign Cyber Monday: campaign %q utm %q, want %q", tc.create, l.Campaign, l.UTM.Campaign, tc.want)
		}
	}
}

// A campaign name with letters snake case would drop is kept whole, in one case and one
// Unicode form, so two such campaigns never merge and one never splits.
func TestCampaignNameInOtherScripts(t *testing.T) {
	for in, want := range map[string]string{" Spring Sale ": "spring_sale", "Crème Brûlée": "creme_brulee", "春のセール": "春のセール", " 春 ": "春",
		"Q4 春": "q4 春", "春のセール2026": "春のセール2026", "РАСПРОДАЖА": "распродажа", "Распродажа": "распродажа",
		"cafe\u0301 春": "caf\u00e9 春"} {
		if got := CampaignName(in); got != want {
			t.Errorf("CampaignName(%q) = %q, want %q", in, got, want)
		}
	}
	var l storage.Link
	if _, err := testRules().Apply(&l, decodeSpec(t, `{`+validUTM+`,"destination":"https://x.example/","campaign":"春のセール"}`), true); err != nil || l.Campaign != "春のセール" {
		t.Fatalf("campaign %q, %v", l.Campaign, err)
	}
}

// Archived is for good; paused is the state a link comes back from.
func TestArchivedStaysArchived(t *testing.T) {
	r := testRules()
	var l storage.Link
	if _, err := r.Apply(&l, decodeSpec(t, `{`+validUTM+`,"destination":"https://x.example/"}`), true); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"paused", "active", "archived"} {
		if _, err := r.Apply(&l, decodeSpec(t, `{"status":"`+st+`"}`), false); err != nil || l.Status != st {
			t.Fatalf("to %s: %q, %v", st, l.Status, err)
		}
	}
	for _, st := range []string{"active", "paused"} {
		_, err := r.Apply(&l, decodeSpec(t, `{"status":"`+st+`"}`), false)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "status" || l.Status != "archived" {
			t.Errorf("archived to %s: %v, status %q", st, err, l.Status)
		}
	}
}

// A token drawn that the link already has is drawn again, not a failed send list.
func TestTokenDrawnTwiceIsDrawnAgain(t *testing.T) {
	db := openTestDB(t)
	draws := []string{"tokA1", "tokA1", "tokB2"}
	svc := &Service{DB: db, Index: NewIndex(), Rules: testRules(), PublicURL: "https://go.example", Hasher: identity.NewHasher([]byte("k")), Region: "US",
		newToken: func() string { tok := draws[0]; draws = draws[1:]; return tok }}
	if res := svc.CreateMany([]*Spec{decodeSpec(t, withBase(`"slug":"t"`))}); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	for _, want := range []string{"tokA1", "tokB2"} {
		toks, err := svc.CreateTokens("", "t", []RecipientSpec{{CustomerID: "c-" + want}})
		if err != nil || len(toks) != 1 || toks[0].Token != want {
			t.Fatalf("tokens %v, %v; want %s", toks, err, want)
		}
	}
	if r, err := db.GetRecipient("", "t", "tokA1"); err != nil || r.Value != "c-tokA1" {
		t.Fatalf("the first token's recipient: %+v, %v", r, err)
	}
}
