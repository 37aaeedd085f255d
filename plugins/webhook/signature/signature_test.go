package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	key  = []byte("k7Qe2v9Lr4Tz8Hw1")
	when = time.Unix(1795742400, 0)
	body = []byte(`{"events":[{"event_id":"06j00000000000000000000001"}]}`)
)

// The documented format, computed independently of Sign.
func TestFormat(t *testing.T) {
	ts, sig := Sign(key, when, body)
	if ts != "1795742400" {
		t.Errorf("timestamp %q, want Unix seconds", ts)
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("1795742400." + string(body)))
	if want := "v1=" + hex.EncodeToString(m.Sum(nil)); sig != want {
		t.Errorf("signature %q, want %q", sig, want)
	}
	if TimestampHeader != "X-Clickgate-Timestamp" || SignatureHeader != "X-Clickgate-Signature" {
		t.Errorf("headers %s, %s", TimestampHeader, SignatureHeader)
	}
}

func TestVerify(t *testing.T) {
	ts, sig := Sign(key, when, body)
	_, other := Sign(key, when, []byte("another body"))
	hexOnly := strings.TrimPrefix(sig, "v1=")
	tampered := append([]byte(nil), body...)
	tampered[len(tampered)-3] ^= 1
	const tol = 5 * time.Minute
	cases := []struct {
		name      string
		key       []byte
		ts, sig   string
		body      []byte
		now       time.Time
		want      error
		wantWhich string
	}{
		{name: "round trip", ts: ts, sig: sig, now: when},
		{name: "4m59s later", ts: ts, sig: sig, now: when.Add(tol - time.Second)},
		{name: "exactly the tolerance", ts: ts, sig: sig, now: when.Add(tol)},
		{name: "receiver clock behind", ts: ts, sig: sig, now: when.Add(-tol)},
		{name: "upper-case hex", ts: ts, sig: "v1=" + strings.ToUpper(hexOnly), now: when},
		{name: "tampered body", ts: ts, sig: sig, body: tampered, now: when, want: ErrInvalid},
		{name: "empty body", ts: ts, sig: sig, body: []byte{}, now: when, want: ErrInvalid},
		{name: "wrong secret", key: []byte("k7Qe2v9Lr4Tz8Hw2"), ts: ts, sig: sig, now: when, want: ErrInvalid},
		{name: "empty secret", key: []byte{}, ts: ts, sig: sig, now: when, want: ErrInvalid},
		{name: "stale", ts: ts, sig: sig, now: when.Add(tol + time.Second), want: ErrStale},
		{name: "from the future", ts: ts, sig: sig, now: when.Add(-tol - time.Second), want: ErrStale},
		{name: "a day old", ts: ts, sig: sig, now: when.Add(24 * time.Hour), want: ErrStale},
		{name: "timestamp changed", ts: strconv.FormatInt(when.Unix()+1, 10), sig: sig, now: when, want: ErrInvalid},
		{name: "timestamp with a plus sign", ts: "+" + ts, sig: sig, now: when, want: ErrInvalid},
		{name: "missing timestamp", ts: "", sig: sig, now: when, want: ErrMissing},
		{name: "missing signature", ts: ts, sig: "", now: when, want: ErrMissing},
		{name: "timestamp not a number", ts: "yesterday", sig: sig, now: when, want: ErrInvalid},
		{name: "timestamp in milliseconds", ts: ts + "000", sig: sig, now: when, want: ErrStale},
		{name: "no scheme", ts: ts, sig: hexOnly, now: when, want: ErrInvalid},
		{name: "other scheme", ts: ts, sig: "v0=" + hexOnly, now: when, want: ErrInvalid},
		{name: "not hex", ts: ts, sig: "v1=" + strings.Repeat("zz", 32), now: when, want: ErrInvalid},
		{name: "odd hex", ts: ts, sig: sig[:len(sig)-1], now: when, want: ErrInvalid},
		{name: "truncated", ts: ts, sig: sig[:20], now: when, want: ErrInvalid},
		{name: "empty v1", ts: ts, sig: "v1=", now: when, want: ErrInvalid},
		{name: "only commas", ts: ts, sig: ",,,", now: when, want: ErrInvalid},
		{name: "signature of another body", ts: ts, sig: other, now: when, want: ErrInvalid},
		{name: "several v1, one matches", ts: ts, sig: other + ",v1=00ff," + sig, now: when},
		{name: "several v1 with spaces", ts: ts, sig: "v1=deadbeef, " + sig + " ", now: when},
		{name: "a newer scheme beside v1", ts: ts, sig: "v2=abcdef," + sig, now: when},
		{name: "several v1, none matches", ts: ts, sig: other + ",v1=deadbeef", now: when, want: ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k, b := key, body
			if tc.key != nil {
				k = tc.key
			}
			if tc.body != nil {
				b = tc.body
			}
			if err := Verify(k, tc.ts, tc.sig, b, tc.now, tol); !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	ts, sig := Sign(key, when, body)
	f.Add(key, body, when.Unix(), int64(0), ts, sig)
	f.Add([]byte{}, []byte{}, int64(0), int64(299), "", "")
	f.Add([]byte("s"), []byte("{}"), int64(-1), int64(-300), "-1", "v1=,v1=zz, v1=00")
	f.Add([]byte("s"), []byte("x"), int64(math.MaxInt64), int64(300), "99999999999999999999", "v1="+strings.Repeat("0", 64))
	f.Add([]byte("s"), []byte("x"), int64(math.MinInt64), int64(-300), "-9223372036854775808", "v1")
	f.Fuzz(func(t *testing.T, secret, body []byte, unix, skew int64, timestamp, signature string) {
		// Whatever arrives, Verify answers without panicking.
		Verify(secret, timestamp, signature, body, time.Unix(unix, 0), 5*time.Minute)

		// What Sign produces always verifies, within the tolerance either way.
		at := time.Unix(unix, 0)
		gotTS, gotSig := Sign(secret, at, body)
		now := at.Add(time.Duration(skew%301) * time.Second)
		if err := Verify(secret, gotTS, gotSig, body, now, 5*time.Minute); err != nil {
			t.Fatalf("Sign(%q, %d, %q) = %q, %q does not verify at %v: %v", secret, unix, body, gotTS, gotSig, now, err)
		}
		// ... and nothing else does: not another body, nor another timestamp.
		if err := Verify(secret, gotTS, gotSig, append(body, 'x'), now, 5*time.Minute); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a longer body verified: %v", err)
		}
		if unix < math.MaxInt64 {
			next := strconv.FormatInt(unix+1, 10)
			if err := Verify(secret, next, gotSig, body, at, 5*time.Minute); !errors.Is(err, ErrInvalid) {
				t.Fatalf("another timestamp verified: %v", err)
			}
		}
	})
}
