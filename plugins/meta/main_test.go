package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

const (
	pixelID     = "1234567890123"
	accessToken = "EAAGm0PX4ZCpsBAxT0k3nS3cr3tV4lu3"
	eventsPath  = "/v25.0/" + pixelID + "/events"
)

// t0 is "now" for the forwarder in these tests.
var t0 = time.Date(2026, 11, 26, 18, 30, 15, 0, time.UTC)

// graphAPI is a recorder that enforces what the Conversions API documents for
// POST /{version}/{pixel_id}/events: a JSON body {"data": [1 to 1,000 events],
// "test_event_code"?, "access_token"} with nothing in the query (the token must not
// travel in URLs), and events with an event_name, an event_id, an event_time within
// the last 7 days, a known action_source (website events with client_user_agent and
// event_source_url), user_data whose contact fields are SHA-256 hex, and Purchase
// events with value and currency. A request that breaks a rule fails the test and is
// answered 400, as Meta would.
type graphAPI struct {
	*sdktest.Recorder
	t *testing.T
	// now is the time event times are checked against (zero: the time of the request).
	now time.Time

	mu       sync.Mutex
	requests []graphRequest
	answers  []int // status answered to each valid request
}

type graphRequest struct {
	Data          []graphEvent `json:"data"`
	TestEventCode string       `json:"test_event_code"`
	AccessToken   string       `json:"access_token"`
}

type graphEvent struct {
	EventName      string `json:"event_name"`
	EventTime      int64  `json:"event_time"`
	EventID        string `json:"event_id"`
	ActionSource   string `json:"action_source"`
	EventSourceURL string `json:"event_source_url"`
	UserData       struct {
		Email      []string `json:"em"`
		Phone      []string `json:"ph"`
		ExternalID []string `json:"external_id"`
		IP         string   `json:"client_ip_address"`
		UserAgent  string   `json:"client_user_agent"`
	} `json:"user_data"`
	CustomData map[string]any `json:"custom_data"`
}

// newGraphAPI starts the recorder; respond answers each valid request (nil: 200 with
// events_received).
func newGraphAPI(t *testing.T, now time.Time, respond func(n int, r graphRequest) sdktest.Reply) *graphAPI {
	a := &graphAPI{t: t, now: now}
	a.Recorder = sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		req, err := a.check(r)
		if err != nil {
			t.Errorf("recorder: request breaks the Conversions API's documented rules: %v\n%.600s", err, r.Body)
			return sdktest.Reply{Status: 400, Body: `{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"fbtrace_id":"rec"}}`}
		}
		a.mu.Lock()
		n := len(a.requests)
		a.requests = append(a.requests, req)
		a.mu.Unlock()
		rep := sdktest.Reply{Status: 200, Body: fmt.Sprintf(`{"events_received":%d,"messages":[],"fbtrace_id":"AbC123"}`, len(req.Data))}
		if respond != nil {
			rep = respond(n, req)
		}
		a.mu.Lock()
		a.answers = append(a.answers, max(rep.Status, 200))
		a.mu.Unlock()
		return rep
	})
	return a
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (a *graphAPI) check(r sdktest.Request) (graphRequest, error) {
	var req graphRequest
	if r.Method != http.MethodPost {
		return req, fmt.Errorf("method %s, want POST", r.Method)
	}
	if r.Path != eventsPath || r.Query != "" {
		return req, fmt.Errorf("path %q query %q, want %s and no query", r.Path, r.Query, eventsPath)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, fmt.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return req, fmt.Errorf("body is not {\"data\": [...], \"access_token\"}: %v", err)
	}
	if req.AccessToken != accessToken {
		return req, errors.New("access_token is not the configured token")
	}
	if len(req.Data) == 0 || len(req.Data) > 1000 {
		return req, fmt.Errorf("%d events; data takes 1 to 1,000", len(req.Data))
	}
	now := a.now
	if now.IsZero() {
		now = time.Now()
	}
	for i, e := range req.Data {
		ud := e.UserData
		switch {
		case e.EventName == "":
			return req, fmt.Errorf("event %d: no event_name", i)
		case e.EventID == "":
			return req, fmt.Errorf("event %d: no event_id", i)
		case e.EventTime < now.Add(-window(e.ActionSource)).Unix() || e.EventTime > now.Unix():
			return req, fmt.Errorf("event %d: event_time %d is not within the %s before %d", i, e.EventTime, window(e.ActionSource), now.Unix())
		case !actionSources[e.ActionSource]:
			return req, fmt.Errorf("event %d: action_source %q", i, e.ActionSource)
		case e.ActionSource == "website" && (ud.UserAgent == "" || !strings.HasPrefix(e.EventSourceURL, "http")):
			return req, fmt.Errorf("event %d: a website event needs client_user_agent and event_source_url", i)
		case len(ud.Email)+len(ud.Phone)+len(ud.ExternalID) == 0 && (ud.IP == "" || ud.UserAgent == ""):
			return req, fmt.Errorf("event %d: user_data has nothing to match on", i)
		}
		for _, h := range append(append(append([]string(nil), ud.Email...), ud.Phone...), ud.ExternalID...) {
			if !hex64.MatchString(h) {
				return req, fmt.Errorf("event %d: %q is not SHA-256 hex; contact data must be hashed", i, h)
			}
		}
		if hex64.MatchString(ud.IP) || hex64.MatchString(ud.UserAgent) {
			return req, fmt.Errorf("event %d: client_ip_address and client_user_agent must not be hashed", i)
		}
		if v, ok := e.CustomData["value"]; ok {
			f, isNum := v.(float64)
			if !isNum || math.IsNaN(f) || math.IsInf(f, 0) {
				return req, fmt.Errorf("event %d: value %v is not a number", i, v)
			}
		}
		if e.EventName == "Purchase" && (e.CustomData["value"] == nil || e.CustomData["currency"] == nil) {
			return req, fmt.Errorf("event %d: Purchase without value and currency", i)
		}
	}
	return req, nil
}

