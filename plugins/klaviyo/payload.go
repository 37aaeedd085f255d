package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/clickgate/clickgate/sdk"
)

// eventRequest is the JSON:API document of POST /api/events.
type eventRequest struct {
	Data eventData `json:"data"`
}

type eventData struct {
	Type       string          `json:"type"` // "event"
	Attributes eventAttributes `json:"attributes"`
}

type eventAttributes struct {
	Properties    map[string]any `json:"properties"`
	Time          string         `json:"time"`
	Value         *float64       `json:"value,omitempty"`
	ValueCurrency string         `json:"value_currency,omitempty"`
	UniqueID      string         `json:"unique_id"`
	Metric        metricRef      `json:"metric"`
	Profile       profileRef     `json:"profile"`
}

type metricRef struct {
	Data struct {
		Type       string `json:"type"` // "metric"
		Attributes struct {
			Name string `json:"name"`
		} `json:"attributes"`
	} `json:"data"`
}

type profileRef struct {
	Data struct {
		Type       string  `json:"type"` // "profile"
		Attributes profile `json:"attributes"`
	} `json:"data"`
}

// profile holds the identifiers Klaviyo finds or creates a profile by.
type profile struct {
	Email       string `json:"email,omitempty"`
	PhoneNumber string `json:"phone_number,omitempty"`
	ExternalID  string `json:"external_id,omitempty"`
}

func (p profile) empty() bool { return p == profile{} }

// conversion is the conversion event document (configs/schemas/conversion.v1.json), as
// far as this plugin reads it.
type conversion struct {
	EventID       string    `json:"event_id"`
	ConversionID  string    `json:"conversion_id"`
	SourceEventID string    `json:"source_event_id"`
	Type          string    `json:"type"`
	Status        string    `json:"status"`
	Value         *float64  `json:"value"`
	Currency      string    `json:"currency"`
	OccurredAt    time.Time `json:"occurred_at"`
	// StatusChangedAt is when a refund or rejection happened: such an event is stamped
	// with it, not with the purchase's time.
	StatusChangedAt time.Time `json:"status_changed_at"`
	Identities      []struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	} `json:"identities"`
	User        *sdk.User `json:"user"`
	Attribution *struct {
		ClickID          string  `json:"click_id"`
		Slug             string  `json:"slug"`
		Campaign         string  `json:"campaign"`
		UTM              sdk.UTM `json:"utm"`
		Variant          *int    `json:"variant"`
		SecondsToConvert int64   `json:"seconds_to_convert"`
	} `json:"attribution"`
	Reason string `json:"reason"`
}

// orderMetrics are the metric names Klaviyo's guide for custom e-commerce integrations
// uses, so purchases land where Klaviyo's revenue features look for them.
var orderMetrics = map[string]string{"": "Placed Order", "approved": "Placed Order", "refunded": "Refunded Order", "rejected": "Cancelled Order"}

// noClickIdentity tells the operator what to change when a click cannot be sent.
const noClickIdentity = "click carries no email, phone or customer ID for Klaviyo to find a profile by: " +
	"send only conversions to this plugin (events: [conversion] in the plugins file), " +
	"or capture a customer ID in the link (identity_params) or opt in to user data on clicks (CLICKGATE_EVENT_USER_DATA=all)"

