package links

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateDestinationRejectsHostileInput(t *testing.T) {
	long := "https://x.example/" + strings.Repeat("a", MaxDestinationLen+1-len("https://x.example/"))
	if len(long) != MaxDestinationLen+1 {
		t.Fatalf("long destination is %d bytes", len(long))
	}
	cases := []struct{ name, dest string }{
		{"empty", ""},
		{"javascript", "javascript:alert(1)"},
		{"JavaScript mixed case", "JaVaScRiPt:alert(document.cookie)"},
		{"javascript with slashes", "javascript://x.example/%0aalert(1)"},
		{"data", "data:text/html;base64,PHNjcmlwdD4="},
		{"vbscript", "vbscript:msgbox(1)"},
		{"file", "file:///etc/passwd"},
		{"ftp", "ftp://x.example/"},
		{"relative path", "/relative/path"},
		{"relative word", "x.example/p"},
		{"scheme-relative", "//evil.example/p"},
		{"one slash", "https:/x.example/p"},
		{"no slash", "https:evil.example"},
		{"missing colon", "https//x.example/"},
		{"userinfo", "https://good.example@evil.example/"},
		{"user and password", "https://user:pass@x.example/"},
		{"empty userinfo", "https://@x.example/"},
		{"CR", "https://x.example/\r"},
		{"LF", "https://x.example/\nSet-Cookie:x=1"},
		{"CRLF in host", "https://x.example\r\n/"},
		{"TAB", "https://x.example/\tp"},
		{"NUL", "https://x.example/\x00"},
		{"DEL", "https://x.example/\x7f"},
		{"C1 control", "https://x.example/\u0085"},
		{"space", "https://x.example/a b"},
		{"leading space", " https://x.example/"},
		{"trailing space", "https://x.example/ "},
		{"backslash", `https://x.example\@evil.example/`},
		{"backslash path", `https:\\evil.example\`},
		{"double quote", `https://x.example/"onload`},
		{"angle brackets", "https://x.example/<script>"},
		{"backtick", "https://x.example/`"},
		{"braces", "https://x.example/{x}"},
		{"pipe", "https://x.example/a|b"},
		{"caret", "https://x.example/a^b"},
		{"2049 bytes", long},
		{"invalid UTF-8", "https://x.example/\xff\xfe"},
		{"truncated UTF-8", "https://x.example/\xc3"},
		{"non-numeric port", "https://x.example:80a/"},
		{"word port", "https://x.example:https/"},
		{"missing host", "https://"},
		{"missing host with path", "https:///p"},
		{"port only", "https://:80"},
		{"port only with path", "https://:80/p"},
		{"bad escape in path", "https://x.example/%zz"},
		{"unterminated IPv6", "https://[2001:db8::1/p"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := ValidateDestination(c.dest); err == nil {
				t.Fatalf("ValidateDestination(%q) accepted", c.dest)
			}
			// Rules.destination must refuse it too, with the field it was given.
			got, w, err := testRules().destination(c.dest, "variants[3].destination")
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "variants[3].destination" || got != "" || w != nil {
				t.Fatalf("Rules.destination(%q) = %q, %v, %v", c.dest, got, w, err)
			}
		})
	}
}

// Destinations that must pass, and come out of Rules.destination byte for byte, with no
// warning.
func TestValidateDestinationAcceptsUnchanged(t *testing.T) {
	exact := "https://x.example/" + strings.Repeat("a", MaxDestinationLen-len("https://x.example/"))
	for _, d := range []string{
		"https://shop.example.com/p/a*b;c!d",
		"https://shop.example.com/p?sel=a*b;c!d&x=$'()+,",
		"https://x.example/a%2Fb%2fc",
		"https://x.example/p?q=%2F%20%26",
		"https://x.example/p#frag",
		"https://x.example/p?a=1#frag/with?q=1",
		"https://x.example/p#",
		"https://x.example/p?",
		"http://x.example:8443/",
		"https://x.example:443",
		"https://[2001:db8::1]/p",
		"https://[2001:db8::1]:8443/p?a=1",
		"https://192.0.2.1/p",
		"HTTPS://X.EXAMPLE/P",
		"Http://x.example",
		"https://x.example",
		"https://sub.x.example/~user/a-b_c.d",
		"https://x.example/p?utm_foo=1&UTMsource=2",
		"https://x.example/p?a=1&&b",
		exact,
	} {
		if err := ValidateDestination(d); err != nil {
			t.Errorf("ValidateDestination(%q): %v", d, err)
			continue
		}
		got, w, err := testRules().destination(d, "destination")
		if err != nil || got != d || len(w) != 0 {
			t.Errorf("Rules.destination(%q) = %q, %q, %v; want it unchanged", d, got, w, err)
		}
	}
}

