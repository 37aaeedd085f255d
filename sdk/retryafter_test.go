package sdk

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, value string
		want        time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "7", 7 * time.Second},
		{"spaces", " 7 ", 7 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"huge", "99999999999", MaxRetryAfter},
		{"overflow", "999999999999999999999999", 0},
		{"date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"past date", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"far date", now.Add(72 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
		{"garbage", "soon", 0},
		{"fraction", "1.5", 0},
	} {
		h := http.Header{}
		if tc.value != "" {
			h.Set("Retry-After", tc.value)
		}
		if got := RetryAfter(h, now); got != tc.want {
			t.Errorf("%s: RetryAfter(%q) = %s, want %s", tc.name, tc.value, got, tc.want)
		}
	}
}

// Any header value gives a wait between 0 and MaxRetryAfter.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "Fri, 27 Nov 2026 12:01:30 GMT", "-1", "x", ""} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if got := RetryAfter(http.Header{"Retry-After": {v}}, now); got < 0 || got > MaxRetryAfter {
			t.Fatalf("RetryAfter(%q) = %s", v, got)
		}
	})
}
