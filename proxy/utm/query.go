package utm

// AppendQuery appends v to dst as an escaped query fragment in the fixed order source,
// medium, campaign, content, term — "utm_source=sms&utm_medium=promotional&…" — omitting
// content and term when empty, and returns the extended slice. It adds no leading '?' or
// '&': the caller knows whether the destination already has a query.
//
// A fixed order makes the redirect URL for a link byte-for-byte stable, which keeps
// caches and log diffs quiet. Canonical values are [a-z0-9_] and need no escaping, but
// every value is escaped anyway so that Values that bypassed Normalize (old records, a
// bug elsewhere) can never inject parameters or break the URL.
func (v Values) AppendQuery(dst []byte) []byte {
	n := len("utm_source=&utm_medium=&utm_campaign=&utm_content=&utm_term=") +
		len(v.Source) + len(v.Medium) + len(v.Campaign) + len(v.Content) + len(v.Term)
	if cap(dst)-len(dst) < n {
		// One allocation sized for the common, escape-free case.
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, "utm_source="...)
	dst = appendEscaped(dst, v.Source)
	dst = append(dst, "&utm_medium="...)
	dst = appendEscaped(dst, v.Medium)
	dst = append(dst, "&utm_campaign="...)
	dst = appendEscaped(dst, v.Campaign)
	if v.Content != "" {
		dst = append(dst, "&utm_content="...)
		dst = appendEscaped(dst, v.Content)
	}
	if v.Term != "" {
		dst = append(dst, "&utm_term="...)
		dst = appendEscaped(dst, v.Term)
	}
	return dst
}

const upperHex = "0123456789ABCDEF"

// appendEscaped percent-encodes everything but RFC 3986 unreserved characters. Space
// becomes %20 rather than '+', which every query parser reads as a space.
func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
	}
	return dst
}
