package bot

import (
	"strings"
	"testing"
)

func FuzzClassify(f *testing.F) {
	for _, tc := range botUAs {
		f.Add("GET", tc.ua, "", "", "", "")
	}
	for _, tc := range humanUAs {
		f.Add("GET", tc.ua, "", "", "", "")
	}
	f.Add("HEAD", "WhatsApp/2.23.20.0 A", "prefetch", "prefetch;prerender", "preview", "prefetch")
	f.Add("GET", "", "", "", "", "")
	f.Add("GET", " cubot bots_ scan camscan BOT", "", "", "", "")
	f.Add("GET", strings.Repeat("twitterbot ", 120), "", "", "", "")
	f.Fuzz(func(t *testing.T, method, ua, purpose, secPurpose, xPurpose, xMoz string) {
		r := Request{
			Method:     []byte(method),
			UserAgent:  []byte(ua),
			Purpose:    []byte(purpose),
			SecPurpose: []byte(secPurpose),
			XPurpose:   []byte(xPurpose),
			XMoz:       []byte(xMoz),
		}
		v := Classify(r)
		if v.Reasons&^allReasons != 0 {
			t.Fatalf("undefined reason bits %#x", v.Reasons)
		}
		if v.Agent != "" {
			ai, ok := m.agents[v.Agent]
			if !ok || v.Reasons&ai.reason == 0 {
				t.Fatalf("agent %q not backed by its reason in %v", v.Agent, v.Reasons)
			}
		}
		s := v.AppendReason(nil)
		if v.Bot() != (len(s) > 0) {
			t.Fatalf("Bot()=%v but reason %q", v.Bot(), s)
		}
		back, err := ParseReason(string(s))
		if err != nil {
			t.Fatalf("ParseReason(%q): %v", s, err)
		}
		if back != v {
			t.Fatalf("round trip %q: got %+v, want %+v", s, back, v)
		}
		if !isBlank(r.UserAgent) {
			gr, ga := classifyUA(r.UserAgent)
			nr, na := naiveUA(r.UserAgent)
			if gr != nr || ga != na {
				t.Fatalf("%q: matcher %v/%q, naive %v/%q", ua, gr, ga, nr, na)
			}
		}
	})
}

func FuzzParseReason(f *testing.F) {
	for _, s := range []string{
		"", "head", "preview:whatsapp,head", "crawler,http_library:curl",
		"preview,crawler,http_library,head,prefetch,missing_ua,headless,scanner",
		"head,,prefetch", "preview:", "preview:curl,http_library", "\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseReason(s)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to a canonical string that parses back
		// to the same verdict.
		out := string(v.AppendReason(nil))
		back, err := ParseReason(out)
		if err != nil || back != v {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, v, out, back, err)
		}
		if len(out) > maxReasonLen {
			t.Fatalf("canonical form %q exceeds maxReasonLen", out)
		}
	})
}
