// Package signature signs and verifies clickgate webhook deliveries.
//
// Each POST carries two headers:
//
//	X-Clickgate-Timestamp: 1795742400
//	X-Clickgate-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// A receiver recomputes the HMAC over the timestamp header, a dot and the raw body,
// compares in constant time, and rejects timestamps older than a few minutes so a
// captured request cannot be replayed later.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	TimestampHeader = "X-Clickgate-Timestamp"
	SignatureHeader = "X-Clickgate-Signature"
)

// Sign returns the signature header value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(t.Unix(), 10)
	return timestamp, "v1=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors from Verify.
var (
	ErrMissing = errors.New("missing signature headers")
	ErrStale   = errors.New("timestamp outside the tolerance")
	ErrInvalid = errors.New("signature does not match")
)

// Verify checks a delivery: the signature matches and the timestamp is within
// tolerance of now.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if timestamp == "" || signature == "" {
		return ErrMissing
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrInvalid
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	for _, s := range strings.Split(signature, ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(s), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, mac(secret, timestamp, body)) {
			return nil
		}
	}
	return ErrInvalid
}