// window is how old an event may be: 7 days, or 62 for physical_store events.
func window(actionSource string) time.Duration {
	if actionSource == "physical_store" {
		return 62 * 24 * time.Hour
	}
	return 7 * 24 * time.Hour
}

func (a *graphAPI) Requests() []graphRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]graphRequest(nil), a.requests...)
}

// delivered is every event ID in a request answered 2xx, in order.
func (a *graphAPI) delivered() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for i, r := range a.requests {
		if a.answers[i] >= 200 && a.answers[i] < 300 {
			for _, e := range r.Data {
				ids = append(ids, e.EventID)
			}
		}
	}
	return ids
}

// click builds a click event document the way the host sends it.
func click(i int) sdk.ClickEvent {
	id := fmt.Sprintf("06j%023d", i)
	return sdk.ClickEvent{
		SchemaVersion: sdk.SchemaVersion, EventType: sdk.TypeClick, EventID: id, ClickID: id,
		Time: t0.Add(-time.Hour + time.Duration(i)*time.Millisecond), Node: "edge-1", Slug: "spring26", Campaign: "spring_sale_2026",
		UTM:         sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"},
		Destination: "https://shop.example.com/spring?ref=sms&x=1", VisitorID: fmt.Sprintf("07v%023d", i), NewVisitor: true,
		IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)",
	}
}

func clickEvent(t testing.TB, c sdk.ClickEvent) sdk.Event {
	t.Helper()
	doc, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Event{ID: c.EventID, Type: sdk.TypeClick, Time: c.Time, JSON: doc}
}

func clicks(t testing.TB, n int) []sdk.Event {
	evs := make([]sdk.Event, n)
	for i := range evs {
		evs[i] = clickEvent(t, click(i))
	}
	return evs
}