// payload maps an event to the JSON body of its Create Event request.
func (k *Klaviyo) payload(e sdk.Event) ([]byte, error) {
	var a eventAttributes
	var at time.Time
	switch e.Type {
	case sdk.TypeClick:
		c, err := e.Click()
		if err != nil {
			return nil, fmt.Errorf("click event is not valid JSON: %v", err)
		}
		var fallback string
		if c.Identity != nil && c.Identity.Kind == "customer_id" {
			fallback = c.Identity.Value
		}
		p, why := profileOf(c.User, fallback)
		if p.empty() {
			return nil, errors.New(noClickIdentity + why)
		}
		a.Profile.Data.Attributes = p
		a.Metric.Data.Attributes.Name = k.cfg.ClickMetric
		a.UniqueID = firstNonEmpty(e.ID, c.EventID)
		at = c.Time
		props := map[string]any{
			"click_id": c.ClickID, "slug": c.Slug, "campaign": c.Campaign, "destination": c.Destination,
			"new_visitor": c.NewVisitor, "bot": c.Bot,
		}
		putUTM(props, c.UTM)
		putString(props, "domain", c.Domain)
		putString(props, "bot_reason", c.BotReason)
		if c.Variant != nil {
			props["variant"] = *c.Variant
		}
		a.Properties = props
	case sdk.TypeConversion:
		var c conversion
		if err := json.Unmarshal(e.JSON, &c); err != nil {
			return nil, fmt.Errorf("conversion event is not valid JSON: %v", err)
		}
		var fallback string
		for _, id := range c.Identities {
			if id.Kind == "customer_id" && fallback == "" {
				fallback = id.Value
			}
		}
		p, why := profileOf(c.User, fallback)
		if p.empty() {
			return nil, errors.New("conversion carries no email, phone or customer ID for Klaviyo to find a profile by (send user with the conversion)" + why)
		}
		a.Profile.Data.Attributes = p
		a.Metric.Data.Attributes.Name = k.conversionMetric(c.Type, c.Status)
		a.UniqueID = firstNonEmpty(e.ID, c.EventID)
		at = cmp.Or(c.StatusChangedAt, c.OccurredAt)
		if c.Value != nil {
			a.Value = c.Value
			if c.Currency != "" {
				cur := strings.ToUpper(strings.TrimSpace(c.Currency))
				if !currencyRE.MatchString(cur) {
					return nil, fmt.Errorf("currency %q is not an ISO 4217 code", c.Currency)
				}
				a.ValueCurrency = cur
			}
		}
		props := map[string]any{"conversion_id": c.ConversionID, "conversion_type": c.Type, "status": c.Status, "attributed": c.Attribution != nil}
		if c.Type == "purchase" {
			putString(props, "order_id", firstNonEmpty(c.SourceEventID, c.EventID))
		}
		if t := c.Attribution; t != nil {
			props["click_id"], props["slug"], props["campaign"], props["seconds_to_convert"] = t.ClickID, t.Slug, t.Campaign, t.SecondsToConvert
			putUTM(props, t.UTM)
			if t.Variant != nil {
				props["variant"] = *t.Variant
			}
		} else {
			putString(props, "unattributed_reason", c.Reason)
		}
		a.Properties = props
	default:
		return nil, fmt.Errorf("event type %q is not click or conversion", e.Type)
	}
	if a.UniqueID == "" || !utf8.ValidString(a.UniqueID) {
		return nil, errors.New("event has no ID, or one that is not UTF-8, for Klaviyo's unique_id")
	}
	if at.IsZero() {
		at = e.Time
	}
	// Klaviyo takes times after 2000 and at most a year ahead, to the second.
	now := k.now()
	if at.Year() < 2000 || at.After(now.AddDate(1, 0, 0)) {
		return nil, fmt.Errorf("%s event time %s is outside what Klaviyo accepts (after 2000, at most a year ahead)", e.Type, at.Format(time.RFC3339))
	}
	a.Time = at.UTC().Truncate(time.Second).Format(time.RFC3339)
	for key, v := range a.Properties {
		if s, ok := v.(string); ok && len(s) > maxStringBytes {
			return nil, fmt.Errorf("property %s is %d bytes; Klaviyo takes at most 100 KB per string", key, len(s))
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // destinations keep their & and <
	if err := enc.Encode(eventRequest{Data: eventData{Type: "event", Attributes: fillTypes(a)}}); err != nil {
		return nil, fmt.Errorf("encoding the Klaviyo event: %v", err)
	}
	if b.Len() > maxPayloadBytes {
		return nil, fmt.Errorf("event is %d bytes as a Klaviyo request; the limit is 5 MB", b.Len())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func fillTypes(a eventAttributes) eventAttributes {
	a.Metric.Data.Type, a.Profile.Data.Type = "metric", "profile"
	return a
}

// conversionMetric names the metric of a conversion: Klaviyo's order metrics for
// purchases, the configured metric for the rest, with the status appended when the
// conversion was refunded or rejected so flows on the metric do not fire on reversals.
func (k *Klaviyo) conversionMetric(typ, status string) string {
	if name, ok := orderMetrics[status]; ok && typ == "purchase" {
		return name
	}
	if status == "" || status == "approved" {
		return k.cfg.ConversionMetric
	}
	return k.cfg.ConversionMetric + " " + titleWord(status)
}

func titleWord(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// e164 is a phone number as Klaviyo takes it: '+', country code, up to 15 digits.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// profileOf picks the identifiers Klaviyo accepts from the event's user, or the
// customer ID fallback. clickgate normalises user values already; they are checked
// again here because an identifier Klaviyo rejects fails the whole event, while one
// left out still lets the others match. why says what was left out, for the reason
// of an event that ends with no identifier.
func profileOf(u *sdk.User, customerID string) (p profile, why string) {
	var dropped []string
	if u != nil {
		if email, ok := normalEmail(u.Email); ok {
			p.Email = email
		} else if u.Email != "" {
			dropped = append(dropped, "email is not an address")
		}
		if phone, ok := normalPhone(u.Phone); ok {
			p.PhoneNumber = phone
		} else if u.Phone != "" {
			dropped = append(dropped, "phone is not in E.164")
		}
		customerID = firstNonEmpty(u.CustomerID, customerID)
	}
	if id := strings.TrimSpace(customerID); id != "" && len(id) <= maxStringBytes {
		p.ExternalID = id
	}
	if len(dropped) > 0 {
		why = " (" + strings.Join(dropped, ", ") + ")"
	}
	return p, why
}

// normalEmail trims and lowercases an email, and refuses what cannot be an address.
func normalEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || len(s) > 254 || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", false
	}
	return s, true
}

// normalPhone removes the spaces, dashes, dots and parentheses people write phone
// numbers with, and keeps the result only if it is E.164: without a country code the
// number cannot be placed, and guessing one would message the wrong person.
func normalPhone(s string) (string, bool) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '.', '(', ')', '\t':
			return -1
		}
		return r
	}, s)
	if !e164.MatchString(s) {
		return "", false
	}
	return s, true
}

func putUTM(props map[string]any, u sdk.UTM) {
	putString(props, "utm_source", u.Source)
	putString(props, "utm_medium", u.Medium)
	putString(props, "utm_campaign", u.Campaign)
	putString(props, "utm_content", u.Content)
	putString(props, "utm_term", u.Term)
}

func putString(props map[string]any, key, v string) {
	if v != "" {
		props[key] = v
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
