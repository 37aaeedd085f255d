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

// request is one API call: the path under base_url, the scope it needs, its body.
type request struct {
	path  string
	scope string
	body  []byte
}

// customEvent is the body of POST /v1/events/custom.
type customEvent struct {
	Type            string         `json:"type"`
	Properties      map[string]any `json:"properties"`
	ExternalEventID string         `json:"externalEventId"`
	OccurredAt      string         `json:"occurredAt"`
	User            eventUser      `json:"user"`
}

// eventUser is Attentive's EventUser: phone (E.164), email or external identifiers, at
// least one.
type eventUser struct {
	Phone               string               `json:"phone,omitempty"`
	Email               string               `json:"email,omitempty"`
	ExternalIdentifiers *externalIdentifiers `json:"externalIdentifiers,omitempty"`
}

type externalIdentifiers struct {
	ClientUserID string `json:"clientUserId"`
}

func (u eventUser) empty() bool {
	return u.Phone == "" && u.Email == "" && u.ExternalIdentifiers == nil
}

// purchaseEvent is the body of POST /v1/events/ecommerce/purchase.
type purchaseEvent struct {
	Items      []product `json:"items"`
	OrderID    string    `json:"orderId,omitempty"`
	OccurredAt string    `json:"occurredAt"`
	User       eventUser `json:"user"`
}

// product is Attentive's ProductRequest; price is a list of {value, currency}.
type product struct {
	ProductID        string  `json:"productId"`
	ProductVariantID string  `json:"productVariantId"`
	Price            []price `json:"price"`
	Quantity         int     `json:"quantity"`
}

type price struct {
	Value    float64 `json:"value"`
	Currency string  `json:"currency"`
}

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

// noClickIdentity tells the operator what to change when a click cannot be sent.
const noClickIdentity = "click carries no phone, email or customer ID for Attentive to find the person by: " +
	"send only conversions to this plugin (events: [conversion] in the plugins file), " +
	"or capture a customer ID in the link (identity_params) or opt in to user data on clicks (CLICKGATE_EVENT_USER_DATA=all)"

// maxIDBytes bounds the event ID sent as externalEventId and the order ID.
const maxIDBytes = 255

// request maps an event to its API call.
func (a *Attentive) request(e sdk.Event) (request, error) {
	var ev customEvent
	var at time.Time
	switch e.Type {
	case sdk.TypeClick:
		c, err := e.Click()
		if err != nil {
			return request{}, fmt.Errorf("click event is not valid JSON: %v", err)
		}
		var fallback string
		if c.Identity != nil && c.Identity.Kind == "customer_id" {
			fallback = c.Identity.Value
		}
		u, why := userOf(c.User, fallback)
		if u.empty() {
			return request{}, errors.New(noClickIdentity + why)
		}
		ev = customEvent{Type: a.cfg.ClickEvent, User: u, ExternalEventID: firstNonEmpty(e.ID, c.EventID)}
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
			return request{}, fmt.Errorf("conversion event is not valid JSON: %v", err)
		}
		var fallback string
		for _, id := range c.Identities {
			if id.Kind == "customer_id" && fallback == "" {
				fallback = id.Value
			}
		}
		u, why := userOf(c.User, fallback)
		if u.empty() {
			return request{}, errors.New("conversion carries no phone, email or customer ID for Attentive to find the person by (send user with the conversion)" + why)
		}
		at = cmp.Or(c.StatusChangedAt, c.OccurredAt)
		if at.IsZero() {
			at = e.Time
		}
		order := firstNonEmpty(c.SourceEventID, c.EventID)
		if r, ok, err := a.purchase(c, order, u, at); ok || err != nil {
			return r, err
		}
		ev = customEvent{Type: a.conversionType(c.Status), User: u, ExternalEventID: firstNonEmpty(e.ID, c.EventID)}
		props := map[string]any{"conversion_id": c.ConversionID, "conversion_type": c.Type, "status": c.Status, "attributed": c.Attribution != nil}
		if c.Value != nil {
			props["value"] = *c.Value
			putString(props, "currency", strings.ToUpper(c.Currency))
		}
		if c.Type == "purchase" {
			putString(props, "order_id", order)
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
		return request{}, fmt.Errorf("event type %q is not click or conversion", e.Type)
	}
	if ev.ExternalEventID == "" || len(ev.ExternalEventID) > maxIDBytes || !utf8.ValidString(ev.ExternalEventID) {
		return request{}, errors.New("event has no ID, or one too long or not UTF-8, for Attentive's externalEventId")
	}
	if at.IsZero() {
		at = e.Time
	}
	if at.Year() < 2000 {
		return request{}, fmt.Errorf("%s event has no time", e.Type)
	}
	ev.OccurredAt = timestamp(at)
	body, err := encode(ev)
	if err != nil {
		return request{}, err
	}
	return request{path: customPath, scope: "events:write", body: body}, nil
}

