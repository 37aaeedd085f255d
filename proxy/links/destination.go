package links

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxDestinationLen bounds a destination URL: browsers and SMS platforms handle far less
// than the 8 KB a Location header may carry.
const MaxDestinationLen = 2048

// ValidateDestination accepts absolute http and https URLs with a host, no user info, no
// whitespace or control characters, at most MaxDestinationLen bytes. It never rewrites
// the URL: the redirect serves the stored bytes exactly.
func ValidateDestination(raw string) error {
	if raw == "" {
		return errors.New("destination is empty")
	}
	if len(raw) > MaxDestinationLen {
		return fmt.Errorf("destination is longer than %d bytes", MaxDestinationLen)
	}
	if !utf8.ValidString(raw) {
		return errors.New("destination is not valid UTF-8")
	}
	for _, r := range raw {
		if r < 0x21 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("destination contains a space or control character (%U)", r)
		}
		if r == '\\' || r == '"' || r == '<' || r == '>' || r == '`' || r == '{' || r == '}' || r == '|' || r == '^' {
			return fmt.Errorf("destination contains %q, which must be percent-encoded", r)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("destination is not a URL: %w", errors.Unwrap(err))
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return errors.New("destination must be absolute (start with https://)")
	default:
		return fmt.Errorf("destination scheme %q is not allowed (http or https only)", u.Scheme)
	}
	if u.Opaque != "" || !strings.HasPrefix(raw[len(u.Scheme):], "://") {
		return errors.New("destination must be absolute (start with https://)")
	}
	if u.User != nil {
		return errors.New("destination must not contain user info (user:password@)")
	}
	if u.Hostname() == "" {
		return errors.New("destination has no host")
	}
	if p := u.Port(); p != "" {
		for _, c := range p {
			if c < '0' || c > '9' {
				return fmt.Errorf("destination port %q is not a number", p)
			}
		}
	}
	return nil
}

// asciiDestination writes a valid destination as the ASCII URI a Location header must
// carry (RFC 9110): an internationalised host in punycode, every other non-ASCII byte
// percent-encoded as UTF-8, as a browser would send them. Sent raw, a client reading
// headers as Latin-1 follows a garbled host, and bidirectional controls pass unseen.
func asciiDestination(raw string) (string, error) {
	if isASCII(raw) {
		return raw, nil
	}
	i := strings.Index(raw, "://") + len("://") // ValidateDestination made sure of it
	rest := raw[i:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host, port := rest[:end], ""
	if j := strings.LastIndexByte(host, ':'); j >= 0 && !strings.Contains(host[j:], "]") {
		host, port = host[:j], host[j:]
	}
	if !isASCII(host) {
		h, err := hostToASCII.ToASCII(host)
		// Mapping turns compatibility forms into ASCII ('／' into '/', '＠' into '@'):
		// what comes out must still be a host name alone, or the link would lead
		// elsewhere than the host that was checked.
		if err != nil || h == "" || strings.Trim(h, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" {
			return "", fmt.Errorf("destination host %q is not a valid internationalised domain name", host)
		}
		host = h
	}
	var b strings.Builder
	b.WriteString(raw[:i])
	b.WriteString(host)
	b.WriteString(port)
	for k := end; k < len(rest); k++ {
		if c := rest[k]; c >= utf8.RuneSelf {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	out := b.String()
	if err := ValidateDestination(out); err != nil {
		return "", fmt.Errorf("destination as ASCII (%s): %w", out, err)
	}
	return out, nil
}

// hostToASCII maps a host as browsers look it up (UTS 46), but takes what they take
// beyond the strict hostname rules: an underscore in a label (a_b.bücher.example).
var hostToASCII = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.StrictDomainName(false))

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// splitDestination splits a destination into the part before the query, the raw query
// (without '?'), whether it had a '?', and the fragment (with '#'), without decoding.
func splitDestination(raw string) (base, query string, hasQuery bool, fragment string) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw, fragment = raw[:i], raw[i:]
	}
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i], raw[i+1:], true, fragment
	}
	return raw, "", false, fragment
}

// queryKey decodes a raw query key for comparison only; the raw bytes are what is served.
func queryKey(pair string) string {
	k := pair
	if i := strings.IndexByte(pair, '='); i >= 0 {
		k = pair[:i]
	}
	if strings.ContainsAny(k, "%+") {
		if d, err := url.QueryUnescape(k); err == nil {
			return d
		}
	}
	return k
}

// isUTMKey reports whether a query key is one the link's UTM values own.
func isUTMKey(k string) bool {
	switch strings.ToLower(k) {
	case "utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "utm_id":
		return true
	}
	return false
}

// stripUTM removes utm_* pairs from a raw query, keeping every other byte as it was, and
// returns the pairs it removed.
func stripUTM(query string) (kept string, removed []string) {
	if query == "" {
		return "", nil
	}
	var b strings.Builder
	for _, pair := range strings.Split(query, "&") {
		if isUTMKey(queryKey(pair)) {
			removed = append(removed, pair)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	if len(removed) == 0 {
		return query, nil
	}
	return b.String(), removed
}
