package links

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/clickgate/clickgate/proxy/utm"
	"github.com/clickgate/clickgate/storage"
)

func rules() *Rules { return &Rules{UTM: utm.DefaultPolicy(), ClickParam: "cgid"} }

func TestValidSlugHostile(t *testing.T) {
	for _, s := range []string{"", strings.Repeat("a", 65), "a/b", "a.b", "a%2f", "ünï", "a b", "a\x00", "a\r\nb",
		"healthz", "HEALTHZ", "Robots.txt", "v1", "api", "metrics", "?x", "#x"} {
		if ValidSlug(s) == nil {
			t.Errorf("ValidSlug(%q) accepted", s)
		}
	}
	for _, s := range []string{"a", "spring-sale_2026", strings.Repeat("Z", 64), "healthz2"} {
		if err := ValidSlug(s); err != nil {
			t.Errorf("ValidSlug(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", strings.Repeat("t", 33), "a/b", "a.b", "é", "a b", "%41"} {
		if ValidToken(s) {
			t.Errorf("ValidToken(%q) accepted", s)
		}
	}
}

func TestValidateDestination(t *testing.T) {
	bad := []string{"", "javascript:alert(1)", "data:text/html,x", "/relative", "//evil.example", "https:/x.example",
		"https:evil.example", "https://good.example@evil.example/", "https://u:p@x.example/", "https://x.example/\r\n",
		"https://x.example/\tx", "https://x.example/\x00", "https://x.example/a b", "https://x.example\\@evil.example",
		"https://x.example/" + strings.Repeat("a", 2049), "https://x.example/\xff", "https://x.example:80a/", "https://",
		"https://:80/", "ftp://x.example/", "HTTPS//x.example", "https://x.example/<script>", "https://x.example/\"q\""}
	for _, d := range bad {
		if ValidateDestination(d) == nil {
			t.Errorf("accepted %q", d)
		}
	}
	good := []string{"https://shop.example.com/p/a*b;c!d?ref=x", "https://x.example/a%2Fb", "https://x.example/café/ürün",
		"https://x.example/p?a=1#frag", "http://x.example:8443/", "https://[2001:db8::1]/p", "HTTPS://X.EXAMPLE/"}
	for _, d := range good {
		if err := ValidateDestination(d); err != nil {
			t.Errorf("refused %q: %v", d, err)
		}
	}
}

func TestDestinationStripsUTMKeepingOtherBytes(t *testing.T) {
	cases := map[string]string{
		"https://x.example/p?a=1&utm_source=x&b=%20&UTM_Medium=y#f": "https://x.example/p?a=1&b=%20#f",
		"https://x.example/p?utm%5Fcampaign=z":                      "https://x.example/p",
		"https://x.example/p?a=1":                                   "https://x.example/p?a=1",
		"https://x.example/p?a=1&&b":                                "https://x.example/p?a=1&&b",
	}
	for in, want := range cases {
		got, w, err := rules().destination(in, "destination")
		if err != nil || got != want {
			t.Errorf("%s -> %q %v, want %q", in, got, err, want)
		}
		if (got != in) != (len(w) == 1) {
			t.Errorf("%s: warnings %v", in, w)
		}
	}
	if _, _, err := rules().destination("https://x.example/?cgid=1", "destination"); err == nil {
		t.Error("a destination carrying the click parameter was accepted")
	}
}

func spec(js string) *Spec {
	var s Spec
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		panic(err)
	}
	return &s
}

func TestApplyHostile(t *testing.T) {
	base := `"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"}`
	cases := map[string]string{
		`{"slug":"a/b",` + base + `}`:                                                               "slug",
		`{"domain":"evil example",` + base + `}`:                                                    "domain",
		`{"domain":"x..example",` + base + `}`:                                                      "domain",
		`{"utm":{"medium":"promotional","campaign":"c"}}`:                                           "destination",
		`{"destination":"https://x.example/"}`:                                                      "utm",
		`{"destination":"https://x.example/","utm":{"campaign":"c"}}`:                               "utm.medium",
		`{"destination":"https://x.example/","utm":{"medium":"promo"}}`:                             "utm.campaign",
		`{"max_clicks":-5,` + base + `}`:                                                            "max_clicks",
		`{"expires_at":"2020-01-01",` + base + `}`:                                                  "expires_at",
		`{"status":"deleted",` + base + `}`:                                                         "status",
		`{"campaign":"` + strings.Repeat("c", 101) + `",` + base + `}`:                              "campaign",
		`{"campaign":"a\nb",` + base + `}`:                                                          "campaign",
		`{"identity_params":{"rid":"ssn"},` + base + `}`:                                            "identity_params.rid",
		`{"identity_params":{"a b":"email"},` + base + `}`:                                          "identity_params.a b",
		`{"identity_params":{"cgid":"email"},` + base + `}`:                                         "identity_params.cgid",
		`{"variants":[{"destination":"https://a.example/","weight":1,"content":"a"}],` + base + `}`: "variants",
		`{"variants":[{"destination":"https://a.example/","weight":0,"content":"a"},{"destination":"https://b.example/","weight":1,"content":"b"}],` + base + `}`: "variants[0].weight",
		`{"variants":[{"destination":"ftp://a","weight":1,"content":"a"},{"destination":"https://b.example/","weight":1,"content":"b"}],` + base + `}`:            "variants[0].destination",
	}
	for js, field := range cases {
		var l storage.Link
		_, err := rules().Apply(&l, spec(js), true)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: err %v, want field %s", js, err, field)
		}
	}
	var l storage.Link
	if _, err := rules().Apply(&l, spec(`{"slug":"x"}`), false); err == nil {
		t.Error("an update changed the slug")
	}
}