// conversion builds a conversion event document as in configs/schemas/conversion.v1.json.
func conversion(t testing.TB, id, typ, status string, edit func(*sdk.ConversionEvent)) sdk.Event {
	t.Helper()
	v := 49.90
	src, _, _ := strings.Cut(id, ":")
	c := sdk.ConversionEvent{
		SchemaVersion: 1, EventType: "conversion", EventID: id, ConversionID: "09k00000000000000000000001", SourceEventID: src,
		Type: typ, Status: status, Value: &v, Currency: "EUR",
		OccurredAt: t0.Add(-30 * time.Minute), ReceivedAt: t0.Add(-29 * time.Minute),
		ClickID: "06j00000000000000000000001",
		User:    &sdk.User{Email: " Jane.Doe@Gmail.com", Phone: "+14155550123", CustomerID: "cust-4411"},
		Attribution: &sdk.Touch{ClickID: "06j00000000000000000000001", Slug: "spring26", Campaign: "spring_sale_2026",
			UTM: sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"}, ClickTime: t0.Add(-time.Hour), SecondsToConvert: 1800, Credit: 1},
		Source: "api",
	}
	if edit != nil {
		edit(&c)
	}
	doc, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Event{ID: id, Type: sdk.TypeConversion, Time: c.OccurredAt, JSON: doc}
}

type forwarder interface {
	Configure(context.Context, json.RawMessage) error
	Forward(context.Context, []sdk.Event) ([]sdk.Result, error)
}

// connect runs a forwarder behind the real gRPC server and configures it; its log
// goes to the returned buffer.
func connect(t *testing.T, config string) (forwarder, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	p := sdktest.Connect(t, &Meta{now: func() time.Time { return t0 }, stderr: log})
	if err := p.Configure(context.Background(), json.RawMessage(config)); err != nil {
		t.Fatal(err)
	}
	return p, log
}

func config(base, extra string) string {
	return `{"pixel_id":"` + pixelID + `","access_token":"` + accessToken + `","base_url":"` + base + `"` + extra + `}`
}

func forward(t *testing.T, p forwarder, evs []sdk.Event) []sdk.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.Forward(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(evs) {
		t.Fatalf("%d results for %d events", len(res), len(evs))
	}
	return res
}

func wantStatus(t *testing.T, res []sdk.Result, want ...sdk.Status) {
	t.Helper()
	for i, w := range want {
		if res[i].Status != w || (w != sdk.StatusDelivered && res[i].Reason == "") {
			t.Errorf("result %d = %+v, want status %d with a reason", i, res[i], w)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Hashes computed independently (printf '%s' VALUE | sha256sum); the first two are
// the examples of Meta's customer information parameters page.
const (
	hashJohn      = "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f" // john_smith@gmail.com
	hashUSPhone   = "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176" // 16505551212
	hashJane      = "831f6494ad6be4fcb3a724c3d5fef22d3ceffa3c62ef3a7984e45a0ea177f982" // jane.doe@gmail.com
	hashPhone     = "413ba75461ab5f99d36820e561ea97e2bd80f9cb586f7ecea6cf4c496518950a" // 14155550123
	hashCustomer  = "15c6174b54e972ac89181faab3cf789f304b6f65fbc88402bf7595aca76a3589" // cust-4411
	hashVisitor01 = "42fec8cdac647a790f8a09a4356cc63719c4d1c9e61904082589cbe87244fc9c" // 07v00000000000000000000001
)

func TestHashing(t *testing.T) {
	cases := []struct {
		name, in, norm, hash string
		phone                bool
	}{
		{"Meta's email example", "John_Smith@gmail.com", "john_smith@gmail.com", hashJohn, false},
		{"trimmed, Gmail periods kept", " Jane.Doe@Gmail.com\t", "jane.doe@gmail.com", hashJane, false},
		{"Meta's phone example in E.164", "+1 (650) 555-1212", "16505551212", hashUSPhone, true},
		{"E.164 digits without the plus", "+14155550123", "14155550123", hashPhone, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			var ok bool
			if tc.phone {
				got, ok = normalizePhone(tc.in)
			} else {
				got, ok = normalizeEmail(tc.in)
			}
			if !ok || got != tc.norm || sha256Hex(got) != tc.hash {
				t.Errorf("%q → %q (%v) → %s, want %q → %s", tc.in, got, ok, sha256Hex(got), tc.norm, tc.hash)
			}
		})
	}
	if sha256Hex("cust-4411") != hashCustomer {
		t.Error("external_id hash")
	}
	for _, bad := range []string{"(650) 555-1212", "0044 20 7946 0000", "+0 123 4567", "+1 650 CALL NOW", ""} {
		if got, ok := normalizePhone(bad); ok {
			t.Errorf("phone %q normalised to %q; without a certain country code it must not be sent", bad, got)
		}
	}
	for _, bad := range []string{"", "jane", "@example.com", "jane@", "ja ne@example.com"} {
		if got, ok := normalizeEmail(bad); ok {
			t.Errorf("email %q normalised to %q", bad, got)
		}
	}
}

func TestClickMapping(t *testing.T) {
	api := newGraphAPI(t, t0, nil)
	p, _ := connect(t, config(api.URL, ""))
	plain := click(1)
	variant := 2
	plain.Variant = &variant
	plain.UTM.Content = "hero_banner"
	optIn := click(2)
	optIn.User = &sdk.User{Email: "jane.doe@gmail.com", Phone: "+14155550123", CustomerID: "cust-4411"}
	wantStatus(t, forward(t, p, []sdk.Event{clickEvent(t, plain), clickEvent(t, optIn)}), sdk.StatusDelivered, sdk.StatusDelivered)

	reqs := api.Requests()
	if len(reqs) != 1 || len(reqs[0].Data) != 2 || reqs[0].TestEventCode != "" {
		t.Fatalf("requests %+v, want one with both clicks", reqs)
	}
	e := reqs[0].Data[0]
	if e.EventName != "SMSLinkClick" || e.EventID != plain.EventID || e.EventTime != plain.Time.Unix() || e.ActionSource != "website" ||
		e.EventSourceURL != plain.Destination || e.UserData.IP != "203.0.113.7" || e.UserData.UserAgent != plain.UserAgent ||
		!reflect.DeepEqual(e.UserData.ExternalID, []string{hashVisitor01}) || e.UserData.Email != nil || e.UserData.Phone != nil {
		t.Errorf("click = %+v", e)
	}
	wantCustom := map[string]any{"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_banner",
		"click_id": plain.ClickID, "link_slug": "spring26", "clickgate_campaign": "spring_sale_2026", "variant": 2.0}
	if !reflect.DeepEqual(e.CustomData, wantCustom) {
		t.Errorf("custom_data\n got %v\nwant %v", e.CustomData, wantCustom)
	}
	o := reqs[0].Data[1].UserData
	if !reflect.DeepEqual(o.Email, []string{hashJane}) || !reflect.DeepEqual(o.Phone, []string{hashPhone}) ||
		!reflect.DeepEqual(o.ExternalID, []string{hashCustomer, sha256Hex(optIn.VisitorID)}) {
		t.Errorf("an opted-in click's user_data = %+v", o)
	}

	t.Run("clicks off", func(t *testing.T) {
		api := newGraphAPI(t, t0, nil)
		p, _ := connect(t, config(api.URL, `,"click_event":""`))
		res := forward(t, p, []sdk.Event{clickEvent(t, click(1)), conversion(t, "ord-1", "purchase", "approved", nil)})
		wantStatus(t, res, sdk.StatusFailed, sdk.StatusDelivered)
		if !strings.Contains(res[0].Reason, "events: [conversion]") {
			t.Errorf("reason %q does not tell the operator to filter clicks out", res[0].Reason)
		}
	})
	t.Run("click action source", func(t *testing.T) {
		api := newGraphAPI(t, t0, nil)
		p, _ := connect(t, config(api.URL, `,"click_action_source":"other","click_event":"TextLinkTap"`))
		noUA := click(1)
		noUA.UserAgent = ""
		wantStatus(t, forward(t, p, []sdk.Event{clickEvent(t, noUA)}), sdk.StatusDelivered)
		if e := api.Requests()[0].Data[0]; e.ActionSource != "other" || e.EventSourceURL != "" || e.EventName != "TextLinkTap" {
			t.Errorf("click = %+v", e)
		}
	})
}

func TestConversionMapping(t *testing.T) {
	api := newGraphAPI(t, t0, nil)
	p, _ := connect(t, config(api.URL, `,"test_event_code":"TEST4321","conversion_action_source":"physical_store","event_names":{"book_demo":"Schedule"}`))
	noValue := func(c *sdk.ConversionEvent) { c.Value, c.Currency = nil, "" }
	evs := []sdk.Event{
		conversion(t, "ord-1001", "purchase", "approved", nil),
		conversion(t, "lead-7", "lead", "approved", noValue),
		conversion(t, "sig-1", "signup", "approved", func(c *sdk.ConversionEvent) { c.User, c.VisitorID = &sdk.User{CustomerID: "cust-4411"}, "" }),
		conversion(t, "add-1", "add_to_cart", "approved", nil),
		conversion(t, "call-1", "call", "approved", noValue),
		conversion(t, "demo-1", "book_demo", "approved", noValue),
		conversion(t, "quote-1", "quote_request", "approved", func(c *sdk.ConversionEvent) { c.Attribution = nil; c.VisitorID = "07v00000000000000000000001" }),
		conversion(t, "ord-1001:refunded", "purchase", "refunded", nil),
	}
	res := forward(t, p, evs)
	wantStatus(t, res, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusFailed)
	if !strings.Contains(res[7].Reason, "no event that reverses") {
		t.Errorf("refund reason %q", res[7].Reason)
	}
	reqs := api.Requests()
	if len(reqs) != 1 || reqs[0].TestEventCode != "TEST4321" || len(reqs[0].Data) != 7 {
		t.Fatalf("requests %+v", reqs)
	}
	attributed := map[string]any{"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026",
		"click_id": "06j00000000000000000000001", "link_slug": "spring26", "clickgate_campaign": "spring_sale_2026", "seconds_to_convert": 1800.0}
	with := func(extra map[string]any, base map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name   string
		custom map[string]any
	}{
		{"Purchase", with(map[string]any{"value": 49.9, "currency": "EUR", "order_id": "ord-1001", "conversion_type": "purchase"}, attributed)},
		{"Lead", with(map[string]any{"conversion_type": "lead"}, attributed)},
		{"CompleteRegistration", with(map[string]any{"value": 49.9, "currency": "EUR", "conversion_type": "signup"}, attributed)},
		{"AddToCart", with(map[string]any{"value": 49.9, "currency": "EUR", "conversion_type": "add_to_cart"}, attributed)},
		{"Contact", with(map[string]any{"conversion_type": "call"}, attributed)},
		{"Schedule", with(map[string]any{"conversion_type": "book_demo"}, attributed)},
		{"quote_request", map[string]any{"value": 49.9, "currency": "EUR"}},
	}
	for i, tc := range cases {
		e := reqs[0].Data[i]
		if e.EventName != tc.name || e.EventID != evs[i].ID || e.ActionSource != "physical_store" || e.EventSourceURL != "" ||
			e.EventTime != t0.Add(-30*time.Minute).Unix() || !reflect.DeepEqual(e.CustomData, tc.custom) {
			t.Errorf("conversion %d:\n got %+v\nwant %s %v", i, e, tc.name, tc.custom)
		}
		ud := e.UserData
		if ud.IP != "" || ud.UserAgent != "" {
			t.Errorf("conversion %d sent an IP or user agent it does not carry: %+v", i, ud)
		}
		switch i {
		case 2:
			if ud.Email != nil || ud.Phone != nil || !reflect.DeepEqual(ud.ExternalID, []string{hashCustomer}) {
				t.Errorf("customer-ID-only conversion: %+v", ud)
			}
		case 6:
			if !reflect.DeepEqual(ud.ExternalID, []string{hashCustomer, hashVisitor01}) {
				t.Errorf("external_id %v, want the customer and visitor IDs hashed", ud.ExternalID)
			}
		default:
			if !reflect.DeepEqual(ud.Email, []string{hashJane}) || !reflect.DeepEqual(ud.Phone, []string{hashPhone}) || !reflect.DeepEqual(ud.ExternalID, []string{hashCustomer}) {
				t.Errorf("conversion %d user_data %+v", i, ud)
			}
		}
	}
}

// Every way an event can break the documented rules fails that event alone, unsent,
// and the others of the call are delivered.
func TestHostileEventsFailAlone(t *testing.T) {
	withClick := func(edit func(*sdk.ClickEvent)) sdk.Event { c := click(3); edit(&c); return clickEvent(t, c) }
	cases := []struct {
		name  string
		event sdk.Event
		why   string
	}{
		{"not JSON", sdk.Event{ID: "x", Type: sdk.TypeConversion, JSON: json.RawMessage(`{"type":`)}, "not valid JSON"},
		{"unknown type", sdk.Event{ID: "x", Type: "pageview", JSON: json.RawMessage(`{}`)}, "not click or conversion"},
		{"older than 7 days", withClick(func(c *sdk.ClickEvent) { c.Time = t0.Add(-7*24*time.Hour - time.Minute) }), "7 days"},
		{"in the future", withClick(func(c *sdk.ClickEvent) { c.Time = t0.Add(2 * time.Minute) }), "future"},
		{"no time", func() sdk.Event {
			e := withClick(func(c *sdk.ClickEvent) { c.Time = time.Time{} })
			e.Time = time.Time{}
			return e
		}(), "no time"},
		{"website click without user agent", withClick(func(c *sdk.ClickEvent) { c.UserAgent = "" }), "client_user_agent"},
		{"website click with a non-http destination", withClick(func(c *sdk.ClickEvent) { c.Destination = "javascript:alert(1)" }), "event_source_url"},
		{"no ID", func() sdk.Event { c := click(3); c.EventID = ""; e := clickEvent(t, c); e.ID = ""; return e }(), "event_id"},
		{"purchase without value", conversion(t, "p-1", "purchase", "approved", func(c *sdk.ConversionEvent) { c.Value, c.Currency = nil, "" }), "value"},
		{"value without currency", conversion(t, "p-2", "lead", "approved", func(c *sdk.ConversionEvent) { c.Currency = "" }), "currency"},
		{"bad currency", conversion(t, "p-3", "purchase", "approved", func(c *sdk.ConversionEvent) { c.Currency = "$$$" }), "ISO 4217"},
		{"rejected", conversion(t, "p-4:rejected", "lead", "rejected", nil), "reverses"},
		{"unknown status", conversion(t, "p-5", "lead", "pending", nil), "status"},
		{"bad custom name", conversion(t, "p-6", "lead!", "approved", nil), "not an event name"},
		{"nothing to match on", conversion(t, "p-7", "lead", "approved", func(c *sdk.ConversionEvent) { c.User, c.VisitorID = nil, "" }), "to match"},
		{"unusable identifiers", conversion(t, "p-8", "lead", "approved", func(c *sdk.ConversionEvent) {
			c.User = &sdk.User{Email: "not-an-email", Phone: "555-0123"}
		}), "to match"},
	}
	api := newGraphAPI(t, t0, nil)
	p, log := connect(t, config(api.URL, ""))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(api.Requests())
			good := clickEvent(t, click(9))
			res := forward(t, p, []sdk.Event{good, tc.event, good})
			wantStatus(t, res, sdk.StatusDelivered, sdk.StatusFailed, sdk.StatusDelivered)
			if !strings.Contains(res[1].Reason, tc.why) {
				t.Errorf("reason %q does not say %q", res[1].Reason, tc.why)
			}
			reqs := api.Requests()[before:]
			if len(reqs) != 1 || len(reqs[0].Data) != 2 {
				t.Errorf("sent %+v, want one request with the 2 good events", reqs)
			}
		})
	}
	if strings.Contains(log.String(), accessToken) {
		t.Error("the access token is in the log")
	}
	t.Run("physical store window", func(t *testing.T) {
		store := &Meta{cfg: Config{ConversionActionSource: "physical_store"}, names: defaultEventNames}
		old := func(age time.Duration) sdk.Event {
			return conversion(t, "store-1", "purchase", "approved", func(c *sdk.ConversionEvent) { c.OccurredAt = t0.Add(-age) })
		}
		if _, err := store.mapEvent(old(30*24*time.Hour), t0); err != nil {
			t.Errorf("a physical_store purchase 30 days old: %v; Meta takes them up to 62 days", err)
		}
		if _, err := store.mapEvent(old(63*24*time.Hour), t0); err == nil || !strings.Contains(err.Error(), "62 days") {
			t.Errorf("a physical_store purchase 63 days old: %v", err)
		}
	})
	t.Run("clock skew", func(t *testing.T) {
		ev, err := (&Meta{cfg: Config{ClickEvent: defaultClickEvent, ClickActionSource: "website"}}).mapEvent(withClick(func(c *sdk.ClickEvent) { c.Time = t0.Add(30 * time.Second) }), t0)
		if err != nil || !strings.Contains(string(ev), fmt.Sprintf(`"event_time":%d`, t0.Unix())) {
			t.Errorf("an event 30s ahead is sent as now: %s, %v", ev, err)
		}
	})
}

