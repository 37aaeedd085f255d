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

const apiKey = "att_live_8c1e5b2a9f0d4e7c6b3a1d2e9f8c7b6a"

// attentiveAPI is a recorder that enforces what Attentive documents for
// POST /v1/events/custom and POST /v1/events/ecommerce/purchase. A request that breaks
// a rule fails the test and is answered 400, as Attentive would.
type attentiveAPI struct {
	*sdktest.Recorder

	mu        sync.Mutex
	custom    []apiCustom
	purchases []apiPurchase
}

type apiUser struct {
	Phone               string `json:"phone"`
	Email               string `json:"email"`
	ExternalIdentifiers *struct {
		ClientUserID      string `json:"clientUserId"`
		CustomIdentifiers []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"customIdentifiers"`
	} `json:"externalIdentifiers"`
}

// apiCustom is a CustomEventsRequest as the recorder decoded it, unknown fields refused.
type apiCustom struct {
	Type            string         `json:"type"`
	Properties      map[string]any `json:"properties"`
	ExternalEventID string         `json:"externalEventId"`
	OccurredAt      string         `json:"occurredAt"`
	User            *apiUser       `json:"user"`
}

// apiPurchase is a PurchaseRequest as the recorder decoded it.
type apiPurchase struct {
	Items []struct {
		ProductID        string `json:"productId"`
		ProductVariantID string `json:"productVariantId"`
		ProductImage     string `json:"productImage"`
		ProductURL       string `json:"productUrl"`
		Name             string `json:"name"`
		Price            []struct {
			Value    *float64 `json:"value"`
			Currency string   `json:"currency"`
		} `json:"price"`
		Quantity int64 `json:"quantity"`
	} `json:"items"`
	OrderID      string `json:"orderId"`
	SalesChannel *struct {
		ChannelType string `json:"channelType"`
	} `json:"salesChannel"`
	OccurredAt string   `json:"occurredAt"`
	User       *apiUser `json:"user"`
}

// newAttentiveAPI starts the recorder; respond answers the n-th valid request (from 0),
// nil answers 200.
func newAttentiveAPI(t *testing.T, respond func(n int, r sdktest.Request) sdktest.Reply) *attentiveAPI {
	a := &attentiveAPI{}
	a.Recorder = sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		if err := a.check(r); err != nil {
			t.Errorf("recorder: request breaks Attentive's contract: %v", err)
			return sdktest.Reply{Status: 400, Body: `{"message":` + quote(err.Error()) + `}`}
		}
		a.mu.Lock()
		n := len(a.custom) + len(a.purchases) - 1 // check recorded this request
		a.mu.Unlock()
		if respond == nil {
			return sdktest.Reply{Status: 200}
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

func (a *attentiveAPI) check(r sdktest.Request) error {
	if err := checkRequest(r); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	switch r.Path {
	case "/v1/events/custom":
		var ev apiCustom
		if err := dec.Decode(&ev); err != nil || dec.More() {
			return fmt.Errorf("body is not a CustomEventsRequest: %v", err)
		}
		if err := checkCustom(ev); err != nil {
			return err
		}
		a.mu.Lock()
		a.custom = append(a.custom, ev)
		a.mu.Unlock()
	case "/v1/events/ecommerce/purchase":
		var p apiPurchase
		if err := dec.Decode(&p); err != nil || dec.More() {
			return fmt.Errorf("body is not a PurchaseRequest: %v", err)
		}
		if err := checkPurchase(p); err != nil {
			return err
		}
		a.mu.Lock()
		a.purchases = append(a.purchases, p)
		a.mu.Unlock()
	default:
		return fmt.Errorf("path %q", r.Path)
	}
	return nil
}

func checkRequest(r sdktest.Request) error {
	switch {
	case r.Method != http.MethodPost:
		return fmt.Errorf("method %s, want POST", r.Method)
	case r.Query != "":
		return fmt.Errorf("query %q", r.Query)
	case r.Header.Get("Authorization") != "Bearer "+apiKey:
		return fmt.Errorf("authorization %q, want Bearer and the API key", r.Header.Get("Authorization"))
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fmt.Errorf("content type %q, want application/json", r.Header.Get("Content-Type"))
	}
	return nil
}

func checkCustom(ev apiCustom) error {
	switch {
	case ev.Type == "" || strings.ContainsAny(ev.Type, `"'(){}[]\|,`):
		return fmt.Errorf("type %q is empty or has a character Attentive forbids", ev.Type)
	case ev.ExternalEventID == "":
		return errors.New("no externalEventId: redeliveries would be counted twice")
	case len(ev.Properties) > 200:
		return fmt.Errorf("%d property keys, over 200", len(ev.Properties))
	}
	for k, v := range ev.Properties {
		if k == "" || strings.ContainsAny(k, `"{}[]\|`) {
			return fmt.Errorf("property key %q has a character Attentive forbids", k)
		}
		switch v.(type) {
		case map[string]any, []any:
			return fmt.Errorf("property %s is a list or object, which Attentive's text messages cannot use", k)
		}
	}
	if err := checkTime(ev.OccurredAt); err != nil {
		return err
	}
	return checkUser(ev.User)
}

