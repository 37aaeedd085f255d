package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"
)

// apiError is one entry of a JSON:API error document, which Klaviyo answers every 4xx
// and 5xx with: {"errors": [{"id", "status", "code", "title", "detail", "source":
// {"pointer", "parameter"}}]}.
type apiError struct {
	Status json.RawMessage `json:"status"` // a number from Klaviyo, a string in JSON:API
	Code   string          `json:"code"`
	Title  string          `json:"title"`
	Detail string          `json:"detail"`
	Source struct {
		Pointer   string `json:"pointer"`
		Parameter string `json:"parameter"`
	} `json:"source"`
}

const (
	maxSummaryErrors = 3
	maxSummaryBytes  = 400
)

// errorSummary turns an error response body into one line for a result's reason:
// "code: detail (at /pointer)" for the first errors of a JSON:API document, else the
// start of the body. The text comes from the network, so it is cut short and stripped
// of control characters before it reaches logs and dead letters.
func errorSummary(body []byte) string {
	var doc struct {
		Errors []apiError `json:"errors"`
	}
	var parts []string
	if json.Unmarshal(body, &doc) == nil {
		for _, e := range doc.Errors {
			if len(parts) == maxSummaryErrors {
				parts = append(parts, "…")
				break
			}
			msg := firstNonEmpty(e.Detail, e.Title)
			if e.Code != "" {
				msg = strings.TrimSpace(e.Code + ": " + msg)
			}
			if at := firstNonEmpty(e.Source.Pointer, e.Source.Parameter); at != "" {
				msg += " (at " + at + ")"
			}
			if msg != "" {
				parts = append(parts, msg)
			}
		}
	}
	s := strings.Join(parts, "; ")
	if len(parts) == 0 {
		s = string(bytes.TrimSpace(body))
	}
	return clean(s, maxSummaryBytes)
}

// clean makes network text safe for one log line: valid UTF-8, no control characters,
// at most limit bytes.
func clean(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