func TestBatching(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		n     int
		sizes []int
	}{
		{"1,000 per request", "", 2500, []int{1000, 1000, 500}},
		{"max_batch", `,"max_batch":300`, 700, []int{300, 300, 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newGraphAPI(t, t0, nil)
			p, _ := connect(t, config(api.URL, tc.extra))
			evs := clicks(t, tc.n)
			res := forward(t, p, evs)
			for i, r := range res {
				if r.Status != sdk.StatusDelivered {
					t.Fatalf("result %d = %+v", i, r)
				}
			}
			var sizes []int
			for _, r := range api.Requests() {
				sizes = append(sizes, len(r.Data))
			}
			if !reflect.DeepEqual(sizes, tc.sizes) {
				t.Errorf("request sizes %v, want %v", sizes, tc.sizes)
			}
			got := api.delivered()
			for i, e := range evs {
				if got[i] != e.ID {
					t.Fatalf("event %d sent as %s: the order changed", i, got[i])
				}
			}
		})
	}
}

func graphErr(code, subcode int, transient bool, msg string) string {
	return fmt.Sprintf(`{"error":{"message":%q,"type":"OAuthException","code":%d,"error_subcode":%d,"is_transient":%v,"error_user_title":"Title","error_user_msg":"User message","fbtrace_id":"AxYz09"}}`,
		msg, code, subcode, transient)
}

