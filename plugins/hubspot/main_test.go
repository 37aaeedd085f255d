package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	"unicode/utf8"

	"github.com/clickgate/clickgate/plugins/internal/narrow"
	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

const (
	token           = "pat-na1-7d1e2c4a-91b3-4c3f-8a7e-5f0c2b9d6e11"
	clickEvent      = "pe1234567_sms_link_clicked"
	conversionEvent = "pe1234567_sms_conversion"
)

var uuidV5 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// hubspotAPI is a recorder that enforces what HubSpot documents for
// POST /events/v3/send/batch and POST /crm/v3/objects/contacts/batch/upsert. A request
// that breaks a rule fails the test and is answered 400, as HubSpot would.
type hubspotAPI struct {
	*sdktest.Recorder
	t        *testing.T
	matching string          // the events' custom matching property, if any
	urlProps map[string]bool // properties of type URL

	mu       sync.Mutex
	requests []apiRequest
}

// apiRequest is one valid request as the recorder decoded it.
type apiRequest struct {
	Kind     string // "events" or "contacts"
	N        int    // index among the requests of its kind
	Events   []apiEvent
	Contacts []apiContact
}

type apiEvent struct {
	EventName  string            `json:"eventName"`
	Email      string            `json:"email"`
	ObjectID   string            `json:"objectId"`
	UTK        string            `json:"utk"`
	OccurredAt string            `json:"occurredAt"`
	UUID       string            `json:"uuid"`
	Properties map[string]string `json:"properties"`
}

type apiContact struct {
	ID                 string            `json:"id"`
	IDProperty         string            `json:"idProperty"`
	ObjectWriteTraceID string            `json:"objectWriteTraceId"`
	Properties         map[string]string `json:"properties"`
}