func checkPurchase(p apiPurchase) error {
	if len(p.Items) == 0 {
		return errors.New("items is required")
	}
	for i, it := range p.Items {
		if it.ProductID == "" || it.ProductVariantID == "" || len(it.Price) == 0 {
			return fmt.Errorf("item %d: productId, productVariantId and price are required", i)
		}
		for _, pr := range it.Price {
			if pr.Value == nil || (pr.Currency != "" && !isoCode.MatchString(pr.Currency)) {
				return fmt.Errorf("item %d: price %+v", i, pr)
			}
		}
	}
	if err := checkTime(p.OccurredAt); err != nil {
		return err
	}
	return checkUser(p.User)
}

func checkTime(s string) error {
	if s == "" {
		return nil
	}
	if _, err := time.Parse(time.RFC3339, s); err != nil {
		return fmt.Errorf("occurredAt %q is not RFC 3339 with an offset", s)
	}
	return nil
}

func checkUser(u *apiUser) error {
	switch {
	case u == nil:
		return errors.New("user is required")
	case u.Phone == "" && u.Email == "" && u.ExternalIdentifiers == nil:
		return errors.New("user needs a phone, an email or external identifiers")
	case u.Phone != "" && !e164RE.MatchString(u.Phone):
		return fmt.Errorf("phone %q is not E.164", u.Phone)
	case u.ExternalIdentifiers != nil && u.ExternalIdentifiers.ClientUserID == "" && len(u.ExternalIdentifiers.CustomIdentifiers) == 0:
		return errors.New("externalIdentifiers is empty")
	}
	return nil
}

// Custom returns the custom events received so far.
func (a *attentiveAPI) Custom() []apiCustom {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apiCustom(nil), a.custom...)
}

// Purchases returns the purchases received so far.
func (a *attentiveAPI) Purchases() []apiPurchase {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]apiPurchase(nil), a.purchases...)
}

