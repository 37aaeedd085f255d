package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// validationResponse is the validation server's answer
// (developers.google.com/analytics/devguides/collection/protocol/ga4/validating-events):
// {"validationMessages": [{"fieldPath", "description", "validationCode"}]}, empty when
// the request is valid.
type validationResponse struct {
	ValidationMessages []validationMessage `json:"validationMessages"`
}

type validationMessage struct {
	FieldPath      string `json:"fieldPath"`
	Description    string `json:"description"`
	ValidationCode string `json:"validationCode"`
}

// The validation server names the event a message is about in its field path
// (events[2].params...) or its description ("Event at index: [2] has invalid name").
var (
	pathIndexRE = regexp.MustCompile(`^events\[(\d+)\]`)
	descIndexRE = regexp.MustCompile(`(?i)\bevent at index: \[(\d+)\]`)
)

const maxReasonLen = 300

// parseValidation reads the validation server's answer to a request of n events. It
// returns the reasons each event was refused for, and the reasons that concern the
// whole request (client_id, user_data, a message naming no event, or an index out of
// range), which every event shares. An answer that is not the documented JSON is an
// error: the dry run cannot say the events are valid.
func parseValidation(body []byte, n int) (perEvent [][]string, whole []string, err error) {
	perEvent = make([][]string, n)
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, nil, errors.New("empty body")
	}
	var resp validationResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, nil, fmt.Errorf("not the validationMessages JSON: %v", err)
	}
	if resp.ValidationMessages == nil {
		// Only an object with the array is an answer; `{}` or `null` says nothing.
		var probe map[string]json.RawMessage
		if json.Unmarshal(body, &probe) != nil || probe["validationMessages"] == nil {
			return nil, nil, errors.New("no validationMessages in the answer")
		}
	}
	for _, m := range resp.ValidationMessages {
		reason := m.reason()
		if i, ok := eventIndex(m); ok && i < n {
			perEvent[i] = append(perEvent[i], reason)
			continue
		}
		whole = append(whole, reason)
	}
	return perEvent, whole, nil
}

// eventIndex is the index of the event a message names, if it names one.
func eventIndex(m validationMessage) (int, bool) {
	for _, s := range []string{
		firstSubmatch(pathIndexRE, strings.TrimSpace(m.FieldPath)),
		firstSubmatch(descIndexRE, m.Description),
	} {
		if s == "" {
			continue
		}
		i, err := strconv.Atoi(s)
		if err == nil && i >= 0 {
			return i, true
		}
	}
	return 0, false
}

func firstSubmatch(re *regexp.Regexp, s string) string {
	if m := re.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// reason is a message as one printable line: CODE at path: description.
func (m validationMessage) reason() string {
	var b strings.Builder
	b.WriteString(clean(firstOf(m.ValidationCode, "INVALID")))
	if p := clean(m.FieldPath); p != "" {
		b.WriteString(" at " + p)
	}
	if d := clean(m.Description); d != "" {
		b.WriteString(": " + d)
	}
	return truncate(b.String(), maxReasonLen)
}

// clean keeps a server-supplied text to one printable line.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s))
}
