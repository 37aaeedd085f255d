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

// customEvent is the body of POST /api/v2/events.
type customEvent struct {
	Type         string         `json:"type"`
	SubscriberID string         `json:"subscriber_id,omitempty"`
	Phone        string         `json:"phone,omitempty"`
	Email        string         `json:"email,omitempty"`
	OccurredAt   string         `json:"occurred_at"`
	Properties   map[string]any `json:"properties"`
	ExternalID   string         `json:"external_id"`
}

// subscriber holds the identifiers Postscript finds a subscriber by.
type subscriber struct {
	SubscriberID string
	Phone        string
	Email        string
}

func (s subscriber) empty() bool { return s == subscriber{} }

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

// occurredAtLayout is the one time format Postscript documents for occurred_at:
// "%Y-%m-%d %H:%M:%S.%f" in UTC, not RFC 3339.
const occurredAtLayout = "2006-01-02 15:04:05.000000"

// maxIDBytes bounds the event ID sent as external_id and the subscriber ID.
const maxIDBytes = 255

// payload maps an event to the JSON body of its request.
func (p *Postscript) payload(e sdk.Event) ([]byte, error) {
	var ev customEvent
	var who subscriber
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
		var why string
		who, why = p.subscriberOf(c.User, fallback)
		if who.empty() {
			return nil, errors.New(p.noClickIdentity() + why)
		}
		ev = customEvent{Type: p.cfg.ClickEvent, ExternalID: firstNonEmpty(e.ID, c.EventID)}
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
		ev.Properties = props
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
		var why string
		who, why = p.subscriberOf(c.User, fallback)
		if who.empty() {
			return nil, errors.New("conversion carries no phone or email for Postscript to find the subscriber by (send user with the conversion)" + why)
		}
		ev = customEvent{Type: p.conversionType(c.Status), ExternalID: firstNonEmpty(e.ID, c.EventID)}
		at = cmp.Or(c.StatusChangedAt, c.OccurredAt)
		props := map[string]any{"conversion_id": c.ConversionID, "conversion_type": c.Type, "status": c.Status, "attributed": c.Attribution != nil}
		if c.Value != nil {
			props["value"] = *c.Value
			putString(props, "currency", strings.ToUpper(c.Currency))
		}
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
		ev.Properties = props
	default:
		return nil, fmt.Errorf("event type %q is not click or conversion", e.Type)
	}
	ev.SubscriberID, ev.Phone, ev.Email = who.SubscriberID, who.Phone, who.Email
	if ev.ExternalID == "" || len(ev.ExternalID) > maxIDBytes || !utf8.ValidString(ev.ExternalID) {
		return nil, errors.New("event has no ID, or one too long or not UTF-8, for Postscript's external_id")
	}
	if at.IsZero() {
		at = e.Time
	}
	if at.Year() < 2000 || at.Year() > 9999 {
		return nil, fmt.Errorf("%s event has no usable time", e.Type)
	}
	ev.OccurredAt = at.UTC().Format(occurredAtLayout)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // destinations keep their & and <
	if err := enc.Encode(ev); err != nil {
		return nil, fmt.Errorf("encoding the Postscript event: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// noClickIdentity tells the operator what to change when a click cannot be sent.
func (p *Postscript) noClickIdentity() string {
	link := "or set customer_id_is_subscriber_id if your links carry Postscript subscriber IDs as customer IDs (identity_params)"
	if p.cfg.CustomerIDIsSubscriberID {
		link = "or capture the subscriber ID in the link (identity_params)"
	}
	return "click carries no phone, email or subscriber ID for Postscript to find the subscriber by: " +
		"send only conversions to this plugin (events: [conversion] in the plugins file), " +
		"opt in to user data on clicks (CLICKGATE_EVENT_USER_DATA=all), " + link
}

// conversionType names the event of a conversion, with the status appended when it was
// refunded or rejected so Flows triggered by the conversion do not fire on reversals.
func (p *Postscript) conversionType(status string) string {
	if status == "" || status == "approved" {
		return p.cfg.ConversionEvent
	}
	t := p.cfg.ConversionEvent + "_" + status
	if !typeRE.MatchString(t) {
		return p.cfg.ConversionEvent + "_changed"
	}
	return t
}

// e164 is a phone number in E.164: '+', country code, up to 15 digits. Postscript
// recommends it and accepts other formats, but guesses their country.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// subscriberOf picks the identifiers Postscript accepts from the event's user, or the
// customer ID fallback. A customer ID is a subscriber ID only when the operator said
// so: Postscript has no field for another system's customer ID. clickgate normalises
// user values already; they are checked again here because an identifier Postscript
// cannot use fails the whole event, while one left out still lets the others match.
// why says what was left out, for the reason of an event that ends with no identifier.
func (p *Postscript) subscriberOf(u *sdk.User, customerID string) (s subscriber, why string) {
	var dropped []string
	if u != nil {
		if email, ok := normalEmail(u.Email); ok {
			s.Email = email
		} else if u.Email != "" {
			dropped = append(dropped, "email is not an address")
		}
		if phone, ok := normalPhone(u.Phone); ok {
			s.Phone = phone
		} else if u.Phone != "" {
			dropped = append(dropped, "phone is not in E.164")
		}
		customerID = firstNonEmpty(u.CustomerID, customerID)
	}
	// Postscript matches subscriber_id before the phone and email. A customer ID the
	// operator vouches for is the subscriber's on links, but a conversion's may be the
	// store's own (a Shopify customer ID), which could name another subscriber: with a
	// phone or email at hand it is left out, and they find the subscriber.
	if id := strings.TrimSpace(customerID); id != "" && s.Phone == "" && s.Email == "" {
		switch {
		case !p.cfg.CustomerIDIsSubscriberID:
			dropped = append(dropped, "a customer ID is not a Postscript identifier unless customer_id_is_subscriber_id is set")
		case len(id) > maxIDBytes:
			dropped = append(dropped, "subscriber ID is too long")
		default:
			s.SubscriberID = id
		}
	}
	if len(dropped) > 0 && s.empty() {
		why = " (" + strings.Join(dropped, ", ") + ")"
	}
	return s, why
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
