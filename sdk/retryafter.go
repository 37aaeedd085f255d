package sdk

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter is the longest wait the host honours from a Result's RetryAfter (and
// what RetryAfter returns at most): a bogus header cannot park events for days.
const MaxRetryAfter = time.Hour

// RetryAfter reads an HTTP Retry-After header, in delay-seconds or as an HTTP date
// (RFC 9110, section 10.2.3), as the wait before a retry: 0 when the header is absent,
// unreadable or already past (leaving the delay to the host's back-off), and at most
// MaxRetryAfter.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}
