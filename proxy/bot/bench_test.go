package bot

import (
	"bytes"
	"strings"
	"testing"
)

// benchUAs: the human ones are the hot path; the bot ones exercise the
// verify path.
var benchUAs = []struct{ name, ua string }{
	{"human/iphone-safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"},
	{"human/android-chrome", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"},
	{"human/instagram-android", "Mozilla/5.0 (Linux; Android 11; Pixel 2 Build/RP1A.201005.004.A1; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/91.0.4472.120 Mobile Safari/537.36 Instagram 194.0.0.36.172 Android (30/11; 420dpi; 1080x1878; Google/google; Pixel 2; walleye; walleye; en_US; 301484483)"},
	{"bot/imessage", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1 facebookexternalhit/1.1 Facebot Twitterbot/1.0"},
	{"bot/whatsapp", "WhatsApp/2.23.20.0 A"},
	{"bot/googlebot", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.92 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
	{"bot/curl", "curl/8.4.0"},
	{"hostile/bot-x4k", strings.Repeat("bot ", 1024)},
}

func BenchmarkClassify(b *testing.B) {
	for _, bu := range benchUAs {
		r := Request{Method: []byte("GET"), UserAgent: []byte(bu.ua)}
		b.Run(bu.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bu.ua)))
			for b.Loop() {
				_ = Classify(r)
			}
		})
	}
}

func BenchmarkAppendReason(b *testing.B) {
	v := Verdict{Reasons: ReasonPreview | ReasonHead | ReasonPrefetch, Agent: "whatsapp"}
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = v.AppendReason(buf[:0])
	}
}

func BenchmarkParseReason(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = ParseReason("preview:whatsapp,head,prefetch")
	}
}

// BenchmarkAlternatives measures the designs the matcher was chosen over, on
// the human iPhone UA, so the choice stays justified as the table grows.
func BenchmarkAlternatives(b *testing.B) {
	ua := []byte(benchUAs[0].ua)
	b.Run("filter", func(b *testing.B) {
		for b.Loop() {
			_, _ = classifyUA(ua)
		}
	})
	// Lowercase into a stack buffer, then bytes.Contains per pattern.
	b.Run("lower+contains", func(b *testing.B) {
		for b.Loop() {
			var buf [512]byte
			n := copy(buf[:], ua)
			for i := range n {
				if c := buf[i]; c >= 'A' && c <= 'Z' {
					buf[i] = c + 'a' - 'A'
				}
			}
			hits := 0
			for pi := range patterns {
				if bytes.Contains(buf[:n], []byte(patterns[pi].lit)) {
					hits++
				}
			}
			_ = hits
		}
	})
	// Aho-Corasick as a dense DFA over byte classes (case folded into the
	// class table): one dependent table load per byte.
	b.Run("aho-corasick", func(b *testing.B) {
		ac := buildAC()
		for b.Loop() {
			_ = ac.run(ua)
		}
	})
}

type acDFA struct {
	class   [256]uint8
	nclass  int
	next    []uint16 // state*nclass + class
	isMatch []bool
}

func buildAC() *acDFA {
	d := &acDFA{}
	// Classes: one per distinct lowercase byte used by patterns, 0 otherwise.
	for _, p := range patterns {
		for i := 0; i < len(p.lit); i++ {
			c := p.lit[i]
			if d.class[c] == 0 {
				d.nclass++
				d.class[c] = uint8(d.nclass)
				if c >= 'a' && c <= 'z' {
					d.class[c-'a'+'A'] = uint8(d.nclass)
				}
			}
		}
	}
	d.nclass++
	type node struct {
		child map[uint8]int
		fail  int
		out   bool
	}
	nodes := []node{{child: map[uint8]int{}}}
	for _, p := range patterns {
		s := 0
		for i := 0; i < len(p.lit); i++ {
			c := d.class[p.lit[i]]
			nx, ok := nodes[s].child[c]
			if !ok {
				nodes = append(nodes, node{child: map[uint8]int{}})
				nx = len(nodes) - 1
				nodes[s].child[c] = nx
			}
			s = nx
		}
		nodes[s].out = true
	}
	d.next = make([]uint16, len(nodes)*d.nclass)
	d.isMatch = make([]bool, len(nodes))
	queue := []int{0}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		d.isMatch[s] = nodes[s].out || nodes[nodes[s].fail].out
		for c := 0; c < d.nclass; c++ {
			if nx, ok := nodes[s].child[uint8(c)]; ok {
				if s != 0 {
					nodes[nx].fail = int(d.next[nodes[s].fail*d.nclass+c])
				}
				d.next[s*d.nclass+c] = uint16(nx)
				queue = append(queue, nx)
			} else if s != 0 {
				d.next[s*d.nclass+c] = d.next[nodes[s].fail*d.nclass+c]
			}
		}
	}
	return d
}

func (d *acDFA) run(ua []byte) int {
	s, hits := 0, 0
	for _, c := range ua {
		s = int(d.next[s*d.nclass+int(d.class[c])])
		if d.isMatch[s] {
			hits++
		}
	}
	return hits
}
