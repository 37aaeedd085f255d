package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/clickgate/clickgate/sdk"
)

// A source is where a configured field takes its value: a path into the event
// document, like "utm.campaign" or "attribution.click_id", or after "=" a literal, like
// "=sms".
type source struct {
	literal string
	path    []string // nil for a literal
}

// knownPaths are the scalar fields of the event documents (configs/schemas), so a
// misspelt path is a configuration error instead of a field that is never set.
var knownPaths = map[string][]string{
	sdk.TypeClick: {
		"schema_version", "event_type", "event_id", "click_id", "time", "node", "domain", "slug", "campaign",
		"utm.source", "utm.medium", "utm.campaign", "utm.content", "utm.term",
		"variant", "destination", "visitor_id", "new_visitor",
		"identity.kind", "identity.value", "identity.source", "identity.token",
		"user.email", "user.phone", "user.customer_id",
		"ip", "user_agent", "referrer", "bot", "bot_reason", "test",
	},
	sdk.TypeConversion: append([]string{
		"schema_version", "event_type", "event_id", "conversion_id", "source_event_id", "type", "status",
		"value", "currency", "occurred_at", "received_at", "status_changed_at", "click_id", "visitor_id",
		"user.email", "user.phone", "user.customer_id", "reason", "source",
	}, append(touchPaths("attribution"), touchPaths("first_click")...)...),
}

func touchPaths(prefix string) []string {
	var out []string
	for _, f := range []string{"click_id", "slug", "domain", "campaign", "utm.source", "utm.medium", "utm.campaign",
		"utm.content", "utm.term", "variant", "click_time", "seconds_to_convert", "credit"} {
		out = append(out, prefix+"."+f)
	}
	return out
}

// parseSource reads a configured source for an event type.
func parseSource(s, eventType string) (source, error) {
	if lit, ok := strings.CutPrefix(s, "="); ok {
		if strings.IndexFunc(lit, unicode.IsControl) >= 0 {
			return source{}, fmt.Errorf("literal %q contains control characters", lit)
		}
		return source{literal: lit}, nil
	}
	if !slices.Contains(knownPaths[eventType], s) {
		return source{}, fmt.Errorf("%q is not a field of a %s event (see configs/schemas/%s.v1.json), nor a literal like \"=sms\"", s, eventType, eventType)
	}
	return source{path: strings.Split(s, ".")}, nil
}

func (s source) String() string {
	if s.path == nil {
		return "=" + s.literal
	}
	return strings.Join(s.path, ".")
}

// document is an event document, decoded for lookups.
type document struct {
	typ string
	m   map[string]any
}

func decodeDocument(e sdk.Event) (document, error) {
	d := document{typ: e.Type}
	dec := json.NewDecoder(bytes.NewReader(e.JSON))
	dec.UseNumber() // amounts keep the digits the sender gave
	if err := dec.Decode(&d.m); err != nil {
		return d, fmt.Errorf("%s event is not a JSON object: %v", e.Type, err)
	}
	if d.m == nil {
		return d, fmt.Errorf("%s event is null", e.Type)
	}
	return d, nil
}

// value returns the source's value as JSON (a string, a number with the digits the
// event has, or a boolean); ok is false when the event does not carry it. A path that
// holds an object or an array is an error: a field takes one value.
func (d document) value(s source) (v json.RawMessage, ok bool, err error) {
	if s.path == nil {
		return quote(s.literal), true, nil
	}
	x, ok := d.lookup(s.path)
	if !ok && d.typ == sdk.TypeClick && strings.Join(s.path, ".") == "user.customer_id" {
		// A click made through a per-recipient link or an identity parameter carries
		// the customer ID as given in its identity, even when plain user data is off.
		if kind, _ := d.lookup([]string{"identity", "kind"}); kind == "customer_id" {
			x, ok = d.lookup([]string{"identity", "value"})
		}
	}
	if !ok {
		return nil, false, nil
	}
	switch x := x.(type) {
	case string:
		return quote(x), x != "", nil
	case json.Number:
		return json.RawMessage(x.String()), true, nil
	case bool:
		return json.RawMessage(strconv.FormatBool(x)), true, nil
	default:
		return nil, false, fmt.Errorf("%s holds a %T, not a single value", s, x)
	}
}

// quote encodes a string as JSON, leaving &, < and > as they are.
func quote(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func (d document) lookup(path []string) (any, bool) {
	var cur any = d.m
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}
