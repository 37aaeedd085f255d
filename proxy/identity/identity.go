// Package identity normalises the identities a click or a conversion may carry (customer
// ID, email, phone) and turns emails and phones into keyed hashes, so no plaintext
// contact detail is ever stored.
package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
)

// Identity kinds.
const (
	CustomerID = "customer_id"
	Email      = "email"
	Phone      = "phone"
)

// ValidKind reports whether k is an identity kind.
func ValidKind(k string) bool { return k == CustomerID || k == Email || k == Phone }

const maxLen = 254 // the longest valid email address; generous for IDs and phones

// Normalize returns the canonical form of an identity value: customer IDs trimmed,
// emails trimmed and lowercased, phones in E.164 (numbers without a country code are
// read in defaultRegion, e.g. "US").
func Normalize(kind, value, defaultRegion string) (string, error) {
	v := strings.TrimSpace(value)
	switch {
	case v == "":
		return "", errors.New("empty")
	case len(v) > maxLen:
		return "", fmt.Errorf("longer than %d bytes", maxLen)
	case !utf8.ValidString(v):
		return "", errors.New("not valid UTF-8")
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return "", errors.New("contains control characters")
	}
	switch kind {
	case CustomerID:
		if unfilledTag(v) {
			// A merge tag the sending platform did not fill names no one, yet the same
			// text on every recipient's click would join them all as one person.
			return "", errors.New("an unfilled merge tag, not a customer ID")
		}
		return v, nil
	case Email:
		v = strings.ToLower(v)
		at := strings.LastIndexByte(v, '@')
		if at <= 0 || at == len(v)-1 || strings.ContainsAny(v, " \t,;<>") || !strings.Contains(v[at+1:], ".") {
			return "", errors.New("not an email address")
		}
		return v, nil
	case Phone:
		n, err := phonenumbers.Parse(v, defaultRegion)
		if err != nil || !phonenumbers.IsPossibleNumber(n) {
			return "", errors.New("not a phone number")
		}
		return phonenumbers.Format(n, phonenumbers.E164), nil
	}
	return "", fmt.Errorf("unknown identity kind %q", kind)
}

// tagMarks are the delimiters of the merge tags SMS and email platforms fill per
// recipient: Liquid and Handlebars ({{ }}, {% %}), Mailchimp (*| |*), Salesforce and
// others (%% %%, [[ ]], ${ }, <% %>). No customer ID holds them.
var tagMarks = []string{"{{", "}}", "{%", "%}", "*|", "|*", "%%", "[[", "]]", "${", "<%", "%>"}

// unfilledTag reports whether v looks like a merge tag left as it was written: holding a
// pair of delimiters above, or a field name wrapped whole in %…% (ActiveCampaign), {…}
// or […] ("{First Name}", "[custom1]", "%FIELD_1%"): words, digits, spaces, '_', '.' and
// '-', with a word of two letters or more, and not hex digits and hyphens alone, which
// is a braced GUID. "[A123]" and "{3F2504E0-4F89-…}" are IDs.
func unfilledTag(v string) bool {
	for _, m := range tagMarks {
		if strings.Contains(v, m) {
			return true
		}
	}
	if len(v) < 3 {
		return false
	}
	switch v[0:1] + v[len(v)-1:] {
	case "%%", "{}", "[]":
	default:
		return false
	}
	name := v[1 : len(v)-1]
	const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.-"
	if strings.Trim(name, nameChars) != "" || strings.Trim(name, "0123456789abcdefABCDEF-") == "" {
		return false
	}
	run := 0
	for i := 0; i < len(name); i++ {
		if c := name[i] | 0x20; c >= 'a' && c <= 'z' {
			if run++; run >= 2 {
				return true
			}
		} else {
			run = 0
		}
	}
	return false
}

// Hasher turns normalised emails and phones into keyed hashes (HMAC-SHA256 under the
// server secret), so the same person joins across clicks and conversions while the
// store holds nothing a leak could turn back into a contact.
type Hasher struct{ key []byte }

// NewHasher returns a Hasher keyed with secret.
func NewHasher(secret []byte) *Hasher { return &Hasher{key: append([]byte(nil), secret...)} }

// Stored returns what is stored for a normalised identity: customer IDs as they are,
// emails and phones as hex HMACs.
func (h *Hasher) Stored(kind, normalized string) string {
	if kind == CustomerID {
		return normalized
	}
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(normalized))
	return hex.EncodeToString(m.Sum(nil))
}
