package links

import (
	"bytes"
	"strings"
	"testing"

	"github.com/clickgate/clickgate/storage"
)

// utmQ is what testLink's UTM values compile to.
const utmQ = "utm_source=sms&utm_medium=promotional&utm_campaign=spring"

// testLink builds a link through Rules.Apply, as the admin API does, then compiles it.
func testLink(tb testing.TB, dest string, forward bool, identity map[string]string) *Link {
	tb.Helper()
	var l storage.Link
	spec := &Spec{Destination: &dest, UTM: &UTMSpec{Medium: "promotional", Campaign: "spring"}, ForwardQuery: &forward}
	if identity != nil {
		spec.IdentityParams = identity
	}
	if _, err := testRules().Apply(&l, spec, true); err != nil {
		tb.Fatalf("%s: %v", dest, err)
	}
	l.Slug = "s"
	return Compile(&l)
}

func TestAppendLocation(t *testing.T) {
	idp := map[string]string{"rid": "customer_id", "em": "email"}
	const p = "https://x.example/p?" + utmQ
	cases := []struct {
		name, dest, query string
		forward           bool
		want              string
	}{
		{"no query", "https://x.example/p", "", true, p + "&cgid=ID"},
		{"no query, no forwarding", "https://x.example/p", "", false, p + "&cgid=ID"},
		{"empty destination query", "https://x.example/p?", "a=1", true, p + "&a=1&cgid=ID"},
		{"no path", "https://x.example", "a=1", true, "https://x.example?" + utmQ + "&a=1&cgid=ID"},
		{"forwarded in order", "https://x.example/p", "gclid=abc&fbclid=x_y&ref=z", true, p + "&gclid=abc&fbclid=x_y&ref=z&cgid=ID"},
		{"forwarding off", "https://x.example/p", "gclid=abc", false, p + "&cgid=ID"},
		{"fragment last", "https://x.example/p#top", "a=1", true, p + "&a=1&cgid=ID#top"},
		{"fragment with query-like bytes", "https://x.example/p?k=1#/r?x=1&y", "a=1", true,
			"https://x.example/p?k=1&" + utmQ + "&a=1&cgid=ID#/r?x=1&y"},
		// In any case: frameworks that read names without case would join J=7 to j=2.
		{"destination keys win", "https://x.example/p?k=1&j=2", "k=9&j=8&z=3&J=7", true,
			"https://x.example/p?k=1&j=2&" + utmQ + "&z=3&cgid=ID"},
		{"destination key encoded", "https://x.example/p?k=1", "%6B=9&%6b=8&k&k=&z=1", true, "https://x.example/p?k=1&" + utmQ + "&z=1&cgid=ID"},
		{"destination key with plus", "https://x.example/p?a+b=1", "a+b=2&a%20b=3&a%2Bb=4", true,
			"https://x.example/p?a+b=1&" + utmQ + "&a%2Bb=4&cgid=ID"},
		{"utm any case", "https://x.example/p", "utm_source=x&UTM_MEDIUM=y&Utm_Campaign=z&utm_content=c&uTm_TeRm=t&utm_id=i&ok=1", true, p + "&ok=1&cgid=ID"},
		{"utm unknown keys too", "https://x.example/p", "utm_foo=1&UTM_=2&utm_=3&ok=1", true, p + "&ok=1&cgid=ID"},
		{"utm percent-encoded", "https://x.example/p", "utm%5Fsource=x&utm%5fmedium=y&%75tm_campaign=z&%55%54%4D%5Fterm=t&ok=1", true, p + "&ok=1&cgid=ID"},
		{"utm without value", "https://x.example/p", "utm_source&utm_medium=&ok", true, p + "&ok&cgid=ID"},
		{"not utm", "https://x.example/p", "utm=1&utmsource=2&xutm_source=3&utm-source=4", true, p + "&utm=1&utmsource=2&xutm_source=3&utm-source=4&cgid=ID"},
		{"click parameter", "https://x.example/p", "cgid=forged&%63gid=f2&cgid&cgid=&ok=1&cgid=f3", true, p + "&ok=1&cgid=ID"},
		{"click parameter in any case", "https://x.example/p", "CGID=x&Cgid=y&cgidx=1", true, p + "&cgidx=1&cgid=ID"},
		{"identity params", "https://x.example/p", "rid=7&em=a%40b.example&%72id=8&rid&ok=1", true, p + "&ok=1&cgid=ID"},
		{"identity params are case-sensitive", "https://x.example/p", "RID=7", true, p + "&RID=7&cgid=ID"},
		{"bytes escaped", "https://x.example/p", "d=<>\"&e=\x01\x1f&f=a b&g=\x7f&h=é&i=`{}|^\\[]", true,
			p + "&d=%3C%3E%22&e=%01%1F&f=a%20b&g=%7F&h=%C3%A9&i=%60%7B%7D%7C%5E%5C%5B%5D&cgid=ID"},
		{"CRLF and NUL escaped", "https://x.example/p", "a=\r\nSet-Cookie:%20x&b=\x00", true, p + "&a=%0D%0ASet-Cookie:%20x&b=%00&cgid=ID"},
		{"hash escaped", "https://x.example/p#f", "a=1#x", true, p + "&a=1%23x&cgid=ID#f"},
		{"allowed bytes kept", "https://x.example/p", "n=/p?q=1&s=!$'()*+,:@~-._", true, p + "&n=/p?q=1&s=!$'()*+,:@~-._&cgid=ID"},
		// Servers that split on ';' too would read what follows as parameters of their own.
		{"semicolon escaped", "https://x.example/p", "x=1;utm_source=evil;k=v", true, p + "&x=1%3Butm_source=evil%3Bk=v&cgid=ID"},
		{"lone percent", "https://x.example/p", "a=%&b=%4&c=%41&d=%zz&e=100%&f=%%41&g=%4G", true,
			p + "&a=%25&b=%254&c=%41&d=%25zz&e=100%25&f=%25%41&g=%254G&cgid=ID"},
		{"lone percent in key", "https://x.example/p", "%=1&a%=2", true, p + "&%25=1&a%25=2&cgid=ID"},
		{"empty pairs", "https://x.example/p", "&&a=1&&&b&", true, p + "&a=1&b&cgid=ID"},
		{"empty key", "https://x.example/p", "=v&=&a=1", true, p + "&a=1&cgid=ID"},
		{"key of 64 bytes kept", "https://x.example/p", strings.Repeat("k", 64) + "=1", true, p + "&" + strings.Repeat("k", 64) + "=1&cgid=ID"},
		{"key of 65 bytes dropped", "https://x.example/p", strings.Repeat("k", 65) + "=1&x=2", true, p + "&x=2&cgid=ID"},
		{"key of 1000 bytes dropped", "https://x.example/p", strings.Repeat("k", 1000) + "&x=2", true, p + "&x=2&cgid=ID"},
		// The limit applies to the decoded key: 30 escapes are a 30-byte key.
		{"escaped key counts decoded", "https://x.example/p", strings.Repeat("%41", 30) + "=1", true, p + "&" + strings.Repeat("%41", 30) + "=1&cgid=ID"},
		{"long value kept", "https://x.example/p", "v=" + strings.Repeat("v", 500), true, p + "&v=" + strings.Repeat("v", 500) + "&cgid=ID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l := testLink(t, c.dest, c.forward, idp)
			got := string(l.AppendLocation(nil, &l.Targets[0], []byte(c.query), "cgid", []byte("ID")))
			if got != c.want {
				t.Fatalf("%s + %q:\n got %s\nwant %s", c.dest, c.query, got, c.want)
			}
			if !strings.HasPrefix(got, l.Targets[0].Prefix) || !strings.HasSuffix(got, "&cgid=ID"+l.Targets[0].Fragment) {
				t.Fatalf("%s: not prefix + ... + click ID + fragment", got)
			}
			if n := strings.Count(got, "cgid="); n != 1 {
				t.Fatalf("%s: %d click parameters", got, n)
			}
			if err := ValidateDestination(got); err != nil && len(got) <= MaxDestinationLen {
				t.Fatalf("%s is not a valid URL: %v", got, err)
			}
		})
	}
}

