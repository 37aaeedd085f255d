package bot

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"
)

// Matching strategy.
//
// Ordinary human UAs must be cheap, and they match nothing, so the matcher is
// built to reject fast. Every "anywhere" pattern is assigned one anchor: a
// 3-byte window of its literal chosen at init to be absent from (or rare in)
// typical browser UAs. The anchors' hashes index a 16 KiB byte table.
// Classify slides over the UA once, hashes each 3-byte window and loads one
// byte; only on a hit does it look at the (one or two) anchors with that hash
// and verify the full literal case-insensitively.
//
// Case folding is done inside the hash by OR-ing 0x20 into every byte, which
// maps 'A'..'Z' onto 'a'..'z'. It also merges some punctuation pairs, but that
// only adds filter false positives, which verification rejects; it can never
// cause a miss because equal-ignoring-case bytes always fold identically.
// Folding in the hash means no lowercase copy of the UA is made, so there is no
// stack buffer and no length limit from one.
//
// Unlike Aho-Corasick, whose per-byte state transition is a dependent load
// chain, each window here is independent, so the loop pipelines well.
// BenchmarkAlternatives measures the options on a 139-byte iPhone Safari UA;
// on the development VM: this filter ~180 ns, a dense Aho-Corasick DFA over
// byte classes ~460 ns, lowercase copy + bytes.Contains per pattern ~5 us.
// A 2 KiB bitmap instead of the byte table was ~30% slower (variable shifts
// through CL, register spills); the byte table's false-positive rate at 14 bits
// is under one hit per human UA, and lowering filterBits trades L1 footprint
// for more hits.

const (
	filterBits = 14
	hashMul    = 0x9E3779B1 // 2^32 / golden ratio: spreads 24-bit grams over the top bits

	// UAs longer than maxScan are only scanned in their first headScan and
	// last tailScan bytes. Real UAs are a few hundred bytes; bots append their
	// token at the end (iMessage, Applebot, BingPreview) or put it first. The
	// cap bounds the work an attacker-controlled header can cost us.
	maxScan  = 1024
	headScan = 768
	tailScan = 256
)

// anchor locates a pattern's anchor window: when the window at ua[pos]
// equals gram (case-folded), the pattern may match at ua[pos-off:].
type anchor struct {
	gram uint32 // folded 3-byte window, little-endian
	hash uint16 // gramHash(gram)
	pat  uint8  // index into patterns
	off  uint8  // offset of the window in the literal
}

// matcher holds the immutable tables built at init.
type matcher struct {
	anchors []anchor // sorted by hash; filter[h]-1 is the first with hash h
	prefix  []uint8  // pattern indices with mode prefix
	exact   []uint8  // pattern indices with mode exact

	// agents maps each agent name to its static string and the single reason
	// it is reported under, so AppendReason can attach the agent to the right
	// reason and ParseReason can intern it.
	agents map[string]agentInfo
}

type agentInfo struct {
	name   string
	reason Reason
}

var (
	// filter[h] is 0 when no anchor hashes to h, else 1 + the index in
	// m.anchors of the first anchor that does, so a hit needs no search. It
	// is kept out of matcher so the hot loop indexes a fixed-size global array
	// directly: no pointer load and no bounds checks (h < 1<<filterBits).
	filter [1 << filterBits]uint8
	m      = buildMatcher(&filter)
)

// gramHash hashes a 3-byte window (little-endian in the low 24 bits), folding
// case first. Anchors and UA windows must go through the same fold.
func gramHash(g uint32) uint32 {
	return foldedHash(g | 0x202020)
}

// foldedHash hashes the low 24 bits of an already case-folded window.
func foldedHash(g uint32) uint32 {
	return ((g & 0xFFFFFF) * hashMul) >> (32 - filterBits)
}

// humanSample is typical browser UA text. Anchors are chosen to avoid its
// 3-byte windows, so human UAs rarely hit the filter at all. It only steers
// performance, never correctness.
const humanSample = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1 " +
	"Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36 " +
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0 " +
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51 " +
	"Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36 " +
	"Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/437.0.0.33.118;FBBV/123;FBDV/iPhone13,2;FBMD/iPhone;FBSN/iOS;FBSV/16.6;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5] " +
	"Instagram 307.0.0.34.111 (iPhone14,5; iOS 17_1; en_US; en; scale=3.00; 1170x2532; 532277173) GSA/277.0.555192628 CriOS/124.0.6367.88 " +
	"Instagram 194.0.0.36.172 Android (30/11; 420dpi; 1080x1878; Google/google; Pixel 7; panther; en_US) GoogleApp/12.4.9.23.arm [FB_IAB/FB4A;FBAV/263.0.0.46.121;]"

