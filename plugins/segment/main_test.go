package main

import (
	"bytes"
	"context"
	"encoding/base64"
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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

const writeKey = "wk_3J8b2Lq9ZfTx01"

// segmentAPI is a recorder that enforces what Segment's HTTP Tracking API requires of a
// /v1/batch request. A request that breaks a rule fails the test and is answered 400, as
// Segment would.
type segmentAPI struct {
	*sdktest.Recorder
	t       *testing.T
	path    string
	maxBody int
	// anonymousOnly: every message must have an anonymousId (every click has a
	// visitor ID); otherwise Segment's own rule applies, anonymousId or userId.
	anonymousOnly bool

	mu       sync.Mutex
	batches  [][]apiMessage
	sizes    []int // body size of each request
	msgSizes [][]int
}

// apiMessage is one message of a batch as the recorder decoded it.
type apiMessage struct {
	Type        string         `json:"type"`
	Event       string         `json:"event"`
	MessageID   string         `json:"messageId"`
	AnonymousID string         `json:"anonymousId"`
	UserID      string         `json:"userId"`
	Timestamp   string         `json:"timestamp"`
	Properties  map[string]any `json:"properties"`
	Context     map[string]any `json:"context"`
}

// newSegmentAPI starts the recorder. respond answers the n-th valid request (from 0);
// nil answers 200 {"success": true}.
func newSegmentAPI(t *testing.T, path string, maxBody int, respond func(n int, r sdktest.Request) sdktest.Reply) *segmentAPI {
	return newSegmentAPIWith(t, path, maxBody, true, respond)
}

func newSegmentAPIWith(t *testing.T, path string, maxBody int, anonymousOnly bool, respond func(n int, r sdktest.Request) sdktest.Reply) *segmentAPI {
	a := &segmentAPI{t: t, path: path, maxBody: maxBody, anonymousOnly: anonymousOnly}
	a.Recorder = sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		msgs, sizes, err := a.check(r)
		if err != nil {
			t.Errorf("recorder: request %s %s breaks the API contract: %v", r.Method, r.Path, err)
			return sdktest.Reply{Status: 400, Body: `{"error":"` + err.Error() + `"}`}
		}
		a.mu.Lock()
		n := len(a.batches)
		a.batches = append(a.batches, msgs)
		a.sizes = append(a.sizes, len(r.Body))
		a.msgSizes = append(a.msgSizes, sizes)
		a.mu.Unlock()
		if respond == nil {
			return sdktest.Reply{Status: 200, Body: `{"success":true}`}
		}
		return respond(n, r)
	})
	return a
}

