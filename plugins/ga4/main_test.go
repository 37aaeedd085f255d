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
	measurementID = "G-CG12345XYZ"
	apiSecret     = "Zq8-sEcReT_9vLm2Wx4yAb"
)

// t0 is "now" for the forwarder in these tests.
var t0 = time.Date(2026, 11, 26, 18, 30, 15, 123_456_000, time.UTC)

// mpAPI is a recorder that enforces what the Measurement Protocol documents for a
// request: POST {path}?measurement_id&api_secret, a JSON body under 130 kB with a
// client_id and 1 to 25 events whose names, parameters and values keep the documented
// limits, timestamps within the last 72 hours, and currency whenever value is set. A
// request that breaks a rule fails the test (the real API would answer 2xx and drop
// the data, which is why the forwarder must not send it).
type mpAPI struct {
	*sdktest.Recorder
	t    *testing.T
	path string
	// now is the time timestamps are checked against (zero: the time of the request).
	now time.Time
	// maxAge is how far back timestamps may go (0: any).
	maxAge time.Duration

	mu       sync.Mutex
	requests []mpRequest
}

type mpRequest struct {
	ClientID string `json:"client_id"`
	UserID   string `json:"user_id"`
	UserData *struct {
		Email []string `json:"sha256_email_address"`
		Phone []string `json:"sha256_phone_number"`
	} `json:"user_data"`
	Events []struct {
		Name            string         `json:"name"`
		Params          map[string]any `json:"params"`
		TimestampMicros int64          `json:"timestamp_micros"`
	} `json:"events"`
	size int
}

func newMPAPI(t *testing.T, path string, now time.Time, respond func(n int, r sdktest.Request) sdktest.Reply) *mpAPI {
	a := &mpAPI{t: t, path: path, now: now, maxAge: 72 * time.Hour}
	a.Recorder = sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		req, err := a.check(r)
		if err != nil {
			t.Errorf("recorder: request breaks the Measurement Protocol's documented rules: %v\n%.600s", err, r.Body)
			return sdktest.Reply{Status: 204} // GA4 answers 2xx anyway
		}
		a.mu.Lock()
		n := len(a.requests)
		a.requests = append(a.requests, req)
		a.mu.Unlock()
		if respond == nil {
			return sdktest.Reply{Status: 204}
		}
		return respond(n, r)
	})
	return a
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (a *mpAPI) check(r sdktest.Request) (mpRequest, error) {
	var req mpRequest
	if r.Method != http.MethodPost {
		return req, fmt.Errorf("method %s, want POST", r.Method)
	}
	if r.Path != a.path {
		return req, fmt.Errorf("path %q, want %s", r.Path, a.path)
	}
	q, err := url.ParseQuery(r.Query)
	if err != nil || len(q) != 2 || q.Get("measurement_id") != measurementID || q.Get("api_secret") != apiSecret {
		return req, fmt.Errorf("query %q, want measurement_id and api_secret", r.Query)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return req, fmt.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	if len(r.Body) >= 130_000 {
		return req, fmt.Errorf("body of %d bytes; it must be smaller than 130kB", len(r.Body))
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		return req, fmt.Errorf("body is not a Measurement Protocol payload: %v", err)
	}
	req.size = len(r.Body)
	switch {
	case req.ClientID == "":
		return req, errors.New("no client_id")
	case len([]rune(req.UserID)) > 256:
		return req, errors.New("user_id over 256 characters")
	case len(req.Events) == 0 || len(req.Events) > 25:
		return req, fmt.Errorf("%d events; a request takes 1 to 25", len(req.Events))
	}
	if d := req.UserData; d != nil {
		for _, h := range append(append([]string(nil), d.Email...), d.Phone...) {
			if !hex64.MatchString(h) {
				return req, fmt.Errorf("user_data value %q is not a hex SHA-256", h)
			}
		}
	}
	for i, e := range req.Events {
		if err := checkEventName(e.Name); err != nil {
			return req, fmt.Errorf("event %d: %v", i, err)
		}
		if len(e.Params) > 25 {
			return req, fmt.Errorf("event %d: %d parameters", i, len(e.Params))
		}
		for k, v := range e.Params {
			if err := checkName(k); err != nil {
				return req, fmt.Errorf("event %d parameter: %v", i, err)
			}
			switch x := v.(type) {
			case string:
				if len([]rune(x)) > 100 {
					return req, fmt.Errorf("event %d: parameter %s is %d characters", i, k, len([]rune(x)))
				}
			case float64:
				if math.IsInf(x, 0) || math.IsNaN(x) {
					return req, fmt.Errorf("event %d: parameter %s = %v", i, k, x)
				}
			default:
				return req, fmt.Errorf("event %d: parameter %s is a %T; GA4 takes strings and numbers", i, k, v)
			}
		}
		if _, ok := e.Params["value"]; ok && e.Params["currency"] == nil {
			return req, fmt.Errorf("event %d: value without currency", i)
		}
		if (e.Name == "purchase" || e.Name == "refund") && e.Params["transaction_id"] == nil {
			return req, fmt.Errorf("event %d: %s without transaction_id", i, e.Name)
		}
		now := a.now
		if now.IsZero() {
			now = time.Now()
		}
		ts := time.UnixMicro(e.TimestampMicros)
		if (a.maxAge > 0 && ts.Before(now.Add(-a.maxAge))) || ts.After(now) {
			return req, fmt.Errorf("event %d: timestamp_micros %d (%s) is not within the 72 hours before %s", i, e.TimestampMicros, ts, now)
		}
	}
	return req, nil
}

func (a *mpAPI) Requests() []mpRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]mpRequest(nil), a.requests...)
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