func TestStatus(t *testing.T) {
	cases := []struct {
		name     string
		status   int
		body     string
		header   http.Header
		want     sdk.Status
		after    time.Duration
		inWhy    string
		requests int // requests for 4 events
		refused  bool
	}{
		{name: "200", status: 200, body: `{"events_received":4,"messages":[],"fbtrace_id":"A"}`, want: sdk.StatusDelivered, requests: 1},
		{name: "expired token", status: 400, body: graphErr(190, 463, false, "Error validating access token"), want: sdk.StatusFailed, inWhy: "check access_token", requests: 1},
		{name: "permission", status: 403, body: graphErr(10, 0, false, "(#10) Application does not have permission"), want: sdk.StatusFailed, inWhy: "check access_token", requests: 1},
		{name: "permission 2xx code", status: 400, body: graphErr(200, 0, false, "(#200) Permissions error"), want: sdk.StatusFailed, inWhy: "code 200", requests: 1},
		{name: "unknown pixel", status: 400, body: graphErr(100, 33, false, "Unsupported post request. Object does not exist"), want: sdk.StatusFailed, inWhy: "check pixel_id", requests: 1},
		{name: "application rate limit", status: 400, body: graphErr(4, 0, true, "(#4) Application request limit reached"), want: sdk.StatusRetry, inWhy: "code 4", requests: 1},
		{name: "user rate limit", status: 400, body: graphErr(17, 0, false, "(#17) User request limit reached"), want: sdk.StatusRetry, inWhy: "code 17", requests: 1},
		{name: "page rate limit", status: 400, body: graphErr(32, 0, false, "Page request limit reached"), want: sdk.StatusRetry, inWhy: "code 32", requests: 1},
		{name: "custom rate limit", status: 400, body: graphErr(613, 0, false, "Calls to this api have exceeded the rate limit."), want: sdk.StatusRetry, inWhy: "code 613", requests: 1},
		{name: "business use case limit", status: 400, body: graphErr(80004, 2446079, false, "There have been too many calls"), want: sdk.StatusRetry, inWhy: "code 80004", requests: 1},
		{name: "transient", status: 400, body: graphErr(1, 99, true, "An unknown error occurred"), want: sdk.StatusRetry, inWhy: "transient", requests: 1},
		{name: "service unavailable", status: 503, body: graphErr(2, 0, true, "Service temporarily unavailable"), header: http.Header{"Retry-After": {"30"}}, want: sdk.StatusRetry, after: 30 * time.Second, inWhy: "503", requests: 1},
		{name: "429 without body", status: 429, header: http.Header{"Retry-After": {"7"}}, want: sdk.StatusRetry, after: 7 * time.Second, inWhy: "429", requests: 1},
		{name: "502 HTML", status: 502, body: "<html>Bad Gateway</html>", want: sdk.StatusRetry, inWhy: "Bad Gateway", requests: 1},
		// Refused for what it holds: each half is tried until every event is alone.
		{name: "invalid parameter", status: 400, body: graphErr(100, 2804019, false, "(#100) Invalid parameter"), want: sdk.StatusFailed, inWhy: "Invalid parameter", requests: 7},
		{name: "connection refused", refused: true, want: sdk.StatusRetry, inWhy: "refused", requests: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newGraphAPI(t, t0, func(int, graphRequest) sdktest.Reply {
				return sdktest.Reply{Status: tc.status, Header: tc.header, Body: tc.body}
			})
			base := api.URL
			if tc.refused {
				base = "http://" + closedAddr(t)
			}
			p, log := connect(t, config(base, ""))
			res := forward(t, p, clicks(t, 4))
			for i, r := range res {
				if r.Status != tc.want || r.RetryAfter != tc.after || !strings.Contains(r.Reason, tc.inWhy) {
					t.Errorf("result %d = %+v, want status %d after %v reason containing %q", i, r, tc.want, tc.after, tc.inWhy)
				}
			}
			if n := len(api.Requests()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if strings.Contains(log.String(), accessToken) {
				t.Errorf("the log holds the access token:\n%s", log.String())
			}
		})
	}
}