var propertyName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,49}$`)

// newHubSpotAPI starts the recorder; respond answers each valid request (nil: 204 for
// events, 200 for contacts).
func newHubSpotAPI(t *testing.T, respond func(r apiRequest) sdktest.Reply) *hubspotAPI {
	a := &hubspotAPI{t: t, urlProps: map[string]bool{"destination_url": true}}
	a.Recorder = sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		req, err := a.check(r)
		if err != nil {
			t.Errorf("recorder: %s %s breaks the API contract: %v", r.Method, r.Path, err)
			return sdktest.Reply{Status: 400, Body: `{"status":"error","message":"` + err.Error() + `","category":"VALIDATION_ERROR"}`}
		}
		a.mu.Lock()
		for _, p := range a.requests {
			if p.Kind == req.Kind {
				req.N++
			}
		}
		a.requests = append(a.requests, req)
		a.mu.Unlock()
		if respond != nil {
			return respond(req)
		}
		if req.Kind == "contacts" {
			return sdktest.Reply{Status: 200, Body: `{"status":"COMPLETE","results":[]}`}
		}
		return sdktest.Reply{Status: 204}
	})
	return a
}

func (a *hubspotAPI) check(r sdktest.Request) (apiRequest, error) {
	var req apiRequest
	if r.Method != http.MethodPost || r.Query != "" {
		return req, fmt.Errorf("method %s query %q, want POST without query", r.Method, r.Query)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+token {
		return req, fmt.Errorf("authorization %q, want Bearer and the private app token", got)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, fmt.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	switch r.Path {
	case "/events/v3/send/batch":
		req.Kind = "events"
		var body struct {
			Inputs []apiEvent `json:"inputs"`
		}
		if err := dec.Decode(&body); err != nil || dec.More() {
			return req, fmt.Errorf("body is not {\"inputs\": [occurrences]} with string property values: %v", err)
		}
		if len(body.Inputs) == 0 || len(body.Inputs) > 500 {
			return req, fmt.Errorf("%d inputs, want 1 to 500", len(body.Inputs))
		}
		for i, e := range body.Inputs {
			if err := a.checkEvent(e); err != nil {
				return req, fmt.Errorf("input %d: %v", i, err)
			}
		}
		req.Events = body.Inputs
	case "/crm/v3/objects/contacts/batch/upsert":
		req.Kind = "contacts"
		var body struct {
			Inputs []apiContact `json:"inputs"`
		}
		if err := dec.Decode(&body); err != nil || dec.More() {
			return req, fmt.Errorf("body is not {\"inputs\": [contacts]}: %v", err)
		}
		if len(body.Inputs) == 0 || len(body.Inputs) > 100 {
			return req, fmt.Errorf("%d inputs, want 1 to 100", len(body.Inputs))
		}
		ids, traces := map[string]bool{}, map[string]bool{}
		for i, c := range body.Inputs {
			switch {
			case c.IDProperty != "email" || !strings.Contains(c.ID, "@"):
				return req, fmt.Errorf("input %d: id %q idProperty %q, want an email and \"email\"", i, c.ID, c.IDProperty)
			case ids[c.ID]:
				return req, fmt.Errorf("input %d: duplicate id %q in one batch", i, c.ID)
			case c.ObjectWriteTraceID == "" || traces[c.ObjectWriteTraceID]:
				return req, fmt.Errorf("input %d: objectWriteTraceId %q missing or not unique", i, c.ObjectWriteTraceID)
			case c.Properties == nil:
				return req, fmt.Errorf("input %d: no properties object", i)
			}
			ids[c.ID], traces[c.ObjectWriteTraceID] = true, true
		}
		req.Contacts = body.Inputs
	default:
		return req, fmt.Errorf("path %q", r.Path)
	}
	return req, nil
}

func (a *hubspotAPI) checkEvent(e apiEvent) error {
	switch {
	case e.EventName != clickEvent && e.EventName != conversionEvent:
		return fmt.Errorf("eventName %q", e.EventName)
	case !uuidV5.MatchString(e.UUID):
		return fmt.Errorf("uuid %q is not a version 5 UUID", e.UUID)
	case e.Email == "" && e.ObjectID == "" && e.UTK == "" && (a.matching == "" || e.Properties[a.matching] == ""):
		return errors.New("no email, objectId, utk or custom matching ID")
	case len(e.Properties) > 50:
		return fmt.Errorf("%d properties, over 50", len(e.Properties))
	}
	if _, err := time.Parse(time.RFC3339, e.OccurredAt); err != nil {
		return fmt.Errorf("occurredAt %q is not ISO 8601", e.OccurredAt)
	}
	for k, v := range e.Properties {
		limit := 256
		if a.urlProps[k] {
			limit = 1024
		}
		if !propertyName.MatchString(k) || utf8.RuneCountInString(v) > limit {
			return fmt.Errorf("property %q (%d characters) breaks the name or length rules", k, utf8.RuneCountInString(v))
		}
	}
	return nil
}

// Requests returns the valid requests so far, optionally of one kind.
func (a *hubspotAPI) Requests(kind string) []apiRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []apiRequest
	for _, r := range a.requests {
		if kind == "" || r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

// Events is every occurrence received, in order.
func (a *hubspotAPI) Events() []apiEvent {
	var out []apiEvent
	for _, r := range a.Requests("events") {
		out = append(out, r.Events...)
	}
	return out
}

var t0 = time.Date(2026, 11, 26, 18, 30, 15, 123_000_000, time.UTC)

func click(i int) sdk.ClickEvent {
	id := fmt.Sprintf("06j%023d", i)
	return sdk.ClickEvent{
		SchemaVersion: 1, EventType: sdk.TypeClick, EventID: id, ClickID: id,
		Time: t0.Add(time.Duration(i) * time.Millisecond), Node: "edge-1", Slug: "spring26", Campaign: "spring_sale_2026",
		UTM:         sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"},
		Destination: "https://shop.example.com/spring?ref=sms", VisitorID: fmt.Sprintf("07v%023d", i),
		User: &sdk.User{Email: fmt.Sprintf("jane%d@example.com", i)},
	}
}

func clickEv(t testing.TB, c sdk.ClickEvent) sdk.Event {
	doc, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return sdk.Event{ID: c.EventID, Type: sdk.TypeClick, Time: c.Time, JSON: doc}
}

func clicks(t testing.TB, n int) []sdk.Event {
	evs := make([]sdk.Event, n)
	for i := range evs {
		evs[i] = clickEv(t, click(i))
	}
	return evs
}

func value(v float64) *float64 { return &v }

func conversion(i int) sdk.ConversionEvent {
	return sdk.ConversionEvent{
		SchemaVersion: 1, EventType: sdk.TypeConversion, EventID: fmt.Sprintf("ord-%d", i), ConversionID: fmt.Sprintf("09k%023d", i),
		SourceEventID: fmt.Sprintf("ord-%d", i), Type: "purchase", Status: "approved", Value: value(49.9), Currency: "EUR",
		OccurredAt: t0.Add(time.Hour), ReceivedAt: t0.Add(time.Hour + time.Second), Source: "api",
		User: &sdk.User{Email: fmt.Sprintf("buyer%d@example.com", i), Phone: "+14155550123"},
		Attribution: &sdk.Touch{ClickID: "06j00000000000000000000001", Slug: "spring26", Campaign: "spring_sale_2026",
			UTM: sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026", Content: "hero"}, ClickTime: t0, SecondsToConvert: 3600, Credit: 1},
	}
}

func conversionEv(t testing.TB, c sdk.ConversionEvent) sdk.Event {
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

// connect runs a HubSpot forwarder behind the real gRPC server and configures it.
func connect(t *testing.T, h *HubSpot, config string) forwarder {
	t.Helper()
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	p := sdktest.Connect(t, h)
	if err := p.Configure(context.Background(), json.RawMessage(config)); err != nil {
		t.Fatal(err)
	}
	return p
}

func config(base, extra string) string {
	return `{"access_token":"` + token + `","base_url":"` + base + `","click_event":"` + clickEvent +
		`","conversion_event":"` + conversionEvent + `"` + extra + `}`
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

func statuses(res []sdk.Result) []sdk.Status {
	out := make([]sdk.Status, len(res))
	for i, r := range res {
		out[i] = r.Status
	}
	return out
}

func repeat(s sdk.Status, n int) []sdk.Status { return slices.Repeat([]sdk.Status{s}, n) }

const (
	delivered = sdk.StatusDelivered
	retry     = sdk.StatusRetry
	notSent   = sdk.StatusNotSent
	failed    = sdk.StatusFailed
)

// The uuid of an occurrence is a version 5 UUID of the event ID. Vectors computed with
// Python's uuid.uuid5(uuid.NAMESPACE_URL, "urn:clickgate:event:" + id).
func TestEventUUID(t *testing.T) {
	for id, want := range map[string]string{
		"06j00000000000000000000001": "b316f7c1-29f8-5308-934d-4b63fffa0aa7",
		"ord-1001:refunded":          "aa0aa5a8-6e16-5864-926c-18271b6bee7c",
	} {
		if got := eventUUID(id); got != want {
			t.Errorf("eventUUID(%q) = %s, want %s", id, got, want)
		}
	}
}

func TestClickMapping(t *testing.T) {
	api := newHubSpotAPI(t, nil)
	p := connect(t, &HubSpot{}, config(api.URL, ""))
	c := click(1)
	c.UTM.Content, c.UTM.Term = "hero_banner", "shoes"
	res := forward(t, p, []sdk.Event{clickEv(t, c)})
	if res[0].Status != delivered {
		t.Fatalf("result %+v", res[0])
	}
	got := api.Events()
	want := apiEvent{
		EventName: clickEvent, Email: "jane1@example.com", OccurredAt: "2026-11-26T18:30:15.124Z", UUID: eventUUID(c.EventID),
		Properties: map[string]string{
			"click_id": c.ClickID, "link_slug": "spring26", "sms_campaign": "spring_sale_2026", "utm_source": "sms",
			"utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_banner", "utm_term": "shoes",
			"destination_url": "https://shop.example.com/spring?ref=sms",
		},
	}
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Errorf("occurrence\n got %+v\nwant %+v", got, want)
	}
}