// conversion builds a conversion event document as in configs/schemas/conversion.v1.json.
func conversion(t testing.TB, id, typ, status string, edit func(*sdk.ConversionEvent)) sdk.Event {
	t.Helper()
	v := 49.90
	variant := 1
	src, _, _ := strings.Cut(id, ":")
	c := sdk.ConversionEvent{
		SchemaVersion: 1, EventType: "conversion", EventID: id, ConversionID: "09k00000000000000000000001", SourceEventID: src,
		Type: typ, Status: status, Value: &v, Currency: "EUR",
		OccurredAt: t0.Add(-30 * time.Minute), ReceivedAt: t0.Add(-29 * time.Minute),
		ClickID: "06j00000000000000000000001", VisitorID: "07v00000000000000000000001",
		User: &sdk.User{Email: "Jane.Doe@Gmail.com ", Phone: "+14155550123", CustomerID: "cust-4411"},
		Attribution: &sdk.Touch{ClickID: "06j00000000000000000000001", Slug: "spring26", Campaign: "spring_sale_2026",
			UTM: sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026", Content: "hero_b"}, Variant: &variant,
			ClickTime: t0.Add(-time.Hour), SecondsToConvert: 1800, Credit: 1},
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
	p := sdktest.Connect(t, &GA4{now: func() time.Time { return t0 }, stderr: log})
	if err := p.Configure(context.Background(), json.RawMessage(config)); err != nil {
		t.Fatal(err)
	}
	return p, log
}

func config(base, extra string) string {
	return `{"measurement_id":"` + measurementID + `","api_secret":"` + apiSecret + `","base_url":"` + base + `"` + extra + `}`
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

// Hashes computed independently (printf '%s' VALUE | sha256sum) of the values as GA4
// normalises them: trimmed, lowercased, periods removed before @gmail.com, phones in
// E.164 with the '+'.
const (
	hashJaneGmail = "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69" // janedoe@gmail.com
	hashJaneOther = "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d" // jane.doe@example.com
	hashPhone     = "36a2cef4ff9bf7a1abd2a93359136b870393be4106e6c5d19b72ff564f9deca4" // +14155550123
)

func TestHashing(t *testing.T) {
	cases := []struct {
		name, in, norm, hash string
		phone                bool
	}{
		{"gmail periods removed", " Jane.Doe@Gmail.com ", "janedoe@gmail.com", hashJaneGmail, false},
		{"googlemail periods removed", "j.a.n.e.doe@googlemail.com", "janedoe@googlemail.com", "", false},
		{"other domains keep periods", "Jane.Doe@Example.com", "jane.doe@example.com", hashJaneOther, false},
		{"E.164 keeps its plus", "+14155550123", "+14155550123", hashPhone, true},
		{"formatting dropped", "+1 (415) 555-0123", "+14155550123", hashPhone, true},
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
			if !ok || got != tc.norm {
				t.Fatalf("normalised %q to %q (%v), want %q", tc.in, got, ok, tc.norm)
			}
			if tc.hash != "" && sha256Hex(got) != tc.hash {
				t.Errorf("sha256(%q) = %s, want %s", got, sha256Hex(got), tc.hash)
			}
		})
	}
	for _, bad := range []string{"", "no-at-sign", "@gmail.com", "jane@", "...@gmail.com", "a b@example.com"} {
		if got, ok := normalizeEmail(bad); ok {
			t.Errorf("email %q normalised to %q, want refused", bad, got)
		}
	}
	for _, bad := range []string{"", "4155550123", "+0155550123", "+1415555012345678", "+1 415 CALL NOW", "tel:+14155550123"} {
		if got, ok := normalizePhone(bad); ok {
			t.Errorf("phone %q normalised to %q, want refused", bad, got)
		}
	}
}

