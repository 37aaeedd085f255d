package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

const apiKey = "pk_3f9a0c71e2b84d5a9c6e0b1d2f4a7c8e19"

// klaviyoAPI is a recorder that enforces what Klaviyo's Create Event API documents for
// POST /api/events (revision 2026-10-15). A request that breaks a rule fails the test
// and is answered 400 with a JSON:API error, as Klaviyo would.
type klaviyoAPI struct {
	*sdktest.Recorder
	revision string

	mu     sync.Mutex
	events []apiEvent
}

// apiEvent is a request body as the recorder decoded it, with unknown fields refused.
type apiEvent struct {
	Data struct {
		Type       string `json:"type"`
		Attributes struct {
			Properties    map[string]any `json:"properties"`
			Time          *string        `json:"time"`
			Value         *float64       `json:"value"`
			ValueCurrency *string        `json:"value_currency"`
			UniqueID      *string        `json:"unique_id"`
			Metric        *struct {
				Data struct {
					Type       string `json:"type"`
					Attributes struct {
						Name string `json:"name"`
					} `json:"attributes"`
				} `json:"data"`
			} `json:"metric"`
			Profile *struct {
				Data struct {
					Type       string `json:"type"`
					Attributes struct {
						Email       string `json:"email"`
						PhoneNumber string `json:"phone_number"`
						ExternalID  string `json:"external_id"`
					} `json:"attributes"`
				} `json:"data"`
			} `json:"profile"`
		} `json:"attributes"`
	} `json:"data"`
}

func (e apiEvent) metric() string { return e.Data.Attributes.Metric.Data.Attributes.Name }
func (e apiEvent) uniqueID() string {
	if e.Data.Attributes.UniqueID == nil {
		return ""
	}
	return *e.Data.Attributes.UniqueID
}

// newKlaviyoAPI starts the recorder; respond answers the n-th valid request (from 0),
// nil answers 202 with no body.
func newKlaviyoAPI(t *testing.T, respond func(n int, r sdktest.Request) sdktest.Reply) *klaviyoAPI {
	a := &klaviyoAPI{revision: defaultRevision}
	a.Recorder = sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		ev, err := a.check(r)
		if err != nil {
			t.Errorf("recorder: request breaks the Create Event contract: %v", err)
			return sdktest.Reply{Status: 400, Body: `{"errors":[{"id":"x","status":400,"code":"invalid","title":"Invalid input.","detail":` + quote(err.Error()) + `}]}`}
		}
		a.mu.Lock()
		n := len(a.events)
		a.events = append(a.events, ev)
		a.mu.Unlock()
		if respond == nil {
			return sdktest.Reply{Status: 202}
		}
		return respond(n, r)
	})
	return a
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

var (
	e164RE  = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	isoCode = regexp.MustCompile(`^[A-Z]{3}$`)
)