func (a *attentiveAPI) byID() map[string]apiCustom {
	m := map[string]apiCustom{}
	for _, e := range a.Custom() {
		m[e.ExternalEventID] = e
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

// connect runs a behind the real gRPC server and configures it.
func connect(t *testing.T, a *Attentive, config string) forwarder {
	t.Helper()
	if a.stderr == nil {
		a.stderr = testWriter{t}
	}
	p := sdktest.Connect(t, a)
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

// config is a configuration for the recorder, at Attentive's full rate for tests.
func config(base, extra string) string {
	return `{"api_key":"` + apiKey + `","base_url":"` + base + `","max_rate":150` + extra + `}`
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
	api := newAttentiveAPI(t, nil)
	p := connect(t, &Attentive{}, config(api.URL, ""))

	withID := click(1)
	variant := 2
	withID.Variant, withID.Domain = &variant, "go.brand.com"
	withID.UTM.Content, withID.UTM.Term = "hero_banner", "shoes"
	withUser := click(2)
	withUser.Identity = &sdk.Identity{Kind: "email", Value: "9f86d081884c7d65", Source: "param:e"} // a keyed hash: useless to Attentive
	withUser.User = &sdk.User{Email: "jane@example.com", Phone: "+14155550100", CustomerID: "cust-77"}

	res := forward(t, p, []sdk.Event{event(t, withID), event(t, withUser)})
	wantAll(t, res, 0, 2, sdk.StatusDelivered)
	got := api.byID()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(api.Custom()))
	}
	e := got[withID.EventID]
	if e.Type != "SMS Link Clicked" || e.OccurredAt != "2026-11-26T18:30:15.124Z" {
		t.Errorf("click event %+v", e)
	}
	if u := e.User; u.Phone != "" || u.Email != "" || u.ExternalIdentifiers == nil || u.ExternalIdentifiers.ClientUserID != "cust-1" {
		t.Errorf("user %+v, want the customer ID as clientUserId only", u)
	}
	wantProps := map[string]any{
		"click_id": withID.ClickID, "slug": "spring26", "campaign": "spring_sale_2026", "domain": "go.brand.com",
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_banner", "utm_term": "shoes",
		"destination": "https://shop.example.com/spring?ref=sms&x=1", "variant": 2.0, "new_visitor": false, "bot": false,
	}
	if !reflect.DeepEqual(e.Properties, wantProps) {
		t.Errorf("properties\n got %v\nwant %v", e.Properties, wantProps)
	}
	if u := got[withUser.EventID].User; u.Email != "jane@example.com" || u.Phone != "+14155550100" || u.ExternalIdentifiers.ClientUserID != "cust-77" {
		t.Errorf("user %+v, want the click's user", u)
	}

	t.Run("click_event", func(t *testing.T) {
		api := newAttentiveAPI(t, nil)
		p := connect(t, &Attentive{}, config(api.URL, `,"click_event":"Tapped Text Link"`))
		wantAll(t, forward(t, p, clicks(t, 1)), 0, 1, sdk.StatusDelivered)
		if got := api.Custom()[0].Type; got != "Tapped Text Link" {
			t.Errorf("type %q", got)
		}
	})
}

// A click without an identifier Attentive takes fails alone, with a reason that tells
// the operator how to stop sending clicks or start sending identifiers.
func TestClickWithoutIdentifier(t *testing.T) {
	api := newAttentiveAPI(t, nil)
	p := connect(t, &Attentive{}, config(api.URL, ""))
	evs := clicks(t, 4)
	hashed := click(1)
	hashed.Identity = &sdk.Identity{Kind: "phone", Value: "5e884898da280471", Source: "param:p"}
	evs[1] = event(t, hashed)
	none := click(2)
	none.Identity = nil
	evs[2] = event(t, none)
	badUser := click(3)
	badUser.Identity, badUser.User = nil, &sdk.User{Email: "not-an-address"}
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
	if !strings.Contains(res[3].Reason, "email is not an address") {
		t.Errorf("a dropped email must be named: %q", res[3].Reason)
	}
	if got := api.Custom(); len(got) != 1 {
		t.Errorf("%d requests, want only the identifiable click", len(got))
	}
}

func TestConversionMapping(t *testing.T) {
	jane := &sdk.User{Email: "jane@example.com", Phone: "+4915123456789"}
	onlyID := conv("sig-77", "signup", "approved", nil, nil)
	onlyID.Identities = []sdk.Identity{{Kind: "email", Value: "9f86d081", Source: "conversion"}, {Kind: "customer_id", Value: "cust-9", Source: "conversion"}}
	onlyID.Value, onlyID.Currency, onlyID.Reason = nil, "", "no click"
	nobody := conv("ord-1002", "purchase", "approved", nil, touch)
	noValue := conv("ord-1003", "purchase", "approved", jane, touch)
	noValue.Value, noValue.Currency = nil, ""
	evs := []sdk.Event{
		convEvent(t, conv("ord-1001", "purchase", "approved", jane, touch)),
		convEvent(t, conv("ord-1001:refunded", "purchase", "refunded", jane, touch)),
		convEvent(t, conv("lead-5:rejected", "lead", "rejected", &sdk.User{CustomerID: "cust-5"}, touch)),
		convEvent(t, onlyID),
		convEvent(t, noValue),
		convEvent(t, nobody),
	}
	attributed := map[string]any{
		"click_id": touch.ClickID, "slug": "spring26", "campaign": "spring_sale_2026", "seconds_to_convert": 1785.0,
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero", "attributed": true,
		"conversion_id": "09k00000000000000000000001",
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
	check := func(t *testing.T, api *attentiveAPI, res []sdk.Result, purchases bool) {
		t.Helper()
		wantAll(t, res, 0, 5, sdk.StatusDelivered)
		if res[5].Status != sdk.StatusFailed || !strings.Contains(res[5].Reason, "send user with the conversion") {
			t.Errorf("conversion without an identifier: %+v, want Failed", res[5])
		}
		got := api.byID()
		cases := []struct {
			id, typ string
			user    [3]string // phone, email, client user ID
			props   map[string]any
		}{
			{"ord-1001", "SMS Conversion", [3]string{"+4915123456789", "jane@example.com", ""}, with(map[string]any{"conversion_type": "purchase", "status": "approved", "order_id": "ord-1001", "value": 49.9, "currency": "EUR"})},
			{"ord-1001:refunded", "SMS Conversion Refunded", [3]string{"+4915123456789", "jane@example.com", ""}, with(map[string]any{"conversion_type": "purchase", "status": "refunded", "order_id": "ord-1001", "value": 49.9, "currency": "EUR"})},
			{"lead-5:rejected", "SMS Conversion Rejected", [3]string{"", "", "cust-5"}, with(map[string]any{"conversion_type": "lead", "status": "rejected", "value": 49.9, "currency": "EUR"})},
			{"sig-77", "SMS Conversion", [3]string{"", "", "cust-9"}, map[string]any{
				"conversion_id": "09k00000000000000000000001", "conversion_type": "signup", "status": "approved", "attributed": false, "unattributed_reason": "no click"}},
			{"ord-1003", "SMS Conversion", [3]string{"+4915123456789", "jane@example.com", ""}, with(map[string]any{"conversion_type": "purchase", "status": "approved", "order_id": "ord-1003"})},
		}
		for _, c := range cases {
			e, ok := got[c.id]
			if purchases && c.id == "ord-1001" {
				if ok {
					t.Errorf("%s went to the Custom Events API as well", c.id)
				}
				continue
			}
			if !ok {
				t.Errorf("%s not sent", c.id)
				continue
			}
			var cid string
			if e.User.ExternalIdentifiers != nil {
				cid = e.User.ExternalIdentifiers.ClientUserID
			}
			at := "2026-11-26T19:00:15.123Z"
			if strings.Contains(c.id, ":") {
				at = "2026-11-28T21:00:15.123Z" // when the reversal happened
			}
			if e.Type != c.typ || e.OccurredAt != at || [3]string{e.User.Phone, e.User.Email, cid} != c.user {
				t.Errorf("%s: type %q at %q user %+v", c.id, e.Type, e.OccurredAt, e.User)
			}
			if !reflect.DeepEqual(e.Properties, c.props) {
				t.Errorf("%s: properties\n got %v\nwant %v", c.id, e.Properties, c.props)
			}
		}
	}

	t.Run("custom events", func(t *testing.T) {
		api := newAttentiveAPI(t, nil)
		p := connect(t, &Attentive{}, config(api.URL, ""))
		check(t, api, forward(t, p, evs), false)
		if n := len(api.Purchases()); n != 0 {
			t.Errorf("%d purchases without purchase_product_id", n)
		}
	})

	// With purchase_product_id, an approved purchase with a value is one line item of
	// that product; refunds, purchases without a value and other types stay custom events.
	t.Run("purchase_product_id", func(t *testing.T) {
		api := newAttentiveAPI(t, nil)
		p := connect(t, &Attentive{}, config(api.URL, `,"purchase_product_id":"sms-order"`))
		check(t, api, forward(t, p, evs), true)
		ps := api.Purchases()
		if len(ps) != 1 {
			t.Fatalf("%d purchases, want 1", len(ps))
		}
		pu := ps[0]
		it := pu.Items[0]
		if len(pu.Items) != 1 || it.ProductID != "sms-order" || it.ProductVariantID != "sms-order" || it.Quantity != 1 ||
			len(it.Price) != 1 || *it.Price[0].Value != 49.9 || it.Price[0].Currency != "EUR" {
			t.Errorf("items %+v", pu.Items)
		}
		if pu.OrderID != "ord-1001" || pu.OccurredAt != "2026-11-26T19:00:15.123Z" || pu.User.Email != "jane@example.com" || pu.User.Phone != "+4915123456789" {
			t.Errorf("purchase %+v", pu)
		}
	})
}

// Normalisation vectors: Attentive takes identifiers in plain form, no hashing; what it
// would reject is left out so the other identifiers still match.
func TestUserNormalisation(t *testing.T) {
	id := func(s string) *externalIdentifiers { return &externalIdentifiers{ClientUserID: s} }
	cases := []struct {
		name string
		user *sdk.User
		cid  string
		want eventUser
		why  string
	}{
		{"as given", &sdk.User{Email: "jane@example.com", Phone: "+14155550100", CustomerID: "c-1"}, "", eventUser{"+14155550100", "jane@example.com", id("c-1")}, ""},
		{"email trimmed and lowercased", &sdk.User{Email: "  Jane.Doe@Example.COM "}, "", eventUser{Email: "jane.doe@example.com"}, ""},
		{"phone punctuation removed", &sdk.User{Phone: "+1 (415) 555-0100"}, "", eventUser{Phone: "+14155550100"}, ""},
		{"national phone dropped", &sdk.User{Email: "a@b.co", Phone: "(415) 555-0100"}, "", eventUser{Email: "a@b.co"}, " (phone is not in E.164)"},
		{"phone with a leading zero dropped", &sdk.User{Phone: "+0415555010"}, "", eventUser{}, " (phone is not in E.164)"},
		{"not an email", &sdk.User{Email: "@example.com"}, "", eventUser{}, " (email is not an address)"},
		{"user customer ID wins", &sdk.User{CustomerID: "u-1"}, "ident-1", eventUser{ExternalIdentifiers: id("u-1")}, ""},
		{"identity customer ID", nil, "ident-1", eventUser{ExternalIdentifiers: id("ident-1")}, ""},
		{"customer ID too long", nil, strings.Repeat("x", 256), eventUser{}, ""},
		{"nothing", nil, "", eventUser{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := userOf(c.user, c.cid)
			if !reflect.DeepEqual(got, c.want) || why != c.why {
				t.Errorf("userOf(%+v, %q) = %+v, %q; want %+v, %q", c.user, c.cid, got, why, c.want, c.why)
			}
		})
	}
}

func TestUnmappableEventsFailAlone(t *testing.T) {
	api := newAttentiveAPI(t, nil)
	p := connect(t, &Attentive{}, config(api.URL, ""))
	evs := clicks(t, 6)
	evs[1].JSON = json.RawMessage(`{"event_id":`)
	evs[2].Type = "pageview"
	longID := click(3)
	longID.EventID = strings.Repeat("i", 300)
	evs[3] = event(t, longID)
	evs[3].ID = longID.EventID
	noTime := click(4)
	noTime.Time = time.Time{}
	evs[4] = event(t, noTime)
	evs[4].Time = time.Time{}
	res := forward(t, p, evs)
	for i, want := range []sdk.Status{sdk.StatusDelivered, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusDelivered} {
		if res[i].Status != want || (want == sdk.StatusFailed && res[i].Reason == "") {
			t.Errorf("result %d = %+v, want status %d", i, res[i], want)
		}
	}
	var sent []string
	for _, e := range api.Custom() {
		sent = append(sent, e.ExternalEventID)
	}
	slices.Sort(sent)
	if want := []string{evs[0].ID, evs[5].ID}; !reflect.DeepEqual(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
}

func TestStatus(t *testing.T) {
	date := func(now time.Time) string { return now.Add(90 * time.Second).UTC().Format(http.TimeFormat) }
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
		{name: "200", status: 200, want: sdk.StatusDelivered},
		{name: "202", status: 202, want: sdk.StatusDelivered},
		{name: "400", status: 400, body: `{"message":"Invalid phone number"}`, want: sdk.StatusFailed, inWhy: "400 Invalid phone number"},
		{name: "400 empty", status: 400, want: sdk.StatusFailed, inWhy: "400"},
		{name: "401", status: 401, want: sdk.StatusFailed, inWhy: "check api_key and its events:write scope"},
		{name: "403", status: 403, want: sdk.StatusFailed, inWhy: "events:write"},
		{name: "404", status: 404, body: `{"errors":[{"message":"user not found"}]}`, want: sdk.StatusFailed, inWhy: "404 user not found"},
		{name: "429 without Retry-After waits a second", status: 429, header: func(time.Time) http.Header {
			return http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Limit": {"150"}}
		}, want: sdk.StatusRetry, after: time.Second, inWhy: "429"},
		{name: "429 Retry-After seconds", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"3"}} }, want: sdk.StatusRetry, after: 3 * time.Second},
		{name: "429 Retry-After date", status: 429, header: func(n time.Time) http.Header { return http.Header{"Retry-After": {date(n)}} }, want: sdk.StatusRetry, after: 90 * time.Second},
		{name: "408", status: 408, want: sdk.StatusRetry, inWhy: "408"},
		{name: "500", status: 500, body: `{"error":"internal"}`, want: sdk.StatusRetry, inWhy: "500 internal"},
		{name: "503", status: 503, want: sdk.StatusRetry, inWhy: "503"},
		{name: "connection refused", refused: true, want: sdk.StatusRetry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Truncate(time.Second)
			api := newAttentiveAPI(t, func(int, sdktest.Request) sdktest.Reply {
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
			p := connect(t, &Attentive{now: func() time.Time { return now }}, config(base, `,"concurrency":1`))
			r := forward(t, p, clicks(t, 1))[0]
			if r.Status != tc.want || r.RetryAfter != tc.after || !strings.Contains(r.Reason, tc.inWhy) {
				t.Errorf("result %+v, want status %d after %v reason containing %q", r, tc.want, tc.after, tc.inWhy)
			}
			if tc.want != sdk.StatusDelivered && r.Reason == "" {
				t.Error("no reason")
			}
		})
	}
	t.Run("purchase scope", func(t *testing.T) {
		api := newAttentiveAPI(t, func(int, sdktest.Request) sdktest.Reply { return sdktest.Reply{Status: 403} })
		p := connect(t, &Attentive{}, config(api.URL, `,"purchase_product_id":"sms-order"`))
		r := forward(t, p, []sdk.Event{convEvent(t, conv("o-1", "purchase", "approved", &sdk.User{Email: "a@b.co"}, nil))})[0]
		if r.Status != sdk.StatusFailed || !strings.Contains(r.Reason, "ecommerce:write") {
			t.Errorf("403 on a purchase: %+v, want the ecommerce:write scope named", r)
		}
	})
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
// event not yet sent is retried after a second.
func TestPerEventResults(t *testing.T) {
	evs := clicks(t, 30)
	t.Run("400 fails one event", func(t *testing.T) {
		api := newAttentiveAPI(t, func(_ int, r sdktest.Request) sdktest.Reply {
			if bytes.Contains(r.Body, []byte(evs[7].ID)) {
				return sdktest.Reply{Status: 400, Body: `{"message":"bad"}`}
			}
			return sdktest.Reply{Status: 200}
		})
		p := connect(t, &Attentive{}, config(api.URL, `,"concurrency":4`))
		res := forward(t, p, evs)
		for i, r := range res {
			if want := map[bool]sdk.Status{true: sdk.StatusFailed, false: sdk.StatusDelivered}[i == 7]; r.Status != want {
				t.Errorf("result %d = %+v, want %d", i, r, want)
			}
		}
		if len(api.Custom()) != len(evs) {
			t.Errorf("%d requests, want %d", len(api.Custom()), len(evs))
		}
	})
	t.Run("429 stops the call", func(t *testing.T) {
		api := newAttentiveAPI(t, func(n int, _ sdktest.Request) sdktest.Reply {
			if n == 5 {
				return sdktest.Reply{Status: 429}
			}
			return sdktest.Reply{Status: 200}
		})
		p := connect(t, &Attentive{}, config(api.URL, `,"concurrency":1`))
		res := forward(t, p, evs)
		wantAll(t, res, 0, 5, sdk.StatusDelivered)
		wantAll(t, res, 5, 6, sdk.StatusRetry)
		wantAll(t, res, 6, len(evs), sdk.StatusNotSent) // never tried: no attempt used up
		for _, r := range res[5:] {
			if r.RetryAfter != time.Second {
				t.Fatalf("retry %+v, want after 1s", r)
			}
		}
		if n := len(api.Custom()); n != 6 {
			t.Errorf("%d requests; after a 429 no new request may start", n)
		}
	})
}

// Requests are paced at max_rate: 6 requests at 20 a second take at least 5 intervals.
func TestPacing(t *testing.T) {
	api := newAttentiveAPI(t, nil)
	p := connect(t, &Attentive{}, `{"api_key":"`+apiKey+`","base_url":"`+api.URL+`","max_rate":20,"concurrency":6}`)
	start := time.Now()
	wantAll(t, forward(t, p, clicks(t, 6)), 0, 6, sdk.StatusDelivered)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("6 requests at 20/s took %v, want at least 250ms", d)
	}
}