func gramAt(s string, i int) uint32 {
	return uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16
}

func buildMatcher(filter *[1 << filterBits]uint8) *matcher {
	mt := &matcher{agents: make(map[string]agentInfo)}
	if len(patterns) > math.MaxUint8+1 {
		panic("bot: too many patterns")
	}

	common := make(map[uint32]int)
	for i := 0; i+3 <= len(humanSample); i++ {
		common[gramAt(humanSample, i)|0x202020]++
	}
	used := make(map[uint32]int) // anchors already placed on each gram

	for pi := range patterns {
		p := &patterns[pi]
		if err := validatePattern(p); err != nil {
			panic(err)
		}
		if p.agent != "" {
			if ai, ok := mt.agents[p.agent]; ok && ai.reason != p.reason {
				panic(fmt.Sprintf("bot: agent %q used for two reasons", p.agent))
			}
			mt.agents[p.agent] = agentInfo{name: p.agent, reason: p.reason}
		}
		switch p.mode {
		case prefix:
			mt.prefix = append(mt.prefix, uint8(pi))
			continue
		case exact:
			mt.exact = append(mt.exact, uint8(pi))
			continue
		}
		// Prefer a window human UAs do not contain, then one no other
		// pattern anchors on (so each filter hit verifies few patterns).
		best, bestCost := 0, math.MaxInt
		for off := 0; off+3 <= len(p.lit); off++ {
			g := gramAt(p.lit, off) | 0x202020
			if cost := common[g]*1000 + used[g]; cost < bestCost {
				best, bestCost = off, cost
			}
		}
		g := gramAt(p.lit, best) | 0x202020
		used[g]++
		mt.anchors = append(mt.anchors, anchor{gram: g, hash: uint16(gramHash(g)), pat: uint8(pi), off: uint8(best)})
	}
	if len(mt.anchors) >= math.MaxUint8 {
		panic("bot: too many anchors for the filter's index encoding")
	}
	sort.SliceStable(mt.anchors, func(i, j int) bool { return mt.anchors[i].hash < mt.anchors[j].hash })
	for i := len(mt.anchors) - 1; i >= 0; i-- {
		filter[mt.anchors[i].hash] = uint8(i + 1)
	}
	return mt
}

func validatePattern(p *pattern) error {
	if len(p.lit) < 3 || len(p.lit) > math.MaxUint8 {
		return fmt.Errorf("bot: pattern %q: length must be 3..255", p.lit)
	}
	for i := 0; i < len(p.lit); i++ {
		if c := p.lit[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return fmt.Errorf("bot: pattern %q must be lowercase ASCII", p.lit)
		}
	}
	if bits.OnesCount32(uint32(p.reason)) != 1 || p.reason&agentReasons == 0 {
		return fmt.Errorf("bot: pattern %q: bad reason %#x", p.lit, p.reason)
	}
	if p.agent != "" && !validAgent(p.agent) {
		return fmt.Errorf("bot: pattern %q: invalid agent name %q", p.lit, p.agent)
	}
	return nil
}

// identityReasons are the reasons whose named agents self-identify a UA; see
// Classify for the tiering.
const identityReasons = ReasonPreview | ReasonCrawler | ReasonScanner

// agentReasons are the reasons a pattern (and so an agent name) can carry.
const agentReasons = identityReasons | ReasonHTTPLibrary | ReasonHeadless

// acc accumulates UA matches. It lives on Classify's stack.
type acc struct {
	// seen marks patterns already matched, so a UA repeating a token
	// ("bot bot bot ...") costs a bit test per repeat, not a re-verify.
	seen       [4]uint64
	idReasons  Reason // from named identity patterns
	idAgent    string
	idRank     uint16
	secReasons Reason // from generic tokens, libraries, headless browsers
	secAgent   string
	secRank    uint16
}