// AppendLocation appends to dst and, given room, allocates nothing.
func TestAppendLocationAppends(t *testing.T) {
	l := testLink(t, "https://x.example/p?k=1#f", true, map[string]string{"rid": "email"})
	dst := []byte("Location: ")
	got := l.AppendLocation(dst, &l.Targets[0], []byte("a=1&utm_source=x"), "cgid", []byte("ID"))
	if string(got) != "Location: https://x.example/p?k=1&"+utmQ+"&a=1&cgid=ID#f" {
		t.Fatalf("%s", got)
	}
	buf := make([]byte, 0, 1024)
	q := []byte("gclid=abc&utm_source=x&rid=1&k=2&%41=%&" + strings.Repeat("z", 80) + "=1&b=<>")
	if n := testing.AllocsPerRun(100, func() { buf = l.AppendLocation(buf[:0], &l.Targets[0], q, "cgid", []byte("ID")) }); n != 0 {
		t.Fatalf("AppendLocation allocates %v times", n)
	}
}

// Each variant forwards against its own destination's keys and carries its own content.
func TestAppendLocationVariants(t *testing.T) {
	l := Compile(&storage.Link{Slug: "ab", ForwardQuery: true, UTM: storage.UTM{Source: "sms", Medium: "promotional", Campaign: "c"},
		Variants: []storage.Variant{{Destination: "https://a.example/?k=1", Weight: 1, Content: "a"}, {Destination: "https://b.example/?j=1#b", Weight: 1, Content: "b"}}})
	const q = "k=2&j=2&z=3"
	if got := string(l.AppendLocation(nil, &l.Targets[0], []byte(q), "cgid", []byte("ID"))); got !=
		"https://a.example/?k=1&utm_source=sms&utm_medium=promotional&utm_campaign=c&utm_content=a&j=2&z=3&cgid=ID" {
		t.Errorf("variant a: %s", got)
	}
	if got := string(l.AppendLocation(nil, &l.Targets[1], []byte(q), "cgid", []byte("ID"))); got !=
		"https://b.example/?j=1&utm_source=sms&utm_medium=promotional&utm_campaign=c&utm_content=b&k=2&z=3&cgid=ID#b" {
		t.Errorf("variant b: %s", got)
	}
}