func TestClickMapping(t *testing.T) {
	api := newMPAPI(t, "/mp/collect", t0, nil)
	p, _ := connect(t, config(api.URL, ""))
	full := click(1)
	variant := 2
	full.Variant = &variant
	full.UTM.Content, full.UTM.Term = "hero_banner", "shoes"
	full.User = &sdk.User{Email: "jane.doe@gmail.com", Phone: "+14155550123", CustomerID: "cust-4411"} // operator opted in
	plain := click(2)
	plain.Destination = "https://shop.example.com/p?q=" + strings.Repeat("a", 120)
	wantStatus(t, forward(t, p, []sdk.Event{clickEvent(t, full), clickEvent(t, plain)}), sdk.StatusDelivered, sdk.StatusDelivered)

	reqs := api.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want one per visitor", len(reqs))
	}
	r := reqs[0]
	if r.ClientID != full.VisitorID || r.UserID != "cust-4411" || r.UserData == nil ||
		!reflect.DeepEqual(r.UserData.Email, []string{hashJaneGmail}) || !reflect.DeepEqual(r.UserData.Phone, []string{hashPhone}) {
		t.Errorf("request identity = %+v %+v", r, r.UserData)
	}
	e := r.Events[0]
	if e.Name != "sms_link_click" || e.TimestampMicros != full.Time.UnixMicro() {
		t.Errorf("event %s at %d", e.Name, e.TimestampMicros)
	}
	want := map[string]any{
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_banner", "utm_term": "shoes",
		"click_id": full.ClickID, "link_slug": "spring26", "clickgate_campaign": "spring_sale_2026", "variant": 2.0,
		"link_domain": "shop.example.com", "link_url": full.Destination, "clickgate_event_id": full.EventID,
	}
	if !reflect.DeepEqual(e.Params, want) {
		t.Errorf("params\n got %v\nwant %v", e.Params, want)
	}
	if r := reqs[1]; r.UserID != "" || r.UserData != nil {
		t.Errorf("a click without user data sent identifiers: %+v", r)
	}
	if _, ok := reqs[1].Events[0].Params["link_url"]; ok {
		t.Error("a destination over 100 characters was sent cut short")
	}

	t.Run("click_event", func(t *testing.T) {
		api := newMPAPI(t, "/mp/collect", t0, nil)
		p, _ := connect(t, config(api.URL, `,"click_event":"text_link_tap"`))
		wantStatus(t, forward(t, p, []sdk.Event{clickEvent(t, click(1))}), sdk.StatusDelivered)
		if got := api.Requests()[0].Events[0].Name; got != "text_link_tap" {
			t.Errorf("event %q", got)
		}
	})
}

func TestConversionMapping(t *testing.T) {
	api := newMPAPI(t, "/mp/collect", t0, nil)
	p, _ := connect(t, config(api.URL, `,"event_names":{"call":"phone_call_lead"}`))
	noUser := func(c *sdk.ConversionEvent) { c.User, c.VisitorID = nil, "" }
	// A reversal is stamped when it happened, which GA4 takes however long ago the
	// purchase was (past its 72-hour window here).
	changed := t0.Add(-30 * time.Minute)
	reversed := func(c *sdk.ConversionEvent) { c.OccurredAt, c.StatusChangedAt = t0.Add(-10*24*time.Hour), changed }
	evs := []sdk.Event{
		conversion(t, "ord-1001", "purchase", "approved", nil),
		conversion(t, "ord-1001:refunded", "purchase", "refunded", reversed),
		conversion(t, "lead-7", "lead", "approved", func(c *sdk.ConversionEvent) { c.Value, c.Currency = nil, "" }),
		conversion(t, "lead-7:rejected", "lead", "rejected", func(c *sdk.ConversionEvent) { c.Value, c.Currency = nil, ""; reversed(c) }),
		conversion(t, "sig-1", "signup", "approved", noUser),
		conversion(t, "call-1", "call", "approved", nil),
		conversion(t, "demo-1", "book_demo", "approved", func(c *sdk.ConversionEvent) { c.Attribution = nil; c.Reason = "no click" }),
	}
	res := forward(t, p, evs)
	wantStatus(t, res, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered)

	got := map[string]mpRequest{}
	for _, r := range api.Requests() {
		for _, e := range r.Events {
			one := r
			one.Events = append(one.Events[:0:0], e)
			got[e.Params["clickgate_event_id"].(string)] = one
		}
	}
	attributed := map[string]any{"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_b",
		"click_id": "06j00000000000000000000001", "link_slug": "spring26", "clickgate_campaign": "spring_sale_2026", "seconds_to_convert": 1800.0, "variant": 1.0}
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
		id, name, client string
		params           map[string]any
	}{
		{"ord-1001", "purchase", "07v00000000000000000000001", with(map[string]any{"value": 49.9, "currency": "EUR", "transaction_id": "ord-1001"}, attributed)},
		{"ord-1001:refunded", "refund", "07v00000000000000000000001", with(map[string]any{"value": 49.9, "currency": "EUR", "transaction_id": "ord-1001", "conversion_type": "purchase"}, attributed)},
		{"lead-7", "generate_lead", "07v00000000000000000000001", with(map[string]any{"conversion_type": "lead"}, attributed)},
		{"lead-7:rejected", "generate_lead_rejected", "07v00000000000000000000001", with(map[string]any{"conversion_type": "lead"}, attributed)},
		// No visitor_id: the attributed click's ID stands in for GA4's client_id.
		{"sig-1", "sign_up", "06j00000000000000000000001", with(map[string]any{"value": 49.9, "currency": "EUR", "conversion_type": "signup"}, attributed)},
		{"call-1", "phone_call_lead", "07v00000000000000000000001", with(map[string]any{"value": 49.9, "currency": "EUR", "conversion_type": "call"}, attributed)},
		{"demo-1", "book_demo", "07v00000000000000000000001", map[string]any{"value": 49.9, "currency": "EUR"}},
	}
	for _, tc := range cases {
		r, ok := got[tc.id]
		if !ok {
			t.Errorf("%s was not sent", tc.id)
			continue
		}
		e := r.Events[0]
		tc.params["clickgate_event_id"] = tc.id
		if e.Name != tc.name || r.ClientID != tc.client || !reflect.DeepEqual(e.Params, tc.params) || e.TimestampMicros != t0.Add(-30*time.Minute).UnixMicro() {
			t.Errorf("%s:\n got %s client %s %v at %d\nwant %s client %s %v", tc.id, e.Name, r.ClientID, e.Params, e.TimestampMicros, tc.name, tc.client, tc.params)
		}
		if tc.id == "sig-1" {
			if r.UserData != nil || r.UserID != "" {
				t.Errorf("sig-1 sent identifiers it does not carry: %+v", r)
			}
			continue
		}
		if r.UserID != "cust-4411" || r.UserData == nil || r.UserData.Email[0] != hashJaneGmail || r.UserData.Phone[0] != hashPhone {
			t.Errorf("%s: user_id %q user_data %+v", tc.id, r.UserID, r.UserData)
		}
	}
}