// add records a match of pattern pi. Rank orders agents by reason bit, then
// table position.
func (a *acc) add(pi int) {
	a.seen[pi/64] |= 1 << (pi % 64)
	p := &patterns[pi]
	rank := uint16(bits.TrailingZeros32(uint32(p.reason)))<<8 | uint16(pi)
	switch {
	case p.agent != "" && p.reason&identityReasons != 0:
		a.idReasons |= p.reason
		if rank < a.idRank {
			a.idAgent, a.idRank = p.agent, rank
		}
	default:
		a.secReasons |= p.reason
		if p.agent != "" && rank < a.secRank {
			a.secAgent, a.secRank = p.agent, rank
		}
	}
}

func (a *acc) result() (Reason, string) {
	if a.idReasons != 0 {
		return a.idReasons, a.idAgent
	}
	return a.secReasons, a.secAgent
}

// classifyUA returns the UA-derived reasons and agent. ua is not blank.
func classifyUA(ua []byte) (Reason, string) {
	a := acc{idRank: math.MaxUint16, secRank: math.MaxUint16}
	for _, pi := range m.prefix {
		if hasPrefixFold(ua, patterns[pi].lit) {
			a.add(int(pi))
		}
	}
	if len(m.exact) > 0 {
		t := trimBlank(ua)
		for _, pi := range m.exact {
			if len(t) == len(patterns[pi].lit) && hasPrefixFold(t, patterns[pi].lit) {
				a.add(int(pi))
			}
		}
	}
	if len(ua) <= maxScan {
		a.scan(ua)
	} else {
		a.scan(ua[:headScan])
		a.scan(ua[len(ua)-tailScan:])
	}
	return a.result()
}

// scan probes every 3-byte window of ua against the filter. The main loop
// loads 8 bytes at a time, folds case once, and tests the 6 windows fully
// inside them with one branch, so a miss (the common case for human UAs) costs
// a multiply, a shift and one L1 byte load per window. Keeping this loop free
// of calls, per-window branches and variable shifts is what makes it fast;
// the bitmap version of the filter needed CL-register shifts and spilled.
func (a *acc) scan(ua []byte) {
	f := &filter
	i := 0
	for ; i+8 <= len(ua); i += 6 {
		w := binary.LittleEndian.Uint64(ua[i:]) | 0x2020202020202020
		if f[foldedHash(uint32(w))]|f[foldedHash(uint32(w>>8))]|f[foldedHash(uint32(w>>16))]|
			f[foldedHash(uint32(w>>24))]|f[foldedHash(uint32(w>>32))]|f[foldedHash(uint32(w>>40))] != 0 {
			a.probe6(ua, i, w)
		}
	}
	for ; i+3 <= len(ua); i++ {
		a.probe(ua, i, gramHash(uint32(ua[i])|uint32(ua[i+1])<<8|uint32(ua[i+2])<<16))
	}
}

// probe6 is scan's slow path: it re-probes the 6 windows of w one by one.
func (a *acc) probe6(ua []byte, i int, w uint64) {
	for k := range 6 {
		a.probe(ua, i+k, foldedHash(uint32(w>>(8*k))))
	}
}

// probe verifies the window at ua[pos] if its hash h is in the filter.
func (a *acc) probe(ua []byte, pos int, h uint32) {
	if filter[h] != 0 {
		a.verify(ua, pos, h)
	}
}

// verify checks every anchor whose hash is h against the window at ua[pos].
// It is the slow path, taken on a filter hit.
func (a *acc) verify(ua []byte, pos int, h uint32) {
	g := uint32(ua[pos]) | uint32(ua[pos+1])<<8 | uint32(ua[pos+2])<<16 | 0x202020
	as := m.anchors
	for j := int(filter[h]) - 1; j >= 0 && j < len(as) && uint32(as[j].hash) == h; j++ {
		an := &as[j]
		if an.gram != g || a.seen[an.pat/64]&(1<<(an.pat%64)) != 0 {
			continue // hash collision, or already matched
		}
		p := &patterns[an.pat]
		start := pos - int(an.off)
		end := start + len(p.lit)
		if start < 0 || end > len(ua) || !hasPrefixFold(ua[start:], p.lit) {
			continue
		}
		if p.check != nil && !p.check(ua, start, end) {
			continue
		}
		a.add(int(an.pat))
	}
}

// hasPrefixFold reports whether s starts with lit, ignoring ASCII case. lit
// must be lowercase.
func hasPrefixFold(s []byte, lit string) bool {
	if len(s) < len(lit) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lit[i] {
			return false
		}
	}
	return true
}

func trimBlank(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