// A click reaches HubSpot only with an identifier: an email (clicks carry user data
// only when the operator opts in) or the events' custom matching ID.
func TestClickIdentifiers(t *testing.T) {
	withCustomer := click(2)
	withCustomer.User = nil
	withCustomer.Identity = &sdk.Identity{Kind: "customer_id", Value: "cust-77", Source: "token"}
	hashedEmail := click(3)
	hashedEmail.User = nil
	hashedEmail.Identity = &sdk.Identity{Kind: "email", Value: "9f86d081884c7d65", Source: "param:em"}
	bare := click(4)
	bare.User = nil
	evs := []sdk.Event{clickEv(t, withCustomer), clickEv(t, hashedEmail), clickEv(t, bare)}

	t.Run("email only", func(t *testing.T) {
		api := newHubSpotAPI(t, nil)
		p := connect(t, &HubSpot{}, config(api.URL, ""))
		res := forward(t, p, evs)
		for i, r := range res {
			if r.Status != failed || !strings.Contains(r.Reason, "events: [conversion]") || !strings.Contains(r.Reason, "CLICKGATE_EVENT_USER_DATA=all") {
				t.Errorf("click %d: %+v, want Failed telling to filter clicks out or opt in", i, r)
			}
		}
		if n := len(api.Requests("")); n != 0 {
			t.Errorf("%d requests for clicks HubSpot cannot take", n)
		}
	})
	t.Run("matching property", func(t *testing.T) {
		api := newHubSpotAPI(t, nil)
		api.matching = "customer_id"
		p := connect(t, &HubSpot{}, config(api.URL, `,"click_properties":{"customer_id":"user.customer_id","click_id":"click_id"},"matching_property":"customer_id"`))
		res := forward(t, p, evs)
		if !reflect.DeepEqual(statuses(res), []sdk.Status{delivered, failed, failed}) {
			t.Fatalf("results %+v", res)
		}
		got := api.Events()
		if len(got) != 1 || got[0].Email != "" || got[0].Properties["customer_id"] != "cust-77" {
			t.Errorf("occurrences %+v; the customer ID must come from the click's identity, a hashed email never", got)
		}
	})
}

func TestConversionMapping(t *testing.T) {
	api := newHubSpotAPI(t, nil)
	p := connect(t, &HubSpot{}, config(api.URL, ""))
	full := conversion(1)
	refund := conversion(1)
	refund.EventID, refund.Status = "ord-1:refunded", "refunded"
	refund.StatusChangedAt = refund.OccurredAt.Add(50 * time.Hour)
	unattributed := conversion(2)
	unattributed.Attribution, unattributed.Value, unattributed.Currency = nil, nil, ""
	customerOnly := conversion(3)
	customerOnly.User = &sdk.User{CustomerID: "cust-9"}
	res := forward(t, p, []sdk.Event{conversionEv(t, full), conversionEv(t, refund), conversionEv(t, unattributed), conversionEv(t, customerOnly)})
	if !reflect.DeepEqual(statuses(res[:3]), repeat(delivered, 3)) {
		t.Fatalf("results %+v", res)
	}
	if res[3].Status != failed || !strings.Contains(res[3].Reason, "no email") {
		t.Errorf("conversion without email: %+v", res[3])
	}
	got := api.Events()
	if len(got) != 3 {
		t.Fatalf("occurrences %+v", got)
	}
	want := map[string]string{
		"conversion_type": "purchase", "conversion_status": "approved", "order_id": "ord-1", "value": "49.9", "currency": "EUR",
		"click_id": "06j00000000000000000000001", "sms_campaign": "spring_sale_2026", "utm_campaign": "spring_sale_2026",
		"utm_content": "hero", "seconds_to_convert": "3600",
	}
	if got[0].EventName != conversionEvent || got[0].Email != "buyer1@example.com" || got[0].OccurredAt != "2026-11-26T19:30:15.123Z" ||
		got[0].UUID != eventUUID("ord-1") || !reflect.DeepEqual(got[0].Properties, want) {
		t.Errorf("conversion\n got %+v\nwant properties %v", got[0], want)
	}
	if got[1].UUID == got[0].UUID || got[1].Properties["conversion_status"] != "refunded" || got[1].OccurredAt != "2026-11-28T21:30:15.123Z" {
		t.Errorf("a refund is its own occurrence, when it happened: %+v", got[1])
	}
	if _, ok := got[2].Properties["click_id"]; ok || got[2].Properties["value"] != "" {
		t.Errorf("an unattributed conversion sends no attribution: %+v", got[2].Properties)
	}
}

func TestLiteralsAndLimits(t *testing.T) {
	api := newHubSpotAPI(t, nil)
	p := connect(t, &HubSpot{}, config(api.URL, `,"click_properties":{"channel":"=sms","destination_url":"destination","campaign":"campaign"}`))
	long := click(1)
	long.Destination = "https://shop.example.com/?q=" + strings.Repeat("a", 900) // a URL property takes 1,024
	tooLongURL := click(2)
	tooLongURL.Destination = "https://shop.example.com/?q=" + strings.Repeat("a", 1100)
	tooLong := click(3)
	tooLong.Campaign = strings.Repeat("é", 257) // 257 characters, 514 bytes
	atLimit := click(4)
	atLimit.Campaign = strings.Repeat("é", 256)
	res := forward(t, p, []sdk.Event{clickEv(t, long), clickEv(t, tooLongURL), clickEv(t, tooLong), clickEv(t, atLimit)})
	if !reflect.DeepEqual(statuses(res), []sdk.Status{delivered, failed, failed, delivered}) {
		t.Fatalf("results %+v", res)
	}
	if !strings.Contains(res[1].Reason, "1024") || !strings.Contains(res[2].Reason, "256") {
		t.Errorf("reasons %q, %q", res[1].Reason, res[2].Reason)
	}
	if got := api.Events(); len(got) != 2 || got[0].Properties["channel"] != "sms" {
		t.Errorf("occurrences %+v", got)
	}
}