func TestRulesDestinationStripsUTM(t *testing.T) {
	cases := []struct {
		in, want string
		removed  []string // pairs the warning must name
	}{
		{"https://x.example/p?utm_source=x", "https://x.example/p", []string{"utm_source=x"}},
		{"https://x.example/p?utm_source=x#f", "https://x.example/p#f", []string{"utm_source=x"}},
		{"https://x.example/p?a=1&utm_source=x&b=%20&UTM_Medium=y#f", "https://x.example/p?a=1&b=%20#f", []string{"utm_source=x", "UTM_Medium=y"}},
		{"https://x.example/p?UTM_SOURCE=1&Utm_Campaign=2&utm_content=3&uTm_TeRm=4&utm_id=5&k=6", "https://x.example/p?k=6",
			[]string{"UTM_SOURCE=1", "Utm_Campaign=2", "utm_content=3", "uTm_TeRm=4", "utm_id=5"}},
		{"https://x.example/p?utm%5Fsource=x&keep=1", "https://x.example/p?keep=1", []string{"utm%5Fsource=x"}},
		{"https://x.example/p?%75tm_medium=x&keep=1", "https://x.example/p?keep=1", []string{"%75tm_medium=x"}},
		{"https://x.example/p?utm%5fcampaign=x", "https://x.example/p", []string{"utm%5fcampaign=x"}},
		{"https://x.example/p?utm_source&k", "https://x.example/p?k", []string{"utm_source"}},
		{"https://x.example/p?utm_source=&k=", "https://x.example/p?k=", []string{"utm_source="}},
		// Every other byte stays: sub-delims, escapes, unknown utm_* keys, empty pairs.
		{"https://x.example/a*b;c!d?s=a*b;c!&utm_term=t&p=%2F&q=%C3%BC&utm_foo=1&&z#top?x", "https://x.example/a*b;c!d?s=a*b;c!&p=%2F&q=%C3%BC&utm_foo=1&&z#top?x",
			[]string{"utm_term=t"}},
		// A utm key in the fragment is not a query parameter.
		{"https://x.example/p?utm_id=1#utm_source=x", "https://x.example/p#utm_source=x", []string{"utm_id=1"}},
	}
	for _, c := range cases {
		got, w, err := testRules().destination(c.in, "destination")
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
		if len(w) != 1 || !strings.HasPrefix(w[0], "destination: removed ") {
			t.Errorf("%s: warnings %q, want one naming the removed pairs", c.in, w)
			continue
		}
		if want := "destination: removed " + strings.Join(c.removed, "&") + ";"; !strings.HasPrefix(w[0], want) {
			t.Errorf("%s: warning %q, want it to start %q", c.in, w[0], want)
		}
		if err := ValidateDestination(got); err != nil {
			t.Errorf("%s: stripped destination %q is invalid: %v", c.in, got, err)
		}
	}
}

func TestRulesDestinationRefusesClickParam(t *testing.T) {
	for _, d := range []string{
		"https://x.example/?cgid=1",
		"https://x.example/?a=1&cgid=",
		"https://x.example/?cgid",
		"https://x.example/?%63gid=1",
		"https://x.example/?utm_source=x&cgid=1#f",
	} {
		got, _, err := testRules().destination(d, "destination")
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "destination" || !strings.Contains(fe.Message, `"cgid"`) {
			t.Errorf("Rules.destination(%q) = %q, %v; want a destination error naming cgid", d, got, err)
		}
	}
	// A key that merely contains the name, or sits in the fragment, is fine.
	for _, d := range []string{"https://x.example/?xcgid=1", "https://x.example/?cgid2=1", "https://x.example/#cgid=1"} {
		if got, _, err := testRules().destination(d, "destination"); err != nil || got != d {
			t.Errorf("Rules.destination(%q) = %q, %v", d, got, err)
		}
	}
}

// A destination with non-ASCII parts is stored as the ASCII URI a Location header must
// carry, and the warning says what it became.
func TestDestinationWrittenAsASCII(t *testing.T) {
	r := testRules()
	for _, tc := range []struct{ in, want string }{
		{"https://bücher.example/straße?q=ü#teil", "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%BC#teil"},
		{"https://BÜCHER.example:8443/", "https://xn--bcher-kva.example:8443/"},
		{"https://x.example/a\u202Eb", "https://x.example/a%E2%80%AEb"}, // a bidirectional override
		{"https://x.example/plain?a=1", "https://x.example/plain?a=1"},
		{"https://x.example/café/ürün?ä=ö", "https://x.example/caf%C3%A9/%C3%BCr%C3%BCn?%C3%A4=%C3%B6"},
		{"https://x.example/日本語", "https://x.example/%E6%97%A5%E6%9C%AC%E8%AA%9E"},
		{"https://[2001:db8::1]:8443/é", "https://[2001:db8::1]:8443/%C3%A9"},
		{"https://a_b.bücher.example/", "https://a_b.xn--bcher-kva.example/"}, // browsers take '_'
		{"https://bücher.example./x", "https://xn--bcher-kva.example./x"},
	} {
		got, notes, err := r.destination(tc.in, "destination")
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if changed := tc.in != tc.want; changed != (len(notes) == 1 && strings.Contains(notes[0], tc.want)) {
			t.Errorf("%q: warnings %q", tc.in, notes)
		}
	}
	// Compatibility forms that map to URL delimiters would lead elsewhere than the host
	// that was checked.
	for _, bad := range []string{"https://xn--a.é/", "https://evil.example／.bücher.example/x", "https://a＠evil.example.bücher.example/",
		"https://bücher＼evil.example/", "https://bücher\u3000.example/", "https://bücher.example？x/", "https://bücher.example＃x/"} {
		if got, _, err := r.destination(bad, "destination"); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}