// When a click cannot be stored the edge calls AppendLocation with clickParam "": no click
// parameter at all, nothing dangling, the fragment still last.
func TestAppendLocationWithoutClickParam(t *testing.T) {
	cases := []struct{ dest, query, want string }{
		{"https://x.example/p", "", "https://x.example/p?" + utmQ},
		{"https://x.example/p#f", "", "https://x.example/p?" + utmQ + "#f"},
		{"https://x.example/p?k=1#f", "a=1&utm_source=x&k=2&rid=3", "https://x.example/p?k=1&" + utmQ + "&a=1#f"},
	}
	for _, c := range cases {
		l := testLink(t, c.dest, true, map[string]string{"rid": "customer_id"})
		got := string(l.AppendLocation(nil, &l.Targets[0], []byte(c.query), "", nil))
		if got != c.want {
			t.Errorf("%s + %q:\n got %s\nwant %s", c.dest, c.query, got, c.want)
		}
		if strings.Contains(got, "&=") || strings.HasSuffix(strings.TrimSuffix(got, l.Targets[0].Fragment), "&") {
			t.Errorf("%s: dangling separator", got)
		}
	}
}

// When a click could not be stored, no click ID goes out, and an incoming click parameter
// is still never forwarded: a forged cgid must not reach the destination.
func TestAppendLocationWithoutClickParamDropsIncomingClickParam(t *testing.T) {
	l := testLink(t, "https://x.example/p#f", true, nil)
	got := l.AppendLocation(nil, &l.Targets[0], []byte("cgid=01kb5fq2w8s3m4n5p6q7r8s9t0&a=1"), "cgid", nil)
	if want := "https://x.example/p?" + utmQ + "&a=1#f"; string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestUnescapeKey(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true}, {"abc", "abc", true}, {"a+b", "a b", true}, {"%41%62", "Ab", true}, {"%", "%", true}, {"%4", "%4", true},
		{"%zz", "%zz", true}, {"a%41", "aA", true}, {"%%41", "%A", true}, {"%2B", "+", true}, {"%00", "\x00", true},
		{strings.Repeat("a", 64), strings.Repeat("a", 64), true}, {strings.Repeat("a", 65), "", false},
		{strings.Repeat("%61", 64), strings.Repeat("a", 64), true}, {strings.Repeat("%61", 65), "", false},
	} {
		var buf [64]byte
		got, ok := unescapeKey(buf[:0], []byte(c.in))
		if ok != c.ok || ok && string(got) != c.want {
			t.Errorf("unescapeKey(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestAppendQuerySafe(t *testing.T) {
	// Every byte but the RFC 3986 query characters (and '%' starting an escape) is
	// escaped, and ';', which some servers split parameters on.
	for c := 0; c < 256; c++ {
		got := appendQuerySafe(nil, []byte{byte(c)})
		safe := bytes.IndexByte([]byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$'()*+,=:@/?"), byte(c)) >= 0
		if safe && string(got) != string(rune(c)) || !safe && (len(got) != 3 || got[0] != '%' || !isHex(got[1]) || !isHex(got[2]) || unhex(got[1])<<4|unhex(got[2]) != byte(c)) {
			t.Errorf("byte %#x -> %q", c, got)
		}
	}
}

// BenchmarkAppendLocationQueryBytes is BenchmarkAppendLocation with the incoming query
// already in a []byte, as the edge has it (fasthttp's QueryString): the string-to-[]byte
// conversion inside BenchmarkAppendLocation's loop is the 1 alloc/op it reports.
func BenchmarkAppendLocationQueryBytes(b *testing.B) {
	l := benchLink()
	id := []byte("01kb5fq2w8s3m4n5p6q7r8s9t0")
	for _, c := range []struct{ name, q string }{
		{"none", ""},
		{"3params", "gclid=abc123&fbclid=xyz&src=other"},
		{"3params_1owned", "gclid=abc123&fbclid=xyz&ref=other"}, // ref is the destination's
	} {
		b.Run(c.name, func(b *testing.B) {
			qb := []byte(c.q)
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				buf = l.AppendLocation(buf[:0], &l.Targets[0], qb, "cgid", id)
			}
		})
	}
}