func TestUnmappableEventsFailAlone(t *testing.T) {
	api := newHubSpotAPI(t, nil)
	p := connect(t, &HubSpot{}, config(api.URL, ""))
	evs := clicks(t, 6)
	evs[1].JSON = json.RawMessage(`{"event_id":`)
	evs[2].Type = "pageview"
	evs[3].JSON = json.RawMessage(`null`)
	noTime := click(4)
	noTime.Time = time.Time{}
	evs[4] = clickEv(t, noTime)
	evs[4].Time = time.Time{}
	res := forward(t, p, evs)
	if !reflect.DeepEqual(statuses(res), []sdk.Status{delivered, failed, failed, failed, failed, delivered}) {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res[1:5] {
		if r.Reason == "" {
			t.Errorf("a failure without a reason: %+v", r)
		}
	}
	if got := api.Events(); len(got) != 2 || got[0].UUID != eventUUID(evs[0].ID) || got[1].UUID != eventUUID(evs[5].ID) {
		t.Errorf("sent %+v", got)
	}
}

func TestEventTypeWithoutEvent(t *testing.T) {
	api := newHubSpotAPI(t, nil)
	p := connect(t, &HubSpot{}, `{"access_token":"`+token+`","base_url":"`+api.URL+`","conversion_event":"`+conversionEvent+`"}`)
	res := forward(t, p, []sdk.Event{clickEv(t, click(1)), conversionEv(t, conversion(1))})
	if res[0].Status != failed || !strings.Contains(res[0].Reason, "events: [conversion]") || res[1].Status != delivered {
		t.Errorf("results %+v", res)
	}
}

func TestStatus(t *testing.T) {
	date := func(now time.Time) string { return now.Add(90 * time.Second).UTC().Format(http.TimeFormat) }
	rate := func(remaining, interval string) func(time.Time) http.Header {
		return func(time.Time) http.Header {
			return http.Header{"X-Hubspot-Ratelimit-Remaining": {remaining}, "X-Hubspot-Ratelimit-Interval-Milliseconds": {interval},
				"X-Hubspot-Ratelimit-Max": {"190"}}
		}
	}
	cases := []struct {
		name    string
		status  int
		body    string
		header  func(now time.Time) http.Header
		want    sdk.Status
		after   time.Duration
		inWhy   []string
		refused bool
	}{
		{name: "204", status: 204, want: delivered},
		{name: "200", status: 200, want: delivered},
		{name: "400 for one input", status: 400, body: `{"status":"error","message":"Property values were not valid","correlationId":"aeb5f871-7f07-4993-9211-075dc63e7cbf","category":"VALIDATION_ERROR","errors":[{"message":"discount was not a valid number","code":"INVALID_INTEGER","context":{"propertyName":["discount"]}}]}`,
			want: failed, inWhy: []string{"400 VALIDATION_ERROR", "Property values were not valid", "INVALID_INTEGER", "propertyName=discount", "aeb5f871"}},
		{name: "401", status: 401, body: `{"status":"error","message":"Authentication credentials not found.","category":"INVALID_AUTHENTICATION"}`,
			want: failed, inWhy: []string{"401", "access_token"}},
		{name: "403 missing scopes", status: 403, body: `{"status":"error","message":"This app hasn't been granted all required scopes to make this call.","category":"MISSING_SCOPES","errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["analytics.behavioral_events.send"]}}]}`,
			want: failed, inWhy: []string{"403 MISSING_SCOPES", "requiredGranularScopes=analytics.behavioral_events.send", "lacks a scope"}},
		{name: "404", status: 404, body: `{"status":"error","message":"Event definition not found"}`, want: failed, inWhy: []string{"404", "event names"}},
		{name: "423 locked", status: 423, want: retry, after: 2 * time.Second, inWhy: []string{"423"}},
		{name: "429 Retry-After seconds", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"7"}} }, want: retry, after: 7 * time.Second},
		{name: "429 Retry-After date", status: 429, header: func(n time.Time) http.Header { return http.Header{"Retry-After": {date(n)}} }, want: retry, after: 90 * time.Second},
		{name: "429 rolling window used up", status: 429, header: rate("0", "10000"),
			body: `{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}`,
			want: retry, after: 10 * time.Second, inWhy: []string{"ten_secondly_rolling", "TEN_SECONDLY_ROLLING"}},
		{name: "429 window not used up", status: 429, header: rate("12", "10000"), want: retry},
		// It resets at midnight: waiting the longest the host honours, not the host's back-off.
		{name: "429 daily limit", status: 429, header: func(time.Time) http.Header { return http.Header{"X-Hubspot-Ratelimit-Daily-Remaining": {"0"}} },
			want: retry, after: sdk.MaxRetryAfter, inWhy: []string{"daily"}},
		{name: "429 daily limit by policy", status: 429, body: `{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"}`,
			want: retry, after: sdk.MaxRetryAfter, inWhy: []string{"daily"}},
		{name: "477 migration", status: 477, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"3600"}} }, want: retry, after: time.Hour},
		{name: "500", status: 500, want: retry, inWhy: []string{"500"}},
		{name: "502 HTML", status: 502, body: "<html>\r\n<body>Bad gateway</body></html>", want: retry, inWhy: []string{"502", "Bad gateway"}},
		{name: "503", status: 503, want: retry},
		{name: "524", status: 524, want: retry},
		{name: "409", status: 409, want: failed, inWhy: []string{"409"}},
		{name: "connection refused", refused: true, want: retry, inWhy: []string{"request failed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Truncate(time.Second)
			api := newHubSpotAPI(t, func(apiRequest) sdktest.Reply {
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
			p := connect(t, &HubSpot{now: func() time.Time { return now }}, config(base, ""))
			res := forward(t, p, clicks(t, 1))
			r := res[0]
			if r.Status != tc.want || r.RetryAfter != tc.after {
				t.Errorf("result %+v, want status %d after %v", r, tc.want, tc.after)
			}
			for _, s := range tc.inWhy {
				if !strings.Contains(r.Reason, s) {
					t.Errorf("reason %q does not say %q", r.Reason, s)
				}
			}
			if tc.want != delivered && r.Reason == "" {
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

func TestBatching(t *testing.T) {
	api := newHubSpotAPI(t, nil)
	p := connect(t, &HubSpot{}, config(api.URL, ""))
	evs := clicks(t, 1200)
	res := forward(t, p, evs)
	if !reflect.DeepEqual(statuses(res), repeat(delivered, 1200)) {
		t.Fatal("not every event delivered")
	}
	var sizes []int
	var uuids []string
	for _, r := range api.Requests("events") {
		sizes = append(sizes, len(r.Events))
		for _, e := range r.Events {
			uuids = append(uuids, e.UUID)
		}
	}
	if !reflect.DeepEqual(sizes, []int{500, 500, 200}) {
		t.Errorf("batches of %v, want 500, 500, 200", sizes)
	}
	for i, e := range evs {
		if uuids[i] != eventUUID(e.ID) {
			t.Fatalf("occurrence %d out of order", i)
		}
	}
	t.Run("max_batch", func(t *testing.T) {
		api := newHubSpotAPI(t, nil)
		p := connect(t, &HubSpot{}, config(api.URL, `,"max_batch":7`))
		forward(t, p, clicks(t, 20))
		if n := len(api.Requests("events")); n != 3 {
			t.Errorf("%d requests for 20 events in batches of 7", n)
		}
	})
}

// HubSpot answers 400 to a batch without saying which input is at fault: the plugin
// narrows it down so only the bad events fail.
func TestRejectedBatchIsIsolated(t *testing.T) {
	for _, tc := range []struct {
		same bool
		at   [2]int
	}{{false, [2]int{9, 41}}, {true, [2]int{9, 41}}, {true, [2]int{0, 32}}} {
		t.Run(fmt.Sprintf("same message %v at %v", tc.same, tc.at), func(t *testing.T) { testRejectedBatchIsIsolated(t, tc.same, tc.at) })
	}
}

// testRejectedBatchIsIsolated refuses two events of 64, one in each half of the batch,
// with messages naming them or (same) alike, as when both carry the same bad value:
// halves refused for the cause of the whole must not pass for a cause common to all,
// even with the events at fault first in their halves.
func testRejectedBatchIsIsolated(t *testing.T, same bool, at [2]int) {
	evs := clicks(t, 64)
	bad := map[string]bool{eventUUID(evs[at[0]].ID): true, eventUUID(evs[at[1]].ID): true}
	var log bytes.Buffer
	api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
		for _, e := range r.Events {
			if bad[e.UUID] {
				msg := "invalid email " + e.Email
				if same {
					msg = "Property values were not valid: sms_campaign"
				}
				return sdktest.Reply{Status: 400, Body: `{"status":"error","message":"` + msg + `","category":"VALIDATION_ERROR","correlationId":"` + fmt.Sprint(r.N) + `"}`}
			}
		}
		return sdktest.Reply{Status: 204}
	})
	p := connect(t, &HubSpot{log: slog.New(slog.NewJSONHandler(&log, nil))}, config(api.URL, ""))
	res := forward(t, p, evs)
	for i, r := range res {
		want := delivered
		if i == at[0] || i == at[1] {
			want = failed
		}
		if r.Status != want {
			t.Errorf("event %d: %+v, want %d", i, r, want)
		}
	}
	if !same && !strings.Contains(res[at[0]].Reason, fmt.Sprintf("invalid email jane%d@example.com", at[0])) {
		t.Errorf("reason %q", res[at[0]].Reason)
	}
	if n := len(api.Requests("events")); n > 30 { // with four events sent alone to tell a common cause apart
		t.Errorf("%d requests to isolate 2 events among 64", n)
	}
	if !strings.Contains(log.String(), "sending it in halves") {
		t.Errorf("log %s", log.String())
	}
	delivered := map[string]bool{}
	for _, r := range api.Requests("events") {
		if len(r.Events) > 0 && !slices.ContainsFunc(r.Events, func(e apiEvent) bool { return bad[e.UUID] }) {
			for _, e := range r.Events {
				if delivered[e.UUID] {
					t.Fatalf("event %s accepted twice", e.UUID)
				}
				delivered[e.UUID] = true
			}
		}
	}
	if len(delivered) != 62 {
		t.Errorf("%d events accepted, want 62", len(delivered))
	}
}

// When both halves are turned down for the cause of the whole, the cause is common (an
// unknown property, say): every event fails at once.
func TestCommonCauseFailsFast(t *testing.T) {
	api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
		return sdktest.Reply{Status: 400, Body: `{"status":"error","message":"Property link_slug does not exist","category":"VALIDATION_ERROR","correlationId":"` + fmt.Sprint(r.N) + `"}`}
	})
	p := connect(t, &HubSpot{}, config(api.URL, ""))
	res := forward(t, p, clicks(t, 100))
	if !reflect.DeepEqual(statuses(res), repeat(failed, 100)) || !strings.Contains(res[0].Reason, "link_slug does not exist") {
		t.Fatalf("results %+v", res[0])
	}
	if n := len(api.Requests("events")); n != 7 {
		t.Errorf("%d requests, want the batch, its two halves and the first and last of each alone", n)
	}
}

// Isolating many different faults stops at a budget; the rest is retried later, as not
// sent, so events rejected only for others' faults use up no attempts.
func TestIsolationBudget(t *testing.T) {
	api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
		for _, e := range r.Events {
			if e.Properties["click_id"][25]%2 == 0 {
				return sdktest.Reply{Status: 400, Body: `{"message":"bad ` + e.UUID + `"}`}
			}
		}
		return sdktest.Reply{Status: 204}
	})
	p := connect(t, &HubSpot{}, config(api.URL, ""))
	res := forward(t, p, clicks(t, 500))
	var byStatus = map[sdk.Status]int{}
	for i, r := range res {
		byStatus[r.Status]++
		if r.Status == delivered && i%2 == 0 {
			t.Fatalf("event %d delivered, but HubSpot rejects it", i)
		}
		if r.Status == retry || r.Status == notSent && !strings.Contains(r.Reason, "not yet narrowed down") {
			t.Fatalf("result %d %+v", i, r)
		}
	}
	if n := len(api.Requests("events")); n > 1+narrow.Budget {
		t.Errorf("%d requests, over the budget", n)
	}
	if byStatus[notSent] == 0 || byStatus[failed] == 0 {
		t.Errorf("results %v: want some isolated, the rest left for later", byStatus)
	}
}

