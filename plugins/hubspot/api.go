package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/plugins/internal/narrow"
	"github.com/clickgate/clickgate/sdk"
)

// maxReason bounds a reason: it is logged and kept with dead letters.
const maxReason = 600

// answer is what HubSpot said to one request.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error // the request did not complete
}

// post sends a JSON body to path with the private app's token.
func (h *HubSpot) post(ctx context.Context, path string, body any) answer {
	raw, err := json.Marshal(body)
	if err != nil {
		return answer{err: fmt.Errorf("encoding the request: %w", err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, bytes.NewReader(raw))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+h.cfg.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "clickgate-hubspot/"+version)
	resp, err := h.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// verdict is how an answer that is not a success resolves for what it covered.
type verdict = narrow.Verdict

const (
	verdictRetry = narrow.Retry
	verdictFail  = narrow.Fail
	verdictSplit = narrow.Split
)

// outcome is what one request said of its items.
type outcome = narrow.Outcome

// classify maps a failed answer to a verdict, how long to wait, and a reason.
// scope names the scope the endpoint needs, for 403 reasons.
func classify(a answer, now time.Time, scope string) (verdict, time.Duration, string) {
	if a.err != nil {
		return verdictRetry, 0, "request failed: " + a.err.Error()
	}
	e := parseAPIError(a.body)
	reason := e.summary(a.status)
	switch code := a.status; {
	case code == http.StatusTooManyRequests:
		wait := retryAfter(a.header, now)
		if wait == 0 && dailyLimit(a.header, e) {
			// The daily limit resets at midnight in the account's time zone: an early
			// retry only uses up an attempt.
			wait = sdk.MaxRetryAfter
		}
		return verdictRetry, wait, reason + rateLimitNote(a.header, e)
	case code == http.StatusLocked:
		// HubSpot: "Locks will last for 2 seconds".
		return verdictRetry, max(retryAfter(a.header, now), 2*time.Second), reason
	case code == http.StatusRequestTimeout || code == 477 || code >= 500:
		// 477: the account is moving between data centers; Retry-After says for how long.
		return verdictRetry, retryAfter(a.header, now), reason
	case code == http.StatusUnauthorized:
		return verdictFail, 0, reason + " (HubSpot refused the access token: check config.access_token, the private app's token)"
	case code == http.StatusForbidden:
		return verdictFail, 0, reason + " (the private app lacks a scope: " + scope + ")"
	case code == http.StatusNotFound:
		return verdictFail, 0, reason + " (check config.base_url and the event names)"
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge:
		return verdictSplit, 0, reason
	default:
		return verdictFail, 0, reason
	}
}

// retryAfter reads Retry-After (seconds, or an HTTP date), else HubSpot's rate-limit
// headers: when the rolling window is used up, the window's length.
func retryAfter(h http.Header, now time.Time) time.Duration {
	const maxWait = 24 * time.Hour
	if strings.TrimSpace(h.Get("Retry-After")) != "" {
		return sdk.RetryAfter(h, now)
	}
	if h.Get("X-HubSpot-RateLimit-Remaining") == "0" {
		if ms, err := strconv.ParseInt(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds"), 10, 64); err == nil && ms > 0 {
			return min(time.Duration(ms)*time.Millisecond, maxWait)
		}
	}
	if h.Get("X-HubSpot-RateLimit-Secondly-Remaining") == "0" {
		return time.Second
	}
	return 0
}

// dailyLimit reports whether a 429 says the account's daily API limit is used up.
func dailyLimit(h http.Header, e apiError) bool {
	return h.Get("X-HubSpot-RateLimit-Daily-Remaining") == "0" || strings.EqualFold(e.PolicyName, "DAILY")
}

// rateLimitNote says which limit a 429 hit, when HubSpot said.
func rateLimitNote(h http.Header, e apiError) string {
	switch {
	case dailyLimit(h, e):
		return " (the account's daily API limit is used up)"
	case e.PolicyName != "":
		return " (limit " + clean(e.PolicyName, 40) + ")"
	}
	return ""
}

// apiError is HubSpot's error body. The docs say every field is optional and varies
// between APIs, so parsing is field by field and never fails.
type apiError struct {
	Status        string
	Message       string
	CorrelationID string
	Category      string
	SubCategory   string
	PolicyName    string
	Context       map[string][]string
	Errors        []errorDetail
}

// errorDetail is one entry of errors[].
type errorDetail struct {
	Message string
	Code    string
	In      string
	Context map[string][]string
}

func parseAPIError(body []byte) apiError {
	var e apiError
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		e.Message = clean(string(body), 200)
		return e
	}
	e.Status, e.Message, e.CorrelationID = str(m["status"]), str(m["message"]), str(m["correlationId"])
	e.Category, e.SubCategory, e.PolicyName = str(m["category"]), str(m["subCategory"]), str(m["policyName"])
	if e.Message == "" {
		e.Message = str(m["error"])
	}
	e.Context = contextOf(m["context"])
	var details []map[string]json.RawMessage
	if json.Unmarshal(m["errors"], &details) == nil {
		for _, d := range details {
			e.Errors = append(e.Errors, errorDetail{Message: str(d["message"]), Code: str(d["code"]), In: str(d["in"]), Context: contextOf(d["context"])})
		}
	}
	return e
}

// str is a JSON string's value, or "" for anything else.
func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// contextOf reads a context object: documented as names to lists of strings; a single
// string or a number is taken as a one-item list.
func contextOf(raw json.RawMessage) map[string][]string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		var list []any
		if json.Unmarshal(v, &list) != nil {
			var one any
			if json.Unmarshal(v, &one) != nil || one == nil {
				continue
			}
			list = []any{one}
		}
		for _, x := range list {
			switch x := x.(type) {
			case string:
				out[k] = append(out[k], x)
			case float64, bool:
				out[k] = append(out[k], fmt.Sprint(x))
			}
		}
	}
	return out
}

// summary is a one-line reason: status, category, message, details, correlation ID.
func (e apiError) summary(status int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", status)
	if e.Category != "" {
		b.WriteString(" " + clean(e.Category, 60))
	}
	if e.Message != "" {
		b.WriteString(": " + clean(e.Message, 300))
	}
	for i, d := range e.Errors {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Errors)-i)
			break
		}
		b.WriteString("; " + clean(d.Message, 160))
		if d.Code != "" {
			b.WriteString(" [" + clean(d.Code, 40) + "]")
		}
		for _, k := range sortedKeys(d.Context) {
			b.WriteString(" " + clean(k, 40) + "=" + clean(strings.Join(d.Context[k], ","), 120))
		}
	}
	if s := e.Context["missingScopes"]; len(s) > 0 {
		b.WriteString("; missing scopes " + clean(strings.Join(s, ","), 160))
	}
	if e.CorrelationID != "" {
		b.WriteString(" (correlationId " + clean(e.CorrelationID, 64) + ")")
	}
	return clean(b.String(), maxReason)
}

// key identifies a rejection by what it says, not by its correlation ID, so two
// requests turned down for the same cause can be told apart from two different causes.
func (e apiError) key(status int) string {
	c := e
	c.CorrelationID = ""
	return c.summary(status)
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// clean makes text from the network safe for one log line: control characters become
// spaces, and it is cut to n bytes on a rune boundary.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