// A call ends before the host's deadline: what could not be sent in time is retried.
func TestCallDeadline(t *testing.T) {
	api := newAttentiveAPI(t, func(int, sdktest.Request) sdktest.Reply {
		time.Sleep(300 * time.Millisecond)
		return sdktest.Reply{Status: 200}
	})
	p := connect(t, &Attentive{}, config(api.URL, `,"concurrency":1`))
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
		{"api_key with a space", `{"api_key":"abc def"}`, "api_key"},
		{"api_key not a string", `{"api_key":12345}`, "api_key"},
		{"unknown field", `{"api_key":"abc","token":"abc"}`, "token"},
		{"ftp base_url", `{"api_key":"abc","base_url":"ftp://api.attentivemobile.com"}`, "base_url"},
		{"base_url with /v1", `{"api_key":"abc","base_url":"https://api.attentivemobile.com/v1"}`, "base_url"},
		{"base_url with the path", `{"api_key":"abc","base_url":"https://api.attentivemobile.com/v1/events/custom"}`, "base_url"},
		{"click_event with a comma", `{"api_key":"abc","click_event":"Clicked, SMS"}`, "click_event"},
		{"click_event with a quote", `{"api_key":"abc","click_event":"Clicked 'SMS'"}`, "click_event"},
		{"conversion_event with brackets", `{"api_key":"abc","conversion_event":"Conversion [SMS]"}`, "conversion_event"},
		{"empty conversion_event", `{"api_key":"abc","conversion_event":""}`, "conversion_event"},
		{"bad timeout", `{"api_key":"abc","timeout":"soon"}`, "timeout"},
		{"concurrency 0", `{"api_key":"abc","concurrency":0}`, "concurrency"},
		{"max_rate over the limit", `{"api_key":"abc","max_rate":151}`, "max_rate"},
		{"max_rate negative", `{"api_key":"abc","max_rate":-1}`, "max_rate"},
	}
	p := sdktest.Connect(t, &Attentive{stderr: testWriter{t}})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Configure(context.Background(), json.RawMessage(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Configure(%s) = %v, want an error naming %s", tc.config, err, tc.field)
			}
		})
	}
	if err := p.Configure(context.Background(), json.RawMessage(`{"api_key":"abc","click_event":"SMS: link tapped!"}`)); err != nil {
		t.Errorf("a key alone is a valid configuration: %v", err)
	}
}