func TestRetryStopsTheCall(t *testing.T) {
	api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
		if r.N == 1 {
			return sdktest.Reply{Status: 429, Header: http.Header{"Retry-After": {"5"}}}
		}
		return sdktest.Reply{Status: 204}
	})
	p := connect(t, &HubSpot{}, config(api.URL, `,"max_batch":10`))
	res := forward(t, p, clicks(t, 30))
	if n := len(api.Requests("events")); n != 2 {
		t.Fatalf("%d requests; after a 429 the rest of the call waits", n)
	}
	if !reflect.DeepEqual(statuses(res), append(repeat(delivered, 10), append(repeat(retry, 10), repeat(notSent, 10)...)...)) {
		t.Fatalf("results %v", statuses(res))
	}
	for _, r := range res[10:] {
		if r.RetryAfter != 5*time.Second {
			t.Fatalf("retry %+v, want after 5s", r)
		}
	}
}

// A call returns before the host's deadline; what could not be sent in time is retried.
func TestCallDeadline(t *testing.T) {
	api := newHubSpotAPI(t, func(apiRequest) sdktest.Reply {
		time.Sleep(150 * time.Millisecond)
		return sdktest.Reply{Status: 204}
	})
	p := connect(t, &HubSpot{}, config(api.URL, `,"max_batch":1`))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	res, err := p.Forward(ctx, clicks(t, 20))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= time.Second {
		t.Errorf("the call took %v, past its deadline", took)
	}
	sent := slices.IndexFunc(res, func(r sdk.Result) bool { return r.Status != delivered })
	rest := statuses(res[max(sent, 0):])
	if len(rest) > 0 && rest[0] == retry {
		rest = rest[1:] // a request the deadline cut short was tried
	}
	if sent < 1 || len(rest) == 0 || !reflect.DeepEqual(rest, repeat(notSent, len(rest))) {
		t.Errorf("results %v: want the first events delivered, the rest not sent", statuses(res))
	}
}

