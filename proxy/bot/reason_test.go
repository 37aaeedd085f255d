package bot

import (
	"strings"
	"testing"
)

func TestAppendReasonFormat(t *testing.T) {
	tests := []struct {
		v    Verdict
		want string
	}{
		{Verdict{}, ""},
		{Verdict{Agent: "whatsapp"}, ""}, // no reasons: nothing to say
		{Verdict{Reasons: ReasonHead}, "head"},
		{Verdict{Reasons: ReasonPreview | ReasonHead, Agent: "whatsapp"}, "preview:whatsapp,head"},
		{Verdict{Reasons: ReasonPreview | ReasonHead | ReasonPrefetch, Agent: "whatsapp"}, "preview:whatsapp,head,prefetch"},
		{Verdict{Reasons: ReasonCrawler | ReasonHTTPLibrary, Agent: "curl"}, "crawler,http_library:curl"},
		{Verdict{Reasons: ReasonHead | ReasonHTTPLibrary, Agent: "curl"}, "http_library:curl,head"},
		// Agent not under any present reason: attached to the first one.
		{Verdict{Reasons: ReasonHead | ReasonPrefetch, Agent: "curl"}, "head:curl,prefetch"},
		{Verdict{Reasons: ReasonPreview, Agent: "some-future-agent"}, "preview:some-future-agent"},
		// Unsafe agent names and undefined bits are dropped.
		{Verdict{Reasons: ReasonPreview, Agent: "Evil,agent"}, "preview"},
		{Verdict{Reasons: ReasonPreview | 1<<31, Agent: "whatsapp"}, "preview:whatsapp"},
		{Verdict{Reasons: 1 << 31}, ""},
		{Verdict{Reasons: allReasons}, "preview,crawler,http_library,head,prefetch,missing_ua,headless,scanner"},
	}
	for _, tc := range tests {
		if got := string(tc.v.AppendReason(nil)); got != tc.want {
			t.Errorf("%+v.AppendReason = %q, want %q", tc.v, got, tc.want)
		}
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%+v.String = %q, want %q", tc.v, got, tc.want)
		}
	}
	// Appends, does not overwrite.
	if got := string(Verdict{Reasons: ReasonHead}.AppendReason([]byte("x="))); got != "x=head" {
		t.Errorf("AppendReason to prefix = %q", got)
	}
}

// TestReasonRoundTrip covers every reason combination, with no agent, with
// each known agent and with an unknown one.
func TestReasonRoundTrip(t *testing.T) {
	agents := []string{"", "some-future-agent"}
	for name := range m.agents {
		agents = append(agents, name)
	}
	for rs := Reason(1); rs <= allReasons; rs++ {
		for _, agent := range agents {
			v := Verdict{Reasons: rs, Agent: agent}
			s := string(v.AppendReason(nil))
			got, err := ParseReason(s)
			if err != nil {
				t.Fatalf("ParseReason(%q) from %+v: %v", s, v, err)
			}
			if got != v {
				t.Fatalf("ParseReason(%q) = %+v, want %+v", s, got, v)
			}
		}
	}
	if v, err := ParseReason(""); err != nil || v != (Verdict{}) {
		t.Errorf("ParseReason(\"\") = %+v, %v; want human verdict", v, err)
	}
}

func TestParseReasonLenient(t *testing.T) {
	// An agent after a different reason than this version would write it
	// (e.g. from a version that filed it elsewhere) still decodes.
	v, err := ParseReason("preview:curl,http_library")
	if err != nil || v != (Verdict{Reasons: ReasonPreview | ReasonHTTPLibrary, Agent: "curl"}) {
		t.Errorf("got %+v, %v", v, err)
	}
}

func TestParseReasonInterns(t *testing.T) {
	buf := []byte("preview:whatsapp")
	v, err := ParseReason(string(buf))
	if err != nil {
		t.Fatal(err)
	}
	if v.Agent != "whatsapp" || v.Agent != m.agents["whatsapp"].name {
		t.Errorf("agent %q not interned", v.Agent)
	}
}

func TestParseReasonHostile(t *testing.T) {
	tests := []string{
		",",
		",head",
		"head,",
		"head,,prefetch",
		"preview:",
		":whatsapp",
		"preview::whatsapp",
		"preview:whatsapp:x",
		"bogus",
		"Preview",
		"HEAD",
		" head",
		"head ",
		"head\x00",
		"head\n",
		"he\x00ad",
		"preview:whats app",
		"preview:WhatsApp",
		"preview:whats\x7fapp",
		"preview:what\u00e9sapp",
		"preview:" + strings.Repeat("a", maxAgentLen+1),
		"head,head",
		"head,preview",                      // out of order
		"preview:whatsapp,head:curl",        // two agents
		"preview:whatsapp,preview:whatsapp", // duplicate
		strings.Repeat("head,", 1000) + "head",
		strings.Repeat("x", 1<<20),
		"preview,crawler,http_library,head,prefetch,missing_ua,headless,scanner,extra",
		"\xff\xfe",
	}
	for _, s := range tests {
		if v, err := ParseReason(s); err == nil {
			t.Errorf("ParseReason(%.40q) = %+v, want error", s, v)
		}
	}
}

func TestAppendReasonZeroAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	vs := []Verdict{
		{Reasons: ReasonPreview | ReasonHead | ReasonPrefetch, Agent: "whatsapp"},
		{Reasons: ReasonCrawler | ReasonHTTPLibrary, Agent: "curl"},
		{Reasons: allReasons, Agent: "some-future-agent"},
	}
	for _, v := range vs {
		if n := testing.AllocsPerRun(200, func() { buf = v.AppendReason(buf[:0]) }); n != 0 {
			t.Errorf("%+v: %v allocs per AppendReason, want 0", v, n)
		}
	}
	if n := testing.AllocsPerRun(200, func() { _, _ = ParseReason("preview:whatsapp,head,prefetch") }); n != 0 {
		t.Errorf("%v allocs per ParseReason, want 0", n)
	}
}
