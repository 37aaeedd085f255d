package links

import "bytes"

// AppendLocation appends the URL a tap is redirected to: the target's prefix (the
// destination's bytes as stored, with the link's UTM values), then the incoming query
// parameters the link forwards, then the click parameter (none when clickID is nil: a
// click that could not be stored claims no ID, and an incoming one is still never
// forwarded), then the fragment. The stored
// destination's bytes are never decoded or re-escaped; incoming bytes are escaped where
// they are not valid in a query, so nothing a client sends can end the header or the URL.
func (l *Link) AppendLocation(dst []byte, t *Target, query []byte, clickParam string, clickID []byte) []byte {
	dst = append(dst, t.Prefix...)
	if l.ForwardQuery && len(query) > 0 {
		dst = l.appendForwarded(dst, t, query, clickParam)
	}
	if clickID != nil {
		dst = append(dst, '&')
		dst = append(dst, clickParam...)
		dst = append(dst, '=')
		dst = append(dst, clickID...)
	}
	return append(dst, t.Fragment...)
}

func (l *Link) appendForwarded(dst []byte, t *Target, query []byte, clickParam string) []byte {
	var keyBuf [64]byte
	for len(query) > 0 {
		var pair []byte
		if i := bytes.IndexByte(query, '&'); i >= 0 {
			pair, query = query[:i], query[i+1:]
		} else {
			pair, query = query, nil
		}
		if len(pair) == 0 {
			continue
		}
		rawKey := pair
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			rawKey = pair[:i]
		}
		key, ok := unescapeKey(keyBuf[:0], rawKey)
		if !ok || len(key) == 0 || l.owns(t, key, clickParam) {
			continue
		}
		dst = append(dst, '&')
		dst = appendQuerySafe(dst, pair)
	}
	return dst
}

// owns reports whether a parameter name belongs to the link rather than the visitor:
// every utm_* key (incoming campaign parameters would fragment the link's own), the click
// parameter, identity parameters and the destination's own keys.
func (l *Link) owns(t *Target, key []byte, clickParam string) bool {
	// The click parameter in any case: frameworks that read parameter names without
	// case (ASP.NET) would join an incoming CGID to the link's.
	if equalFoldASCII(key, clickParam) || hasUTMPrefix(key) {
		return true
	}
	for _, p := range l.IdentityParams {
		if string(key) == p.Name {
			return true
		}
	}
	// The destination's own keys in any case too: PROMO=B beside the destination's
	// promo=A reaches such frameworks as "A,B".
	for _, k := range t.Keys {
		if equalFoldASCII(key, k) {
			return true
		}
	}
	return false
}

func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

func hasUTMPrefix(k []byte) bool {
	return len(k) >= 4 && k[0]|0x20 == 'u' && k[1]|0x20 == 't' && k[2]|0x20 == 'm' && k[3] == '_'
}

// unescapeKey decodes %XX and '+' in a query key into buf for comparison. A key that
// does not fit buf (64 bytes) is reported not ok and is not forwarded: no real parameter
// name is that long.
func unescapeKey(buf []byte, k []byte) ([]byte, bool) {
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(k) && isHex(k[i+1]) && isHex(k[i+2]):
			c = unhex(k[i+1])<<4 | unhex(k[i+2])
			i += 2
		}
		if len(buf) == cap(buf) {
			return buf, false
		}
		buf = append(buf, c)
	}
	return buf, true
}

// appendQuerySafe appends a raw query pair, percent-encoding every byte that may not
// appear in a URL query (RFC 3986), every '%' that does not start an escape, and ';':
// servers that also split parameters on ';' (Rack 2, older Java) would read one inside a
// forwarded value as parameters of their own, after the link's (?x=1;utm_source=evil).
func appendQuerySafe(dst, s []byte) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			dst = append(dst, c)
			continue
		}
		if querySafe[c] {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

var querySafe = func() (t [256]bool) {
	for _, c := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$'()*+,=:@/?") {
		t[c] = true
	}
	return t
}()

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