func TestContactUpsert(t *testing.T) {
	cfg := `,"upsert_contacts":true,"contact_properties":{"phone":"user.phone","last_sms_campaign":"attribution.campaign","sms_opt_in":"=true"}`
	a, b, c := conversion(1), conversion(2), conversion(3)
	again := conversion(1)
	again.EventID, again.Attribution.Campaign = "ord-1:refunded", "black_friday"
	noPhone := conversion(4)
	noPhone.User.Phone = ""
	evs := []sdk.Event{conversionEv(t, a), conversionEv(t, b), conversionEv(t, again), conversionEv(t, c), conversionEv(t, noPhone)}

	t.Run("before the events", func(t *testing.T) {
		api := newHubSpotAPI(t, nil)
		p := connect(t, &HubSpot{}, config(api.URL, cfg))
		res := forward(t, p, append(evs, clickEv(t, click(5))))
		if !reflect.DeepEqual(statuses(res), repeat(delivered, 6)) {
			t.Fatalf("results %+v", res)
		}
		reqs := api.Requests("")
		if len(reqs) != 2 || reqs[0].Kind != "contacts" || reqs[1].Kind != "events" || len(reqs[1].Events) != 6 {
			t.Fatalf("requests %+v, want the upsert, then the events", reqs)
		}
		contacts := reqs[0].Contacts
		if len(contacts) != 5 {
			t.Fatalf("contacts %+v: one input per email", contacts)
		}
		want := apiContact{ID: "buyer1@example.com", IDProperty: "email", ObjectWriteTraceID: "0",
			Properties: map[string]string{"phone": "+14155550123", "last_sms_campaign": "black_friday", "sms_opt_in": "true"}}
		if !reflect.DeepEqual(contacts[0], want) {
			t.Errorf("contact\n got %+v\nwant %+v (the later event's values win)", contacts[0], want)
		}
		if _, ok := contacts[3].Properties["phone"]; ok || contacts[3].ID != "buyer4@example.com" {
			t.Errorf("a property the event lacks is not sent: %+v", contacts[3])
		}
		if contacts[4].ID != "jane5@example.com" || !reflect.DeepEqual(contacts[4].Properties, map[string]string{"sms_opt_in": "true"}) {
			t.Errorf("a click's contact: %+v", contacts[4])
		}
	})
	t.Run("a contact HubSpot names fails its events alone", func(t *testing.T) {
		api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
			if r.Kind == "events" {
				return sdktest.Reply{Status: 204}
			}
			return sdktest.Reply{Status: 207, Body: `{"status":"COMPLETE","results":[],"numErrors":1,"errors":[{"status":"error","category":"VALIDATION_ERROR",` +
				`"message":"Property values were not valid: phone","context":{"objectWriteTraceId":["0"]}}]}`}
		})
		p := connect(t, &HubSpot{}, config(api.URL, cfg))
		res := forward(t, p, evs)
		if !reflect.DeepEqual(statuses(res), []sdk.Status{failed, delivered, failed, delivered, delivered}) {
			t.Fatalf("results %+v", res)
		}
		if !strings.Contains(res[0].Reason, "contact upsert: 207 VALIDATION_ERROR") {
			t.Errorf("reason %q", res[0].Reason)
		}
		if got := api.Events(); len(got) != 3 || slices.ContainsFunc(got, func(e apiEvent) bool { return e.Email == "buyer1@example.com" }) {
			t.Errorf("occurrences %+v: none for the contact that failed", got)
		}
	})
	t.Run("a rejected upsert batch is isolated", func(t *testing.T) {
		api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
			for _, c := range r.Contacts {
				if c.ID == "buyer2@example.com" {
					return sdktest.Reply{Status: 400, Body: `{"status":"error","message":"Email address buyer2@example.com is invalid","category":"VALIDATION_ERROR"}`}
				}
			}
			return sdktest.Reply{Status: 200, Body: `{"status":"COMPLETE","results":[]}`}
		})
		p := connect(t, &HubSpot{}, config(api.URL, cfg))
		res := forward(t, p, evs)
		if !reflect.DeepEqual(statuses(res), []sdk.Status{delivered, failed, delivered, delivered, delivered}) {
			t.Fatalf("results %+v", res)
		}
	})
	t.Run("an error tied to no input retries", func(t *testing.T) {
		api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
			if r.Kind == "contacts" {
				return sdktest.Reply{Status: 207, Body: `{"status":"COMPLETE","numErrors":1,"errors":[{"status":"error","message":"something"}]}`}
			}
			return sdktest.Reply{Status: 204}
		})
		p := connect(t, &HubSpot{}, config(api.URL, cfg))
		res := forward(t, p, evs[:2])
		if !reflect.DeepEqual(statuses(res), repeat(retry, 2)) || len(api.Events()) != 0 {
			t.Fatalf("results %+v", res)
		}
	})
	t.Run("429 on the upsert holds the events", func(t *testing.T) {
		api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
			return sdktest.Reply{Status: 429, Header: http.Header{"Retry-After": {"3"}}}
		})
		p := connect(t, &HubSpot{}, config(api.URL, cfg))
		res := forward(t, p, evs)
		for _, r := range res {
			if r.Status != retry || r.RetryAfter != 3*time.Second {
				t.Fatalf("result %+v", r)
			}
		}
		if len(api.Requests("events")) != 0 {
			t.Error("events sent after the upsert was told to wait")
		}
	})
}