func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Meta refuses a whole batch for one event only it finds invalid: the batch is split
// until that event is alone, every other event is delivered, and the requests stay few.
func TestOneBadEventFailsAlone(t *testing.T) {
	poison := func(r graphRequest) bool {
		for _, e := range r.Data {
			if e.CustomData["order_id"] == "poison" {
				return true
			}
		}
		return false
	}
	refuse := func(_ int, r graphRequest) sdktest.Reply {
		if poison(r) {
			return sdktest.Reply{Status: 400, Body: graphErr(100, 2804019, false, "(#100) Invalid parameter")}
		}
		return sdktest.Reply{Status: 200, Body: `{"events_received":1}`}
	}
	api := newGraphAPI(t, t0, refuse)
	p, _ := connect(t, config(api.URL, ""))
	var evs []sdk.Event
	for i := range 100 {
		order := fmt.Sprintf("ord-%d", i)
		if i == 61 {
			order = "poison"
		}
		evs = append(evs, conversion(t, order, "purchase", "approved", nil))
	}
	res := forward(t, p, evs)
	for i, r := range res {
		want := sdk.StatusDelivered
		if i == 61 {
			want = sdk.StatusFailed
		}
		if r.Status != want {
			t.Errorf("result %d = %+v, want %d", i, r, want)
		}
	}
	if !strings.Contains(res[61].Reason, "Invalid parameter") || !strings.Contains(res[61].Reason, "AxYz09") {
		t.Errorf("reason %q should carry Meta's message and fbtrace_id", res[61].Reason)
	}
	if n := len(api.Requests()); n > 1+2*7 {
		t.Errorf("%d requests to isolate one event among 100", n)
	}
	if got := len(api.delivered()); got != 99 {
		t.Errorf("%d events delivered, want 99", got)
	}

	// More bad events than one call may spend requests on: what is not isolated is
	// retried, nothing is failed wrongly, and later calls finish the job.
	t.Run("budget", func(t *testing.T) {
		api := newGraphAPI(t, t0, refuse)
		p, _ := connect(t, config(api.URL, ""))
		var evs []sdk.Event
		bad := map[string]bool{}
		for i := range 200 {
			order := fmt.Sprintf("ord-%d", i)
			if i%9 == 4 {
				order = "poison"
				bad[fmt.Sprint(i)] = true
			}
			e := conversion(t, order, "purchase", "approved", nil)
			e.ID = fmt.Sprint(i)
			e.JSON = bytes.Replace(e.JSON, []byte(`"event_id":"`+order+`"`), []byte(`"event_id":"`+e.ID+`"`), 1)
			evs = append(evs, e)
		}
		pending := evs
		for round := 0; len(pending) > 0; round++ {
			if round == 20 {
				t.Fatalf("%d events still pending after 20 calls", len(pending))
			}
			var next []sdk.Event
			for i, r := range forward(t, p, pending) {
				id := pending[i].ID
				switch {
				case r.Status == sdk.StatusRetry:
					next = append(next, pending[i])
				case r.Status == sdk.StatusFailed && !bad[id]:
					t.Fatalf("good event %s failed: %s", id, r.Reason)
				case r.Status == sdk.StatusDelivered && bad[id]:
					t.Fatalf("bad event %s delivered", id)
				}
			}
			pending = next
		}
	})
}

