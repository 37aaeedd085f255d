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

const (
	apiKey    = "sk_live_5d0c2e9b7a41f3c8e6b2a9d1"
	shopToken = "sk_shop_91b3f7a2c5e8d0461f2a"
)

// postscriptAPI is a recorder that enforces what Postscript documents for
// POST /api/v2/events. A request that breaks a rule fails the test and is answered 400,
// as Postscript would.
type postscriptAPI struct {
	*sdktest.Recorder
	shopToken string // the X-Postscript-Shop-Token a partner sends; "" for a shop's own key

	mu     sync.Mutex
	events []apiEvent
}

// apiEvent is a request body as the recorder decoded it, unknown fields refused.
type apiEvent struct {
	Type         string         `json:"type"`
	SubscriberID string         `json:"subscriber_id"`
	Phone        string         `json:"phone"`
	Email        string         `json:"email"`
	OccurredAt   string         `json:"occurred_at"`
	Properties   map[string]any `json:"properties"`
	ExternalID   string         `json:"external_id"`
}

// newPostscriptAPI starts the recorder; respond answers the n-th valid request (from 0),
// nil answers 202 with the event's ID, as Postscript does.
func newPostscriptAPI(t *testing.T, respond func(n int, r sdktest.Request) sdktest.Reply) *postscriptAPI {
	a := &postscriptAPI{}
	a.Recorder = sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		ev, err := a.check(r)
		if err != nil {
			t.Errorf("recorder: request breaks Postscript's contract: %v", err)
			return sdktest.Reply{Status: 400, Body: `{}`}
		}
		a.mu.Lock()
		n := len(a.events)
		a.events = append(a.events, ev)
		a.mu.Unlock()
		if respond == nil {
			return sdktest.Reply{Status: 202, Body: fmt.Sprintf(`{"event_ids":["ev_%d"]}`, n)}
		}
		return respond(n, r)
	})
	return a
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

var (
	e164RE = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	typeOK = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
)

func (a *postscriptAPI) check(r sdktest.Request) (apiEvent, error) {
	var ev apiEvent
	switch {
	case r.Method != http.MethodPost:
		return ev, fmt.Errorf("method %s, want POST", r.Method)
	case r.Path != "/api/v2/events" || r.Query != "":
		return ev, fmt.Errorf("path %q query %q, want /api/v2/events", r.Path, r.Query)
	case r.Header.Get("Authorization") != "Bearer "+apiKey:
		return ev, fmt.Errorf("authorization %q, want Bearer and the API key", r.Header.Get("Authorization"))
	case r.Header.Get("X-Postscript-Shop-Token") != a.shopToken:
		return ev, fmt.Errorf("X-Postscript-Shop-Token %q, want %q", r.Header.Get("X-Postscript-Shop-Token"), a.shopToken)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return ev, fmt.Errorf("content type %q, want application/json", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil || dec.More() {
		return ev, fmt.Errorf("body is not a custom event: %v", err)
	}
	switch {
	case !typeOK.MatchString(ev.Type):
		return ev, fmt.Errorf("type %q: Postscript takes letters, digits and underscores", ev.Type)
	case ev.SubscriberID == "" && ev.Phone == "" && ev.Email == "":
		return ev, errors.New("no subscriber_id, phone or email")
	case ev.Phone != "" && !e164RE.MatchString(ev.Phone):
		return ev, fmt.Errorf("phone %q is not E.164", ev.Phone)
	case ev.ExternalID == "":
		return ev, errors.New("no external_id: the event has no stable ID")
	}
	if ev.OccurredAt != "" {
		if _, err := time.Parse("2006-01-02 15:04:05.000000", ev.OccurredAt); err != nil {
			return ev, fmt.Errorf("occurred_at %q is not %%Y-%%m-%%d %%H:%%M:%%S.%%f", ev.OccurredAt)
		}
	}
	for k, v := range ev.Properties {
		switch v.(type) {
		case string, bool, float64:
		default:
			return ev, fmt.Errorf("property %s is %T; Postscript takes strings, booleans, integers and floats", k, v)
		}
	}
	return ev, nil
}

// Events returns the valid requests so far, in arrival order.
func (a *postscriptAPI) Events() []apiEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apiEvent(nil), a.events...)
}

