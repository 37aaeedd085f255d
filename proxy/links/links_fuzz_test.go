package links

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/proxy/utm"
	"github.com/clickgate/clickgate/storage"
)

func rules() *Rules { return &Rules{UTM: utm.DefaultPolicy(), ClickParam: "cgid"} }

func FuzzValidSlug(f *testing.F) {
	for _, s := range []string{"abc", "a/b", "healthz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidSlug(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > MaxSlugLen || strings.ContainsAny(s, "/?#%. \x00") || reserved[strings.ToLower(s)] {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzValidateDestination(f *testing.F) {
	for _, s := range []string{"https://x.example/p?a=1#f", "//evil", "javascript:x", "https://a@b/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateDestination(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil || (strings.ToLower(u.Scheme) != "http" && strings.ToLower(u.Scheme) != "https") || u.Hostname() == "" || u.User != nil {
			t.Fatalf("accepted %q (%v)", s, err)
		}
		for i := 0; i < len(s); i++ {
			if s[i] < 0x21 || s[i] == 0x7f || s[i] == '\\' {
				t.Fatalf("accepted %q with byte %#x", s, s[i])
			}
		}
	})
}

// Whatever a client appends to a short link, the Location starts with the stored
// target, carries exactly one click parameter, ends with the fragment, and holds no byte
// that could end the header or the URL.
func FuzzAppendLocation(f *testing.F) {
	l := Compile(&storage.Link{Slug: "s", Destination: "https://x.example/p?k=1#frag", ForwardQuery: true,
		UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c"}, IdentityParams: map[string]string{"rid": "customer_id"}})
	for _, q := range []string{"a=1", "utm_source=x&cgid=y", "%0d%0a=1", "a=<>\"", "&&&", "k=2"} {
		f.Add([]byte(q))
	}
	bad := regexp.MustCompile(`[\x00-\x20\x7f<>"#\\]`)
	f.Fuzz(func(t *testing.T, q []byte) {
		got := l.AppendLocation(nil, &l.Targets[0], q, "cgid", []byte("01ID"))
		if !bytes.HasPrefix(got, []byte(l.Targets[0].Prefix)) || !bytes.HasSuffix(got, []byte("&cgid=01ID#frag")) {
			t.Fatalf("%q -> %s", q, got)
		}
		body := got[len(l.Targets[0].Prefix) : len(got)-len("&cgid=01ID#frag")]
		if bad.Match(body) {
			t.Fatalf("%q -> %q", q, got)
		}
		for _, pair := range bytes.Split(body, []byte("&")) {
			k := queryKey(string(pair))
			// Forwarded pairs never carry the link's own keys; the one click parameter is
			// the one appended after them.
			if strings.HasPrefix(strings.ToLower(k), "utm_") || k == "rid" || k == "k" || k == "cgid" {
				t.Fatalf("forwarded %q from %q: %s", k, q, got)
			}
		}
	})
}

// Any JSON a client sends either fails with a field error or yields a link whose
// destination is valid and whose UTM values are canonical.
func FuzzApplySpec(f *testing.F) {
	f.Add([]byte(`{"destination":"https://x.example/","utm":{"medium":"Promo","campaign":"Spring Sale"}}`))
	f.Add([]byte(`{"destination":"https://x.example/","utm":{"medium":"promotional","campaign":"c"},"variants":[{"destination":"https://a.example/","weight":1,"content":"A"},{"destination":"https://b.example/","weight":2,"content":"B"}]}`))
	canon := regexp.MustCompile(`^[a-z0-9_]+$`)
	f.Fuzz(func(t *testing.T, js []byte) {
		var s Spec
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if dec.Decode(&s) != nil {
			return
		}
		var l storage.Link
		if _, err := rules().Apply(&l, &s, true); err != nil {
			return
		}
		if ValidateDestination(l.Destination) != nil {
			t.Fatalf("invalid destination %q from %s", l.Destination, js)
		}
		for _, v := range []string{l.UTM.Medium, l.UTM.Campaign} {
			if !canon.MatchString(v) {
				t.Fatalf("non-canonical UTM %q from %s", v, js)
			}
		}
		if l.UTM.Source != "sms" {
			t.Fatalf("source %q", l.UTM.Source)
		}
		l.Slug = "s"
		Compile(&l)
	})
}