func TestRetryStopsTheCall(t *testing.T) {
	api := newGraphAPI(t, t0, func(n int, r graphRequest) sdktest.Reply {
		if n == 1 {
			return sdktest.Reply{Status: 400, Header: http.Header{"Retry-After": {"5"}}, Body: graphErr(17, 0, false, "(#17) User request limit reached")}
		}
		return sdktest.Reply{Status: 200, Body: `{}`}
	})
	p, _ := connect(t, config(api.URL, `,"max_batch":10`))
	res := forward(t, p, clicks(t, 30))
	if n := len(api.Requests()); n != 2 {
		t.Fatalf("%d requests; after a rate limit the rest of the call waits", n)
	}
	for i, r := range res {
		want := sdk.StatusNotSent // after the limited request, never tried
		switch {
		case i < 10:
			want = sdk.StatusDelivered
		case i < 20:
			want = sdk.StatusRetry
		}
		if r.Status != want || (want != sdk.StatusDelivered && r.RetryAfter != 5*time.Second) {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
}

func TestCallDeadline(t *testing.T) {
	api := newGraphAPI(t, t0, nil)
	p, _ := connect(t, config(api.URL, `,"timeout":"10s"`))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := p.Forward(ctx, clicks(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, sdk.StatusNotSent, sdk.StatusNotSent)
	if len(api.Requests()) != 0 {
		t.Error("a request was started that could outlive the call")
	}
}

// The token travels in the body only and never comes back in a reason or the log,
// even when Meta's answer quotes it.
func TestTokenNeverLeaks(t *testing.T) {
	echo := graphErr(190, 0, false, "Malformed access token "+accessToken)
	for _, body := range []string{echo, "<html>" + url.QueryEscape(accessToken) + "</html>"} {
		api := newGraphAPI(t, t0, func(int, graphRequest) sdktest.Reply { return sdktest.Reply{Status: 400, Body: body} })
		p, log := connect(t, config(api.URL, ""))
		res := forward(t, p, clicks(t, 2))
		for i, r := range res {
			if r.Status != sdk.StatusFailed || strings.Contains(r.Reason, accessToken) || strings.Contains(r.Reason, url.QueryEscape(accessToken)) || !strings.Contains(r.Reason, redactedToken) {
				t.Errorf("result %d = %+v", i, r)
			}
		}
		if strings.Contains(log.String(), accessToken) {
			t.Errorf("the log holds the token:\n%s", log.String())
		}
	}
	p := sdktest.Connect(t, &Meta{stderr: &syncBuffer{}})
	err := p.Configure(context.Background(), json.RawMessage(`{"pixel_id":"`+pixelID+`","access_token":"`+accessToken+`","timeout":"forever"}`))
	if err == nil || strings.Contains(err.Error(), accessToken) {
		t.Errorf("configuration error %v", err)
	}
}

func TestParseGraphError(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		parsed bool
		class  int
		reason string
	}{
		{"documented example", 400, `{"error":{"message":"Message describing the error","type":"OAuthException","code":190,"error_subcode":460,"error_user_title":"A title","error_user_msg":"A message","fbtrace_id":"EJplcsCHuLu"}}`,
			true, classAuth, "Meta 400: Message describing the error: A title: A message [code 190, subcode 460, fbtrace_id EJplcsCHuLu]"},
		{"transient flag", 400, `{"error":{"message":"x","code":3,"is_transient":true}}`, true, classRetry, "Meta 400: x [code 3, transient]"},
		{"code as string", 400, `{"error":{"code":"613"}}`, true, classRetry, "Meta 400 [code 613]"},
		{"code as float", 400, `{"error":{"code":1.5,"message":"m"}}`, true, classEvent, "Meta 400: m"},
		{"huge code", 400, `{"error":{"code":1e30}}`, true, classEvent, "Meta 400"},
		{"newlines in message", 400, "{\"error\":{\"message\":\"a\\n\\tb\\u0000c\"}}", true, classEvent, "Meta 400: a b c"},
		{"not JSON", 502, "<html>\nBad Gateway\n</html>", false, classRetry, "Meta 502: <html> Bad Gateway </html>"},
		{"empty", 401, "", false, classAuth, "Meta 401"},
		{"error not an object", 400, `{"error":"nope"}`, false, classEvent, `Meta 400: {"error":"nope"}`},
		{"null error", 404, `{"error":null}`, false, classPixel, `Meta 404: {"error":null}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ge, parsed := parseGraphError([]byte(tc.body))
			if parsed != tc.parsed {
				t.Fatalf("parsed = %v", parsed)
			}
			if c := classify(tc.status, ge, parsed); c != tc.class {
				t.Errorf("class %d, want %d", c, tc.class)
			}
			if r := ge.reason(tc.status, parsed, []byte(tc.body)); r != tc.reason {
				t.Errorf("reason\n got %q\nwant %q", r, tc.reason)
			}
		})
	}
	long := `{"error":{"message":"` + strings.Repeat("m", 5000) + `"}}`
	ge, _ := parseGraphError([]byte(long))
	if r := ge.reason(400, true, []byte(long)); len([]rune(r)) > maxReasonLen {
		t.Errorf("reason of %d characters", len([]rune(r)))
	}
}

func TestConfigure(t *testing.T) {
	base := `"pixel_id":"` + pixelID + `","access_token":"tok"`
	cases := []struct{ name, config, field string }{
		{"non-JSON", `pixel_id=1`, "config"},
		{"trailing data", `{` + base + `} {}`, "config"},
		{"unknown field", `{` + base + `,"accesstoken":"x"}`, "accesstoken"},
		{"missing pixel_id", `{"access_token":"tok"}`, "pixel_id"},
		{"pixel_id not numeric", `{"pixel_id":"px-1","access_token":"tok"}`, "pixel_id"},
		{"pixel_id a number", `{"pixel_id":1234567890,"access_token":"tok"}`, "pixel_id"},
		{"missing access_token", `{"pixel_id":"` + pixelID + `"}`, "access_token"},
		{"access_token with space", `{"pixel_id":"` + pixelID + `","access_token":"Bearer tok"}`, "access_token"},
		{"api_version", `{` + base + `,"api_version":"25"}`, "api_version"},
		{"ftp base_url", `{` + base + `,"base_url":"ftp://graph.facebook.com"}`, "base_url"},
		{"base_url with version", `{` + base + `,"base_url":"https://graph.facebook.com/v25.0"}`, "base_url"},
		{"base_url with query", `{` + base + `,"base_url":"https://graph.facebook.com?access_token=x"}`, "base_url"},
		{"click_event standard", `{` + base + `,"click_event":"Purchase"}`, "click_event"},
		{"click_event punctuation", `{` + base + `,"click_event":"SMS/Click"}`, "click_event"},
		{"click_event too long", `{` + base + `,"click_event":"` + strings.Repeat("C", 51) + `"}`, "click_event"},
		{"event_names bad type", `{` + base + `,"event_names":{"Lead":"Lead"}}`, "event_names"},
		{"event_names bad name", `{` + base + `,"event_names":{"lead":"Lead!"}}`, "event_names.lead"},
		{"unknown action source", `{` + base + `,"click_action_source":"sms"}`, "click_action_source"},
		{"app action source", `{` + base + `,"click_action_source":"app"}`, "click_action_source"},
		{"website conversions", `{` + base + `,"conversion_action_source":"website"}`, "conversion_action_source"},
		{"business_messaging conversions", `{` + base + `,"conversion_action_source":"business_messaging"}`, "conversion_action_source"},
		{"test_event_code with space", `{` + base + `,"test_event_code":"TEST 1"}`, "test_event_code"},
		{"max_batch 0", `{` + base + `,"max_batch":0}`, "max_batch"},
		{"max_batch over 1000", `{` + base + `,"max_batch":1001}`, "max_batch"},
		{"bad timeout", `{` + base + `,"timeout":"soon"}`, "timeout"},
	}
	p := sdktest.Connect(t, &Meta{stderr: &syncBuffer{}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Configure(context.Background(), json.RawMessage(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Configure(%s) = %v, want an error naming %s", tc.config, err, tc.field)
			}
		})
	}
	if err := p.Configure(context.Background(), json.RawMessage(`{`+base+`}`)); err != nil {
		t.Errorf("pixel_id and access_token alone are a valid configuration: %v", err)
	}
}

func TestForwardBeforeConfigure(t *testing.T) {
	if _, err := (&Meta{}).Forward(context.Background(), clicks(t, 1)); err == nil {
		t.Fatal("Forward before Configure succeeded")
	}
}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	bin := buildPlugin(t)
	t.Run("describe", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "describe")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("describe: %v\n%s", err, stderr.Bytes())
		}
		var d struct {
			Name            string `json:"name"`
			Version         string `json:"version"`
			ProtocolVersion int    `json:"protocol_version"`
			Description     string `json:"description"`
			Config          []struct {
				Name     string `json:"name"`
				Required bool   `json:"required"`
				Secret   bool   `json:"secret"`
				Default  any    `json:"default"`
			} `json:"config"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
			t.Fatalf("describe printed %q: %v", stdout.Bytes(), err)
		}
		if d.Name != "meta" || d.ProtocolVersion != 1 || d.Version == "" || d.Description == "" {
			t.Errorf("describe = %+v", d)
		}
		defaults := map[string]any{"api_version": "v25.0", "base_url": defaultBaseURL, "click_event": "SMSLinkClick",
			"click_action_source": "website", "conversion_action_source": "other", "max_batch": 1000.0, "timeout": "10s"}
		var names []string
		for _, c := range d.Config {
			names = append(names, c.Name)
			if want, ok := defaults[c.Name]; ok && c.Default != want {
				t.Errorf("%s default %v, want %v", c.Name, c.Default, want)
			}
			if c.Name == "access_token" && (!c.Required || !c.Secret) {
				t.Errorf("access_token must be required and secret: %+v", c)
			}
		}
		want := []string{"pixel_id", "access_token", "api_version", "base_url", "click_event", "event_names",
			"click_action_source", "conversion_action_source", "test_event_code", "max_batch", "timeout"}
		if !reflect.DeepEqual(names, want) {
			t.Errorf("config fields %v, want %v", names, want)
		}
	})
	t.Run("no magic cookie", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CLICKGATE_PLUGIN=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Fatalf("run without the magic cookie: %v, want a non-zero exit", err)
		}
		if stdout.Len() != 0 || !strings.Contains(stderr.String(), "clickgate forwarder plugin") {
			t.Errorf("stdout %q stderr %q", stdout.Bytes(), stderr.Bytes())
		}
	})
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// buildPlugin builds this plugin once per test binary.
func buildPlugin(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "clickgate-meta")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "meta")
		if out, err := exec.Command(gobin, "build", "-o", buildBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildBin != "" {
		os.RemoveAll(filepath.Dir(buildBin))
	}
	os.Exit(code)
}