func TestLocation(t *testing.T) {
	r := rules()
	mk := func(dest string, forward bool, idp map[string]string) *Link {
		var l storage.Link
		if _, err := r.Apply(&l, &Spec{Destination: &dest, UTM: &UTMSpec{Medium: "promotional", Campaign: "c"}}, true); err != nil {
			t.Fatal(err)
		}
		l.Slug, l.ForwardQuery, l.IdentityParams = "s", forward, idp
		return Compile(&l)
	}
	const u = "utm_source=sms&utm_medium=promotional&utm_campaign=c"
	cases := []struct {
		dest, query string
		forward     bool
		want        string
	}{
		{"https://x.example/p", "", true, "https://x.example/p?" + u + "&cgid=ID"},
		{"https://x.example/p#f", "a=1", true, "https://x.example/p?" + u + "&a=1&cgid=ID#f"},
		{"https://x.example/p?k=1", "k=2&j=3", true, "https://x.example/p?k=1&" + u + "&j=3&cgid=ID"},
		{"https://x.example/p", "utm_source=x&UTM_MEDIUM=y&utm%5Fcampaign=z&cgid=f&rid=7&ok=1", true, "https://x.example/p?" + u + "&ok=1&cgid=ID"},
		{"https://x.example/p", "a=%&b=%4&c=%41&d=<>\"&e=\x01", true, "https://x.example/p?" + u + "&a=%25&b=%254&c=%41&d=%3C%3E%22&e=%01&cgid=ID"},
		{"https://x.example/p", strings.Repeat("k", 65) + "=1&x=2", true, "https://x.example/p?" + u + "&x=2&cgid=ID"},
		{"https://x.example/p", "a=1", false, "https://x.example/p?" + u + "&cgid=ID"},
		{"https://x.example/p", "&&a=1&&", true, "https://x.example/p?" + u + "&a=1&cgid=ID"},
	}
	for _, c := range cases {
		l := mk(c.dest, c.forward, map[string]string{"rid": "customer_id"})
		got := string(l.AppendLocation(nil, &l.Targets[0], []byte(c.query), "cgid", []byte("ID")))
		if got != c.want {
			t.Errorf("%s + %q:\n got %s\nwant %s", c.dest, c.query, got, c.want)
		}
	}
	// Without a click parameter (a click that could not be stored), nothing dangles.
	l := mk("https://x.example/p#f", true, nil)
	if got := string(l.AppendLocation(nil, &l.Targets[0], nil, "", nil)); got != "https://x.example/p?"+u+"#f" {
		t.Errorf("no click parameter: %s", got)
	}
}

