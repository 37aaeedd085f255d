package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
)

// graphError is a Graph API error body
// (developers.facebook.com/docs/graph-api/guides/error-handling):
// {"error": {"message", "type", "code", "error_subcode", "is_transient",
// "error_user_title", "error_user_msg", "fbtrace_id"}}.
type graphError struct {
	Message     string
	Type        string
	Code        int
	Subcode     int
	IsTransient bool
	UserTitle   string
	UserMsg     string
	FBTraceID   string
}

// parseGraphError reads a Graph API error body. It is lenient with types (a code sent
// as a string still counts) and reports whether the body had an error object at all.
func parseGraphError(body []byte) (graphError, bool) {
	var env struct {
		Error map[string]json.RawMessage `json:"error"`
	}
	if json.Unmarshal(bytes.TrimSpace(body), &env) != nil || env.Error == nil {
		return graphError{}, false
	}
	f := env.Error
	return graphError{
		Message:     str(f["message"]),
		Type:        str(f["type"]),
		Code:        num(f["code"]),
		Subcode:     num(f["error_subcode"]),
		IsTransient: boolean(f["is_transient"]),
		UserTitle:   str(f["error_user_title"]),
		UserMsg:     str(f["error_user_msg"]),
		FBTraceID:   str(f["fbtrace_id"]),
	}, true
}

func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

func num(raw json.RawMessage) int {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0
		}
		n = json.Number(strings.TrimSpace(s))
	}
	i, err := strconv.ParseInt(n.String(), 10, 32)
	if err != nil {
		return 0
	}
	return int(i)
}

func boolean(raw json.RawMessage) bool {
	var b bool
	return json.Unmarshal(raw, &b) == nil && b
}

// Classes of refusal.
const (
	classEvent = iota // something in the events: permanent for the event at fault
	classRetry        // rate limit, transient error, server trouble
	classAuth         // the token: permanent for every event until the operator acts
	classPixel        // the pixel ID: same
)

// rateLimitCodes are the Graph API's throttling codes: application (4), user (17),
// page (32) and custom (613) limits, and the business use case limits 80000-80014.
func rateLimited(code int) bool {
	switch code {
	case 4, 17, 32, 613:
		return true
	}
	return code >= 80000 && code <= 80014
}

// classify says what a refusal means. Meta's guidance: retry non-client errors;
// codes 1 and 2 are temporary, 4 and 17 throttling, 190 and 102 an expired or invalid
// token, 10 and 200-299 missing permissions, 100 with subcode 33 an unknown object.
func classify(status int, ge graphError, parsed bool) int {
	switch {
	case rateLimited(ge.Code), ge.IsTransient, ge.Code == 1, ge.Code == 2, ge.Code == 341, ge.Code == 368:
		return classRetry
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		return classRetry
	case ge.Code == 190 || ge.Code == 102 || ge.Code == 10 || (ge.Code >= 200 && ge.Code <= 299):
		return classAuth
	case ge.Code == 100 && ge.Subcode == 33, ge.Code == 803:
		return classPixel
	case !parsed && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return classAuth
	case !parsed && status == http.StatusNotFound:
		return classPixel
	}
	return classEvent
}

// reason is an answer as one line: "Meta 400: (#100) Invalid parameter: title: user
// message [code 100, subcode 2804019, fbtrace_id …]", or the status and the start of
// the body when it is not a Graph API error.
func (ge graphError) reason(status int, parsed bool, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Meta %d", status)
	if !parsed {
		if s := clean(string(bytes.TrimSpace(body[:min(len(body), maxSnippet)]))); s != "" {
			b.WriteString(": " + s)
		}
		return truncate(b.String(), maxReasonLen)
	}
	for _, part := range []string{ge.Message, ge.UserTitle, ge.UserMsg} {
		if p := clean(part); p != "" {
			b.WriteString(": " + p)
		}
	}
	var tags []string
	if ge.Code != 0 {
		tags = append(tags, "code "+strconv.Itoa(ge.Code))
	}
	if ge.Subcode != 0 {
		tags = append(tags, "subcode "+strconv.Itoa(ge.Subcode))
	}
	if ge.IsTransient {
		tags = append(tags, "transient")
	}
	if t := clean(ge.FBTraceID); t != "" {
		tags = append(tags, "fbtrace_id "+truncate(t, 64))
	}
	if len(tags) > 0 {
		b.WriteString(" [" + strings.Join(tags, ", ") + "]")
	}
	return truncate(b.String(), maxReasonLen)
}

// clean keeps a server-supplied text to one printable line.
func clean(s string) string {
	return strings.Join(strings.Fields(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)), " ")
}
