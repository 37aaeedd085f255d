// Package bot classifies link-preview fetchers, crawlers, HTTP libraries and
// prefetches on the redirect hot path.
//
// Bots are flagged, never dropped: the proxy still redirects them, but stores
// the click with bot=true and the reason string produced by
// Verdict.AppendReason, so analytics can separate "the message was delivered
// and previewed" from "a person tapped the link".
//
// Classify allocates nothing and costs roughly one table probe per byte of
// User-Agent; see matcher.go for how the patterns are matched.
package bot

// Request holds the request properties the classifier reads. Slices may point
// into a fasthttp request; Classify must not retain them.
type Request struct {
	Method     []byte // "GET", "HEAD", ...
	UserAgent  []byte
	Purpose    []byte // "Purpose" header, e.g. "prefetch"
	SecPurpose []byte // "Sec-Purpose" header, e.g. "prefetch;prerender"
	XPurpose   []byte // "X-Purpose" header (older Chrome: "preview")
	XMoz       []byte // "X-Moz" header ("prefetch")
}

// Reason is a bit set of the signals that marked a request as automated.
//
// The bit values are persisted (through AppendReason's names), so existing
// constants must never be renumbered; new reasons are appended.
type Reason uint32

const (
	// ReasonPreview: a link-preview / unfurl fetcher (iMessage, WhatsApp,
	// Slack, Google Messages, ...). These fire when a message is delivered or
	// shared, before any human taps the link.
	ReasonPreview Reason = 1 << iota
	// ReasonCrawler: a search-engine crawler or a UA with generic robot
	// tokens ("bot", "crawl", "spider", "slurp").
	ReasonCrawler
	// ReasonHTTPLibrary: a programmatic HTTP client (curl, python-requests,
	// Go-http-client, okhttp, ...).
	ReasonHTTPLibrary
	// ReasonHead: the request used the HEAD method; browsers never navigate
	// with HEAD, link checkers and scanners do.
	ReasonHead
	// ReasonPrefetch: a Purpose / Sec-Purpose / X-Purpose / X-Moz header asked
	// for a prefetch, prerender or preview; the user has not navigated (yet).
	ReasonPrefetch
	// ReasonMissingUA: the User-Agent header was absent or blank. Every real
	// browser sends one; carrier scanners frequently do not.
	ReasonMissingUA
	// ReasonHeadless: a headless / scripted browser (HeadlessChrome,
	// PhantomJS).
	ReasonHeadless
	// ReasonScanner: a URL or security scanner (Office existence discovery,
	// Google-Safety, Kaspersky link resolver, generic "scan" tokens).
	ReasonScanner

	// reasonCount is the number of defined reasons; bits at or above it are
	// ignored by AppendReason.
	reasonCount = iota
)

// allReasons masks the defined reason bits.
const allReasons Reason = 1<<reasonCount - 1

// Verdict is the outcome of Classify.
type Verdict struct {
	// Reasons holds every signal that fired; zero means "looks human".
	Reasons Reason
	// Agent is the static name of the most specific named agent matched
	// (e.g. "whatsapp", "imessage", "curl"), or "" if none. When several
	// named agents match, the one whose reason comes first in bit order wins,
	// then the one listed first in the pattern table (which puts specific
	// signatures such as iMessage's before the generic ones they contain).
	Agent string
}

// Bot reports whether any signal fired.
func (v Verdict) Bot() bool { return v.Reasons != 0 }

// String returns the AppendReason form, "" for a human verdict.
func (v Verdict) String() string { return string(v.AppendReason(nil)) }

// Classify inspects r and returns every signal found. It makes no heap
// allocations and does not retain r's slices.
//
// Request-level signals (HEAD, prefetch headers, missing UA) are always
// combined with whatever the User-Agent yields. User-Agent signals are tiered:
// when the UA self-identifies as a known preview fetcher, crawler or scanner,
// generic tokens and embedded HTTP-library names in the same UA are treated as
// part of that identity rather than extra evidence. Otherwise Slackbot's
// "+https://api.slack.com/robots" would add "crawler" and LinkedInBot's
// "Apache-HttpClient" would add "http_library" to every LinkedIn preview.
func Classify(r Request) Verdict {
	var v Verdict
	if string(r.Method) == "HEAD" {
		v.Reasons |= ReasonHead
	}
	if isPrefetch(r.Purpose) || isPrefetch(r.SecPurpose) || isPrefetch(r.XPurpose) || isPrefetch(r.XMoz) {
		v.Reasons |= ReasonPrefetch
	}
	if isBlank(r.UserAgent) {
		v.Reasons |= ReasonMissingUA
		return v
	}
	reasons, agent := classifyUA(r.UserAgent)
	v.Reasons |= reasons
	v.Agent = agent
	return v
}

// isBlank reports whether ua is empty or only spaces and tabs (a header that
// is present but carries nothing is as good as missing).
func isBlank(ua []byte) bool {
	for _, c := range ua {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

// isPrefetch reports whether a purpose-style header value mentions prefetch,
// prerender or preview, case-insensitively. The four headers disagree on
// syntax ("prefetch", "prefetch;prerender", "preview", structured-field
// parameters), so a token search is more robust than parsing each one.
func isPrefetch(v []byte) bool {
	if len(v) < len("preview") {
		return false
	}
	for i := 0; i+len("preview") <= len(v); i++ {
		if v[i]|0x20 != 'p' {
			continue
		}
		rest := v[i:]
		if hasPrefixFold(rest, "prefetch") || hasPrefixFold(rest, "prerender") || hasPrefixFold(rest, "preview") {
			return true
		}
	}
	return false
}
