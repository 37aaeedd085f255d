package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/plugins/internal/narrow"
	"github.com/clickgate/clickgate/sdk"
)

// maxReason bounds a reason: it is logged and kept with dead letters.
const maxReason = 600

// answer is what Salesforce said to one request.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error // the request did not complete
}

// send makes one REST request with the access token.
func (s *Salesforce) send(ctx context.Context, method, url string, body []byte, token string) answer {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "clickgate-salesforce/"+version)
	return s.do(req)
}

func (s *Salesforce) do(req *http.Request) answer {
	resp, err := s.client.Do(req)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// apiError is one entry of Salesforce's error array: {message, errorCode, fields}.
// sObject Collections results name the code statusCode.
type apiError struct {
	Code    string
	Message string
	Fields  []string
}

// parseErrors reads an error body: documented as an array of {message, errorCode,
// fields}; a single object is taken as a one-entry array, and anything else becomes one
// entry quoting the body. It never fails.
func parseErrors(body []byte) []apiError {
	var list []map[string]json.RawMessage
	if json.Unmarshal(body, &list) != nil {
		var one map[string]json.RawMessage
		if json.Unmarshal(body, &one) != nil || one == nil {
			if t := clean(string(body), 200); t != "" {
				return []apiError{{Message: t}}
			}
			return nil
		}
		list = []map[string]json.RawMessage{one}
	}
	out := make([]apiError, 0, len(list))
	for _, m := range list {
		e := apiError{Code: str(m["errorCode"]), Message: str(m["message"])}
		if e.Code == "" {
			e.Code = str(m["statusCode"])
		}
		if e.Code == "" && e.Message == "" {
			// An OAuth error: {"error": ..., "error_description": ...}.
			e.Code, e.Message = str(m["error"]), str(m["error_description"])
		}
		var fields []any
		if json.Unmarshal(m["fields"], &fields) == nil {
			for _, f := range fields {
				if f, ok := f.(string); ok {
					e.Fields = append(e.Fields, f)
				}
			}
		}
		if e.Code != "" || e.Message != "" || len(e.Fields) > 0 {
			out = append(out, e)
		}
	}
	return out
}

func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// summary is a one-line reason: "CODE: message (fields A, B); CODE: …".
func summary(errs []apiError) string {
	var b strings.Builder
	for i, e := range errs {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(errs)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		if e.Code != "" {
			b.WriteString(clean(e.Code, 60))
			if e.Message != "" {
				b.WriteString(": ")
			}
		}
		b.WriteString(clean(e.Message, 300))
		if len(e.Fields) > 0 {
			b.WriteString(" (fields " + clean(strings.Join(e.Fields, ", "), 160) + ")")
		}
	}
	return clean(b.String(), maxReason)
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

// transient are the error codes that name a passing condition: a record lock held by
// another transaction, the org's API request limits, a server busy or in maintenance,
// a session that expired meanwhile, a batch rolled back or halted because of another
// record.
var transient = []string{
	"UNABLE_TO_LOCK_ROW", "REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "INVALID_SESSION_ID",
	"ALL_OR_NONE_OPERATION_ROLLED_BACK", "PROCESSING_HALTED",
}

// totalRequestsUsedUp reports whether errs say the org's 24-hour API request limit is
// used up ("TotalRequests Limit exceeded."), not its limit on concurrent long requests,
// which passes in seconds.
func totalRequestsUsedUp(errs []apiError) bool {
	for _, e := range errs {
		if e.Code == "REQUEST_LIMIT_EXCEEDED" && strings.Contains(e.Message, "TotalRequests") {
			return true
		}
	}
	return false
}

func isTransient(errs []apiError) bool {
	for _, e := range errs {
		if slices.Contains(transient, e.Code) {
			return true
		}
	}
	return false
}

// classify maps an answer that is not a success to a verdict, how long to wait and a
// reason. A 401 comes here only when no new token could be had.
func (s *Salesforce) classify(a answer) (verdict, time.Duration, string) {
	if a.err != nil {
		return verdictRetry, 0, "request failed: " + a.err.Error()
	}
	errs := parseErrors(a.body)
	reason := strings.TrimSpace(fmt.Sprintf("%d %s", a.status, summary(errs)))
	after := sdk.RetryAfter(a.header, s.now())
	switch code := a.status; {
	case code == http.StatusUnauthorized:
		return verdictRetry, after, reason + " (the access token expired or is invalid: " + s.authHint() + ")"
	case totalRequestsUsedUp(errs) && after == 0:
		// The org's rolling 24-hour limit: calls stay blocked until its use of the
		// preceding 24 hours falls below it, so an early retry only uses up an attempt.
		return verdictRetry, sdk.MaxRetryAfter, reason + " (the org's 24-hour API request limit is used up)"
	case isTransient(errs) || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return verdictRetry, after, reason
	case code == http.StatusForbidden:
		return verdictFail, 0, reason + " (the integration user lacks a permission on " + s.cfg.Object + " or its fields, or the org's API access)"
	case code == http.StatusNotFound:
		return verdictFail, 0, reason + " (check config.object, config.external_id_field and config.api_version)"
	case code == http.StatusBadRequest:
		return verdictSplit, 0, reason
	default:
		return verdictFail, 0, reason
	}
}

// recordResult is one entry of an sObject Collections answer (a SaveResult or an
// UpsertResult).
type recordResult struct {
	ID      string            `json:"id"`
	Success bool              `json:"success"`
	Errors  []json.RawMessage `json:"errors"`
}

// collectionOutcome reads a 200 answer to an sObject Collections request: one result
// per record, in the order sent.
func collectionOutcome(a answer, items []int) outcome {
	var results []recordResult
	if err := json.Unmarshal(a.body, &results); err != nil || len(results) != len(items) {
		// Which records were written is unknown: send them again (with an external ID
		// field the upsert makes that harmless).
		return outcome{Verdict: verdictRetry, Reason: fmt.Sprintf("%d answer with %d results for %d records: %s",
			a.status, len(results), len(items), clean(string(a.body), 200))}
	}
	o := outcome{Each: map[int]sdk.Result{}}
	for k, r := range results {
		if r.Success {
			continue
		}
		var errs []apiError
		for _, raw := range r.Errors {
			errs = append(errs, parseErrors(raw)...)
		}
		reason := summary(errs)
		if reason == "" {
			reason = "Salesforce did not save the record and gave no reason"
		}
		if isTransient(errs) {
			o.Each[items[k]] = sdk.Retry(0, reason)
		} else {
			o.Each[items[k]] = sdk.Failed(reason)
		}
	}
	return o
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
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