func (a *postscriptAPI) byID() map[string]apiEvent {
	m := map[string]apiEvent{}
	for _, e := range a.Events() {
		m[e.ExternalID] = e
	}
	return m
}

var t0 = time.Date(2026, 11, 26, 18, 30, 15, 123_000_000, time.UTC)

// click builds a click document the way the host sends it, with the user the operator
// opted in to (CLICKGATE_EVENT_USER_DATA=all).
func click(i int) sdk.ClickEvent {
	id := fmt.Sprintf("06j%023d", i)
	return sdk.ClickEvent{
		SchemaVersion: sdk.SchemaVersion, EventType: sdk.TypeClick, EventID: id, ClickID: id,
		Time: t0.Add(time.Duration(i) * time.Millisecond), Node: "edge-1", Slug: "spring26", Campaign: "spring_sale_2026",
		UTM:         sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"},
		Destination: "https://shop.example.com/spring?ref=sms&x=1", VisitorID: fmt.Sprintf("07v%023d", i), NewVisitor: i%2 == 0,
		User: &sdk.User{Phone: fmt.Sprintf("+1415555%04d", i)},
		IP:   "203.0.113.7", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)",
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

// connect runs p behind the real gRPC server and configures it.
func connect(t *testing.T, p *Postscript, config string) forwarder {
	t.Helper()
	if p.stderr == nil {
		p.stderr = testWriter{t}
	}
	f := sdktest.Connect(t, p)
	if err := f.Configure(context.Background(), json.RawMessage(config)); err != nil {
		t.Fatal(err)
	}
	return f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// config is a configuration for the recorder, at Postscript's full rate for tests.
func config(base, extra string) string {
	return `{"api_key":"` + apiKey + `","base_url":"` + base + `","max_rate":15` + extra + `}`
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
	api := newPostscriptAPI(t, nil)
	p := connect(t, &Postscript{}, config(api.URL, ""))

	full := click(1)
	variant := 2
	full.Variant, full.Domain = &variant, "go.brand.com"
	full.UTM.Content, full.UTM.Term = "hero_banner", "shoes"
	full.User = &sdk.User{Email: "jane@example.com", Phone: "+14155550100", CustomerID: "cust-77"}
	full.Identity = &sdk.Identity{Kind: "email", Value: "9f86d081884c7d65", Source: "param:e"} // a keyed hash: useless to Postscript

	res := forward(t, p, []sdk.Event{event(t, full)})
	wantAll(t, res, 0, 1, sdk.StatusDelivered)
	e, ok := api.byID()[full.EventID]
	if !ok {
		t.Fatalf("not sent: %+v", api.Events())
	}
	if e.Type != "sms_link_clicked" || e.OccurredAt != "2026-11-26 18:30:15.124000" {
		t.Errorf("click event %+v", e)
	}
	if e.Phone != "+14155550100" || e.Email != "jane@example.com" || e.SubscriberID != "" {
		t.Errorf("identifiers %q %q %q, want the user's phone and email, and no subscriber ID", e.Phone, e.Email, e.SubscriberID)
	}
	wantProps := map[string]any{
		"click_id": full.ClickID, "slug": "spring26", "campaign": "spring_sale_2026", "domain": "go.brand.com",
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_banner", "utm_term": "shoes",
		"destination": "https://shop.example.com/spring?ref=sms&x=1", "variant": 2.0, "new_visitor": false, "bot": false,
	}
	if !reflect.DeepEqual(e.Properties, wantProps) {
		t.Errorf("properties\n got %v\nwant %v", e.Properties, wantProps)
	}

	t.Run("click_event", func(t *testing.T) {
		api := newPostscriptAPI(t, nil)
		p := connect(t, &Postscript{}, config(api.URL, `,"click_event":"TextLinkTapped"`))
		wantAll(t, forward(t, p, clicks(t, 1)), 0, 1, sdk.StatusDelivered)
		if got := api.Events()[0].Type; got != "TextLinkTapped" {
			t.Errorf("type %q", got)
		}
	})

	// When the links carry Postscript's subscriber ID as the customer ID, a click with
	// only that identity is sent with subscriber_id.
	t.Run("customer_id_is_subscriber_id", func(t *testing.T) {
		api := newPostscriptAPI(t, nil)
		p := connect(t, &Postscript{}, config(api.URL, `,"customer_id_is_subscriber_id":true`))
		c := click(3)
		c.User, c.Identity = nil, &sdk.Identity{Kind: "customer_id", Value: "s_8f3k2m9q", Source: "param:sid"}
		wantAll(t, forward(t, p, []sdk.Event{event(t, c)}), 0, 1, sdk.StatusDelivered)
		if e := api.Events()[0]; e.SubscriberID != "s_8f3k2m9q" || e.Phone != "" || e.Email != "" {
			t.Errorf("event %+v, want the subscriber ID alone", e)
		}
	})
}

// A click without an identifier Postscript takes fails alone, with a reason that tells
// the operator how to stop sending clicks or start sending identifiers.
func TestClickWithoutIdentifier(t *testing.T) {
	api := newPostscriptAPI(t, nil)
	p := connect(t, &Postscript{}, config(api.URL, ""))
	evs := clicks(t, 4)
	customer := click(1)
	customer.User, customer.Identity = nil, &sdk.Identity{Kind: "customer_id", Value: "cust-1", Source: "param:rid"}
	evs[1] = event(t, customer)
	hashed := click(2)
	hashed.User, hashed.Identity = nil, &sdk.Identity{Kind: "phone", Value: "5e884898da280471", Source: "param:p"}
	evs[2] = event(t, hashed)
	badUser := click(3)
	badUser.User = &sdk.User{Phone: "555-0100"}
	evs[3] = event(t, badUser)

	res := forward(t, p, evs)
	if res[0].Status != sdk.StatusDelivered {
		t.Errorf("click with a phone: %+v", res[0])
	}
	for i := 1; i < 4; i++ {
		r := res[i]
		if r.Status != sdk.StatusFailed || !strings.Contains(r.Reason, "events: [conversion]") || !strings.Contains(r.Reason, "CLICKGATE_EVENT_USER_DATA=all") ||
			!strings.Contains(r.Reason, "customer_id_is_subscriber_id") {
			t.Errorf("result %d = %+v, want Failed naming the events filter and the opt-ins", i, r)
		}
	}
	if !strings.Contains(res[1].Reason, "a customer ID is not a Postscript identifier") || !strings.Contains(res[3].Reason, "phone is not in E.164") {
		t.Errorf("what was left out must be named: %q, %q", res[1].Reason, res[3].Reason)
	}
	if got := api.Events(); len(got) != 1 {
		t.Errorf("%d requests, want only the identifiable click", len(got))
	}
}

func TestConversionMapping(t *testing.T) {
	api := newPostscriptAPI(t, nil)
	p := connect(t, &Postscript{}, config(api.URL, ""))
	jane := &sdk.User{Email: "jane@example.com", Phone: "+4915123456789", CustomerID: "cust-9"}
	unattributed := conv("sig-77", "signup", "approved", &sdk.User{Email: "sam@example.com"}, nil)
	unattributed.Value, unattributed.Currency, unattributed.Reason = nil, "", "no click"
	onlyCustomer := conv("lead-6", "lead", "approved", nil, touch)
	onlyCustomer.Identities = []sdk.Identity{{Kind: "customer_id", Value: "cust-6", Source: "conversion"}}
	evs := []sdk.Event{
		convEvent(t, conv("ord-1001", "purchase", "approved", jane, touch)),
		convEvent(t, conv("ord-1001:refunded", "purchase", "refunded", jane, touch)),
		convEvent(t, conv("lead-5:rejected", "lead", "rejected", &sdk.User{Phone: "+14155550100"}, touch)),
		convEvent(t, unattributed),
		convEvent(t, onlyCustomer),
	}
	res := forward(t, p, evs)
	wantAll(t, res, 0, 4, sdk.StatusDelivered)
	if res[4].Status != sdk.StatusFailed || !strings.Contains(res[4].Reason, "send user with the conversion") {
		t.Errorf("conversion with only a customer ID: %+v, want Failed", res[4])
	}
	attributed := map[string]any{
		"click_id": touch.ClickID, "slug": "spring26", "campaign": "spring_sale_2026", "seconds_to_convert": 1785.0,
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero", "attributed": true,
		"conversion_id": "09k00000000000000000000001", "value": 49.9, "currency": "EUR",
	}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range attributed {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	got := api.byID()
	cases := []struct {
		id, typ      string
		phone, email string
		props        map[string]any
	}{
		{"ord-1001", "sms_conversion", "+4915123456789", "jane@example.com", with(map[string]any{"conversion_type": "purchase", "status": "approved", "order_id": "ord-1001"})},
		{"ord-1001:refunded", "sms_conversion_refunded", "+4915123456789", "jane@example.com", with(map[string]any{"conversion_type": "purchase", "status": "refunded", "order_id": "ord-1001"})},
		{"lead-5:rejected", "sms_conversion_rejected", "+14155550100", "", with(map[string]any{"conversion_type": "lead", "status": "rejected"})},
		{"sig-77", "sms_conversion", "", "sam@example.com", map[string]any{
			"conversion_id": "09k00000000000000000000001", "conversion_type": "signup", "status": "approved", "attributed": false, "unattributed_reason": "no click"}},
	}
	for _, c := range cases {
		e, ok := got[c.id]
		if !ok {
			t.Errorf("%s not sent", c.id)
			continue
		}
		at := "2026-11-26 19:00:15.123000"
		if strings.Contains(c.id, ":") {
			at = "2026-11-28 21:00:15.123000" // when the reversal happened
		}
		if e.Type != c.typ || e.OccurredAt != at || e.Phone != c.phone || e.Email != c.email || e.SubscriberID != "" {
			t.Errorf("%s: %+v", c.id, e)
		}
		if !reflect.DeepEqual(e.Properties, c.props) {
			t.Errorf("%s: properties\n got %v\nwant %v", c.id, e.Properties, c.props)
		}
	}
}

// Normalisation vectors: Postscript takes identifiers in plain form, no hashing; what it
// cannot use is left out so the other identifiers still match.
func TestSubscriberNormalisation(t *testing.T) {
	cases := []struct {
		name string
		subs bool // customer_id_is_subscriber_id
		user *sdk.User
		cid  string
		want subscriber
		why  string
	}{
		{"as given", false, &sdk.User{Email: "jane@example.com", Phone: "+14155550100"}, "", subscriber{Phone: "+14155550100", Email: "jane@example.com"}, ""},
		{"email trimmed and lowercased", false, &sdk.User{Email: "  Jane.Doe@Example.COM "}, "", subscriber{Email: "jane.doe@example.com"}, ""},
		{"phone punctuation removed", false, &sdk.User{Phone: "+1 (415) 555-0100"}, "", subscriber{Phone: "+14155550100"}, ""},
		{"national phone dropped", false, &sdk.User{Phone: "415.555.0100"}, "", subscriber{}, " (phone is not in E.164)"},
		{"customer ID is not an identifier", false, &sdk.User{CustomerID: "cust-1"}, "", subscriber{},
			" (a customer ID is not a Postscript identifier unless customer_id_is_subscriber_id is set)"},
		{"customer ID as subscriber ID", true, &sdk.User{CustomerID: "s_123"}, "s_999", subscriber{SubscriberID: "s_123"}, ""},
		{"identity as subscriber ID", true, nil, "s_999", subscriber{SubscriberID: "s_999"}, ""},
		// Matched first, a store's customer ID could name another subscriber: the phone
		// and email find the right one.
		{"customer ID beside a phone", true, &sdk.User{Phone: "+14155550100", CustomerID: "4411"}, "", subscriber{Phone: "+14155550100"}, ""},
		{"customer ID beside an email", true, &sdk.User{Email: "jane@example.com"}, "4411", subscriber{Email: "jane@example.com"}, ""},
		{"subscriber ID too long", true, nil, strings.Repeat("s", 256), subscriber{}, " (subscriber ID is too long)"},
		{"nothing", true, nil, "", subscriber{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &Postscript{cfg: Config{CustomerIDIsSubscriberID: c.subs}}
			got, why := p.subscriberOf(c.user, c.cid)
			if got != c.want || why != c.why {
				t.Errorf("subscriberOf(%+v, %q) = %+v, %q; want %+v, %q", c.user, c.cid, got, why, c.want, c.why)
			}
		})
	}
}

func TestUnmappableEventsFailAlone(t *testing.T) {
	api := newPostscriptAPI(t, nil)
	p := connect(t, &Postscript{}, config(api.URL, ""))
	evs := clicks(t, 5)
	evs[1].JSON = json.RawMessage(`{"event_id":`)
	evs[2].Type = "pageview"
	noTime := click(3)
	noTime.Time = time.Time{}
	evs[3] = event(t, noTime)
	evs[3].Time = time.Time{}
	res := forward(t, p, evs)
	for i, want := range []sdk.Status{sdk.StatusDelivered, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusDelivered} {
		if res[i].Status != want || (want == sdk.StatusFailed && res[i].Reason == "") {
			t.Errorf("result %d = %+v, want status %d", i, res[i], want)
		}
	}
	var sent []string
	for _, e := range api.Events() {
		sent = append(sent, e.ExternalID)
	}
	slices.Sort(sent)
	if want := []string{evs[0].ID, evs[4].ID}; !reflect.DeepEqual(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
}

func TestStatus(t *testing.T) {
	date := func(now time.Time) string { return now.Add(90 * time.Second).UTC().Format(http.TimeFormat) }
	limited := `{"error_code": 3002, "error_message": "Rate limit exceeded", "success": false}`
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
		{name: "202", status: 202, body: `{"event_ids":["1234-abcd-5678"]}`, want: sdk.StatusDelivered},
		{name: "200", status: 200, want: sdk.StatusDelivered},
		{name: "400 empty object", status: 400, body: `{}`, want: sdk.StatusFailed, inWhy: "400 {}"},
		{name: "400 error_message", status: 400, body: `{"error_code":1001,"error_message":"Invalid type","success":false}`, want: sdk.StatusFailed, inWhy: "400 1001: Invalid type"},
		{name: "401", status: 401, want: sdk.StatusFailed, inWhy: "check api_key and shop_token"},
		{name: "403", status: 403, want: sdk.StatusFailed, inWhy: "check api_key"},
		{name: "404", status: 404, want: sdk.StatusFailed, inWhy: "404"},
		{name: "429 documented: no headers, a second", status: 429, body: limited, want: sdk.StatusRetry, after: time.Second, inWhy: "429 3002: Rate limit exceeded"},
		{name: "429 Retry-After seconds", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"4"}} }, want: sdk.StatusRetry, after: 4 * time.Second},
		{name: "429 Retry-After date", status: 429, header: func(n time.Time) http.Header { return http.Header{"Retry-After": {date(n)}} }, want: sdk.StatusRetry, after: 90 * time.Second},
		{name: "429 X-RateLimit-Reset seconds", status: 429, header: func(time.Time) http.Header { return http.Header{"X-Ratelimit-Reset": {"2"}} }, want: sdk.StatusRetry, after: 2 * time.Second},
		{name: "429 X-RateLimit-Reset Unix time", status: 429, header: func(n time.Time) http.Header {
			return http.Header{"X-Ratelimit-Reset": {fmt.Sprint(n.Add(30 * time.Second).Unix())}}
		}, want: sdk.StatusRetry, after: 30 * time.Second},
		{name: "429 garbage headers", status: 429, header: func(time.Time) http.Header {
			return http.Header{"Retry-After": {"later"}, "X-Ratelimit-Reset": {"-5"}}
		}, want: sdk.StatusRetry, after: time.Second},
		{name: "408", status: 408, want: sdk.StatusRetry, inWhy: "408"},
		{name: "500", status: 500, want: sdk.StatusRetry, inWhy: "500"},
		{name: "502 HTML", status: 502, body: "<html><h1>502</h1></html>", want: sdk.StatusRetry, inWhy: "502 <html>"},
		{name: "connection refused", refused: true, want: sdk.StatusRetry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Truncate(time.Second)
			api := newPostscriptAPI(t, func(int, sdktest.Request) sdktest.Reply {
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
			p := connect(t, &Postscript{now: func() time.Time { return now }}, config(base, `,"concurrency":1`))
			r := forward(t, p, clicks(t, 1))[0]
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

// A partner sends its own key and the shop's token.
func TestPartnerAuthentication(t *testing.T) {
	api := newPostscriptAPI(t, nil)
	api.shopToken = shopToken
	p := connect(t, &Postscript{}, config(api.URL, `,"shop_token":"`+shopToken+`"`))
	wantAll(t, forward(t, p, clicks(t, 2)), 0, 2, sdk.StatusDelivered)
	if len(api.Events()) != 2 {
		t.Errorf("%d requests", len(api.Events()))
	}
}

// A 400 for one event does not hold back the others; a 429 stops the call and every
// event not yet sent is retried after a second.
func TestPerEventResults(t *testing.T) {
	evs := clicks(t, 20)
	t.Run("400 fails one event", func(t *testing.T) {
		api := newPostscriptAPI(t, func(_ int, r sdktest.Request) sdktest.Reply {
			if bytes.Contains(r.Body, []byte(evs[7].ID)) {
				return sdktest.Reply{Status: 400, Body: `{}`}
			}
			return sdktest.Reply{Status: 202}
		})
		p := connect(t, &Postscript{}, config(api.URL, `,"max_rate":15,"concurrency":4`))
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
		api := newPostscriptAPI(t, func(n int, _ sdktest.Request) sdktest.Reply {
			if n == 5 {
				return sdktest.Reply{Status: 429, Body: `{"error_code":3002,"error_message":"Rate limit exceeded","success":false}`}
			}
			return sdktest.Reply{Status: 202}
		})
		p := connect(t, &Postscript{}, config(api.URL, `,"concurrency":1`))
		res := forward(t, p, evs)
		wantAll(t, res, 0, 5, sdk.StatusDelivered)
		wantAll(t, res, 5, 6, sdk.StatusRetry)
		wantAll(t, res, 6, len(evs), sdk.StatusNotSent) // never tried: no attempt used up
		for _, r := range res[5:] {
			if r.RetryAfter != time.Second || !strings.Contains(r.Reason, "Rate limit exceeded") {
				t.Fatalf("retry %+v, want after 1s with Postscript's reason", r)
			}
		}
		if n := len(api.Events()); n != 6 {
			t.Errorf("%d requests; after a 429 no new request may start", n)
		}
	})
}

// Requests are paced at max_rate: 6 requests at 15 a second take at least 5 intervals.
func TestPacing(t *testing.T) {
	api := newPostscriptAPI(t, nil)
	p := connect(t, &Postscript{}, config(api.URL, `,"concurrency":6`))
	start := time.Now()
	wantAll(t, forward(t, p, clicks(t, 6)), 0, 6, sdk.StatusDelivered)
	if d := time.Since(start); d < 5*time.Second/15 {
		t.Errorf("6 requests at 15/s took %v, want at least %v", d, 5*time.Second/15)
	}
}

// A call ends before the host's deadline: what could not be sent in time is retried.
func TestCallDeadline(t *testing.T) {
	api := newPostscriptAPI(t, func(int, sdktest.Request) sdktest.Reply {
		time.Sleep(300 * time.Millisecond)
		return sdktest.Reply{Status: 202}
	})
	p := connect(t, &Postscript{}, config(api.URL, `,"concurrency":1`))
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
		{"api_key with a tab", `{"api_key":"sk_\tabc"}`, "api_key"},
		{"shop_token with a space", `{"api_key":"abc","shop_token":"sk abc"}`, "shop_token"},
		{"unknown field", `{"api_key":"abc","subscriber_ids":true}`, "subscriber_ids"},
		{"customer_id_is_subscriber_id not a bool", `{"api_key":"abc","customer_id_is_subscriber_id":"yes"}`, "customer_id_is_subscriber_id"},
		{"ftp base_url", `{"api_key":"abc","base_url":"ftp://api.postscript.io"}`, "base_url"},
		{"base_url with /api/v2", `{"api_key":"abc","base_url":"https://api.postscript.io/api/v2"}`, "base_url"},
		{"click_event with a space", `{"api_key":"abc","click_event":"link clicked"}`, "click_event"},
		{"click_event with a dash", `{"api_key":"abc","click_event":"link-clicked"}`, "click_event"},
		{"conversion_event not ASCII", `{"api_key":"abc","conversion_event":"conversión"}`, "conversion_event"},
		{"empty conversion_event", `{"api_key":"abc","conversion_event":""}`, "conversion_event"},
		{"long click_event", `{"api_key":"abc","click_event":"` + strings.Repeat("a", 92) + `"}`, "click_event"},
		{"bad timeout", `{"api_key":"abc","timeout":"1 minute"}`, "timeout"},
		{"concurrency 17", `{"api_key":"abc","concurrency":17}`, "concurrency"},
		{"max_rate over the limit", `{"api_key":"abc","max_rate":16}`, "max_rate"},
	}
	p := sdktest.Connect(t, &Postscript{stderr: testWriter{t}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Configure(context.Background(), json.RawMessage(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Configure(%s) = %v, want an error naming %s", tc.config, err, tc.field)
			}
		})
	}
	if err := p.Configure(context.Background(), json.RawMessage(`{"api_key":"sk_abc","click_event":"OrderPlaced_2"}`)); err != nil {
		t.Errorf("a key alone is a valid configuration: %v", err)
	}
}

// The API key and the shop token reach Postscript and nothing else: not the plugin's
// log, not a result's reason (even when the API echoes them back), not a configuration
// error.
func TestSecretsNeverLeak(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	api := newPostscriptAPI(t, func(n int, r sdktest.Request) sdktest.Reply {
		echo := quote("key " + r.Header.Get("Authorization") + " and shop " + r.Header.Get("X-Postscript-Shop-Token") + " do not match")
		return sdktest.Reply{Status: []int{401, 400, 503}[n%3], Body: `{"error_code":1,"error_message":` + echo + `,"success":false}`}
	})
	api.shopToken = shopToken
	p := connect(t, &Postscript{stderr: lockedWriter{&mu, &logged}}, config(api.URL, `,"concurrency":1,"shop_token":"`+shopToken+`"`))
	var reasons []string
	for i := range 3 {
		reasons = append(reasons, forward(t, p, clicks(t, 3)[i:i+1])[0].Reason)
	}
	for _, c := range []string{
		`{"api_key":"` + apiKey + `","shop_token":"` + shopToken + `","base_url":"nope"}`,
		`{"api_key":"` + apiKey + `","shop_token":"` + shopToken + ` "}`,
		`{"api_key":"` + apiKey + `","shop_token":` + quote(shopToken) + `,"max_rate":"fast"}`,
		`{"api_key":"` + apiKey + `","shop_token":"` + shopToken,
		`{"api_key":["` + apiKey + `"],"shop_token":["` + shopToken + `"]}`,
	} {
		err := sdktest.Connect(t, &Postscript{stderr: lockedWriter{&mu, &logged}}).Configure(context.Background(), json.RawMessage(c))
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
		for _, secret := range []string{apiKey, shopToken, apiKey[:12], shopToken[:12]} {
			if strings.Contains(s, secret) {
				t.Errorf("a secret leaked: %q", s)
			}
		}
	}
	if !strings.Contains(reasons[0], "[api_key]") || !strings.Contains(reasons[0], "[shop_token]") {
		t.Errorf("reason %q: the echoed secrets should read [api_key] and [shop_token]", reasons[0])
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
	if _, err := (&Postscript{}).Forward(context.Background(), clicks(t, 1)); err == nil {
		t.Fatal("Forward before Configure succeeded")
	}
}

// Hostile or unexpected error bodies become one short, printable line.
func TestErrorSummary(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"documented", `{"error_code": 3002, "error_message": "Rate limit exceeded", "success": false}`, "3002: Rate limit exceeded"},
		{"message only", `{"error_message":"Subscriber not found"}`, "Subscriber not found"},
		{"empty object", `{}`, `{}`},
		{"message", `{"message":"Unauthorized"}`, "Unauthorized"},
		{"errors list", `{"errors":[{"message":"a"},"b",{"code":"c","detail":"d","field":"type"}]}`, "a; b; c: d (at type)"},
		{"code not a number", `{"error_code":{"x":1},"error_message":"m"}`, "m"},
		{"HTML", "<html>\n<h1>Bad Gateway</h1>\n</html>", "<html> <h1>Bad Gateway</h1> </html>"},
		{"control characters", "{\"error_message\":\"a\\u0007b\\nc\"}", "a b c"},
		{"invalid UTF-8", "\xc3\x28 boom", "\uFFFD( boom"},
		{"long", strings.Repeat("x", 1000), strings.Repeat("x", 400) + "…"},
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
	dir, err := os.MkdirTemp("", "postscript-plugin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "postscript")
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
		if d.Name != "postscript" || d.ProtocolVersion != 1 || d.Version == "" || d.Description == "" {
			t.Errorf("describe = %+v", d)
		}
		defaults := map[string]any{}
		var names, secrets []string
		for _, c := range d.Config {
			names = append(names, c.Name)
			defaults[c.Name] = c.Default
			if c.Secret {
				secrets = append(secrets, c.Name)
			}
			if c.Required != (c.Name == "api_key") {
				t.Errorf("only api_key is required: %+v", c)
			}
		}
		if want := []string{"api_key", "shop_token", "base_url", "click_event", "conversion_event", "customer_id_is_subscriber_id", "timeout", "concurrency", "max_rate"}; !reflect.DeepEqual(names, want) {
			t.Errorf("config fields %v, want %v", names, want)
		}
		if want := []string{"api_key", "shop_token"}; !reflect.DeepEqual(secrets, want) {
			t.Errorf("secret fields %v, want %v", secrets, want)
		}
		want := map[string]any{"api_key": nil, "shop_token": nil, "base_url": "https://api.postscript.io", "click_event": "sms_link_clicked",
			"conversion_event": "sms_conversion", "customer_id_is_subscriber_id": false, "timeout": "10s", "concurrency": 4.0, "max_rate": 10.0}
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
	f.Add([]byte(`{"error_code": 3002, "error_message": "Rate limit exceeded", "success": false}`))
	f.Add([]byte(`{"error_code":1e999,"error_message":["x"],"errors":[null,{"field":"f"}]}`))
	f.Add([]byte("\xff\x00\u2028<html>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := errorSummary(body)
		if len(s) > maxSummaryBytes+len("…") {
			t.Fatalf("summary of %d bytes", len(s))
		}
		if strings.ToValidUTF8(s, "") != s || strings.ContainsAny(s, "\n\r\t\x00\u2028") {
			t.Fatalf("summary %q is not one printable line", s)
		}
	})
}

// FuzzPayload: any event either fails with a reason or becomes a request the recorder
// accepts.
func FuzzPayload(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc, "06j00000000000000000000001", false)
	f.Add(sdk.TypeClick, []byte(`{"identity":{"kind":"customer_id","value":" s_1 "},"time":"2026-01-01T00:00:00Z"}`), "x", true)
	c, _ := json.Marshal(conv("o:refunded", "purchase", "refunded", &sdk.User{Email: " A@B.CO "}, touch))
	f.Add(sdk.TypeConversion, c, "o:refunded", false)
	f.Add(sdk.TypeConversion, []byte(`{"status":"weird status","user":{"phone":"+1 415 555 0100"},"occurred_at":"9999-12-31T23:59:59Z"}`), "\x8c", false)
	f.Add(sdk.TypeConversion, []byte(`{"user":{"phone":"+14155550100"},"occurred_at":"2026-01-01T23:59:59+14:00","value":1e308}`), "y", false)
	api := &postscriptAPI{}
	f.Fuzz(func(t *testing.T, typ string, doc []byte, id string, subs bool) {
		p := &Postscript{cfg: Config{ClickEvent: defaultClickEvent, ConversionEvent: defaultConversionEvent, CustomerIDIsSubscriberID: subs}, now: func() time.Time { return t0 }}
		body, err := p.payload(sdk.Event{ID: id, Type: typ, Time: t0, JSON: doc})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		h := http.Header{"Authorization": {"Bearer " + apiKey}, "Content-Type": {"application/json"}}
		if _, err := api.check(sdktest.Request{Method: "POST", Path: "/api/v2/events", Header: h, Body: body}); err != nil {
			t.Fatalf("payload %s: %v", body, err)
		}
	})
}