func (a *klaviyoAPI) check(r sdktest.Request) (apiEvent, error) {
	var ev apiEvent
	switch {
	case r.Method != http.MethodPost:
		return ev, fmt.Errorf("method %s, want POST", r.Method)
	case r.Path != "/api/events" || r.Query != "":
		return ev, fmt.Errorf("path %q query %q, want /api/events", r.Path, r.Query)
	case r.Header.Get("Authorization") != "Klaviyo-API-Key "+apiKey:
		return ev, fmt.Errorf("authorization %q, want Klaviyo-API-Key and the private key", r.Header.Get("Authorization"))
	case r.Header.Get("Revision") != a.revision:
		return ev, fmt.Errorf("revision header %q, want %q", r.Header.Get("Revision"), a.revision)
	case r.Header.Get("Accept") != "application/vnd.api+json":
		return ev, fmt.Errorf("accept %q, want application/vnd.api+json", r.Header.Get("Accept"))
	case len(r.Body) > 5<<20:
		return ev, fmt.Errorf("body is %d bytes, over 5 MB", len(r.Body))
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/vnd.api+json" {
		return ev, fmt.Errorf("content type %q, want application/vnd.api+json", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil || dec.More() {
		return ev, fmt.Errorf("body is not an EventCreateQueryV2 document: %v", err)
	}
	at := ev.Data.Attributes
	switch {
	case ev.Data.Type != "event":
		return ev, fmt.Errorf("data.type %q, want event", ev.Data.Type)
	case at.Properties == nil:
		return ev, errors.New("attributes.properties is required")
	case len(at.Properties) > 400:
		return ev, fmt.Errorf("%d properties, over 400", len(at.Properties))
	case at.Metric == nil || at.Metric.Data.Type != "metric":
		return ev, errors.New("attributes.metric.data.type must be metric")
	case at.Metric.Data.Attributes.Name == "" || len([]rune(at.Metric.Data.Attributes.Name)) >= 128:
		return ev, fmt.Errorf("metric name %q: want 1 to 127 characters", at.Metric.Data.Attributes.Name)
	case at.Profile == nil || at.Profile.Data.Type != "profile":
		return ev, errors.New("attributes.profile.data.type must be profile")
	case at.UniqueID == nil || *at.UniqueID == "":
		return ev, errors.New("no unique_id: redeliveries would be counted twice")
	case at.ValueCurrency != nil && !isoCode.MatchString(*at.ValueCurrency):
		return ev, fmt.Errorf("value_currency %q is not ISO 4217", *at.ValueCurrency)
	}
	p := at.Profile.Data.Attributes
	if p.Email == "" && p.PhoneNumber == "" && p.ExternalID == "" {
		return ev, errors.New("profile has no identifier (email, phone_number, external_id)")
	}
	if p.PhoneNumber != "" && !e164RE.MatchString(p.PhoneNumber) {
		return ev, fmt.Errorf("phone_number %q is not E.164", p.PhoneNumber)
	}
	if at.Time != nil {
		tm, err := time.Parse(time.RFC3339, *at.Time)
		if err != nil || tm.Year() < 2000 || tm.After(time.Now().AddDate(1, 0, 0)) {
			return ev, fmt.Errorf("time %q: want RFC 3339 after 2000 and at most a year ahead", *at.Time)
		}
	}
	if err := checkProperties(at.Properties, 1); err != nil {
		return ev, err
	}
	return ev, nil
}

func checkProperties(v any, depth int) error {
	if depth > 10 {
		return errors.New("properties nest deeper than 10 levels")
	}
	switch t := v.(type) {
	case string:
		if len(t) > 100_000 {
			return fmt.Errorf("a property string is %d bytes, over 100 KB", len(t))
		}
	case map[string]any:
		for _, e := range t {
			if err := checkProperties(e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		if len(t) > 4000 {
			return errors.New("an array has more than 4000 elements")
		}
		for _, e := range t {
			if err := checkProperties(e, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Events returns the valid requests so far, in arrival order.
func (a *klaviyoAPI) Events() []apiEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apiEvent(nil), a.events...)
}

// byID returns the valid requests by unique_id.
func (a *klaviyoAPI) byID() map[string]apiEvent {
	m := map[string]apiEvent{}
	for _, e := range a.Events() {
		m[e.uniqueID()] = e
	}
	return m
}

var t0 = time.Date(2026, 11, 26, 18, 30, 15, 123_000_000, time.UTC)

// click builds a click document the way the host sends it, with a customer ID captured
// from the link (identity_params).
func click(i int) sdk.ClickEvent {
	id := fmt.Sprintf("06j%023d", i)
	return sdk.ClickEvent{
		SchemaVersion: sdk.SchemaVersion, EventType: sdk.TypeClick, EventID: id, ClickID: id,
		Time: t0.Add(time.Duration(i) * time.Millisecond), Node: "edge-1", Slug: "spring26", Campaign: "spring_sale_2026",
		UTM:         sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"},
		Destination: "https://shop.example.com/spring?ref=sms&x=1", VisitorID: fmt.Sprintf("07v%023d", i), NewVisitor: i%2 == 0,
		Identity: &sdk.Identity{Kind: "customer_id", Value: fmt.Sprintf("cust-%d", i), Source: "param:rid"},
		IP:       "203.0.113.7", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)",
	}
}

func event(t testing.TB, c sdk.ClickEvent) sdk.Event {
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
		evs[i] = event(t, click(i))
	}
	return evs
}

var touch = &sdk.Touch{
	ClickID: "06j00000000000000000000001", Slug: "spring26", Campaign: "spring_sale_2026",
	UTM:       sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026", Content: "hero"},
	ClickTime: t0, SecondsToConvert: 1785, Credit: 1,
}

// conv builds a conversion document the way the host sends it.
func conv(eventID, typ, status string, user *sdk.User, attribution *sdk.Touch) sdk.ConversionEvent {
	src, _, _ := strings.Cut(eventID, ":")
	v := 49.9
	c := sdk.ConversionEvent{
		SchemaVersion: sdk.SchemaVersion, EventType: sdk.TypeConversion, EventID: eventID, ConversionID: "09k00000000000000000000001",
		SourceEventID: src, Type: typ, Status: status, Value: &v, Currency: "EUR",
		OccurredAt: t0.Add(30 * time.Minute), ReceivedAt: t0.Add(30*time.Minute + 2*time.Second),
		User: user, Attribution: attribution, Source: "api",
	}
	if status != "approved" {
		c.StatusChangedAt = c.OccurredAt.Add(reversedAfter) // a refund or rejection days later
	}
	return c
}

// reversedAfter is how long after the conversion its refund or rejection in conv happened.
const reversedAfter = 50 * time.Hour

func convEvent(t testing.TB, c sdk.ConversionEvent) sdk.Event {
	t.Helper()
	doc, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Event{ID: c.EventID, Type: sdk.TypeConversion, Time: c.OccurredAt, JSON: doc}
}

type forwarder interface {
	Configure(context.Context, json.RawMessage) error
	Forward(context.Context, []sdk.Event) ([]sdk.Result, error)
}

// connect runs k behind the real gRPC server and configures it.
func connect(t *testing.T, k *Klaviyo, config string) forwarder {
	t.Helper()
	if k.stderr == nil {
		k.stderr = testWriter{t}
	}
	p := sdktest.Connect(t, k)
	if err := p.Configure(context.Background(), json.RawMessage(config)); err != nil {
		t.Fatal(err)
	}
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// config is a configuration for the recorder, with a rate high enough for tests.
func config(base, extra string) string {
	return `{"api_key":"` + apiKey + `","base_url":"` + base + `","max_rate":350` + extra + `}`
}

func forward(t *testing.T, p forwarder, evs []sdk.Event) []sdk.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
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

func wantAll(t *testing.T, res []sdk.Result, from, to int, status sdk.Status) {
	t.Helper()
	for i := from; i < to; i++ {
		if res[i].Status != status {
			t.Fatalf("result %d = %+v, want status %d", i, res[i], status)
		}
	}
}

func TestClickMapping(t *testing.T) {
	api := newKlaviyoAPI(t, nil)
	p := connect(t, &Klaviyo{}, config(api.URL, ""))

	withID := click(1)
	variant := 2
	withID.Variant, withID.Domain = &variant, "go.brand.com"
	withID.UTM.Content, withID.UTM.Term = "hero_banner", "shoes"
	withUser := click(2)
	withUser.Identity = &sdk.Identity{Kind: "email", Value: "9f86d081884c7d65", Source: "param:e"} // a keyed hash: useless to Klaviyo
	withUser.User = &sdk.User{Email: "jane@example.com", Phone: "+14155550100", CustomerID: "cust-77"}

	res := forward(t, p, []sdk.Event{event(t, withID), event(t, withUser)})
	wantAll(t, res, 0, 2, sdk.StatusDelivered)
	got := api.byID()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(api.Events()))
	}

	e := got[withID.EventID].Data.Attributes
	if e.Metric.Data.Attributes.Name != "SMS Link Clicked" || *e.Time != "2026-11-26T18:30:15Z" || e.Value != nil || e.ValueCurrency != nil {
		t.Errorf("click event %+v", e)
	}
	if p := e.Profile.Data.Attributes; p.ExternalID != "cust-1" || p.Email != "" || p.PhoneNumber != "" {
		t.Errorf("profile %+v, want the customer ID as external_id only", p)
	}
	wantProps := map[string]any{
		"click_id": withID.ClickID, "slug": "spring26", "campaign": "spring_sale_2026", "domain": "go.brand.com",
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_banner", "utm_term": "shoes",
		"destination": "https://shop.example.com/spring?ref=sms&x=1", "variant": 2.0, "new_visitor": false, "bot": false,
	}
	if !reflect.DeepEqual(e.Properties, wantProps) {
		t.Errorf("properties\n got %v\nwant %v", e.Properties, wantProps)
	}

	u := got[withUser.EventID].Data.Attributes.Profile.Data.Attributes
	if u.Email != "jane@example.com" || u.PhoneNumber != "+14155550100" || u.ExternalID != "cust-77" {
		t.Errorf("profile %+v, want the click's user", u)
	}

	t.Run("click_metric", func(t *testing.T) {
		api := newKlaviyoAPI(t, nil)
		p := connect(t, &Klaviyo{}, config(api.URL, `,"click_metric":"Tapped Text Link"`))
		wantAll(t, forward(t, p, clicks(t, 1)), 0, 1, sdk.StatusDelivered)
		if got := api.Events()[0].metric(); got != "Tapped Text Link" {
			t.Errorf("metric %q", got)
		}
	})
}

// A click without an identifier Klaviyo takes fails alone, with a reason that tells the
// operator how to stop sending clicks or start sending identifiers.
func TestClickWithoutIdentifier(t *testing.T) {
	api := newKlaviyoAPI(t, nil)
	p := connect(t, &Klaviyo{}, config(api.URL, ""))
	evs := clicks(t, 4)
	hashed := click(1)
	hashed.Identity = &sdk.Identity{Kind: "phone", Value: "5e884898da280471", Source: "param:p"}
	evs[1] = event(t, hashed)
	none := click(2)
	none.Identity = nil
	evs[2] = event(t, none)
	badUser := click(3)
	badUser.Identity, badUser.User = nil, &sdk.User{Phone: "4155550100"}
	evs[3] = event(t, badUser)

	res := forward(t, p, evs)
	if res[0].Status != sdk.StatusDelivered {
		t.Errorf("click with a customer ID: %+v", res[0])
	}
	for i := 1; i < 4; i++ {
		r := res[i]
		if r.Status != sdk.StatusFailed || !strings.Contains(r.Reason, "events: [conversion]") || !strings.Contains(r.Reason, "CLICKGATE_EVENT_USER_DATA=all") {
			t.Errorf("result %d = %+v, want Failed naming the events filter and the opt-in", i, r)
		}
	}
	if !strings.Contains(res[3].Reason, "phone is not in E.164") {
		t.Errorf("a dropped phone must be named: %q", res[3].Reason)
	}
	if got := api.Events(); len(got) != 1 {
		t.Errorf("%d requests, want only the identifiable click", len(got))
	}
}

func TestConversionMapping(t *testing.T) {
	api := newKlaviyoAPI(t, nil)
	p := connect(t, &Klaviyo{}, config(api.URL, ""))
	jane := &sdk.User{Email: "jane@example.com", Phone: "+4915123456789"}
	onlyID := conv("sig-77", "signup", "approved", nil, nil)
	onlyID.Identities = []sdk.Identity{{Kind: "email", Value: "9f86d081", Source: "conversion"}, {Kind: "customer_id", Value: "cust-9", Source: "conversion"}}
	onlyID.Value, onlyID.Currency, onlyID.Reason = nil, "", "no click"
	nobody := conv("ord-1002", "purchase", "approved", nil, touch)
	nobody.Identities = []sdk.Identity{{Kind: "email", Value: "9f86d081", Source: "conversion"}}
	evs := []sdk.Event{
		convEvent(t, conv("ord-1001", "purchase", "approved", jane, touch)),
		convEvent(t, conv("ord-1001:refunded", "purchase", "refunded", jane, touch)),
		convEvent(t, conv("ord-1001:rejected", "purchase", "rejected", jane, touch)),
		convEvent(t, conv("lead-5", "lead", "approved", &sdk.User{CustomerID: "cust-5"}, touch)),
		convEvent(t, conv("lead-5:rejected", "lead", "rejected", &sdk.User{CustomerID: "cust-5"}, touch)),
		convEvent(t, onlyID),
		convEvent(t, nobody),
	}
	res := forward(t, p, evs)
	wantAll(t, res, 0, 6, sdk.StatusDelivered)
	if res[6].Status != sdk.StatusFailed || !strings.Contains(res[6].Reason, "send user with the conversion") {
		t.Errorf("conversion with only a hashed email: %+v, want Failed", res[6])
	}
	got := api.byID()
	attributed := map[string]any{
		"click_id": touch.ClickID, "slug": "spring26", "campaign": "spring_sale_2026", "seconds_to_convert": 1785.0,
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero", "attributed": true,
	}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{"conversion_id": "09k00000000000000000000001"}
		for k, v := range attributed {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		id, metric string
		profile    [3]string // email, phone, external ID
		value      bool
		props      map[string]any
	}{
		{"ord-1001", "Placed Order", [3]string{"jane@example.com", "+4915123456789", ""}, true, with(map[string]any{"conversion_type": "purchase", "status": "approved", "order_id": "ord-1001"})},
		{"ord-1001:refunded", "Refunded Order", [3]string{"jane@example.com", "+4915123456789", ""}, true, with(map[string]any{"conversion_type": "purchase", "status": "refunded", "order_id": "ord-1001"})},
		{"ord-1001:rejected", "Cancelled Order", [3]string{"jane@example.com", "+4915123456789", ""}, true, with(map[string]any{"conversion_type": "purchase", "status": "rejected", "order_id": "ord-1001"})},
		{"lead-5", "SMS Conversion", [3]string{"", "", "cust-5"}, true, with(map[string]any{"conversion_type": "lead", "status": "approved"})},
		{"lead-5:rejected", "SMS Conversion Rejected", [3]string{"", "", "cust-5"}, true, with(map[string]any{"conversion_type": "lead", "status": "rejected"})},
		{"sig-77", "SMS Conversion", [3]string{"", "", "cust-9"}, false, map[string]any{
			"conversion_id": "09k00000000000000000000001", "conversion_type": "signup", "status": "approved", "attributed": false, "unattributed_reason": "no click"}},
	}
	for _, c := range cases {
		e, ok := got[c.id]
		if !ok {
			t.Errorf("%s not sent", c.id)
			continue
		}
		a := e.Data.Attributes
		pr := a.Profile.Data.Attributes
		at := "2026-11-26T19:00:15Z"
		if strings.Contains(c.id, ":") {
			at = "2026-11-28T21:00:15Z" // when the reversal happened
		}
		if a.Metric.Data.Attributes.Name != c.metric || *a.Time != at || [3]string{pr.Email, pr.PhoneNumber, pr.ExternalID} != c.profile {
			t.Errorf("%s: metric %q time %q profile %+v", c.id, a.Metric.Data.Attributes.Name, *a.Time, pr)
		}
		if c.value != (a.Value != nil) || (c.value && (*a.Value != 49.9 || *a.ValueCurrency != "EUR")) {
			t.Errorf("%s: value %v %v", c.id, a.Value, a.ValueCurrency)
		}
		if !reflect.DeepEqual(a.Properties, c.props) {
			t.Errorf("%s: properties\n got %v\nwant %v", c.id, a.Properties, c.props)
		}
	}

	t.Run("conversion_metric", func(t *testing.T) {
		api := newKlaviyoAPI(t, nil)
		p := connect(t, &Klaviyo{}, config(api.URL, `,"conversion_metric":"Converted from SMS"`))
		res := forward(t, p, []sdk.Event{convEvent(t, conv("l-1:refunded", "lead", "refunded", jane, nil))})
		wantAll(t, res, 0, 1, sdk.StatusDelivered)
		if got := api.Events()[0].metric(); got != "Converted from SMS Refunded" {
			t.Errorf("metric %q", got)
		}
	})
}

// Normalisation vectors: Klaviyo takes identifiers in plain form, no hashing; what it
// would reject is left out so the other identifiers still match.
func TestProfileNormalisation(t *testing.T) {
	cases := []struct {
		name string
		user *sdk.User
		id   string
		want profile
		why  string
	}{
		{"as given", &sdk.User{Email: "jane@example.com", Phone: "+14155550100", CustomerID: "c-1"}, "", profile{"jane@example.com", "+14155550100", "c-1"}, ""},
		{"email trimmed and lowercased", &sdk.User{Email: "  Jane.Doe@Example.COM "}, "", profile{Email: "jane.doe@example.com"}, ""},
		{"phone punctuation removed", &sdk.User{Phone: "+1 (415) 555-0100"}, "", profile{PhoneNumber: "+14155550100"}, ""},
		{"phone dots", &sdk.User{Phone: "+44.20.7946.0958"}, "", profile{PhoneNumber: "+442079460958"}, ""},
		{"national phone dropped", &sdk.User{Email: "a@b.co", Phone: "4155550100"}, "", profile{Email: "a@b.co"}, " (phone is not in E.164)"},
		{"phone with letters dropped", &sdk.User{Phone: "+1415CALLNOW"}, "", profile{}, " (phone is not in E.164)"},
		{"phone too long dropped", &sdk.User{Phone: "+1234567890123456"}, "", profile{}, " (phone is not in E.164)"},
		{"not an email", &sdk.User{Email: "jane.example.com"}, "", profile{}, " (email is not an address)"},
		{"email with a space", &sdk.User{Email: "jane doe@example.com"}, "", profile{}, " (email is not an address)"},
		{"user customer ID wins", &sdk.User{CustomerID: "u-1"}, "ident-1", profile{ExternalID: "u-1"}, ""},
		{"identity customer ID", nil, "ident-1", profile{ExternalID: "ident-1"}, ""},
		{"blank customer ID", nil, "   ", profile{}, ""},
		{"nothing", nil, "", profile{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := profileOf(c.user, c.id)
			if got != c.want || why != c.why {
				t.Errorf("profileOf(%+v, %q) = %+v, %q; want %+v, %q", c.user, c.id, got, why, c.want, c.why)
			}
		})
	}
}

func TestUnmappableEventsFailAlone(t *testing.T) {
	api := newKlaviyoAPI(t, nil)
	p := connect(t, &Klaviyo{}, config(api.URL, ""))
	evs := clicks(t, 7)
	evs[1].JSON = json.RawMessage(`{"event_id":`)
	evs[2].Type = "pageview"
	old := click(3)
	old.Time = time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC)
	evs[3] = event(t, old)
	big := click(4)
	big.Destination = "https://shop.example.com/?q=" + strings.Repeat("a", 100_001)
	evs[4] = event(t, big)
	future := click(5)
	future.Time = time.Now().AddDate(1, 1, 0)
	evs[5] = event(t, future)
	res := forward(t, p, evs)
	for i, want := range []sdk.Status{sdk.StatusDelivered, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusDelivered} {
		if res[i].Status != want || (want == sdk.StatusFailed && res[i].Reason == "") {
			t.Errorf("result %d = %+v, want status %d", i, res[i], want)
		}
	}
	var sent []string
	for _, e := range api.Events() {
		sent = append(sent, e.uniqueID())
	}
	slices.Sort(sent)
	if want := []string{evs[0].ID, evs[6].ID}; !reflect.DeepEqual(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
}

func TestStatus(t *testing.T) {
	date := func(now time.Time) string { return now.Add(90 * time.Second).UTC().Format(http.TimeFormat) }
	invalid := `{"errors":[{"id":"7b1","status":400,"code":"invalid","title":"Invalid input.","detail":"Invalid phone number format","source":{"pointer":"/data/attributes/profile/data/attributes/phone_number"}}]}`
	cases := []struct {
		name    string
		status  int
		body    string
		header  func(now time.Time) http.Header
		want    sdk.Status
		after   time.Duration
		inWhy   string
		refused bool
	}{
		{name: "202", status: 202, want: sdk.StatusDelivered},
		{name: "400 JSON:API", status: 400, body: invalid, want: sdk.StatusFailed, inWhy: "400 invalid: Invalid phone number format (at /data/attributes/profile/data/attributes/phone_number)"},
		{name: "400 not JSON", status: 400, body: "<html>bad</html>", want: sdk.StatusFailed, inWhy: "400 <html>bad</html>"},
		{name: "401", status: 401, body: `{"errors":[{"status":401,"code":"not_authenticated","detail":"Missing or invalid private key."}]}`, want: sdk.StatusFailed, inWhy: "check api_key"},
		{name: "403", status: 403, want: sdk.StatusFailed, inWhy: "events:write"},
		{name: "404", status: 404, want: sdk.StatusFailed, inWhy: "404"},
		{name: "409", status: 409, want: sdk.StatusFailed, inWhy: "409"},
		{name: "408", status: 408, want: sdk.StatusRetry, inWhy: "408"},
		{name: "429 Retry-After seconds", status: 429, body: `{"errors":[{"status":429,"code":"throttled","detail":"Request was throttled. Expected available in 7 seconds."}]}`,
			header: func(time.Time) http.Header { return http.Header{"Retry-After": {"7"}} }, want: sdk.StatusRetry, after: 7 * time.Second, inWhy: "throttled"},
		{name: "429 Retry-After date", status: 429, header: func(n time.Time) http.Header { return http.Header{"Retry-After": {date(n)}} }, want: sdk.StatusRetry, after: 90 * time.Second},
		{name: "429 Retry-After huge", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"99999999999"}} }, want: sdk.StatusRetry, after: time.Hour},
		{name: "429 Retry-After garbage", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"soon"}} }, want: sdk.StatusRetry},
		{name: "429 no Retry-After", status: 429, want: sdk.StatusRetry, inWhy: "429"},
		{name: "500", status: 500, want: sdk.StatusRetry, inWhy: "500"},
		{name: "503", status: 503, want: sdk.StatusRetry, inWhy: "503"},
		{name: "connection refused", refused: true, want: sdk.StatusRetry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Truncate(time.Second)
			api := newKlaviyoAPI(t, func(int, sdktest.Request) sdktest.Reply {
				rep := sdktest.Reply{Status: tc.status, Body: tc.body}
				if tc.header != nil {
					rep.Header = tc.header(now)
				}
				return rep
			})
			base := api.URL
			if tc.refused {
				base = "http://" + closedAddr(t)
			}
			p := connect(t, &Klaviyo{now: func() time.Time { return now }}, config(base, `,"concurrency":1`))
			res := forward(t, p, clicks(t, 1))
			r := res[0]
			if r.Status != tc.want || r.RetryAfter != tc.after || !strings.Contains(r.Reason, tc.inWhy) {
				t.Errorf("result %+v, want status %d after %v reason containing %q", r, tc.want, tc.after, tc.inWhy)
			}
			if tc.want != sdk.StatusDelivered && r.Reason == "" {
				t.Error("no reason")
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

// A 400 for one event does not hold back the others; a 429 stops the call and every
// event not yet sent is retried after Klaviyo's Retry-After.
func TestPerEventResults(t *testing.T) {
	evs := clicks(t, 30)
	t.Run("400 fails one event", func(t *testing.T) {
		api := newKlaviyoAPI(t, func(_ int, r sdktest.Request) sdktest.Reply {
			if bytes.Contains(r.Body, []byte(evs[7].ID)) {
				return sdktest.Reply{Status: 400, Body: `{"errors":[{"code":"invalid","detail":"bad"}]}`}
			}
			return sdktest.Reply{Status: 202}
		})
		p := connect(t, &Klaviyo{}, config(api.URL, `,"concurrency":4`))
		res := forward(t, p, evs)
		for i, r := range res {
			if want := map[bool]sdk.Status{true: sdk.StatusFailed, false: sdk.StatusDelivered}[i == 7]; r.Status != want {
				t.Errorf("result %d = %+v, want %d", i, r, want)
			}
		}
		if len(api.Events()) != len(evs) {
			t.Errorf("%d requests, want %d", len(api.Events()), len(evs))
		}
	})
	t.Run("429 stops the call", func(t *testing.T) {
		api := newKlaviyoAPI(t, func(n int, _ sdktest.Request) sdktest.Reply {
			if n == 5 {
				return sdktest.Reply{Status: 429, Header: http.Header{"Retry-After": {"12"}}}
			}
			return sdktest.Reply{Status: 202}
		})
		p := connect(t, &Klaviyo{}, config(api.URL, `,"concurrency":1`))
		res := forward(t, p, evs)
		wantAll(t, res, 0, 5, sdk.StatusDelivered)
		wantAll(t, res, 5, 6, sdk.StatusRetry)
		wantAll(t, res, 6, len(evs), sdk.StatusNotSent) // never tried: no attempt used up
		for _, r := range res[5:] {
			if r.RetryAfter != 12*time.Second {
				t.Fatalf("retry %+v, want after 12s", r)
			}
		}
		if n := len(api.Events()); n != 6 {
			t.Errorf("%d requests; after a 429 no new request may start", n)
		}
	})
}

// Requests are paced at max_rate: 6 requests at 20 a second take at least 5 intervals.
func TestPacing(t *testing.T) {
	api := newKlaviyoAPI(t, nil)
	p := connect(t, &Klaviyo{}, `{"api_key":"`+apiKey+`","base_url":"`+api.URL+`","max_rate":20,"concurrency":6}`)
	start := time.Now()
	wantAll(t, forward(t, p, clicks(t, 6)), 0, 6, sdk.StatusDelivered)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("6 requests at 20/s took %v, want at least 250ms", d)
	}
}

// A call ends before the host's deadline: what could not be sent in time is retried.
func TestCallDeadline(t *testing.T) {
	api := newKlaviyoAPI(t, func(int, sdktest.Request) sdktest.Reply {
		time.Sleep(300 * time.Millisecond)
		return sdktest.Reply{Status: 202}
	})
	p := connect(t, &Klaviyo{}, config(api.URL, `,"concurrency":1`))
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := p.Forward(ctx, clicks(t, 20))
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 1400*time.Millisecond {
		t.Errorf("the call took %v, past the deadline less its margin", d)
	}
	// A request cut short by the deadline was tried (retry); those never started were not.
	var delivered, retry, notSent int
	for _, r := range res {
		switch r.Status {
		case sdk.StatusDelivered:
			delivered++
		case sdk.StatusRetry:
			retry++
		case sdk.StatusNotSent:
			notSent++
		}
	}
	if delivered == 0 || notSent == 0 || delivered+retry+notSent != 20 {
		t.Errorf("%d delivered, %d to retry, %d not sent, want some delivered and not sent, nothing failed", delivered, retry, notSent)
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct{ name, config, field string }{
		{"non-JSON", `api_key=abc`, "config"},
		{"not an object", `["api_key"]`, "config"},
		{"trailing data", `{"api_key":"abc"} {}`, "config"},
		{"missing api_key", `{}`, "api_key"},
		{"api_key with newline", `{"api_key":"pk_abc\n"}`, "api_key"},
		{"api_key not a string", `{"api_key":12345}`, "api_key"},
		{"unknown field", `{"api_key":"abc","apikey":"abc"}`, "apikey"},
		{"ftp base_url", `{"api_key":"abc","base_url":"ftp://a.klaviyo.com"}`, "base_url"},
		{"relative base_url", `{"api_key":"abc","base_url":"a.klaviyo.com"}`, "base_url"},
		{"base_url with query", `{"api_key":"abc","base_url":"https://a.klaviyo.com?x=1"}`, "base_url"},
		{"base_url with /api/events", `{"api_key":"abc","base_url":"https://a.klaviyo.com/api/events"}`, "base_url"},
		{"base_url with credentials", `{"api_key":"abc","base_url":"https://u:p@a.klaviyo.com"}`, "base_url"},
		{"bad revision", `{"api_key":"abc","revision":"latest"}`, "revision"},
		{"empty click_metric", `{"api_key":"abc","click_metric":" "}`, "click_metric"},
		{"long conversion_metric", `{"api_key":"abc","conversion_metric":"` + strings.Repeat("m", 120) + `"}`, "conversion_metric"},
		{"bad timeout", `{"api_key":"abc","timeout":"soon"}`, "timeout"},
		{"zero timeout", `{"api_key":"abc","timeout":"0s"}`, "timeout"},
		{"concurrency 0", `{"api_key":"abc","concurrency":0}`, "concurrency"},
		{"concurrency 100", `{"api_key":"abc","concurrency":100}`, "concurrency"},
		{"max_rate 0", `{"api_key":"abc","max_rate":0}`, "max_rate"},
		{"max_rate over the burst", `{"api_key":"abc","max_rate":351}`, "max_rate"},
	}
	p := sdktest.Connect(t, &Klaviyo{stderr: testWriter{t}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Configure(context.Background(), json.RawMessage(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Configure(%s) = %v, want an error naming %s", tc.config, err, tc.field)
			}
		})
	}
	if err := p.Configure(context.Background(), json.RawMessage(`{"api_key":"pk_abc","revision":"2026-07-15.pre"}`)); err != nil {
		t.Errorf("a key alone (and a pre-release revision) is a valid configuration: %v", err)
	}
}

// The API key reaches Klaviyo and nothing else: not the plugin's log, not a result's
// reason (even when the API echoes it back), not a configuration error.
func TestSecretNeverLeaks(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	api := newKlaviyoAPI(t, func(n int, r sdktest.Request) sdktest.Reply {
		echo := quote("key " + r.Header.Get("Authorization") + " is not valid")
		return sdktest.Reply{Status: []int{401, 400, 503}[n%3], Body: `{"errors":[{"code":"x","detail":` + echo + `}]}`}
	})
	k := &Klaviyo{stderr: lockedWriter{&mu, &logged}}
	p := connect(t, k, config(api.URL, `,"concurrency":1`))
	var reasons []string
	for i := range 3 {
		res := forward(t, p, clicks(t, 3)[i:i+1])
		reasons = append(reasons, res[0].Reason)
	}
	badConfigs := []string{
		`{"api_key":"` + apiKey + `","base_url":"nope"}`,
		`{"api_key":"` + apiKey + ` ","concurrency":0}`,
		`{"api_key":"` + apiKey + `", "max_rate":"fast"}`,
		`{"api_key":"` + apiKey + `"`,
		`{"api_key":["` + apiKey + `"]}`,
	}
	for _, c := range badConfigs {
		err := sdktest.Connect(t, &Klaviyo{stderr: lockedWriter{&mu, &logged}}).Configure(context.Background(), json.RawMessage(c))
		if err == nil {
			t.Fatalf("config %s accepted", c)
		}
		reasons = append(reasons, err.Error())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(api.Events()) != 3 || !strings.Contains(logged.String(), "refused the API key") {
		t.Fatalf("the test did not exercise the API (%d requests) or the log (%q)", len(api.Events()), logged.String())
	}
	for _, s := range append(reasons, logged.String()) {
		if strings.Contains(s, apiKey) || strings.Contains(s, apiKey[:12]) {
			t.Errorf("the API key leaked: %q", s)
		}
	}
	if !strings.Contains(reasons[0], "[api_key]") {
		t.Errorf("reason %q: the echoed key should read [api_key]", reasons[0])
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestForwardBeforeConfigure(t *testing.T) {
	if _, err := (&Klaviyo{}).Forward(context.Background(), clicks(t, 1)); err == nil {
		t.Fatal("Forward before Configure succeeded")
	}
}

// Hostile error bodies from the network become one short, printable line.
func TestErrorSummary(t *testing.T) {
	many := `{"errors":[` + strings.Repeat(`{"code":"invalid","detail":"bad"},`, 5) + `{"code":"last"}]}`
	cases := []struct{ name, body, want string }{
		{"JSON:API", `{"errors":[{"id":"1","status":400,"code":"invalid","title":"Invalid input.","detail":"The payload provided in the request is invalid.","source":{"pointer":"/data/attributes/metric"}}]}`,
			"invalid: The payload provided in the request is invalid. (at /data/attributes/metric)"},
		{"status as a string", `{"errors":[{"status":"400","code":"invalid","title":"Invalid input."}]}`, "invalid: Invalid input."},
		{"parameter source", `{"errors":[{"code":"invalid","detail":"bad","source":{"parameter":"revision"}}]}`, "invalid: bad (at revision)"},
		{"at most three", many, "invalid: bad; invalid: bad; invalid: bad; …"},
		{"empty errors", `{"errors":[]}`, `{"errors":[]}`},
		{"empty body", ``, ``},
		{"HTML", "<html>\n<body>Bad Gateway</body>\n</html>", "<html> <body>Bad Gateway</body> </html>"},
		{"control characters", "{\"errors\":[{\"code\":\"x\\u001b[31m\",\"detail\":\"line\\nbreak\\u2028\"}]}", "x [31m: line break"},
		{"invalid UTF-8", "\xff\xfe oops", "\uFFFD oops"},
		{"errors not a list", `{"errors":"boom"}`, `{"errors":"boom"}`},
		{"long", strings.Repeat("é", 1000), strings.Repeat("é", 200) + "…"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := errorSummary([]byte(c.body)); got != c.want {
				t.Errorf("errorSummary(%q)\n got %q\nwant %q", c.body, got, c.want)
			}
		})
	}
}

// buildPlugin builds the plugin binary once for the tests that run it.
var buildPlugin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "klaviyo-plugin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "klaviyo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	code := m.Run()
	if bin, err := buildPlugin(); err == nil {
		os.RemoveAll(filepath.Dir(bin))
	}
	os.Exit(code)
}

func pluginBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	bin, err := buildPlugin()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func TestBinary(t *testing.T) {
	bin := pluginBinary(t)
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
		if d.Name != "klaviyo" || d.ProtocolVersion != 1 || d.Version == "" || d.Description == "" {
			t.Errorf("describe = %+v", d)
		}
		defaults := map[string]any{}
		var names []string
		for _, c := range d.Config {
			names = append(names, c.Name)
			defaults[c.Name] = c.Default
			if c.Name == "api_key" && (!c.Required || !c.Secret) {
				t.Errorf("api_key must be required and secret: %+v", c)
			}
		}
		if want := []string{"api_key", "base_url", "revision", "click_metric", "conversion_metric", "timeout", "concurrency", "max_rate"}; !reflect.DeepEqual(names, want) {
			t.Errorf("config fields %v, want %v", names, want)
		}
		want := map[string]any{"api_key": nil, "base_url": "https://a.klaviyo.com", "revision": "2026-10-15", "click_metric": "SMS Link Clicked",
			"conversion_metric": "SMS Conversion", "timeout": "10s", "concurrency": 8.0, "max_rate": 38.0}
		if !reflect.DeepEqual(defaults, want) {
			t.Errorf("defaults %v, want %v", defaults, want)
		}
	})
	t.Run("no magic cookie", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin)
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
		if stdout.Len() != 0 {
			t.Errorf("stdout %q, want nothing", stdout.Bytes())
		}
		if !strings.Contains(stderr.String(), "clickgate forwarder plugin") {
			t.Errorf("stderr %q does not say what the binary is", stderr.Bytes())
		}
	})
}