// purchase maps an approved purchase with a value and a currency to the eCommerce
// Purchase API when the operator named a product for it (purchase_product_id). That API
// wants line items, which clickgate's conversions do not have: the order becomes one
// item of the configured product, priced at the order's value. ok is false when the
// conversion goes to the Custom Events API instead.
func (a *Attentive) purchase(c conversion, order string, u eventUser, at time.Time) (r request, ok bool, err error) {
	if a.cfg.PurchaseProductID == "" || c.Type != "purchase" || (c.Status != "" && c.Status != "approved") || c.Value == nil || c.Currency == "" {
		return request{}, false, nil
	}
	cur := strings.ToUpper(strings.TrimSpace(c.Currency))
	if !currencyRE.MatchString(cur) {
		return request{}, true, fmt.Errorf("currency %q is not an ISO 4217 code", c.Currency)
	}
	if at.Year() < 2000 {
		return request{}, true, errors.New("conversion event has no time")
	}
	if len(order) > maxIDBytes || !utf8.ValidString(order) {
		return request{}, true, errors.New("order ID is too long or not UTF-8 for Attentive's orderId")
	}
	p := purchaseEvent{
		Items: []product{{
			ProductID: a.cfg.PurchaseProductID, ProductVariantID: a.cfg.PurchaseProductID,
			Price: []price{{Value: *c.Value, Currency: cur}}, Quantity: 1,
		}},
		OrderID: order, OccurredAt: timestamp(at), User: u,
	}
	body, err := encode(p)
	if err != nil {
		return request{}, true, err
	}
	return request{path: purchasePath, scope: "ecommerce:write", body: body}, true, nil
}

// conversionType names the custom event of a conversion, with the status appended when
// it was refunded or rejected so journeys triggered by the conversion do not fire on
// reversals.
func (a *Attentive) conversionType(status string) string {
	if status == "" || status == "approved" {
		return a.cfg.ConversionEvent
	}
	s := titleWord(status)
	if strings.ContainsAny(s, typeForbidden) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		s = "Changed"
	}
	return a.cfg.ConversionEvent + " " + s
}

// timestamp is RFC 3339 with the UTC offset Attentive requires, to the millisecond.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // destinations keep their & and <
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding the Attentive event: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func titleWord(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

var (
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	// e164 is a phone number as Attentive requires it: '+', country code, up to 15 digits.
	e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// userOf picks the identifiers Attentive accepts from the event's user, or the customer
// ID fallback. clickgate normalises user values already; they are checked again here
// because an identifier Attentive rejects fails the whole event, while one left out
// still lets the others match. why says what was left out, for the reason of an event
// that ends with no identifier.
func userOf(u *sdk.User, customerID string) (eu eventUser, why string) {
	var dropped []string
	if u != nil {
		if email, ok := normalEmail(u.Email); ok {
			eu.Email = email
		} else if u.Email != "" {
			dropped = append(dropped, "email is not an address")
		}
		if phone, ok := normalPhone(u.Phone); ok {
			eu.Phone = phone
		} else if u.Phone != "" {
			dropped = append(dropped, "phone is not in E.164")
		}
		customerID = firstNonEmpty(u.CustomerID, customerID)
	}
	if id := strings.TrimSpace(customerID); id != "" && len(id) <= maxIDBytes {
		eu.ExternalIdentifiers = &externalIdentifiers{ClientUserID: id}
	}
	if len(dropped) > 0 {
		why = " (" + strings.Join(dropped, ", ") + ")"
	}
	return eu, why
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