// Every way an event can break GA4's documented rules fails that event alone, with
// a reason; the others are delivered in the same call.
func TestHostileEventsFailAlone(t *testing.T) {
	longOrder := strings.Repeat("o", 101)
	cases := []struct {
		name  string
		event sdk.Event
		why   string
	}{
		{"not JSON", sdk.Event{ID: "x", Type: sdk.TypeClick, JSON: json.RawMessage(`{"event_id":`)}, "not valid JSON"},
		{"unknown type", sdk.Event{ID: "x", Type: "pageview", JSON: json.RawMessage(`{}`)}, "not click or conversion"},
		{"click without visitor", func() sdk.Event { c := click(3); c.VisitorID = ""; return clickEvent(t, c) }(), "client_id"},
		{"click without time", func() sdk.Event {
			c := click(3)
			c.Time = time.Time{}
			e := clickEvent(t, c)
			e.Time = time.Time{}
			return e
		}(), "no time"},
		{"click older than 72 hours", func() sdk.Event { c := click(3); c.Time = t0.Add(-73 * time.Hour); return clickEvent(t, c) }(), "72 hours"},
		{"click from the future", func() sdk.Event { c := click(3); c.Time = t0.Add(time.Hour); return clickEvent(t, c) }(), "future"},
		{"reserved conversion name", conversion(t, "e-1", "error", "approved", nil), "reserved"},
		{"value without currency", conversion(t, "v-1", "purchase", "approved", func(c *sdk.ConversionEvent) { c.Currency = "" }), "currency"},
		{"bad currency", conversion(t, "v-2", "purchase", "approved", func(c *sdk.ConversionEvent) { c.Currency = "euro" }), "ISO 4217"},
		{"transaction_id over 100", conversion(t, longOrder, "purchase", "approved", nil), "transaction_id"},
		{"unknown status", conversion(t, "s-1", "lead", "pending", nil), "status"},
		{"name too long with status", conversion(t, "n-1:refunded", "a_conversion_type_of_thirty_three", "refunded", nil), "not a GA4 name"},
		{"no identity at all", conversion(t, "", "lead", "approved", func(c *sdk.ConversionEvent) {
			c.VisitorID, c.ClickID, c.ConversionID, c.Attribution = "", "", "", nil
		}), "client_id"},
	}
	api := newMPAPI(t, "/mp/collect", t0, nil)
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
			sent := 0
			for _, r := range api.Requests()[before:] {
				sent += len(r.Events)
			}
			if sent != 2 {
				t.Errorf("%d events sent, want the 2 good ones", sent)
			}
		})
	}
	if strings.Contains(log.String(), apiSecret) {
		t.Error("the API secret is in the log")
	}

	t.Run("send_late_events", func(t *testing.T) {
		api := newMPAPI(t, "/mp/collect", t0, nil)
		api.maxAge = 0 // GA4 takes a late event and records it at 72 hours ago
		p, _ := connect(t, config(api.URL, `,"send_late_events":true`))
		late := click(4)
		late.Time = t0.Add(-80 * time.Hour)
		wantStatus(t, forward(t, p, []sdk.Event{clickEvent(t, late)}), sdk.StatusDelivered)
		if r := api.Requests(); len(r) != 1 || r[0].Events[0].TimestampMicros != late.Time.UnixMicro() {
			t.Errorf("a late event with send_late_events: %+v", r)
		}
	})

	t.Run("clock skew", func(t *testing.T) {
		m, err := (&GA4{cfg: Config{ClickEvent: defaultClickEvent}}).mapEvent(func() sdk.Event { c := click(3); c.Time = t0.Add(20 * time.Second); return clickEvent(t, c) }(), t0)
		if err != nil || !strings.Contains(string(m.event), fmt.Sprint(t0.UnixMicro())) {
			t.Errorf("an event 20s ahead is sent as now: %s, %v", m.event, err)
		}
	})
}