func TestConfigure(t *testing.T) {
	base := `"access_token":"pat-1","conversion_event":"pe1_x"`
	cases := []struct{ name, config, field string }{
		{"non-JSON", `access_token=x`, "config"},
		{"not an object", `["access_token"]`, "config"},
		{"trailing data", `{` + base + `} {}`, "config"},
		{"missing access_token", `{"conversion_event":"pe1_x"}`, "access_token"},
		{"access_token with space", `{"access_token":"pat 1","conversion_event":"pe1_x"}`, "access_token"},
		{"access_token not a string", `{"access_token":123,"conversion_event":"pe1_x"}`, "access_token"},
		{"unknown field", `{` + base + `,"accesstoken":"x"}`, "accesstoken"},
		{"no event", `{"access_token":"pat-1"}`, "click_event"},
		{"event name with space", `{"access_token":"pat-1","click_event":"SMS clicked"}`, "click_event"},
		{"ftp base_url", `{` + base + `,"base_url":"ftp://api.hubapi.com"}`, "base_url"},
		{"base_url with endpoint", `{` + base + `,"base_url":"https://api.hubapi.com/events/v3/send"}`, "base_url"},
		{"base_url with query", `{` + base + `,"base_url":"https://api.hubapi.com?x=1"}`, "base_url"},
		{"base_url with user", `{` + base + `,"base_url":"https://u:p@api.hubapi.com"}`, "base_url"},
		{"uppercase property", `{` + base + `,"conversion_properties":{"Value":"value"}}`, "Value"},
		{"property starting with digit", `{` + base + `,"conversion_properties":{"1st":"value"}}`, "1st"},
		{"property name too long", `{` + base + `,"conversion_properties":{"` + strings.Repeat("a", 51) + `":"value"}}`, "conversion_properties"},
		{"unknown path", `{` + base + `,"conversion_properties":{"value":"amount"}}`, "amount"},
		{"path of the other type", `{` + base + `,"click_properties":{"v":"attribution.campaign"}}`, "attribution.campaign"},
		{"object path", `{` + base + `,"conversion_properties":{"u":"user"}}`, "user"},
		{"too many properties", `{` + base + `,"conversion_properties":{` + manyProps(51) + `}}`, "at most 50"},
		{"matching property not mapped", `{` + base + `,"matching_property":"customer_id"}`, "matching_property"},
		{"contact email property", `{` + base + `,"upsert_contacts":true,"contact_properties":{"email":"user.email"}}`, "contact_properties"},
		{"contact path unknown", `{` + base + `,"upsert_contacts":true,"contact_properties":{"phone":"user.mobile"}}`, "phone"},
		{"contact properties without upsert", `{` + base + `,"contact_properties":{"phone":"user.phone"}}`, "upsert_contacts"},
		{"max_batch 0", `{` + base + `,"max_batch":0}`, "max_batch"},
		{"max_batch 501", `{` + base + `,"max_batch":501}`, "max_batch"},
		{"bad timeout", `{` + base + `,"timeout":"soon"}`, "timeout"},
		{"huge timeout", `{` + base + `,"timeout":"1h"}`, "timeout"},
		{"literal with newline", `{` + base + `,"conversion_properties":{"x":"=a\nb"}}`, "control"},
	}
	p := sdktest.Connect(t, &HubSpot{log: slog.New(slog.DiscardHandler)})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Configure(context.Background(), json.RawMessage(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Configure(%s) = %v, want an error naming %s", tc.config, err, tc.field)
			}
		})
	}
	for _, ok := range []string{
		`{` + base + `}`,
		`{"access_token":"pat-1","click_event":"pe1_c","click_properties":{}}`,
		`{` + base + `,"upsert_contacts":true,"contact_properties":{"phone":"user.phone","last_click":"click_id"}}`,
	} {
		if err := p.Configure(context.Background(), json.RawMessage(ok)); err != nil {
			t.Errorf("Configure(%s) = %v", ok, err)
		}
	}
}