// FuzzParseGraphError: any answer gives a class and a one-line reason of bounded
// length.
func FuzzParseGraphError(f *testing.F) {
	f.Add(400, []byte(graphErr(100, 2804019, false, "(#100) Invalid parameter")))
	f.Add(400, []byte(`{"error":{"code":"4","is_transient":"yes","fbtrace_id":7}}`))
	f.Add(503, []byte("<html>\x00\xff</html>"))
	f.Add(400, []byte(`{"error":{}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		ge, parsed := parseGraphError(body)
		c := classify(status, ge, parsed)
		if c < classEvent || c > classPixel {
			t.Fatalf("class %d", c)
		}
		r := ge.reason(status, parsed, body)
		if !strings.HasPrefix(r, "Meta ") || strings.ContainsAny(r, "\n\r\x00") || len([]rune(r)) > maxReasonLen {
			t.Fatalf("reason %q", r)
		}
	})
}

// FuzzMapEvent: any event either fails with a reason or becomes a server event that
// keeps every rule the recorder enforces.
func FuzzMapEvent(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc, "06j00000000000000000000001")
	conv := conversion(f, "ord-1", "purchase", "approved", nil)
	f.Add(sdk.TypeConversion, []byte(conv.JSON), "ord-1")
	f.Add(sdk.TypeConversion, []byte(`{"type":"lead","value":1e308,"currency":"USD","visitor_id":" ","occurred_at":"2026-11-26T18:00:00Z","user":{"phone":"+1 415 555 0123"}}`), "x")
	f.Add(sdk.TypeClick, []byte(`{"event_id":"e","time":"2026-11-26T18:00:00Z","destination":"https://x","user_agent":" ","ip":"1.2.3.4"}`), "")
	m := &Meta{cfg: Config{ClickEvent: defaultClickEvent, ClickActionSource: "website", ConversionActionSource: "other"}, names: defaultEventNames}
	f.Fuzz(func(t *testing.T, typ string, doc []byte, id string) {
		ev, err := m.mapEvent(sdk.Event{ID: id, Type: typ, Time: t0, JSON: doc}, t0)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		body, _ := marshal(map[string]any{"data": []json.RawMessage{ev}, "access_token": accessToken})
		a := &graphAPI{t: t, now: t0}
		if _, err := a.check(sdktest.Request{Method: "POST", Path: eventsPath, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}); err != nil {
			t.Fatalf("mapped to an invalid request: %v\n%s", err, body)
		}
	})
}