func TestPickWeightsAndStickiness(t *testing.T) {
	l := Compile(&storage.Link{Slug: "ab", Variants: []storage.Variant{
		{Destination: "https://a.example/", Weight: 80, Content: "a"}, {Destination: "https://b.example/", Weight: 20, Content: "b"}}})
	rng := rand.New(rand.NewPCG(1, 2))
	a := 0
	const n = 20000
	for i := 0; i < n; i++ {
		v := []byte(fmt.Sprintf("%026d", rng.Uint64()))
		p := l.Pick(v)
		if p != l.Pick(v) {
			t.Fatal("same visitor, different variant")
		}
		if p.Variant == 0 {
			a++
		}
	}
	// Binomial(20000, 0.8): sd 56.6; ±6 sd.
	if a < 16000-340 || a > 16000+340 {
		t.Fatalf("variant a %d of %d", a, n)
	}
	one := Compile(&storage.Link{Slug: "x", Destination: "https://x.example/"})
	if one.Pick([]byte("v")) != &one.Targets[0] {
		t.Fatal("single target")
	}
}

func TestIndex(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ix := NewIndex()
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://any.example/"}, &storage.Link{Domain: "go.brand.com", Slug: "s", Destination: "https://brand.example/"})
	if e := ix.Lookup([]byte("go.brand.com"), []byte("s")); e == nil || e.Link().Stored.Domain != "go.brand.com" {
		t.Fatal("domain link not preferred")
	}
	if e := ix.Lookup([]byte("other.example"), []byte("s")); e == nil || e.Link().Stored.Domain != "" {
		t.Fatal("no fallback to the link without a domain")
	}
	if ix.Lookup([]byte("x"), []byte("nope")) != nil || ix.Len() != 2 {
		t.Fatal("lookup of a missing slug")
	}
	e := ix.Get(storage.LinkKey("", "s"))
	ix.Put(db, &storage.Link{Slug: "s", Destination: "https://new.example/"})
	if ix.Get(storage.LinkKey("", "s")) != e || e.Link().Stored.Destination != "https://new.example/" || ix.Len() != 2 {
		t.Fatal("an update must swap the link inside the same entry")
	}
	if n := testing.AllocsPerRun(100, func() { ix.Lookup([]byte("go.brand.com"), []byte("s")) }); n != 0 {
		t.Fatalf("Lookup allocates %v", n)
	}
	// max_clicks under concurrency: exactly MaxClicks reservations succeed.
	ix.Put(db, &storage.Link{Slug: "lim", Destination: "https://x.example/", MaxClicks: 1000})
	le := ix.Get(storage.LinkKey("", "lim"))
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if le.Reserve(le.Link()) {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1000 {
		t.Fatalf("%d reservations for max_clicks 1000", ok.Load())
	}
}

func TestRandomSlugsAndTokens(t *testing.T) {
	re := regexp.MustCompile("^[" + unambiguous + "]+$")
	seen := map[string]bool{}
	counts := map[rune]int{}
	for i := 0; i < 100000; i++ {
		s := NewSlug()
		if len(s) != GeneratedSlugLen || !re.MatchString(s) || strings.ContainsAny(s, "0O1lI") || seen[s] {
			t.Fatalf("slug %q", s)
		}
		seen[s] = true
		for _, r := range s {
			counts[r]++
		}
	}
	want := 100000.0 * GeneratedSlugLen / float64(len(unambiguous))
	for r, n := range counts {
		if float64(n) < want*0.9 || float64(n) > want*1.1 {
			t.Errorf("character %q drawn %d times, want about %.0f", r, n, want)
		}
	}
	if tk := NewToken(); len(tk) != TokenLen || !ValidToken(tk) {
		t.Fatalf("token %q", tk)
	}
}