func TestBatching(t *testing.T) {
	api := newMPAPI(t, "/mp/collect", t0, nil)
	p, _ := connect(t, config(api.URL, ""))
	var evs []sdk.Event
	for i := range 60 {
		c := click(i)
		c.VisitorID = "07v00000000000000000000aaa" // one visitor: one identity, batches of 25
		evs = append(evs, clickEvent(t, c))
	}
	for i := range 3 {
		evs = append(evs, clickEvent(t, click(100+i))) // three other visitors
	}
	res := forward(t, p, evs)
	for i := range res {
		if res[i].Status != sdk.StatusDelivered {
			t.Fatalf("result %d = %+v", i, res[i])
		}
	}
	var sizes []int
	var order []string
	for _, r := range api.Requests() {
		sizes = append(sizes, len(r.Events))
		for _, e := range r.Events {
			order = append(order, e.Params["clickgate_event_id"].(string))
		}
	}
	if !reflect.DeepEqual(sizes, []int{25, 25, 10, 1, 1, 1}) {
		t.Errorf("request sizes %v, want 25, 25, 10 for the visitor and one each for the others", sizes)
	}
	for i, e := range evs {
		if order[i] != e.ID {
			t.Fatalf("event %d sent as %s, want %s: the order changed", i, order[i], e.ID)
		}
	}
}

func TestPackUnderByteLimit(t *testing.T) {
	gr := &group{head: request{ClientID: "c"}}
	ev := json.RawMessage(`{"name":"x","params":{"p":"` + strings.Repeat("a", 9000) + `"},"timestamp_micros":1}`)
	for range 40 {
		gr.events = append(gr.events, ev)
	}
	batches := gr.pack()
	total := 0
	for _, b := range batches {
		evs := make([]json.RawMessage, len(b))
		for j, k := range b {
			evs[j] = gr.events[k]
		}
		body, _ := gr.head.body(evs)
		if len(body) >= maxBodyBytes || len(b) > maxEventsPerRequest {
			t.Errorf("batch of %d events is %d bytes", len(b), len(body))
		}
		total += len(b)
	}
	if total != 40 || len(batches) != 3 {
		t.Errorf("%d batches carrying %d events, want 3 carrying 40", len(batches), total)
	}
}

