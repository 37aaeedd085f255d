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

// defaultEventNames maps clickgate's conversion types to GA4 recommended events.
var defaultEventNames = map[string]string{
	"purchase":    "purchase",
	"lead":        "generate_lead",
	"signup":      "sign_up",
	"add_to_cart": "add_to_cart",
}

var (
	// GA4 event and parameter names: letters, digits and underscores, starting with a
	// letter, at most 40 characters.
	nameRE           = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,39}$`)
	conversionTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	currencyRE       = regexp.MustCompile(`^[A-Z]{3}$`)
	e164RE           = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// reservedEvents are the event names GA4 reserves, for web streams
// (support.google.com/analytics/answer/13316687) and in the Measurement Protocol
// reference; GA4 drops events sent under them.
var reservedEvents = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`
		ad_activeview ad_click ad_exposure ad_impression ad_query ad_reward adunit_exposure
		app_background app_clear_data app_exception app_install app_remove app_store_refund
		app_store_subscription_cancel app_store_subscription_convert app_store_subscription_renew
		app_update app_upgrade click dynamic_link_app_open dynamic_link_app_update
		dynamic_link_first_open error file_download firebase_campaign
		firebase_in_app_message_action firebase_in_app_message_dismiss
		firebase_in_app_message_impression first_open first_visit form_start form_submit
		in_app_purchase notification_dismiss notification_foreground notification_open
		notification_receive os_update page_view scroll session_start
		session_start_with_rollout user_engagement video_complete video_progress video_start
		view_complete view_search_results`) {
		reservedEvents[n] = true
	}
}

// reservedPrefixes may not start event or parameter names.
var reservedPrefixes = []string{"_", "firebase_", "ga_", "google_", "gtag."}

// checkEventName says why GA4 would refuse name as an event name, or nil.
func checkEventName(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if reservedEvents[name] {
		return fmt.Errorf("%q is reserved by GA4; name the action, like %q", name, defaultClickEvent)
	}
	return nil
}

// checkName applies the rules shared by event and parameter names.
func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%q is not a GA4 name: 1 to 40 letters, digits or underscores, starting with a letter", name)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(strings.ToLower(name), p) {
			return fmt.Errorf("%q starts with the reserved prefix %q", name, p)
		}
	}
	return nil
}

// request is what the Measurement Protocol takes once per request: who the events
// are about.
type request struct {
	ClientID string    `json:"client_id"`
	UserID   string    `json:"user_id,omitempty"`
	UserData *userData `json:"user_data,omitempty"`
}

// userData is user-provided data, hashed (developers.google.com/analytics/devguides/
// collection/ga4/uid-data).
type userData struct {
	Email []string `json:"sha256_email_address,omitempty"`
	Phone []string `json:"sha256_phone_number,omitempty"`
}

// body encodes the request with its events.
func (r request) body(events []json.RawMessage) ([]byte, error) {
	if events == nil {
		events = []json.RawMessage{}
	}
	return marshal(struct {
		request
		Events []json.RawMessage `json:"events"`
	}{r, events})
}

// mpEvent is one Measurement Protocol event.
type mpEvent struct {
	Name            string         `json:"name"`
	Params          map[string]any `json:"params"`
	TimestampMicros int64          `json:"timestamp_micros"`
}

// mapped is an event ready to send.
type mapped struct {
	request
	id    string
	event json.RawMessage
}

// key identifies the request an event can share with others.
func (m mapped) key() string {
	k := m.ClientID + "\x00" + m.UserID
	if d := m.UserData; d != nil {
		k += "\x00" + strings.Join(d.Email, ",") + "\x00" + strings.Join(d.Phone, ",")
	}
	return k
}

// mapEvent turns a clickgate event into a Measurement Protocol event and the request
// identity it goes with, or says why GA4 would not take it.
func (g *GA4) mapEvent(e sdk.Event, now time.Time) (mapped, error) {
	var m mapped
	p := params{}
	var at time.Time
	var user *sdk.User
	var name string
	switch e.Type {
	case sdk.TypeClick:
		c, err := e.Click()
		if err != nil {
			return m, fmt.Errorf("click event is not valid JSON: %v", err)
		}
		m.id, m.ClientID, at, user, name = firstOf(e.ID, c.EventID), firstOf(c.VisitorID), c.Time, c.User, g.cfg.ClickEvent
		if m.ClientID == "" {
			return m, errors.New("click has no visitor_id for GA4's client_id")
		}
		p.utm(c.UTM)
		p.set("click_id", c.ClickID)
		p.set("link_slug", c.Slug)
		p.set("clickgate_campaign", c.Campaign)
		if c.Variant != nil {
			p.set("variant", *c.Variant)
		}
		if u, err := url.Parse(c.Destination); err == nil && u.Host != "" {
			p.set("link_domain", u.Hostname())
		}
		if utf8.RuneCountInString(c.Destination) <= maxParamValueLen {
			p.set("link_url", c.Destination) // a longer one cut short would be a wrong URL
		}
		if c.Bot {
			p.set("bot_reason", firstOf(c.BotReason, "bot"))
		}
	case sdk.TypeConversion:
		c, err := e.Conversion()
		if err != nil {
			return m, fmt.Errorf("conversion event is not valid JSON: %v", err)
		}
		m.id, at, user = firstOf(e.ID, c.EventID), c.EventTime(), c.User
		var touch string
		if a := c.Attribution; a != nil {
			touch = a.ClickID
		}
		// GA4 needs a client_id; without the visitor's, the click's or the
		// conversion's own ID keeps the event (as a GA4 user of its own).
		m.ClientID = firstOf(c.VisitorID, touch, c.ClickID, c.ConversionID, m.id)
		if m.ClientID == "" {
			return m, errors.New("conversion has no visitor_id, click_id or conversion_id for GA4's client_id")
		}
		if name, err = g.conversionName(c); err != nil {
			return m, err
		}
		if c.Value != nil {
			if c.Currency == "" {
				return m, errors.New("conversion has a value but no currency; GA4 needs currency whenever value is set")
			}
			p.set("value", *c.Value)
		}
		if c.Currency != "" {
			if !currencyRE.MatchString(c.Currency) {
				return m, fmt.Errorf("currency %q is not an ISO 4217 code", c.Currency)
			}
			p.set("currency", c.Currency)
		}
		if name == "purchase" || name == "refund" {
			order := firstOf(c.SourceEventID, strings.SplitN(m.id, ":", 2)[0])
			if order == "" || utf8.RuneCountInString(order) > maxParamValueLen {
				return m, fmt.Errorf("order ID %q cannot be GA4's transaction_id (1 to %d characters)", order, maxParamValueLen)
			}
			p.set("transaction_id", order)
		}
		if name != c.Type {
			p.set("conversion_type", c.Type)
		}
		if a := c.Attribution; a != nil {
			p.utm(a.UTM)
			p.set("click_id", a.ClickID)
			p.set("link_slug", a.Slug)
			p.set("clickgate_campaign", a.Campaign)
			p.set("seconds_to_convert", a.SecondsToConvert)
			if a.Variant != nil {
				p.set("variant", *a.Variant)
			}
		}
		if user == nil {
			for _, id := range c.Identities {
				if id.Kind == "customer_id" && id.Value != "" {
					user = &sdk.User{CustomerID: id.Value}
					break
				}
			}
		}
	default:
		return m, fmt.Errorf("event type %q is not click or conversion", e.Type)
	}
	if err := checkEventName(name); err != nil {
		return m, fmt.Errorf("event name: %v", err)
	}
	p.set("clickgate_event_id", m.id)
	if len(p) > maxParams {
		return m, fmt.Errorf("%d parameters; GA4 takes at most %d per event", len(p), maxParams)
	}
	if at.Year() < 2000 {
		at = e.Time
		if at.Year() < 2000 {
			return m, fmt.Errorf("%s event has no time", e.Type)
		}
	}
	switch age := now.Sub(at); {
	case age > maxBackdate && !g.cfg.SendLateEvents:
		return m, fmt.Errorf("event is %s old; GA4 takes timestamps up to 72 hours back (later ones are recorded at 72 hours ago), so it is not sent: set send_late_events to send it anyway", age.Round(time.Minute))
	case age < -maxClockSkew:
		return m, fmt.Errorf("event time %s is %s in the future; GA4 takes timestamps up to the request time", at.UTC().Format(time.RFC3339), (-age).Round(time.Second))
	case age < 0:
		at = now
	}
	if user != nil {
		if id := strings.TrimSpace(user.CustomerID); id != "" && utf8.RuneCountInString(id) <= maxUserIDLen {
			m.UserID = id
		}
		var d userData
		if em, ok := normalizeEmail(user.Email); ok {
			d.Email = []string{sha256Hex(em)}
		}
		if ph, ok := normalizePhone(user.Phone); ok {
			d.Phone = []string{sha256Hex(ph)}
		}
		if d.Email != nil || d.Phone != nil {
			m.UserData = &d
		}
	}
	ev, err := marshal(mpEvent{Name: name, Params: p, TimestampMicros: at.UnixMicro()})
	if err != nil {
		return m, fmt.Errorf("encoding the event: %v", err)
	}
	m.event = ev
	return m, nil
}

// conversionName is the GA4 event name of a conversion: its mapped name when
// approved, GA4's refund for a refunded or rejected purchase, and for other types the
// name with the status appended (GA4 has no event that reverses them).
func (g *GA4) conversionName(c *sdk.ConversionEvent) (string, error) {
	name := g.names[c.Type]
	if name == "" {
		name = c.Type
	}
	switch c.Status {
	case "", "approved":
		return name, nil
	case "refunded", "rejected":
		if name == "purchase" {
			return "refund", nil
		}
		return name + "_" + c.Status, nil
	default:
		return "", fmt.Errorf("conversion status %q is not approved, refunded or rejected", c.Status)
	}
}

// params are an event's parameters; string values are cut to GA4's 100 characters
// (GA4 would drop the parameter), empty ones left out.
type params map[string]any

func (p params) set(name string, v any) {
	switch s := v.(type) {
	case string:
		if s = strings.TrimSpace(s); s == "" {
			return
		}
		v = truncate(s, maxParamValueLen)
	}
	p[name] = v
}

func (p params) utm(u sdk.UTM) {
	p.set("utm_source", u.Source)
	p.set("utm_medium", u.Medium)
	p.set("utm_campaign", u.Campaign)
	p.set("utm_content", u.Content)
	p.set("utm_term", u.Term)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n])
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

// normalizeEmail applies GA4's normalisation before hashing: trim, lowercase, and for
// gmail.com and googlemail.com addresses remove every period before the domain.
func normalizeEmail(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n") {
		return "", false
	}
	local, domain := s[:at], s[at+1:]
	if domain == "gmail.com" || domain == "googlemail.com" {
		local = strings.ReplaceAll(local, ".", "")
		if local == "" {
			return "", false
		}
	}
	return local + "@" + domain, true
}

// normalizePhone returns the number in E.164 with its '+', as GA4 hashes it;
// formatting characters are dropped, a number without its country code is refused.
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
	out := b.String()
	return out, e164RE.MatchString(out)
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// marshal encodes without escaping &, < and >, which URLs and names keep.
func marshal(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}