// The API key reaches Attentive and nothing else: not the plugin's log, not a result's
// reason (even when the API echoes it back), not a configuration error.
func TestSecretNeverLeaks(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	api := newAttentiveAPI(t, func(n int, r sdktest.Request) sdktest.Reply {
		echo := quote("token " + r.Header.Get("Authorization") + " is not valid")
		return sdktest.Reply{Status: []int{401, 400, 503}[n%3], Body: `{"message":` + echo + `}`}
	})
	p := connect(t, &Attentive{stderr: lockedWriter{&mu, &logged}}, config(api.URL, `,"concurrency":1`))
	var reasons []string
	for i := range 3 {
		reasons = append(reasons, forward(t, p, clicks(t, 3)[i:i+1])[0].Reason)
	}
	for _, c := range []string{
		`{"api_key":"` + apiKey + `","base_url":"nope"}`,
		`{"api_key":"` + apiKey + ` "}`,
		`{"api_key":"` + apiKey + `", "max_rate":"fast"}`,
		`{"api_key":"` + apiKey + `"`,
		`{"api_key":{"k":"` + apiKey + `"}}`,
	} {
		err := sdktest.Connect(t, &Attentive{stderr: lockedWriter{&mu, &logged}}).Configure(context.Background(), json.RawMessage(c))
		if err == nil {
			t.Fatalf("config %s accepted", c)
		}
		reasons = append(reasons, err.Error())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(api.Custom()) != 3 || !strings.Contains(logged.String(), "refused the API key") {
		t.Fatalf("the test did not exercise the API (%d requests) or the log (%q)", len(api.Custom()), logged.String())
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
	if _, err := (&Attentive{}).Forward(context.Background(), clicks(t, 1)); err == nil {
		t.Fatal("Forward before Configure succeeded")
	}
}

// Hostile or unexpected error bodies become one short, printable line.
func TestErrorSummary(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"message", `{"message":"Invalid parameter in request query or body"}`, "Invalid parameter in request query or body"},
		{"error string", `{"error":"Unauthorized"}`, "Unauthorized"},
		{"error object", `{"error":{"code":"invalid_phone","message":"phone must be E.164","field":"user.phone"}}`, "invalid_phone: phone must be E.164 (at user.phone)"},
		{"errors list", `{"errors":[{"message":"a"},{"detail":"b"},"c",{"title":"d"},{"message":"e"}]}`, "a; b; c; …"},
		{"title and detail", `{"title":"Bad Request","detail":"type is required"}`, "Bad Request; type is required"},
		{"numeric message", `{"message":404}`, "404"},
		{"same text twice", `{"message":"x","error":"x"}`, "x"},
		{"unknown JSON", `{"status":"fail"}`, `{"status":"fail"}`},
		{"array", `["a"]`, `["a"]`},
		{"empty", ``, ``},
		{"HTML", "<html>\r\n<h1>502 Bad Gateway</h1>\r\n</html>", "<html> <h1>502 Bad Gateway</h1> </html>"},
		{"control characters", "{\"message\":\"a\\u0000b\\u001b[2Jc\\u2029\"}", "a b [2Jc"},
		{"long", strings.Repeat("ü", 1000), strings.Repeat("ü", 200) + "…"},
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
	dir, err := os.MkdirTemp("", "attentive-plugin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "attentive")
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
		if d.Name != "attentive" || d.ProtocolVersion != 1 || d.Version == "" || d.Description == "" {
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
		if want := []string{"api_key", "base_url", "click_event", "conversion_event", "purchase_product_id", "timeout", "concurrency", "max_rate"}; !reflect.DeepEqual(names, want) {
			t.Errorf("config fields %v, want %v", names, want)
		}
		want := map[string]any{"api_key": nil, "base_url": "https://api.attentivemobile.com", "click_event": "SMS Link Clicked",
			"conversion_event": "SMS Conversion", "purchase_product_id": nil, "timeout": "10s", "concurrency": 8.0, "max_rate": 100.0}
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
	f.Add([]byte(`{"message":"bad","error":{"code":"x","message":"y","field":"z"},"errors":[{"detail":"d"},"s",1,null]}`))
	f.Add([]byte(`{"title":1e999,"message":[1]}`))
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

// FuzzRequest: any event either fails with a reason or becomes a request the recorder
// accepts.
func FuzzRequest(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc, "06j00000000000000000000001", false)
	f.Add(sdk.TypeClick, []byte(`{"user":{"email":" A@B.CO ","phone":"+1 415 555 0100"},"time":"2026-01-01T00:00:00Z"}`), "x", false)
	c, _ := json.Marshal(conv("o", "purchase", "approved", &sdk.User{Phone: "+14155550100"}, touch))
	f.Add(sdk.TypeConversion, c, "o", true)
	f.Add(sdk.TypeConversion, []byte(`{"type":"purchase","value":-1e308,"currency":"usd","identities":[{"kind":"customer_id","value":"c"}],"occurred_at":"2026-01-01T00:00:00Z"}`), "y", true)
	f.Add(sdk.TypeConversion, []byte(`{"user":{"customer_id":"c"},"status":"x(y)"}`), "\x8c", false)
	api := &attentiveAPI{}
	f.Fuzz(func(t *testing.T, typ string, doc []byte, id string, purchases bool) {
		a := &Attentive{cfg: Config{ClickEvent: defaultClickEvent, ConversionEvent: defaultConversionEvent}, now: func() time.Time { return t0 }}
		if purchases {
			a.cfg.PurchaseProductID = "sms-order"
		}
		r, err := a.request(sdk.Event{ID: id, Type: typ, Time: t0, JSON: doc})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		h := http.Header{"Authorization": {"Bearer " + apiKey}, "Content-Type": {"application/json"}}
		if err := api.check(sdktest.Request{Method: "POST", Path: r.path, Header: h, Body: r.body}); err != nil {
			t.Fatalf("request %s %s: %v", r.path, r.body, err)
		}
	})
}