func manyProps(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"p%d":"value"`, i))
	}
	return strings.Join(parts, ",")
}

// The access token is never in a log line, a reason or an error, even when HubSpot
// echoes it.
func TestSecretNeverLeaks(t *testing.T) {
	var log bytes.Buffer
	api := newHubSpotAPI(t, func(r apiRequest) sdktest.Reply {
		if r.N == 0 {
			return sdktest.Reply{Status: 400, Body: `{"message":"bad request with Authorization: Bearer ` + token + `"}`}
		}
		return sdktest.Reply{Status: 401, Body: `{"message":"token ` + token + ` expired"}`}
	})
	h := &HubSpot{log: slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	p := connect(t, h, config(api.URL, ""))
	var texts []string
	res := forward(t, p, clicks(t, 2))
	res = append(res, forward(t, p, clicks(t, 1))...)
	for _, r := range res {
		texts = append(texts, r.Reason)
	}
	unreachable := connect(t, &HubSpot{log: h.log}, config("http://"+closedAddr(t)+"/"+token, ""))
	for _, r := range forward(t, unreachable, clicks(t, 1)) {
		texts = append(texts, r.Reason)
	}
	for _, bad := range []string{`{"access_token":"` + token + ` x","conversion_event":"e"}`, `{"access_token":"` + token + `","conversion_event":"e","base_url":"x"}`} {
		if err := sdktest.Connect(t, &HubSpot{log: h.log}).Configure(context.Background(), json.RawMessage(bad)); err != nil {
			texts = append(texts, err.Error())
		}
	}
	texts = append(texts, log.String())
	for _, s := range texts {
		if strings.Contains(s, token) {
			t.Errorf("the access token leaked: %s", s)
		}
	}
	if len(texts) < 6 {
		t.Errorf("only %d texts checked", len(texts))
	}
}

func TestForwardBeforeConfigure(t *testing.T) {
	if _, err := (&HubSpot{}).Forward(context.Background(), clicks(t, 1)); err == nil {
		t.Fatal("Forward before Configure succeeded")
	}
}

// Hostile error bodies: parsing never fails and the summary is one bounded line.
func TestParseAPIError(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
	}{
		{"documented", `{"status":"error","message":"Invalid input","correlationId":"c-1","category":"VALIDATION_ERROR","errors":[{"message":"x is bad","code":"INVALID","in":"x","context":{"propertyName":["x"]}}]}`,
			[]string{"400 VALIDATION_ERROR: Invalid input; x is bad [INVALID] propertyName=x (correlationId c-1)"}},
		{"empty", ``, []string{"400"}},
		{"not JSON", `<html>oops</html>`, []string{"400: <html>oops</html>"}},
		{"JSON array", `[1,2]`, []string{"400: [1,2]"}},
		{"wrong types", `{"message":7,"category":["x"],"errors":"none","context":[]}`, []string{"400"}},
		{"context scalars", `{"message":"m","errors":[{"message":"d","context":{"a":"one","b":2,"c":null,"d":{"x":1}}}]}`, []string{"a=one", "b=2"}},
		{"control characters", `{"message":"line1\nline2\u0000\u001b[31m"}`, []string{"line1 line2"}},
		{"invalid UTF-8", "{\"message\":\"a\xffb\"}", []string{"a b"}},
		{"many errors", `{"message":"m","errors":[{"message":"1"},{"message":"2"},{"message":"3"},{"message":"4"},{"message":"5"}]}`, []string{"; 3", "and 2 more"}},
		{"huge message", `{"message":"` + strings.Repeat("é", 5000) + `"}`, []string{"…"}},
		{"missing scopes", `{"message":"m","context":{"missingScopes":["crm.objects.contacts.write"]}}`, []string{"missing scopes crm.objects.contacts.write"}},
		{"error field", `{"status":"error","error":"RATE_LIMIT"}`, []string{"RATE_LIMIT"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := parseAPIError([]byte(tc.body)).summary(400)
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("summary %q does not contain %q", s, w)
				}
			}
			checkLine(t, s)
		})
	}
}

func checkLine(t testing.TB, s string) {
	t.Helper()
	if len(s) > maxReason+len("…") || !utf8.ValidString(s) || strings.ContainsAny(s, "\n\r\x00\x1b") {
		t.Fatalf("reason is not one bounded, clean line: %q", s)
	}
}

func TestKnownPathsMatchSchemas(t *testing.T) {
	for typ, paths := range knownPaths {
		raw, err := os.ReadFile(filepath.Join("..", "..", "configs", "schemas", typ+".v1.json"))
		if err != nil {
			t.Fatal(err)
		}
		var schema map[string]any
		if err := json.Unmarshal(raw, &schema); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			node := schema
			for _, part := range strings.Split(p, ".") {
				if ref, ok := node["$ref"].(string); ok {
					node = schema["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
				}
				if one, ok := node["oneOf"].([]any); ok {
					ref := one[len(one)-1].(map[string]any)["$ref"].(string)
					node = schema["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
				}
				props, _ := node["properties"].(map[string]any)
				next, ok := props[part].(map[string]any)
				if !ok && part != "" && node["type"] == "object" && props == nil {
					next, ok = map[string]any{}, true // utm in a touch is a free object
				}
				if !ok {
					t.Errorf("%s: %s is not in the schema", typ, p)
					break
				}
				node = next
			}
		}
	}
}

func TestBinary(t *testing.T) {
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
		if d.Name != "hubspot" || d.ProtocolVersion != 1 || d.Version == "" {
			t.Errorf("describe = %+v", d)
		}
		var names []string
		for _, c := range d.Config {
			names = append(names, c.Name)
			switch c.Name {
			case "access_token":
				if !c.Required || !c.Secret {
					t.Errorf("access_token must be required and secret: %+v", c)
				}
			case "base_url":
				if c.Default != "https://api.hubapi.com" {
					t.Errorf("base_url default %v", c.Default)
				}
			case "max_batch":
				if c.Default != 500.0 {
					t.Errorf("max_batch default %v", c.Default)
				}
			case "click_properties":
				if m, _ := c.Default.(map[string]any); m["utm_campaign"] != "utm.campaign" {
					t.Errorf("click_properties default %v", c.Default)
				}
			default:
				if c.Secret {
					t.Errorf("%s is not a secret", c.Name)
				}
			}
		}
		want := []string{"access_token", "base_url", "click_event", "conversion_event", "click_properties", "conversion_properties",
			"url_properties", "matching_property", "upsert_contacts", "contact_properties", "max_batch", "timeout"}
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
		if !errors.As(err, &exit) || exit.ExitCode() == 0 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "clickgate forwarder plugin") {
			t.Fatalf("run without the magic cookie: %v, stdout %q, stderr %q", err, stdout.Bytes(), stderr.Bytes())
		}
	})
}

// buildPlugin builds this plugin once per test binary.
func buildPlugin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	built.Do(func() {
		dir, err := os.MkdirTemp("", "clickgate-hubspot")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "hubspot")
		if out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

var built struct {
	sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
	os.Exit(code)
}

// FuzzParseAPIError: any body parses, and its summary is one bounded, clean line.
func FuzzParseAPIError(f *testing.F) {
	f.Add([]byte(`{"status":"error","message":"m","correlationId":"c","category":"VALIDATION_ERROR","errors":[{"message":"d","code":"X","context":{"p":["a"]}}]}`))
	f.Add([]byte(`{"status":"COMPLETE","errors":[{"context":{"objectWriteTraceId":["0"]}}]}`))
	f.Add([]byte("{\"message\":\"\xff\x00\"}"))
	f.Add([]byte(`[{"message":1}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e := parseAPIError(body)
		checkLine(t, e.summary(400))
		if again := parseAPIError(body); again.key(400) != e.key(400) {
			t.Fatal("the same body gives two keys")
		}
		o := upsertOutcome(answer{status: 207, body: body}, []int{0, 1, 2})
		for k, r := range o.Each {
			if r.Reason == "" || r.Status == delivered {
				t.Fatalf("input %d: %+v", k, r)
			}
			checkLine(t, strings.TrimPrefix(r.Reason, "HubSpot reported an error it tied to no input: "))
		}
	})
}

// FuzzMapEvent: any event either fails with a reason or becomes an occurrence HubSpot
// takes.
func FuzzMapEvent(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc, "06j00000000000000000000001")
	cdoc, _ := json.Marshal(conversion(1))
	f.Add(sdk.TypeConversion, cdoc, "ord-1")
	f.Add(sdk.TypeClick, []byte(`{"identity":{"kind":"customer_id","value":"c"},"time":"2026-01-01T00:00:00Z","utm":{"campaign":1e400}}`), "")
	f.Add(sdk.TypeConversion, []byte(`{"user":{"email":"a@b.c"},"value":12.50,"attribution":{"utm":[1]},"occurred_at":"2026-01-01T00:00:00Z"}`), "x")
	h := &HubSpot{log: slog.New(slog.DiscardHandler)}
	if err := h.Configure(context.Background(), json.RawMessage(`{"access_token":"t","click_event":"pe1_c","conversion_event":"pe1_v",`+
		`"click_properties":{"customer_id":"user.customer_id","campaign":"utm.campaign","destination_url":"destination"},"matching_property":"customer_id",`+
		`"upsert_contacts":true,"contact_properties":{"phone":"user.phone"}}`)); err != nil {
		f.Fatal(err)
	}
	api := &hubspotAPI{matching: "customer_id", urlProps: map[string]bool{"destination_url": true}}
	f.Fuzz(func(t *testing.T, typ string, doc []byte, id string) {
		m, err := h.mapEvent(sdk.Event{ID: id, Type: typ, Time: t0, JSON: doc})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		e := m.event
		e.EventName = clickEvent
		if err := api.checkEvent(apiEvent{EventName: e.EventName, Email: e.Email, OccurredAt: e.OccurredAt, UUID: e.UUID, Properties: e.Properties}); err != nil {
			t.Fatalf("occurrence %+v breaks the contract: %v", m.event, err)
		}
		if _, err := json.Marshal(m.event); err != nil {
			t.Fatal(err)
		}
	})
}
