package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/clickgate/clickgate/sdk"
)

// defaultEventNames maps clickgate's conversion types to Meta standard events.
var defaultEventNames = map[string]string{
	"purchase":    "Purchase",
	"lead":        "Lead",
	"signup":      "CompleteRegistration",
	"add_to_cart": "AddToCart",
	"call":        "Contact",
}

// standardEvents are Meta's standard event names.
var standardEvents = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`AddPaymentInfo AddToCart AddToWishlist CompleteRegistration Contact
		CustomizeProduct Donate FindLocation InitiateCheckout Lead Purchase Schedule Search
		StartTrial SubmitApplication Subscribe ViewContent PageView`) {
		standardEvents[n] = true
	}
}

var (
	// Custom event names: at most 50 characters (the Pixel's limit), kept to letters,
	// digits, underscores, hyphens and spaces so they read the same everywhere.
	eventNameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_ -]{0,49}$`)
	conversionTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	currencyRE       = regexp.MustCompile(`^[A-Z]{3}$`)
	e164RE           = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// checkEventName says why name cannot be a Meta event name, or nil.
func checkEventName(name string) error {
	if !eventNameRE.MatchString(name) || strings.TrimSpace(name) != name {
		return fmt.Errorf("%q is not an event name: 1 to 50 letters, digits, underscores, hyphens or spaces", name)
	}
	return nil
}

// serverEvent is one event of data
// (developers.facebook.com/docs/marketing-api/conversions-api/parameters/server-event).
type serverEvent struct {
	EventName      string         `json:"event_name"`
	EventTime      int64          `json:"event_time"`
	EventID        string         `json:"event_id"`
	ActionSource   string         `json:"action_source"`
	EventSourceURL string         `json:"event_source_url,omitempty"`
	UserData       userData       `json:"user_data"`
	CustomData     map[string]any `json:"custom_data,omitempty"`
}

// userData is the customer information: contact data hashed, the tap's IP address
// and user agent not.
type userData struct {
	Email      []string `json:"em,omitempty"`
	Phone      []string `json:"ph,omitempty"`
	ExternalID []string `json:"external_id,omitempty"`
	IP         string   `json:"client_ip_address,omitempty"`
	UserAgent  string   `json:"client_user_agent,omitempty"`
}

func (u userData) matchable() bool {
	return len(u.Email) > 0 || len(u.Phone) > 0 || len(u.ExternalID) > 0 || (u.IP != "" && u.UserAgent != "")
}

// mapEvent turns a clickgate event into a Conversions API server event, or says why
// Meta would not take it.
func (m *Meta) mapEvent(e sdk.Event, now time.Time) (json.RawMessage, error) {
	var ev serverEvent
	custom := map[string]any{}
	var at time.Time
	var user *sdk.User
	var visitor string
	switch e.Type {
	case sdk.TypeClick:
		if m.cfg.ClickEvent == "" {
			return nil, errors.New("clicks are off for Meta (click_event is empty); filter them out of this plugin with events: [conversion]")
		}
		c, err := e.Click()
		if err != nil {
			return nil, fmt.Errorf("click event is not valid JSON: %v", err)
		}
		ev.EventName, ev.EventID, ev.ActionSource = m.cfg.ClickEvent, firstOf(e.ID, c.EventID), m.cfg.ClickActionSource
		at, user, visitor = c.Time, c.User, c.VisitorID
		ev.UserData.IP, ev.UserData.UserAgent = strings.TrimSpace(c.IP), strings.TrimSpace(c.UserAgent)
		if ev.ActionSource == "website" {
			// The browser goes to the destination: the page whose domain the
			// merchant's pixel knows.
			if ev.UserData.UserAgent == "" {
				return nil, errors.New("click has no user agent, which Meta requires of website events (client_user_agent)")
			}
			if u, err := url.Parse(c.Destination); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, errors.New("click's destination is not an http(s) URL for Meta's event_source_url")
			}
			ev.EventSourceURL = c.Destination
		}
		utm(custom, c.UTM)
		set(custom, "click_id", c.ClickID)
		set(custom, "link_slug", c.Slug)
		set(custom, "clickgate_campaign", c.Campaign)
		if c.Variant != nil {
			custom["variant"] = *c.Variant
		}
	case sdk.TypeConversion:
		c, err := e.Conversion()
		if err != nil {
			return nil, fmt.Errorf("conversion event is not valid JSON: %v", err)
		}
		if c.Status != "" && c.Status != "approved" {
			if c.Status == "refunded" || c.Status == "rejected" {
				return nil, fmt.Errorf("a %s %s is not sent: the Conversions API has no event that reverses a conversion", c.Status, c.Type)
			}
			return nil, fmt.Errorf("conversion status %q is not approved, refunded or rejected", c.Status)
		}
		ev.EventName = m.names[c.Type]
		if ev.EventName == "" {
			ev.EventName = c.Type
		}
		if err := checkEventName(ev.EventName); err != nil {
			return nil, fmt.Errorf("event name: %v", err)
		}
		ev.EventID, ev.ActionSource = firstOf(e.ID, c.EventID), m.cfg.ConversionActionSource
		at, user, visitor = c.OccurredAt, c.User, c.VisitorID
		if c.Value != nil {
			if c.Currency == "" {
				return nil, errors.New("conversion has a value but no currency; Meta needs both")
			}
			custom["value"] = *c.Value
		}
		if c.Currency != "" {
			if !currencyRE.MatchString(c.Currency) {
				return nil, fmt.Errorf("currency %q is not an ISO 4217 code", c.Currency)
			}
			custom["currency"] = c.Currency
		}
		if ev.EventName == "Purchase" {
			if c.Value == nil {
				return nil, errors.New("a Purchase needs value and currency; the conversion has no value")
			}
			set(custom, "order_id", firstOf(c.SourceEventID, strings.SplitN(ev.EventID, ":", 2)[0]))
		}
		if ev.EventName != c.Type {
			set(custom, "conversion_type", c.Type)
		}
		if a := c.Attribution; a != nil {
			utm(custom, a.UTM)
			set(custom, "click_id", a.ClickID)
			set(custom, "link_slug", a.Slug)
			set(custom, "clickgate_campaign", a.Campaign)
			custom["seconds_to_convert"] = a.SecondsToConvert
			if a.Variant != nil {
				custom["variant"] = *a.Variant
			}
		}
		if user == nil {
			for _, id := range c.Identities {
				if id.Kind == "customer_id" && strings.TrimSpace(id.Value) != "" {
					user = &sdk.User{CustomerID: id.Value}
					break
				}
			}
		}
	default:
		return nil, fmt.Errorf("event type %q is not click or conversion", e.Type)
	}
	if ev.EventID == "" {
		return nil, errors.New("event has no ID for Meta's event_id")
	}
	if at.Year() < 2000 {
		if at = e.Time; at.Year() < 2000 {
			return nil, fmt.Errorf("%s event has no time", e.Type)
		}
	}
	maxAge, window := maxEventAge, "7 days"
	if ev.ActionSource == "physical_store" {
		maxAge, window = maxStoreEventAge, "62 days for physical_store events"
	}
	switch age := now.Sub(at); {
	case age > maxAge:
		return nil, fmt.Errorf("event is %s old; Meta takes event_time up to %s back and would refuse the whole request for it", age.Round(time.Minute), window)
	case age < -maxClockSkew:
		return nil, fmt.Errorf("event time %s is %s in the future; Meta refuses future event times", at.UTC().Format(time.RFC3339), (-age).Round(time.Second))
	case age < 0:
		at = now
	}
	ev.EventTime = at.Unix()
	if user != nil {
		if em, ok := normalizeEmail(user.Email); ok {
			ev.UserData.Email = []string{sha256Hex(em)}
		}
		if ph, ok := normalizePhone(user.Phone); ok {
			ev.UserData.Phone = []string{sha256Hex(ph)}
		}
		if id := strings.TrimSpace(user.CustomerID); id != "" {
			ev.UserData.ExternalID = append(ev.UserData.ExternalID, sha256Hex(id))
		}
	}
	if v := strings.TrimSpace(visitor); v != "" {
		ev.UserData.ExternalID = append(ev.UserData.ExternalID, sha256Hex(v))
	}
	if !ev.UserData.matchable() {
		return nil, fmt.Errorf("%s carries no email, phone, customer ID, visitor ID or IP address and user agent for Meta to match", e.Type)
	}
	if len(custom) > 0 {
		ev.CustomData = custom
	}
	b, err := marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encoding the event: %v", err)
	}
	return b, nil
}

func utm(custom map[string]any, u sdk.UTM) {
	set(custom, "utm_source", u.Source)
	set(custom, "utm_medium", u.Medium)
	set(custom, "utm_campaign", u.Campaign)
	set(custom, "utm_content", u.Content)
	set(custom, "utm_term", u.Term)
}

func set(custom map[string]any, k, v string) {
	if v = strings.TrimSpace(v); v != "" {
		custom[k] = v
	}
}

// firstOf returns the first value that is not blank, trimmed.
func firstOf(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// normalizeEmail applies Meta's rule for em: trim leading and trailing spaces and
// lowercase. Unlike Google, Meta keeps the periods of Gmail addresses.
func normalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n") {
		return "", false
	}
	return s, true
}

// normalizePhone applies Meta's rule for ph: digits only, with the country code and
// no leading zeros. A number that is not in E.164 (with its '+') has no certain
// country code and is not sent.
func normalizePhone(s string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r >= '0' && r <= '9', r == '+':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return "", false
		}
	}
	e164 := b.String()
	if !e164RE.MatchString(e164) {
		return "", false
	}
	return e164[1:], true
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// marshal encodes without escaping &, < and >, which URLs keep.
func marshal(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}