// FuzzErrorSummary: any response body becomes one bounded, printable line.
func FuzzErrorSummary(f *testing.F) {
	f.Add([]byte(`{"errors":[{"id":"1","status":400,"code":"invalid","detail":"bad","source":{"pointer":"/data"}}]}`))
	f.Add([]byte(`{"errors":[{"status":"429","code":"throttled"}]}`))
	f.Add([]byte("\xff\x00\u2028<html>"))
	f.Add([]byte(`{"errors":[null,1,"x",{"source":null}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := errorSummary(body)
		if len(s) > maxSummaryBytes+len("…") {
			t.Fatalf("summary of %d bytes", len(s))
		}
		if !utf8Valid(s) || strings.ContainsAny(s, "\n\r\t\x00\u2028") {
			t.Fatalf("summary %q is not one printable line", s)
		}
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

// FuzzPayload: any event either fails with a reason or becomes a request the recorder
// accepts.
func FuzzPayload(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc, "06j00000000000000000000001")
	f.Add(sdk.TypeClick, []byte(`{"user":{"email":" A@B.CO ","phone":"+1 415 555 0100"},"time":"2026-01-01T00:00:00Z"}`), "x")
	c, _ := json.Marshal(conv("o:refunded", "purchase", "refunded", &sdk.User{Phone: "+14155550100"}, touch))
	f.Add(sdk.TypeConversion, c, "o:refunded")
	f.Add(sdk.TypeConversion, []byte(`{"value":1e308,"currency":"usd","identities":[{"kind":"customer_id","value":"c"}],"occurred_at":"2026-01-01T00:00:00Z"}`), "y")
	f.Add(sdk.TypeConversion, []byte(`{"user":{"phone":"+1000000"}}`), "\x8c")
	api := &klaviyoAPI{revision: defaultRevision}
	f.Fuzz(func(t *testing.T, typ string, doc []byte, id string) {
		k := &Klaviyo{cfg: Config{ClickMetric: defaultClickMetric, ConversionMetric: defaultConversionMetric}, now: func() time.Time { return t0 }}
		body, err := k.payload(sdk.Event{ID: id, Type: typ, Time: t0, JSON: doc})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		h := http.Header{"Authorization": {"Klaviyo-API-Key " + apiKey}, "Revision": {defaultRevision},
			"Content-Type": {jsonAPI}, "Accept": {jsonAPI}}
		ev, err := api.check(sdktest.Request{Method: "POST", Path: "/api/events", Header: h, Body: body})
		if err != nil {
			t.Fatalf("payload %s: %v", body, err)
		}
		if ev.uniqueID() != id && id != "" {
			t.Fatalf("unique_id %q, want the event ID %q", ev.uniqueID(), id)
		}
	})
}