func TestStatus(t *testing.T) {
	date := func(now time.Time) string { return now.Add(90 * time.Second).UTC().Format(http.TimeFormat) }
	cases := []struct {
		name    string
		status  int
		header  func(now time.Time) http.Header
		body    string
		want    sdk.Status
		after   time.Duration
		inWhy   string
		refused bool
	}{
		{name: "204", status: 204, want: sdk.StatusDelivered},
		{name: "200", status: 200, want: sdk.StatusDelivered},
		{name: "400", status: 400, body: `{"error":"bad"}`, want: sdk.StatusFailed, inWhy: "400"},
		{name: "401", status: 401, want: sdk.StatusFailed, inWhy: "api_secret"},
		{name: "403", status: 403, want: sdk.StatusFailed, inWhy: "measurement_id"},
		{name: "404", status: 404, want: sdk.StatusFailed, inWhy: "404"},
		{name: "408", status: 408, want: sdk.StatusRetry, inWhy: "408"},
		{name: "429 Retry-After seconds", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"7"}} }, want: sdk.StatusRetry, after: 7 * time.Second, inWhy: "429"},
		{name: "429 Retry-After date", status: 429, header: func(n time.Time) http.Header { return http.Header{"Retry-After": {date(n)}} }, want: sdk.StatusRetry, after: 90 * time.Second},
		{name: "429 Retry-After garbage", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"soon"}} }, want: sdk.StatusRetry},
		{name: "500", status: 500, want: sdk.StatusRetry, inWhy: "500"},
		{name: "503 Retry-After", status: 503, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"120"}} }, want: sdk.StatusRetry, after: 2 * time.Minute},
		{name: "connection refused", refused: true, want: sdk.StatusRetry, inWhy: "POST"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Truncate(time.Second)
			api := newMPAPI(t, "/mp/collect", t0, func(int, sdktest.Request) sdktest.Reply {
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
			log := &syncBuffer{}
			p := sdktest.Connect(t, &GA4{now: func() time.Time { return now }, stderr: log})
			if err := p.Configure(context.Background(), json.RawMessage(config(base, ""))); err != nil {
				t.Fatal(err)
			}
			evs := make([]sdk.Event, 2)
			for i := range evs {
				c := click(i + 1)
				c.Time = now.Add(-time.Minute)
				evs[i] = clickEvent(t, c)
			}
			api.now = now
			for i, r := range forward(t, p, evs) {
				want := tc.want
				if i > 0 && want == sdk.StatusRetry {
					want = sdk.StatusNotSent // its request was not sent after the first's
				}
				if r.Status != want || r.RetryAfter != tc.after || !strings.Contains(r.Reason, tc.inWhy) {
					t.Errorf("result %d = %+v, want status %d after %v reason containing %q", i, r, want, tc.after, tc.inWhy)
				}
				if strings.Contains(r.Reason, apiSecret) {
					t.Errorf("result %d reason %q holds the API secret", i, r.Reason)
				}
			}
			if strings.Contains(log.String(), apiSecret) {
				t.Errorf("the log holds the API secret:\n%s", log.String())
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

func TestRetryStopsTheCall(t *testing.T) {
	api := newMPAPI(t, "/mp/collect", t0, func(n int, _ sdktest.Request) sdktest.Reply {
		if n == 1 {
			return sdktest.Reply{Status: 429, Header: http.Header{"Retry-After": {"5"}}}
		}
		return sdktest.Reply{Status: 204}
	})
	p, _ := connect(t, config(api.URL, ""))
	var evs []sdk.Event
	for i := range 4 {
		evs = append(evs, clickEvent(t, click(i))) // four visitors: four requests
	}
	res := forward(t, p, evs)
	if n := len(api.Requests()); n != 2 {
		t.Fatalf("%d requests; after a 429 the rest of the call must wait", n)
	}
	wantStatus(t, res, sdk.StatusDelivered, sdk.StatusRetry, sdk.StatusNotSent, sdk.StatusNotSent)
	for _, r := range res[1:] {
		if r.RetryAfter != 5*time.Second {
			t.Errorf("retry %+v, want after 5s", r)
		}
	}
}

// A request is not started when less than config.timeout is left of the call: the
// host would kill the plugin as it ran over and send every event again, and GA4 dedupes
// only purchases.
func TestCallDeadline(t *testing.T) {
	api := newMPAPI(t, "/mp/collect", t0, nil)
	p, _ := connect(t, config(api.URL, `,"timeout":"10s"`))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := p.Forward(ctx, []sdk.Event{clickEvent(t, click(0)), clickEvent(t, click(1))})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, res, sdk.StatusNotSent, sdk.StatusNotSent)
	for _, r := range res {
		if !strings.HasPrefix(r.Reason, "not sent: less than config.timeout") {
			t.Errorf("reason %q", r.Reason)
		}
	}
	if len(api.Requests()) != 0 {
		t.Error("a request was started that could outlive the call")
	}
}

// In debug mode the validation server's messages become per-event results.
func TestDebugMode(t *testing.T) {
	respond := func(body string) func(int, sdktest.Request) sdktest.Reply {
		return func(int, sdktest.Request) sdktest.Reply {
			return sdktest.Reply{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
		}
	}
	sameVisitor := func() []sdk.Event {
		var evs []sdk.Event
		for i := range 3 {
			c := click(i)
			c.VisitorID = "07v00000000000000000000aaa"
			evs = append(evs, clickEvent(t, c))
		}
		return evs
	}
	cases := []struct {
		name string
		body string
		want []sdk.Status
		why  string
	}{
		{"valid", `{"validationMessages":[]}`, []sdk.Status{sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusDelivered}, ""},
		{"one event", `{"validationMessages":[{"fieldPath":"events","description":"Event at index: [1] has invalid name [x!]. Names must start with an alphabetic character.","validationCode":"NAME_INVALID"}]}`,
			[]sdk.Status{sdk.StatusDelivered, sdk.StatusFailed, sdk.StatusDelivered}, "NAME_INVALID"},
		{"field path", `{"validationMessages":[{"fieldPath":"events[2].params.value","description":"bad value","validationCode":"VALUE_INVALID"}]}`,
			[]sdk.Status{sdk.StatusDelivered, sdk.StatusDelivered, sdk.StatusFailed}, "VALUE_INVALID at events[2].params.value"},
		{"whole request", `{"validationMessages":[{"fieldPath":"client_id","description":"Unable to find non-empty parameter [client_id]","validationCode":"VALUE_REQUIRED"}]}`,
			[]sdk.Status{sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed}, "VALUE_REQUIRED"},
		{"not JSON", `<html>oops</html>`, []sdk.Status{sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed}, "not understood"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newMPAPI(t, "/debug/mp/collect", t0, respond(tc.body))
			p, _ := connect(t, config(api.URL, `,"debug":true`))
			res := forward(t, p, sameVisitor())
			wantStatus(t, res, tc.want...)
			for i, r := range res {
				if r.Status == sdk.StatusFailed && !strings.Contains(r.Reason, tc.why) {
					t.Errorf("result %d reason %q does not say %q", i, r.Reason, tc.why)
				}
			}
			if len(api.Requests()) != 1 {
				t.Errorf("%d requests", len(api.Requests()))
			}
		})
	}
}

func TestParseValidation(t *testing.T) {
	cases := []struct {
		name     string
		body     string
		n        int
		perEvent [][]string
		whole    []string
		err      bool
	}{
		{"empty list", `{"validationMessages":[]}`, 2, [][]string{nil, nil}, nil, false},
		{"null list", `{"validationMessages":null}`, 1, [][]string{nil}, nil, false},
		{"by description", `{"validationMessages":[{"fieldPath":"events","description":"Event at index: [0] has invalid name [_bad].","validationCode":"NAME_INVALID"}]}`, 2,
			[][]string{{"NAME_INVALID at events: Event at index: [0] has invalid name [_bad]."}, nil}, nil, false},
		{"by path", `{"validationMessages":[{"fieldPath":"events[1].params.items","validationCode":"VALUE_REQUIRED"}]}`, 2,
			[][]string{nil, {"VALUE_REQUIRED at events[1].params.items"}}, nil, false},
		{"index out of range is the request's", `{"validationMessages":[{"fieldPath":"events[7]","validationCode":"VALUE_INVALID"}]}`, 2,
			[][]string{nil, nil}, []string{"VALUE_INVALID at events[7]"}, false},
		{"huge index", `{"validationMessages":[{"description":"Event at index: [99999999999999999999]","validationCode":"X"}]}`, 1,
			[][]string{nil}, []string{"X: Event at index: [99999999999999999999]"}, false},
		{"control characters cleaned", "{\"validationMessages\":[{\"fieldPath\":\"user_id\",\"description\":\"a\\nb\\u0000c\",\"validationCode\":\"VALUE_INVALID\"}]}", 1,
			[][]string{nil}, []string{"VALUE_INVALID at user_id: a b c"}, false},
		{"no code", `{"validationMessages":[{}]}`, 1, [][]string{nil}, []string{"INVALID"}, false},
		{"empty body", ``, 1, nil, nil, true},
		{"html", `<html></html>`, 1, nil, nil, true},
		{"other object", `{"error":"x"}`, 1, nil, nil, true},
		{"array", `[]`, 1, nil, nil, true},
		{"wrong types", `{"validationMessages":[{"fieldPath":7}]}`, 1, nil, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			per, whole, err := parseValidation([]byte(tc.body), tc.n)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if !reflect.DeepEqual(per, tc.perEvent) || !reflect.DeepEqual(whole, tc.whole) {
				t.Errorf("got %q / %q\nwant %q / %q", per, whole, tc.perEvent, tc.whole)
			}
		})
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct{ name, config, field string }{
		{"non-JSON", `measurement_id=G-X`, "config"},
		{"trailing data", `{"measurement_id":"G-ABCDEF1"} {}`, "config"},
		{"unknown field", `{"measurement_id":"G-ABCDEF1","api_secret":"s","apisecret":"s"}`, "apisecret"},
		{"missing measurement_id", `{"api_secret":"s"}`, "measurement_id"},
		{"UA property", `{"measurement_id":"UA-1234-1","api_secret":"s"}`, "measurement_id"},
		{"stream ID", `{"measurement_id":"1234567890","api_secret":"s"}`, "measurement_id"},
		{"missing api_secret", `{"measurement_id":"G-ABCDEF1"}`, "api_secret"},
		{"api_secret with newline", `{"measurement_id":"G-ABCDEF1","api_secret":"s\n"}`, "api_secret"},
		{"api_secret not a string", `{"measurement_id":"G-ABCDEF1","api_secret":123}`, "api_secret"},
		{"ftp base_url", `{"measurement_id":"G-ABCDEF1","api_secret":"s","base_url":"ftp://x"}`, "base_url"},
		{"base_url with path", `{"measurement_id":"G-ABCDEF1","api_secret":"s","base_url":"https://www.google-analytics.com/mp/collect"}`, "base_url"},
		{"base_url with query", `{"measurement_id":"G-ABCDEF1","api_secret":"s","base_url":"https://x.example?a=1"}`, "base_url"},
		{"click_event click", `{"measurement_id":"G-ABCDEF1","api_secret":"s","click_event":"click"}`, "click_event"},
		{"click_event with space", `{"measurement_id":"G-ABCDEF1","api_secret":"s","click_event":"link click"}`, "click_event"},
		{"click_event too long", `{"measurement_id":"G-ABCDEF1","api_secret":"s","click_event":"` + strings.Repeat("a", 41) + `"}`, "click_event"},
		{"click_event reserved prefix", `{"measurement_id":"G-ABCDEF1","api_secret":"s","click_event":"ga_click"}`, "click_event"},
		{"event_names bad type", `{"measurement_id":"G-ABCDEF1","api_secret":"s","event_names":{"Purchase!":"purchase"}}`, "event_names"},
		{"event_names reserved", `{"measurement_id":"G-ABCDEF1","api_secret":"s","event_names":{"lead":"first_visit"}}`, "event_names.lead"},
		{"bad timeout", `{"measurement_id":"G-ABCDEF1","api_secret":"s","timeout":"soon"}`, "timeout"},
		{"huge timeout", `{"measurement_id":"G-ABCDEF1","api_secret":"s","timeout":"1h"}`, "timeout"},
		{"debug not a bool", `{"measurement_id":"G-ABCDEF1","api_secret":"s","debug":"yes"}`, "debug"},
	}
	p := sdktest.Connect(t, &GA4{stderr: &syncBuffer{}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Configure(context.Background(), json.RawMessage(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Configure(%s) = %v, want an error naming %s", tc.config, err, tc.field)
			}
		})
	}
	secret := `{"measurement_id":"G-ABCDEF1","api_secret":"` + apiSecret + `","timeout":5}`
	if err := p.Configure(context.Background(), json.RawMessage(secret)); err == nil || strings.Contains(err.Error(), apiSecret) {
		t.Errorf("a bad config's error %v must not repeat the secret", err)
	}
	if err := p.Configure(context.Background(), json.RawMessage(`{"measurement_id":"G-ABCDEF1","api_secret":"s"}`)); err != nil {
		t.Errorf("measurement_id and api_secret alone are a valid configuration: %v", err)
	}
}

func TestForwardBeforeConfigure(t *testing.T) {
	if _, err := (&GA4{}).Forward(context.Background(), []sdk.Event{clickEvent(t, click(1))}); err == nil {
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
		if d.Name != "ga4" || d.ProtocolVersion != 1 || d.Version == "" || d.Description == "" {
			t.Errorf("describe = %+v", d)
		}
		var names []string
		for _, c := range d.Config {
			names = append(names, c.Name)
			switch c.Name {
			case "measurement_id":
				if !c.Required || c.Secret {
					t.Errorf("measurement_id: %+v", c)
				}
			case "api_secret":
				if !c.Required || !c.Secret {
					t.Errorf("api_secret must be required and secret: %+v", c)
				}
			case "base_url":
				if c.Default != defaultBaseURL {
					t.Errorf("base_url default %v", c.Default)
				}
			case "click_event":
				if c.Default != "sms_link_click" {
					t.Errorf("click_event default %v", c.Default)
				}
			case "timeout":
				if c.Default != "10s" {
					t.Errorf("timeout default %v", c.Default)
				}
			}
		}
		want := []string{"measurement_id", "api_secret", "base_url", "click_event", "event_names", "debug", "send_late_events", "timeout"}
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
		dir, err := os.MkdirTemp("", "clickgate-ga4")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "ga4")
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

// FuzzParseValidation: any answer is either an error or per-event and request reasons
// for exactly n events, none of them empty or multi-line.
func FuzzParseValidation(f *testing.F) {
	f.Add([]byte(`{"validationMessages":[{"fieldPath":"events","description":"Event at index: [0] has invalid name [_x].","validationCode":"NAME_INVALID"}]}`), uint8(2))
	f.Add([]byte(`{"validationMessages":[{"fieldPath":"events[3].params","validationCode":"VALUE_INVALID"},{"fieldPath":"client_id"}]}`), uint8(4))
	f.Add([]byte(`{"validationMessages":[]}`), uint8(0))
	f.Add([]byte(`{"validationMessages":null}`), uint8(1))
	f.Add([]byte("\x00\xff"), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, n uint8) {
		per, whole, err := parseValidation(body, int(n))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		if len(per) != int(n) {
			t.Fatalf("%d per-event lists for %d events", len(per), n)
		}
		for _, r := range append(append([]string(nil), whole...), flatten(per)...) {
			if r == "" || strings.ContainsAny(r, "\n\r\x00") || len([]rune(r)) > maxReasonLen {
				t.Fatalf("reason %q", r)
			}
		}
	})
}

func flatten(ss [][]string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

// FuzzMapEvent: any event either fails with a reason or becomes an event and a request
// identity that keep every rule the recorder enforces.
func FuzzMapEvent(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc, "06j00000000000000000000001")
	conv := conversion(f, "ord-1", "purchase", "approved", nil)
	f.Add(sdk.TypeConversion, []byte(conv.JSON), "ord-1")
	f.Add(sdk.TypeConversion, []byte(`{"type":"x","status":"refunded","value":1e308,"currency":"USD","visitor_id":"v","occurred_at":"2026-11-26T18:00:00Z"}`), "x")
	f.Add(sdk.TypeConversion, []byte(`{"type":"purchase","user":{"email":"A.B@GMAIL.COM","phone":"+1 415 555 0123"},"click_id":"c","occurred_at":"2026-11-26T18:00:00Z"}`), "")
	f.Add(sdk.TypeClick, []byte(`{"visitor_id":"v","time":"2026-11-26T18:00:00Z","utm":{"campaign":"`+strings.Repeat("é", 150)+`"}}`), "")
	g := &GA4{cfg: Config{ClickEvent: defaultClickEvent}, names: defaultEventNames}
	f.Fuzz(func(t *testing.T, typ string, doc []byte, id string) {
		m, err := g.mapEvent(sdk.Event{ID: id, Type: typ, Time: t0, JSON: doc}, t0)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		body, err := m.body([]json.RawMessage{m.event})
		if err != nil {
			t.Fatal(err)
		}
		a := &mpAPI{t: t, path: "/mp/collect", now: t0, maxAge: 72 * time.Hour}
		q := url.Values{"measurement_id": {measurementID}, "api_secret": {apiSecret}}.Encode()
		if _, err := a.check(sdktest.Request{Method: "POST", Path: "/mp/collect", Query: q,
			Header: http.Header{"Content-Type": {"application/json"}}, Body: body}); err != nil {
			t.Fatalf("mapped to an invalid request: %v\n%s", err, body)
		}
	})
}