func (a *segmentAPI) check(r sdktest.Request) ([]apiMessage, []int, error) {
	if r.Method != http.MethodPost {
		return nil, nil, fmt.Errorf("method %s, want POST", r.Method)
	}
	if r.Path != a.path || r.Query != "" {
		return nil, nil, fmt.Errorf("path %q query %q, want %s", r.Path, r.Query, a.path)
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic ")
	if !ok {
		return nil, nil, fmt.Errorf("authorization %q, want Basic", r.Header.Get("Authorization"))
	}
	creds, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return nil, nil, fmt.Errorf("basic credentials are not base64: %v", err)
	}
	if string(creds) != writeKey+":" {
		return nil, nil, fmt.Errorf("basic credentials %q, want the write key as user name and an empty password", creds)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, nil, fmt.Errorf("content type %q, want application/json", r.Header.Get("Content-Type"))
	}
	if len(r.Body) > a.maxBody {
		return nil, nil, fmt.Errorf("body is %d bytes, over the %d byte batch limit", len(r.Body), a.maxBody)
	}
	var body struct {
		Batch []json.RawMessage `json:"batch"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || dec.More() {
		return nil, nil, fmt.Errorf("body is not {\"batch\": [...]}: %v", err)
	}
	if len(body.Batch) == 0 || len(body.Batch) > 2500 {
		return nil, nil, fmt.Errorf("batch has %d messages, want 1 to 2500", len(body.Batch))
	}
	msgs := make([]apiMessage, len(body.Batch))
	sizes := make([]int, len(body.Batch))
	for i, raw := range body.Batch {
		sizes[i] = len(raw)
		if len(raw) > 32000 {
			return nil, nil, fmt.Errorf("message %d is %d bytes, over 32 KB", i, len(raw))
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		m := &msgs[i]
		if err := d.Decode(m); err != nil {
			return nil, nil, fmt.Errorf("message %d: %v", i, err)
		}
		switch {
		case m.Type != "track":
			return nil, nil, fmt.Errorf("message %d: type %q, want track", i, m.Type)
		case m.Event == "" || strings.EqualFold(m.Event, "click"):
			return nil, nil, fmt.Errorf("message %d: event name %q", i, m.Event)
		case m.MessageID == "" || len(m.MessageID) >= 100:
			return nil, nil, fmt.Errorf("message %d: messageId %q", i, m.MessageID)
		case m.AnonymousID == "" && (a.anonymousOnly || m.UserID == ""):
			return nil, nil, fmt.Errorf("message %d: no anonymousId", i)
		}
		if _, err := time.Parse(time.RFC3339, m.Timestamp); err != nil {
			return nil, nil, fmt.Errorf("message %d: timestamp %q is not RFC 3339", i, m.Timestamp)
		}
	}
	return msgs, sizes, nil
}

// Batches returns the messages of every request so far.
func (a *segmentAPI) Batches() [][]apiMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]apiMessage(nil), a.batches...)
}

// Sizes returns the body size of every request and the size of each of its messages.
func (a *segmentAPI) Sizes() ([]int, [][]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.sizes...), append([][]int(nil), a.msgSizes...)
}

// MessageIDs is every messageId received, in order.
func (a *segmentAPI) MessageIDs() []string {
	var ids []string
	for _, b := range a.Batches() {
		for _, m := range b {
			ids = append(ids, m.MessageID)
		}
	}
	return ids
}

var t0 = time.Date(2026, 11, 26, 18, 30, 15, 123_000_000, time.UTC)

// click builds a click event document the way the host sends it.
func click(i int) sdk.ClickEvent {
	id := fmt.Sprintf("06j%023d", i)
	return sdk.ClickEvent{
		SchemaVersion: sdk.SchemaVersion, EventType: sdk.TypeClick, EventID: id, ClickID: id,
		Time: t0.Add(time.Duration(i) * time.Millisecond), Node: "edge-1", Slug: "spring26", Campaign: "spring_sale_2026",
		UTM:         sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"},
		Destination: "https://shop.example.com/spring?ref=sms&x=1", VisitorID: fmt.Sprintf("07v%023d", i), NewVisitor: i%2 == 0,
		IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X)",
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

func clicks(t testing.TB, n int, edit func(*sdk.ClickEvent)) []sdk.Event {
	evs := make([]sdk.Event, n)
	for i := range evs {
		c := click(i)
		if edit != nil {
			edit(&c)
		}
		evs[i] = event(t, c)
	}
	return evs
}

func ids(evs []sdk.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// connect runs the forwarder behind the real gRPC server and configures it.
func connect(t *testing.T, config string) interface {
	Forward(context.Context, []sdk.Event) ([]sdk.Result, error)
} {
	t.Helper()
	p := sdktest.Connect(t, &Segment{})
	if err := p.Configure(context.Background(), json.RawMessage(config)); err != nil {
		t.Fatal(err)
	}
	return p
}

func config(base string, extra string) string {
	return `{"write_key":"` + writeKey + `","base_url":"` + base + `"` + extra + `}`
}

func forward(t *testing.T, p interface {
	Forward(context.Context, []sdk.Event) ([]sdk.Result, error)
}, evs []sdk.Event) []sdk.Result {
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

func wantAll(t *testing.T, res []sdk.Result, from, to int, status sdk.Status) {
	t.Helper()
	for i := from; i < to; i++ {
		if res[i].Status != status {
			t.Fatalf("result %d = %+v, want status %d", i, res[i], status)
		}
	}
}

func TestClickMapping(t *testing.T) {
	api := newSegmentAPI(t, "/v1/batch", 500_000, nil)
	p := connect(t, config(api.URL, ""))

	full := click(1)
	variant := 2
	full.Variant = &variant
	full.UTM.Content, full.UTM.Term = "hero_banner", "shoes"
	full.Identity = &sdk.Identity{Kind: "customer_id", Value: "cust-4411", Source: "token"}
	full.Bot, full.BotReason = true, "preview:imessage"
	hashed := click(2)
	hashed.Identity = &sdk.Identity{Kind: "email", Value: "9f86d081884c7d65", Source: "param:e"}
	hashed.UTM = sdk.UTM{}
	evs := []sdk.Event{event(t, full), event(t, hashed)}

	res := forward(t, p, evs)
	wantAll(t, res, 0, 2, sdk.StatusDelivered)
	b := api.Batches()
	if len(b) != 1 || len(b[0]) != 2 {
		t.Fatalf("requests %v, want one with 2 messages", b)
	}
	m := b[0][0]
	if m.Event != "SMS Link Clicked" || m.MessageID != full.EventID || m.AnonymousID != full.VisitorID || m.UserID != "cust-4411" {
		t.Errorf("message = %+v", m)
	}
	if ts, _ := time.Parse(time.RFC3339, m.Timestamp); !ts.Equal(full.Time) {
		t.Errorf("timestamp %s, want %s", m.Timestamp, full.Time.Format(time.RFC3339Nano))
	}
	wantProps := map[string]any{
		"click_id": full.ClickID, "slug": "spring26", "campaign": "spring_sale_2026",
		"utm_source": "sms", "utm_medium": "promotional", "utm_campaign": "spring_sale_2026", "utm_content": "hero_banner", "utm_term": "shoes",
		"destination": "https://shop.example.com/spring?ref=sms&x=1", "variant": 2.0,
		"bot": true, "bot_reason": "preview:imessage", "new_visitor": false,
	}
	if !reflect.DeepEqual(m.Properties, wantProps) {
		t.Errorf("properties\n got %v\nwant %v", m.Properties, wantProps)
	}
	wantCampaign := map[string]any{"name": "spring_sale_2026", "source": "sms", "medium": "promotional", "content": "hero_banner", "term": "shoes"}
	if !reflect.DeepEqual(m.Context["campaign"], wantCampaign) {
		t.Errorf("context.campaign = %v, want %v", m.Context["campaign"], wantCampaign)
	}
	if m.Context["userAgent"] != full.UserAgent || m.Context["ip"] != full.IP {
		t.Errorf("context = %v", m.Context)
	}

	h := b[0][1]
	if h.UserID != "" {
		t.Errorf("an email identity became userId %q; only customer IDs are user IDs", h.UserID)
	}
	if _, ok := h.Context["campaign"]; ok {
		t.Errorf("context.campaign %v for a click without UTM values", h.Context["campaign"])
	}
	if h.Properties["new_visitor"] != true || h.Properties["bot"] != false {
		t.Errorf("booleans must always be sent: %v", h.Properties)
	}

	t.Run("click_event", func(t *testing.T) {
		api := newSegmentAPI(t, "/v1/batch", 500_000, nil)
		p := connect(t, config(api.URL, `,"click_event":"Text Link Tapped"`))
		wantAll(t, forward(t, p, clicks(t, 1, nil)), 0, 1, sdk.StatusDelivered)
		if got := api.Batches()[0][0].Event; got != "Text Link Tapped" {
			t.Errorf("event %q", got)
		}
	})
}

// Conversion documents as in configs/schemas/conversion.v1.json.
func TestConversionMapping(t *testing.T) {
	// A conversion may carry only a customer ID: Segment takes a userId alone.
	api := newSegmentAPIWith(t, "/v1/batch", 500_000, false, nil)
	p := connect(t, config(api.URL, ""))
	const touch = `{"click_id":"06j00000000000000000000001","slug":"spring26","campaign":"spring_sale_2026",` +
		`"utm":{"source":"sms","medium":"promotional","campaign":"spring_sale_2026"},"click_time":"2026-11-26T18:30:15Z","seconds_to_convert":1785,"credit":1}`
	conv := func(eventID, typ, status, extra string) sdk.Event {
		src, _, _ := strings.Cut(eventID, ":")
		doc := `{"schema_version":1,"event_type":"conversion","event_id":"` + eventID + `","conversion_id":"09k00000000000000000000001",` +
			`"source_event_id":"` + src + `","type":"` + typ + `","status":"` + status + `","value":49.90,"currency":"EUR",` +
			`"occurred_at":"2026-11-26T19:00:00Z","received_at":"2026-11-26T19:00:02Z","source":"api"` + extra + `}`
		return sdk.Event{ID: eventID, Type: sdk.TypeConversion, Time: t0, JSON: json.RawMessage(doc)}
	}
	visitor := `,"visitor_id":"07v00000000000000000000001"`
	customer := `,"identities":[{"kind":"email","value":"9f86d081","source":"conversion"},{"kind":"customer_id","value":"cust-9","source":"conversion"}]`
	evs := []sdk.Event{
		conv("ord-1001", "purchase", "approved", visitor+customer+`,"attribution":`+touch),
		conv("ord-1001:refunded", "purchase", "refunded", visitor+`,"attribution":`+touch+`,"status_changed_at":"2026-12-03T08:15:00Z"`),
		conv("sig-77", "signup", "approved", customer+`,"attribution":null,"reason":"no click"`),
		conv("ord-1002", "purchase", "approved", `,"attribution":null`),
	}
	res := forward(t, p, evs)
	wantAll(t, res, 0, 3, sdk.StatusDelivered)
	if res[3].Status != sdk.StatusFailed || !strings.Contains(res[3].Reason, "anonymousId") {
		t.Errorf("a conversion without visitor or customer ID: %+v, want Failed", res[3])
	}
	b := api.Batches()
	if len(b) != 1 || len(b[0]) != 3 {
		t.Fatalf("requests %v", b)
	}
	attributed := map[string]any{"click_id": "06j00000000000000000000001", "slug": "spring26", "campaign": "spring_sale_2026"}
	with := func(m map[string]any, extra map[string]any) map[string]any {
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// A refund says its amount as total, not revenue (which destinations add up
	// whatever the event), and is stamped when it happened.
	cases := []struct {
		event, anon, user, at string
		props                 map[string]any
	}{
		{"Order Completed", "07v00000000000000000000001", "cust-9", "2026-11-26T19:00:00.000Z", with(map[string]any{"order_id": "ord-1001", "revenue": 49.9, "currency": "EUR"}, attributed)},
		{"Order Refunded", "07v00000000000000000000001", "", "2026-12-03T08:15:00.000Z", with(map[string]any{"order_id": "ord-1001", "total": 49.9, "currency": "EUR"}, attributed)},
		{"Conversion", "", "cust-9", "2026-11-26T19:00:00.000Z", map[string]any{"type": "signup", "status": "approved", "value": 49.9, "currency": "EUR"}},
	}
	for i, want := range cases {
		m := b[0][i]
		if m.Event != want.event || m.MessageID != evs[i].ID || m.AnonymousID != want.anon || m.UserID != want.user ||
			m.Timestamp != want.at || !reflect.DeepEqual(m.Properties, want.props) {
			t.Errorf("conversion %d:\n got %+v\nwant %+v", i, m, want)
		}
	}
}

func TestStatus(t *testing.T) {
	date := func(now time.Time) string { return now.Add(90 * time.Second).UTC().Format(http.TimeFormat) }
	cases := []struct {
		name    string
		status  int
		header  func(now time.Time) http.Header
		want    sdk.Status
		after   time.Duration
		inWhy   string
		refused bool
	}{
		{name: "200", status: 200, want: sdk.StatusDelivered},
		{name: "400", status: 400, want: sdk.StatusFailed, inWhy: "400"},
		{name: "401", status: 401, want: sdk.StatusFailed, inWhy: "write_key"},
		{name: "429 Retry-After seconds", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"7"}} }, want: sdk.StatusRetry, after: 7 * time.Second, inWhy: "429"},
		{name: "429 Retry-After date", status: 429, header: func(n time.Time) http.Header { return http.Header{"Retry-After": {date(n)}} }, want: sdk.StatusRetry, after: 90 * time.Second},
		{name: "429 X-RateLimit-Reset", status: 429, header: func(time.Time) http.Header { return http.Header{"X-Ratelimit-Reset": {"12"}} }, want: sdk.StatusRetry, after: 12 * time.Second},
		{name: "429 no header", status: 429, want: sdk.StatusRetry},
		{name: "500", status: 500, want: sdk.StatusRetry, inWhy: "500"},
		{name: "503", status: 503, want: sdk.StatusRetry, inWhy: "503"},
		{name: "connection refused", refused: true, want: sdk.StatusRetry},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Truncate(time.Second)
			api := newSegmentAPI(t, "/v1/batch", 500_000, func(_ int, _ sdktest.Request) sdktest.Reply {
				rep := sdktest.Reply{Status: tc.status, Body: `{"error":"x"}`}
				if tc.header != nil {
					rep.Header = tc.header(now)
				}
				return rep
			})
			base := api.URL
			if tc.refused {
				base = "http://" + closedAddr(t)
			}
			p := sdktest.Connect(t, &Segment{now: func() time.Time { return now }})
			if err := p.Configure(context.Background(), json.RawMessage(config(base, ""))); err != nil {
				t.Fatal(err)
			}
			res := forward(t, p, clicks(t, 3, nil))
			for i, r := range res {
				if r.Status != tc.want || r.RetryAfter != tc.after || !strings.Contains(r.Reason, tc.inWhy) {
					t.Errorf("result %d = %+v, want status %d after %v reason containing %q", i, r, tc.want, tc.after, tc.inWhy)
				}
				if tc.want != sdk.StatusDelivered && r.Reason == "" {
					t.Errorf("result %d has no reason", i)
				}
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

func TestBatchingByBytes(t *testing.T) {
	long := func(c *sdk.ClickEvent) { c.Destination = "https://shop.example.com/p?q=" + strings.Repeat("a", 400) }
	evs := clicks(t, 2000, long)
	for _, limit := range []int{500_000, 40_000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			api := newSegmentAPI(t, "/v1/batch", limit, nil)
			p := connect(t, config(api.URL, fmt.Sprintf(`,"max_batch_bytes":%d`, limit)))
			res := forward(t, p, evs)
			wantAll(t, res, 0, len(evs), sdk.StatusDelivered)
			if !reflect.DeepEqual(api.MessageIDs(), ids(evs)) {
				t.Fatal("the requests do not carry every event once, in order")
			}
			// Packed: no request could have taken the next request's first message.
			sizes, msgSizes := api.Sizes()
			for k := 0; k+1 < len(sizes); k++ {
				if next := msgSizes[k+1][0]; sizes[k]+1+next <= limit {
					t.Errorf("request %d is %d bytes and left out a %d byte message that fitted", k, sizes[k], next)
				}
			}
			if len(sizes) < 2 {
				t.Errorf("%d requests for 2,000 messages of about 1 KB", len(sizes))
			}
			t.Logf("%d requests, largest %d bytes", len(sizes), slices.Max(sizes))
		})
	}
}

func TestOversizedMessageFailsAlone(t *testing.T) {
	api := newSegmentAPI(t, "/v1/batch", 500_000, nil)
	p := connect(t, config(api.URL, ""))
	evs := clicks(t, 3, nil)
	big := click(1)
	big.UserAgent = strings.Repeat("U", 33_000)
	evs[1] = event(t, big)
	res := forward(t, p, evs)
	if res[0].Status != sdk.StatusDelivered || res[2].Status != sdk.StatusDelivered {
		t.Errorf("the other events: %+v", res)
	}
	if res[1].Status != sdk.StatusFailed || !strings.Contains(res[1].Reason, "message over 32 KB") {
		t.Errorf("oversized event: %+v, want Failed(message over 32 KB)", res[1])
	}
	if got, want := api.MessageIDs(), []string{evs[0].ID, evs[2].ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}

func TestUnmappableEventsFailAlone(t *testing.T) {
	api := newSegmentAPI(t, "/v1/batch", 500_000, nil)
	p := connect(t, config(api.URL, ""))
	evs := clicks(t, 5, nil)
	evs[1].JSON = json.RawMessage(`{"event_id":`)
	evs[2].Type = "pageview"
	noVisitor := click(3)
	noVisitor.VisitorID = ""
	evs[3] = event(t, noVisitor)
	res := forward(t, p, evs)
	for i, want := range []sdk.Status{sdk.StatusDelivered, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusFailed, sdk.StatusDelivered} {
		if res[i].Status != want || (want == sdk.StatusFailed && res[i].Reason == "") {
			t.Errorf("result %d = %+v, want status %d", i, res[i], want)
		}
	}
	if got, want := api.MessageIDs(), []string{evs[0].ID, evs[4].ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}

func TestRetryStopsTheCall(t *testing.T) {
	long := func(c *sdk.ClickEvent) { c.Destination = "https://shop.example.com/p?q=" + strings.Repeat("a", 400) }
	evs := clicks(t, 150, long) // about 1 KB each: 3 requests at 40 000 bytes
	t.Run("429", func(t *testing.T) {
		api := newSegmentAPI(t, "/v1/batch", 40_000, func(n int, _ sdktest.Request) sdktest.Reply {
			if n == 1 {
				return sdktest.Reply{Status: 429, Header: http.Header{"Retry-After": {"5"}}}
			}
			return sdktest.Reply{Status: 200}
		})
		p := connect(t, config(api.URL, `,"max_batch_bytes":40000`))
		res := forward(t, p, evs)
		b := api.Batches()
		if len(b) != 2 {
			t.Fatalf("%d requests; after a 429 the rest of the call must not be sent", len(b))
		}
		first, second := len(b[0]), len(b[0])+len(b[1])
		wantAll(t, res, 0, first, sdk.StatusDelivered)
		wantAll(t, res, first, second, sdk.StatusRetry)
		wantAll(t, res, second, len(evs), sdk.StatusNotSent) // never tried
		for _, r := range res[first:] {
			if r.RetryAfter != 5*time.Second {
				t.Fatalf("retry %+v, want after 5s", r)
			}
		}
	})
	t.Run("400 fails one request only", func(t *testing.T) {
		api := newSegmentAPI(t, "/v1/batch", 40_000, func(n int, _ sdktest.Request) sdktest.Reply {
			if n == 1 {
				return sdktest.Reply{Status: 400, Body: `{"error":"bad"}`}
			}
			return sdktest.Reply{Status: 200}
		})
		p := connect(t, config(api.URL, `,"max_batch_bytes":40000`))
		res := forward(t, p, evs)
		b := api.Batches()
		if len(b) < 3 {
			t.Fatalf("%d requests, want every request sent", len(b))
		}
		a, c := len(b[0]), len(b[0])+len(b[1])
		wantAll(t, res, 0, a, sdk.StatusDelivered)
		wantAll(t, res, a, c, sdk.StatusFailed)
		wantAll(t, res, c, len(evs), sdk.StatusDelivered)
	})
}

func TestBaseURLWithPath(t *testing.T) {
	api := newSegmentAPI(t, "/segment/v1/batch", 500_000, nil)
	p := connect(t, config(api.URL+"/segment/", ""))
	wantAll(t, forward(t, p, clicks(t, 2, nil)), 0, 2, sdk.StatusDelivered)
	if len(api.Requests()) != 1 {
		t.Fatalf("%d requests", len(api.Requests()))
	}
}

func TestPack(t *testing.T) {
	sizes := make([]int, 6000)
	for i := range sizes {
		sizes[i] = 100
	}
	sizes[10] = -1
	batches := pack(sizes, maxBatchBytes, maxBatchMessages)
	var seen []int
	for _, b := range batches {
		if len(b) > maxBatchMessages {
			t.Fatalf("batch of %d messages", len(b))
		}
		seen = append(seen, b...)
	}
	if len(batches) != 3 || len(seen) != 5999 || seen[10] != 11 {
		t.Fatalf("%d batches, %d events", len(batches), len(seen))
	}
	// A batch's body is exactly the limit: {"batch":[ + 3 x 10 bytes + 2 commas + ]}.
	if got := pack([]int{10, 10, 10, 10}, 12+32, 100); len(got) != 2 || len(got[0]) != 3 {
		t.Fatalf("pack at the byte limit: %v", got)
	}
}

func TestConfigure(t *testing.T) {
	cases := []struct{ name, config, field string }{
		{"non-JSON", `write_key=abc`, "config"},
		{"not an object", `["write_key"]`, "config"},
		{"trailing data", `{"write_key":"abc"} {}`, "config"},
		{"missing write_key", `{}`, "write_key"},
		{"empty write_key", `{"write_key":""}`, "write_key"},
		{"write_key with colon", `{"write_key":"abc:def"}`, "write_key"},
		{"write_key with newline", `{"write_key":"abc\n"}`, "write_key"},
		{"write_key not a string", `{"write_key":12345}`, "write_key"},
		{"unknown field", `{"write_key":"abc","writekey":"abc"}`, "writekey"},
		{"ftp base_url", `{"write_key":"abc","base_url":"ftp://api.segment.io"}`, "base_url"},
		{"relative base_url", `{"write_key":"abc","base_url":"api.segment.io"}`, "base_url"},
		{"base_url with query", `{"write_key":"abc","base_url":"https://api.segment.io?x=1"}`, "base_url"},
		{"base_url with /v1/batch", `{"write_key":"abc","base_url":"https://api.segment.io/v1/batch"}`, "base_url"},
		{"empty click_event", `{"write_key":"abc","click_event":"  "}`, "click_event"},
		{"click_event click", `{"write_key":"abc","click_event":"Click"}`, "click_event"},
		{"bad timeout", `{"write_key":"abc","timeout":"soon"}`, "timeout"},
		{"zero timeout", `{"write_key":"abc","timeout":"0s"}`, "timeout"},
		{"huge timeout", `{"write_key":"abc","timeout":"1h"}`, "timeout"},
		{"max_batch_bytes 0", `{"write_key":"abc","max_batch_bytes":0}`, "max_batch_bytes"},
		{"max_batch_bytes over 500 KB", `{"write_key":"abc","max_batch_bytes":600000}`, "max_batch_bytes"},
		{"max_batch_bytes under a message", `{"write_key":"abc","max_batch_bytes":20000}`, "max_batch_bytes"},
		{"max_batch_bytes not a number", `{"write_key":"abc","max_batch_bytes":"500000"}`, "max_batch_bytes"},
	}
	p := sdktest.Connect(t, &Segment{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Configure(context.Background(), json.RawMessage(tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Configure(%s) = %v, want an error naming %s", tc.config, err, tc.field)
			}
		})
	}
	if err := p.Configure(context.Background(), json.RawMessage(`{"write_key":"abc"}`)); err != nil {
		t.Errorf("a write key alone is a valid configuration: %v", err)
	}
}

func TestForwardBeforeConfigure(t *testing.T) {
	if _, err := (&Segment{}).Forward(context.Background(), clicks(t, 1, nil)); err == nil {
		t.Fatal("Forward before Configure succeeded")
	}
}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "segment")
	if out, err := exec.Command(gobin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

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
		if d.Name != "segment" || d.ProtocolVersion != 1 || d.Version == "" {
			t.Errorf("describe = %+v", d)
		}
		var names []string
		for _, c := range d.Config {
			names = append(names, c.Name)
			switch c.Name {
			case "write_key":
				if !c.Required || !c.Secret {
					t.Errorf("write_key must be required and secret: %+v", c)
				}
			case "base_url":
				if c.Default != "https://api.segment.io" {
					t.Errorf("base_url default %v", c.Default)
				}
			case "click_event":
				if c.Default != "SMS Link Clicked" {
					t.Errorf("click_event default %v", c.Default)
				}
			case "max_batch_bytes":
				if c.Default != 500000.0 {
					t.Errorf("max_batch_bytes default %v", c.Default)
				}
			}
		}
		if want := []string{"write_key", "base_url", "click_event", "timeout", "max_batch_bytes"}; !reflect.DeepEqual(names, want) {
			t.Errorf("config fields %v, want %v", names, want)
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

// FuzzMessage: any event either fails with a reason or becomes a message Segment takes.
func FuzzMessage(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc, "06j00000000000000000000001")
	f.Add(sdk.TypeClick, []byte(`{"visitor_id":"v","identity":{"kind":"customer_id","value":"c"},"time":"2026-01-01T00:00:00Z"}`), "")
	f.Add(sdk.TypeConversion, []byte(`{"event_id":"o:refunded","source_event_id":"o","type":"purchase","status":"refunded","value":1e400,`+
		`"identities":[{"kind":"customer_id","value":"c"}],"attribution":null,"occurred_at":"2026-01-01T00:00:00Z"}`), "o:refunded")
	f.Add(sdk.TypeConversion, []byte(`{"value":12.5,"visitor_id":"v"}`), "x")
	f.Fuzz(func(t *testing.T, typ string, doc []byte, id string) {
		s := &Segment{cfg: Config{ClickEvent: defaultClickEvent}}
		m, err := s.message(sdk.Event{ID: id, Type: typ, Time: t0, JSON: doc})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		var got apiMessage
		if err := json.Unmarshal(m, &got); err != nil {
			t.Fatalf("message %q is not JSON: %v", m, err)
		}
		if _, err := time.Parse(time.RFC3339, got.Timestamp); err != nil || got.Type != "track" || got.Event == "" ||
			got.MessageID == "" || len(got.MessageID) >= 100 || (got.AnonymousID == "" && got.UserID == "") {
			t.Fatalf("message %s", m)
		}
	})
}

// FuzzPack: every event to send is in exactly one batch, in order; no batch is over the
// limits; and no batch could have taken the next one's first message.
func FuzzPack(f *testing.F) {
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0, 1}, uint32(0), uint16(3))
	f.Add(bytes.Repeat([]byte{0x3e, 0x80}, 100), uint32(40000), uint16(2500))
	f.Fuzz(func(t *testing.T, data []byte, limit uint32, count uint16) {
		maxBytes := minBatchBytes + int(limit)%(maxBatchBytes-minBatchBytes+1)
		maxCount := 1 + int(count)%maxBatchMessages
		var sizes []int
		for i := 0; i+1 < len(data); i += 2 {
			n := int(data[i])<<8 | int(data[i+1])
			if n == 0xffff {
				n = -1 // not sent
			} else {
				n %= maxMessageBytes + 1
			}
			sizes = append(sizes, n)
		}
		body := func(b []int) int {
			n := len(bodyPrefix) + len(bodySuffix) + len(b) - 1
			for _, i := range b {
				n += sizes[i]
			}
			return n
		}
		batches := pack(sizes, maxBytes, maxCount)
		next := 0
		for k, b := range batches {
			if len(b) == 0 || len(b) > maxCount || body(b) > maxBytes {
				t.Fatalf("batch %d: %d messages, %d bytes", k, len(b), body(b))
			}
			for _, i := range b {
				for next < i {
					if sizes[next] >= 0 {
						t.Fatalf("event %d left out", next)
					}
					next++
				}
				if i != next {
					t.Fatalf("event %d out of order", i)
				}
				next++
			}
			if k+1 < len(batches) && len(b) < maxCount && body(append(append([]int(nil), b...), batches[k+1][0])) <= maxBytes {
				t.Fatalf("batch %d could have taken event %d", k, batches[k+1][0])
			}
		}
		for ; next < len(sizes); next++ {
			if sizes[next] >= 0 {
				t.Fatalf("event %d left out", next)
			}
		}
	})
}
