package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

const maxSummaryBytes = 400

// errorSummary turns an error response body into one line for a result's reason.
// Postscript's one documented error body is {"error_code": 3002, "error_message": "Rate
// limit exceeded", "success": false}; its reference shows the other error bodies as
// "{}". So that shape and the common ones are read — {"message"}, {"error": "…" |
// {"message"}}, {"errors": [{"message" | "detail"}]} — and anything else is quoted from
// its start. The text comes from the network, so it is cut short and stripped of
// control characters before it reaches logs and dead letters.
func errorSummary(body []byte) string {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) == nil {
		var parts []string
		add := func(s string) {
			if s = strings.TrimSpace(s); s != "" && !slices.Contains(parts, s) {
				parts = append(parts, s)
			}
		}
		if msg := str(doc["error_message"]); msg != "" {
			if code := str(doc["error_code"]); code != "" {
				msg = code + ": " + msg
			}
			add(msg)
		}
		add(str(doc["title"]))
		add(str(doc["message"]))
		add(str(doc["detail"]))
		if raw, ok := doc["error"]; ok {
			if s := str(raw); s != "" {
				add(s)
			} else {
				add(messageOf(raw))
			}
		}
		var list []json.RawMessage
		if json.Unmarshal(doc["errors"], &list) == nil {
			for i, e := range list {
				if i == 3 {
					add("…")
					break
				}
				if s := str(e); s != "" {
					add(s)
				} else {
					add(messageOf(e))
				}
			}
		}
		if len(parts) > 0 {
			return clean(strings.Join(parts, "; "), maxSummaryBytes)
		}
	}
	return clean(string(bytes.TrimSpace(body)), maxSummaryBytes)
}

// messageOf reads {"code", "message" | "detail" | "title", "field" | "path"} objects.
func messageOf(raw json.RawMessage) string {
	var e map[string]json.RawMessage
	if json.Unmarshal(raw, &e) != nil {
		return ""
	}
	msg := firstNonEmpty(str(e["message"]), str(e["detail"]), str(e["title"]))
	if code := str(e["code"]); code != "" {
		msg = strings.TrimSpace(code + ": " + msg)
	}
	if at := firstNonEmpty(str(e["field"]), str(e["path"])); at != "" && msg != "" {
		msg += " (at " + at + ")"
	}
	return msg
}

// str reads a JSON string or number as text; anything else is "".
func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
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
