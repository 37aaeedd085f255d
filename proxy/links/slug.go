// Package links holds the rules of a short link (slug, destination, UTM naming, variants,
// identity capture), compiles links into the form the redirect reads, and keeps the
// in-memory index in step with storage.
package links

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
)

// unambiguous is base62 without the characters people confuse when reading a link off a
// phone screen (0/O, 1/l/I).
const unambiguous = "23456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

const (
	// MaxSlugLen bounds custom slugs; generated ones are GeneratedSlugLen long.
	MaxSlugLen = 64
	// GeneratedSlugLen gives 57^7 ≈ 1.9e12 slugs: random, so not guessable in sequence,
	// and short enough for an SMS.
	GeneratedSlugLen = 7
	// TokenLen is the length of a per-recipient token: 57^8 ≈ 1.1e14 per link.
	TokenLen = 8
	// MaxTokenLen bounds what the redirect accepts as a token.
	MaxTokenLen = 32
)

// reserved slugs are paths the public listener answers itself.
var reserved = map[string]bool{
	"healthz": true, "readyz": true, "metrics": true, "v1": true, "api": true, "ui": true,
	"robots.txt": true, "favicon.ico": true, ".well-known": true,
}

// ValidSlug checks a custom slug: 1 to 64 of [A-Za-z0-9_-], not a reserved path.
func ValidSlug(s string) error {
	if s == "" {
		return errors.New("slug is empty")
	}
	if len(s) > MaxSlugLen {
		return fmt.Errorf("slug is longer than %d characters", MaxSlugLen)
	}
	for i := 0; i < len(s); i++ {
		if !slugByte(s[i]) {
			return fmt.Errorf("slug may only contain letters, digits, '-' and '_' (found %q)", s[i])
		}
	}
	if reserved[strings.ToLower(s)] {
		return fmt.Errorf("slug %q is reserved", s)
	}
	return nil
}

// SlugChars reports whether s holds only the characters of slugs and tokens.
func SlugChars[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !slugByte(s[i]) {
			return false
		}
	}
	return true
}

func slugByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// ValidToken checks a per-recipient token as it arrives in a path.
func ValidToken[T ~string | ~[]byte](s T) bool {
	if len(s) == 0 || len(s) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !slugByte(s[i]) {
			return false
		}
	}
	return true
}

// randomString returns n characters of the unambiguous alphabet from crypto/rand, using
// rejection sampling so every character is equally likely.
func randomString(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		rand.Read(buf[:])
		for _, b := range buf {
			// 57*4 = 228: values at or above it would bias the first characters.
			if int(b) < len(unambiguous)*4 {
				out = append(out, unambiguous[int(b)%len(unambiguous)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// NewSlug returns a random slug.
func NewSlug() string { return randomString(GeneratedSlugLen) }

// NewToken returns a random per-recipient token.
func NewToken() string { return randomString(TokenLen) }
