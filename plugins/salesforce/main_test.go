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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

const (
	accessToken  = "00D5g000004Xy1Z!AQ4AQFk3pA1b2c3d4e5f6g7h8i9j0kLmNoPqRsTuVwXyZ"
	clientID     = "3MVG9A2kN3Bn17hs8MIaQx.consumer.key"
	clientSecret = "E4F5A6B7C8D9E0F1A2B3C4D5E6F7A8B9C0D1E2F3"
	refreshToken = "5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJ"
	apiVer       = "66.0"
)

// salesforceAPI is a recorder that enforces what Salesforce documents for sObject
// Collections (POST /services/data/vXX.X/composite/sobjects to create, PATCH
// …/composite/sobjects/{Object}/{ExternalIdField} to upsert) and the OAuth token
// endpoint, and acts like an org with one sObject: it stores records, upserts on the
// external ID, and answers 400 to fields it does not have or values of the wrong type,
// and STRING_TOO_LONG per record. A request that breaks a rule fails the test.
type salesforceAPI struct {
	*sdktest.Recorder
	t      *testing.T
	object string
	extID  string            // the external ID field, "" for creates
	schema map[string]string // field → "text:N", "number", "datetime" or "bool"

	mu       sync.Mutex
	valid    map[string]bool // access tokens the org accepts
	issued   int
	refresh  string // the refresh token the token endpoint accepts
	rotate   bool   // issue a new refresh token with each access token
	tokenErr string // answer the token endpoint with this OAuth error
	writes   []write
	grants   []url.Values
	stored   map[string]map[string]any // by external ID, or by record ID
	respond  func(n int, w write) *sdktest.Reply
}

// write is one valid sObject Collections request.
type write struct {
	Method  string
	Records []map[string]any
}

func newSalesforceAPI(t *testing.T, extID string) *salesforceAPI {
	a := &salesforceAPI{t: t, object: "SMS_Conversion__c", extID: extID, refresh: refreshToken,
		valid: map[string]bool{accessToken: true}, stored: map[string]map[string]any{},
		schema: map[string]string{"Event_ID__c": "text:80", "Click_ID__c": "text:26", "Campaign__c": "text:80", "Amount__c": "number",
			"Currency__c": "text:3", "Email__c": "text:80", "Phone__c": "text:40", "Occurred_At__c": "datetime", "Source__c": "text:20",
			"Seconds_To_Convert__c": "number", "Bot__c": "bool"}}
	a.Recorder = sdktest.NewRecorder(t, a.serve)
	return a
}

var sessionExpired = sdktest.Reply{Status: 401, Body: `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`}

func (a *salesforceAPI) serve(r sdktest.Request) sdktest.Reply {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Path == "/services/oauth2/token" {
		return a.token(r)
	}
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !a.valid[auth] {
		return sessionExpired
	}
	w, err := a.check(r)
	if err != nil {
		a.t.Errorf("recorder: %s %s breaks the API contract: %v", r.Method, r.Path, err)
		return sdktest.Reply{Status: 400, Body: `[{"message":"` + err.Error() + `","errorCode":"JSON_PARSER_ERROR"}]`}
	}
	a.writes = append(a.writes, w)
	if a.respond != nil {
		if rep := a.respond(len(a.writes)-1, w); rep != nil {
			return *rep
		}
	}
	for _, rec := range w.Records {
		for f, v := range rec {
			if f == "attributes" {
				continue
			}
			kind, ok := a.schema[f]
			if !ok {
				return sdktest.Reply{Status: 400, Body: fmt.Sprintf(`[{"message":"No such column '%s' on sobject of type %s","errorCode":"INVALID_FIELD"}]`, f, a.object)}
			}
			if msg := typeError(kind, v); msg != "" {
				return sdktest.Reply{Status: 400, Body: `[{"message":"` + msg + `","errorCode":"JSON_PARSER_ERROR"}]`}
			}
		}
	}
	var results []map[string]any
	for _, rec := range w.Records {
		if f, n := a.tooLong(rec); f != "" {
			results = append(results, map[string]any{"success": false, "errors": []any{map[string]any{
				"statusCode": "STRING_TOO_LONG", "message": fmt.Sprintf("%s: data value too large: (max length=%d)", f, n), "fields": []any{f}}}})
			continue
		}
		id := fmt.Sprintf("a0B5g00000%08d", len(a.stored))
		key := id
		if a.extID != "" {
			key = rec[a.extID].(string)
		}
		old, exists := a.stored[key]
		if exists {
			id = old["Id"].(string)
		}
		stored := map[string]any{"Id": id}
		for f, v := range rec {
			if f != "attributes" {
				stored[f] = v
			}
		}
		a.stored[key] = stored
		res := map[string]any{"id": id, "success": true, "errors": []any{}}
		if a.extID != "" {
			res["created"] = !exists
		}
		results = append(results, res)
	}
	body, _ := json.Marshal(results)
	return sdktest.Reply{Status: 200, Body: string(body)}
}

func typeError(kind string, v any) string {
	switch {
	case strings.HasPrefix(kind, "text:"):
		if _, ok := v.(string); !ok {
			return fmt.Sprintf("Cannot deserialize instance of string from %T value", v)
		}
	case kind == "number":
		if _, ok := v.(json.Number); !ok {
			return fmt.Sprintf("Cannot deserialize instance of double from %v value", v)
		}
	case kind == "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("Cannot deserialize instance of boolean from %v value", v)
		}
	case kind == "datetime":
		s, _ := v.(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return fmt.Sprintf("Cannot deserialize instance of datetime from %v value", v)
		}
	}
	return ""
}

func (a *salesforceAPI) tooLong(rec map[string]any) (string, int) {
	for f, v := range rec {
		var n int
		if _, err := fmt.Sscanf(a.schema[f], "text:%d", &n); err == nil && utf8.RuneCountInString(fmt.Sprint(v)) > n {
			return f, n
		}
	}
	return "", 0
}

func (a *salesforceAPI) check(r sdktest.Request) (write, error) {
	w := write{Method: r.Method}
	create := "/services/data/v" + apiVer + "/composite/sobjects"
	switch {
	case a.extID == "" && (r.Method != http.MethodPost || r.Path != create):
		return w, fmt.Errorf("want POST %s", create)
	case a.extID != "" && (r.Method != http.MethodPatch || r.Path != create+"/"+a.object+"/"+a.extID):
		return w, fmt.Errorf("want PATCH %s/%s/%s", create, a.object, a.extID)
	case r.Query != "":
		return w, fmt.Errorf("query %q", r.Query)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return w, fmt.Errorf("content type %q", r.Header.Get("Content-Type"))
	}
	var body struct {
		AllOrNone *bool            `json:"allOrNone"`
		Records   []map[string]any `json:"records"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil || dec.More() {
		return w, fmt.Errorf("body is not {allOrNone, records}: %v", err)
	}
	if body.AllOrNone == nil || *body.AllOrNone {
		return w, errors.New("allOrNone must be false, for a result per record")
	}
	if len(body.Records) == 0 || len(body.Records) > 200 {
		return w, fmt.Errorf("%d records, want 1 to 200", len(body.Records))
	}
	for i, rec := range body.Records {
		attrs, _ := rec["attributes"].(map[string]any)
		if attrs == nil || attrs["type"] != a.object {
			return w, fmt.Errorf("record %d: attributes %v, want {type: %s}", i, rec["attributes"], a.object)
		}
		if _, ok := rec["Id"]; ok {
			return w, fmt.Errorf("record %d sets Id", i)
		}
		if a.extID != "" {
			if v, _ := rec[a.extID].(string); v == "" {
				return w, fmt.Errorf("record %d: no external ID %s", i, a.extID)
			}
		}
	}
	w.Records = body.Records
	return w, nil
}

// token is the OAuth 2.0 token endpoint: refresh token and client credentials flows.
func (a *salesforceAPI) token(r sdktest.Request) sdktest.Reply {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		a.t.Errorf("token request %s %q", r.Method, r.Header.Get("Content-Type"))
	}
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		a.t.Errorf("token request body %q", r.Body)
	}
	a.grants = append(a.grants, form)
	oauthErr := func(code, desc string) sdktest.Reply {
		return sdktest.Reply{Status: 400, Body: `{"error":"` + code + `","error_description":"` + desc + `"}`}
	}
	if a.tokenErr != "" {
		return oauthErr(a.tokenErr, "expired access/refresh token")
	}
	if form.Get("client_id") != clientID || form.Get("client_secret") != clientSecret {
		return oauthErr("invalid_client", "invalid client credentials")
	}
	switch form.Get("grant_type") {
	case "refresh_token":
		if form.Get("refresh_token") != a.refresh {
			return oauthErr("invalid_grant", "expired access/refresh token")
		}
	case "client_credentials":
	default:
		return oauthErr("unsupported_grant_type", "grant type not supported")
	}
	a.issued++
	tok := fmt.Sprintf("00D5g000004Xy1Z!issued-%d", a.issued)
	a.valid = map[string]bool{tok: true}
	answer := map[string]any{"access_token": tok, "instance_url": a.URL, "token_type": "Bearer", "issued_at": "1764180000000",
		"signature": "c2lnbmF0dXJl", "id": a.URL + "/id/00D/005"}
	if a.rotate && form.Get("grant_type") == "refresh_token" {
		a.refresh = fmt.Sprintf("%s-rotated-%d", refreshToken, a.issued)
		answer["refresh_token"] = a.refresh
	}
	b, _ := json.Marshal(answer)
	return sdktest.Reply{Status: 200, Body: string(b)}
}

func (a *salesforceAPI) Writes() []write {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]write(nil), a.writes...)
}

// Stored returns the org's records by external ID (or record ID).
func (a *salesforceAPI) Stored() map[string]map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]map[string]any, len(a.stored))
	for k, v := range a.stored {
		out[k] = v
	}
	return out
}

// Grants returns the token requests' forms.
func (a *salesforceAPI) Grants() []url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]url.Values(nil), a.grants...)
}

func (a *salesforceAPI) expire() {
	a.mu.Lock()
	a.valid = map[string]bool{}
	a.mu.Unlock()
}

var t0 = time.Date(2026, 11, 26, 18, 30, 15, 123_000_000, time.UTC)

func click(i int) sdk.ClickEvent {
	id := fmt.Sprintf("06j%023d", i)
	return sdk.ClickEvent{
		SchemaVersion: 1, EventType: sdk.TypeClick, EventID: id, ClickID: id,
		Time: t0.Add(time.Duration(i) * time.Millisecond), Node: "edge-1", Slug: "spring26", Campaign: "spring_sale_2026",
		UTM:         sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"},
		Destination: "https://shop.example.com/spring?ref=sms", VisitorID: fmt.Sprintf("07v%023d", i),
	}
}

func value(v float64) *float64 { return &v }

func conversion(i int) sdk.ConversionEvent {
	return sdk.ConversionEvent{
		SchemaVersion: 1, EventType: sdk.TypeConversion, EventID: fmt.Sprintf("ord-%d", i), ConversionID: fmt.Sprintf("09k%023d", i),
		SourceEventID: fmt.Sprintf("ord-%d", i), Type: "purchase", Status: "approved", Value: value(1249.90), Currency: "EUR",
		OccurredAt: t0.Add(time.Hour), ReceivedAt: t0.Add(time.Hour + time.Second), Source: "api", ClickID: "06j00000000000000000000001",
		User: &sdk.User{Email: fmt.Sprintf("buyer%d@example.com", i), Phone: "+14155550123"},
		Attribution: &sdk.Touch{ClickID: "06j00000000000000000000001", Slug: "spring26", Campaign: "spring_sale_2026",
			UTM: sdk.UTM{Source: "sms", Medium: "promotional", Campaign: "spring_sale_2026"}, ClickTime: t0, SecondsToConvert: 3600, Credit: 1},
	}
}

func ev(t testing.TB, x any) sdk.Event {
	doc, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	switch x := x.(type) {
	case sdk.ClickEvent:
		return sdk.Event{ID: x.EventID, Type: sdk.TypeClick, Time: x.Time, JSON: doc}
	case sdk.ConversionEvent:
		return sdk.Event{ID: x.EventID, Type: sdk.TypeConversion, Time: x.OccurredAt, JSON: doc}
	}
	t.Fatalf("%T", x)
	return sdk.Event{}
}

func conversions(t testing.TB, n int) []sdk.Event {
	evs := make([]sdk.Event, n)
	for i := range evs {
		evs[i] = ev(t, conversion(i))
	}
	return evs
}

const (
	conversionFields = `"conversion_fields":{"Event_ID__c":"event_id","Click_ID__c":"attribution.click_id","Campaign__c":"attribution.campaign",` +
		`"Amount__c":"value","Currency__c":"currency","Email__c":"user.email","Phone__c":"user.phone","Occurred_At__c":"occurred_at",` +
		`"Source__c":"=clickgate","Seconds_To_Convert__c":"attribution.seconds_to_convert"}`
	clickFields = `"click_fields":{"Event_ID__c":"event_id","Click_ID__c":"click_id","Campaign__c":"campaign","Occurred_At__c":"time",` +
		`"Email__c":"user.email","Bot__c":"bot","Source__c":"=clickgate"}`
)

func config(base, extra string) string {
	return configFields(base, conversionFields+`,`+clickFields, extra)
}

func configFields(base, fields, extra string) string {
	return `{"instance_url":"` + base + `","object":"SMS_Conversion__c","access_token":"` + accessToken + `",` + fields + extra + `}`
}

type forwarder interface {
	Configure(context.Context, json.RawMessage) error
	Forward(context.Context, []sdk.Event) ([]sdk.Result, error)
}

func connect(t *testing.T, s *Salesforce, config string) forwarder {
	t.Helper()
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	p := sdktest.Connect(t, s)
	if err := p.Configure(context.Background(), json.RawMessage(config)); err != nil {
		t.Fatal(err)
	}
	return p
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

func TestRecordMapping(t *testing.T) {
	api := newSalesforceAPI(t, "")
	p := connect(t, &Salesforce{}, config(api.URL, ""))
	c := click(1)
	c.User = &sdk.User{Email: "jane@example.com"} // clicks carry it when the operator opts in
	unattributed := conversion(2)
	unattributed.Attribution, unattributed.User = nil, nil
	res := forward(t, p, []sdk.Event{ev(t, conversion(1)), ev(t, c), ev(t, click(2)), ev(t, unattributed)})
	if !reflect.DeepEqual(statuses(res), repeat(delivered, 4)) {
		t.Fatalf("results %+v", res)
	}
	w := api.Writes()
	if len(w) != 1 || len(w[0].Records) != 4 {
		t.Fatalf("writes %+v", w)
	}
	want := []map[string]any{
		{"attributes": map[string]any{"type": "SMS_Conversion__c"}, "Event_ID__c": "ord-1", "Click_ID__c": "06j00000000000000000000001",
			"Campaign__c": "spring_sale_2026", "Amount__c": json.Number("1249.9"), "Currency__c": "EUR", "Email__c": "buyer1@example.com",
			"Phone__c": "+14155550123", "Occurred_At__c": "2026-11-26T19:30:15.123Z", "Source__c": "clickgate", "Seconds_To_Convert__c": json.Number("3600")},
		{"attributes": map[string]any{"type": "SMS_Conversion__c"}, "Event_ID__c": c.EventID, "Click_ID__c": c.ClickID, "Campaign__c": "spring_sale_2026",
			"Occurred_At__c": "2026-11-26T18:30:15.124Z", "Email__c": "jane@example.com", "Bot__c": false, "Source__c": "clickgate"},
		{"attributes": map[string]any{"type": "SMS_Conversion__c"}, "Event_ID__c": "06j00000000000000000000002", "Click_ID__c": "06j00000000000000000000002",
			"Campaign__c": "spring_sale_2026", "Occurred_At__c": "2026-11-26T18:30:15.125Z", "Bot__c": false, "Source__c": "clickgate"},
		{"attributes": map[string]any{"type": "SMS_Conversion__c"}, "Event_ID__c": "ord-2", "Amount__c": json.Number("1249.9"), "Currency__c": "EUR",
			"Occurred_At__c": "2026-11-26T19:30:15.123Z", "Source__c": "clickgate"},
	}
	for i := range want {
		if !reflect.DeepEqual(w[0].Records[i], want[i]) {
			t.Errorf("record %d\n got %v\nwant %v", i, w[0].Records[i], want[i])
		}
	}
}

// With an external ID field, a redelivered event updates its record: no duplicates.
func TestUpsertIsIdempotent(t *testing.T) {
	api := newSalesforceAPI(t, "Event_ID__c")
	p := connect(t, &Salesforce{}, config(api.URL, `,"external_id_field":"Event_ID__c"`))
	evs := append(conversions(t, 3), ev(t, click(7)))
	for range 2 {
		if res := forward(t, p, evs); !reflect.DeepEqual(statuses(res), repeat(delivered, 4)) {
			t.Fatalf("results %+v", res)
		}
	}
	if n := len(api.Stored()); n != 4 {
		t.Errorf("%d records after delivering 4 events twice", n)
	}
	if w := api.Writes(); len(w) != 2 || w[1].Method != http.MethodPatch {
		t.Errorf("writes %+v", w)
	}
	noID := conversion(9)
	noID.EventID = ""
	res := forward(t, p, []sdk.Event{{ID: "", Type: sdk.TypeConversion, Time: t0, JSON: ev(t, noID).JSON}})
	if res[0].Status != failed || !strings.Contains(res[0].Reason, "external ID field Event_ID__c") {
		t.Errorf("an event without its external ID: %+v", res[0])
	}
	t.Run("external ID must be mapped", func(t *testing.T) {
		err := sdktest.Connect(t, &Salesforce{}).Configure(context.Background(), json.RawMessage(config(api.URL, `,"external_id_field":"Order__c"`)))
		if err == nil || !strings.Contains(err.Error(), "external_id_field") {
			t.Errorf("Configure: %v", err)
		}
	})
}

// sObject Collections answer per record: one record Salesforce refuses fails alone, a
// locked one is retried, the others are delivered.
func TestPerRecordResults(t *testing.T) {
	api := newSalesforceAPI(t, "")
	api.respond = func(n int, w write) *sdktest.Reply {
		if w.Records[2]["Event_ID__c"] != "ord-2" {
			return nil
		}
		return &sdktest.Reply{Status: 200, Body: `[{"id":"a0B1","success":true,"errors":[]},{"success":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record","fields":[]}]},` +
			`{"success":false,"errors":[{"statusCode":"FIELD_CUSTOM_VALIDATION_EXCEPTION","message":"Amount must be positive","fields":["Amount__c"]},{"statusCode":"INVALID_EMAIL_ADDRESS","message":"Email: invalid email address","fields":["Email__c"]}]},` +
			`{"id":"a0B4","success":true,"errors":[]}]`}
	}
	p := connect(t, &Salesforce{}, config(api.URL, ""))
	res := forward(t, p, conversions(t, 4))
	if !reflect.DeepEqual(statuses(res), []sdk.Status{delivered, retry, failed, delivered}) {
		t.Fatalf("results %+v", res)
	}
	if want := "FIELD_CUSTOM_VALIDATION_EXCEPTION: Amount must be positive (fields Amount__c); INVALID_EMAIL_ADDRESS: Email: invalid email address (fields Email__c)"; res[2].Reason != want {
		t.Errorf("reason %q, want %q", res[2].Reason, want)
	}
	if !strings.Contains(res[1].Reason, "UNABLE_TO_LOCK_ROW") {
		t.Errorf("reason %q", res[1].Reason)
	}

	t.Run("the org's own checks", func(t *testing.T) {
		api := newSalesforceAPI(t, "")
		p := connect(t, &Salesforce{}, config(api.URL, ""))
		long := conversion(1)
		long.Currency = "EURO" // Currency__c holds 3 characters
		res := forward(t, p, []sdk.Event{ev(t, conversion(0)), ev(t, long), ev(t, conversion(2))})
		if !reflect.DeepEqual(statuses(res), []sdk.Status{delivered, failed, delivered}) || !strings.Contains(res[1].Reason, "STRING_TOO_LONG") {
			t.Fatalf("results %+v", res)
		}
	})
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
		inWhy   []string
		refused bool
	}{
		{name: "400 unknown field", status: 400, body: `[{"message":"No such column 'Amount__c' on sobject of type SMS_Conversion__c","errorCode":"INVALID_FIELD"}]`,
			want: failed, inWhy: []string{"400 INVALID_FIELD: No such column 'Amount__c'"}},
		{name: "400 required field", status: 400, body: `[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]`,
			want: failed, inWhy: []string{"REQUIRED_FIELD_MISSING", "(fields LastName)"}},
		{name: "400 malformed id", status: 400, body: `[{"message":"Record ID: id value of incorrect type","errorCode":"MALFORMED_ID","fields":["Id"]}]`, want: failed, inWhy: []string{"MALFORMED_ID"}},
		{name: "400 invalid type", status: 400, body: `[{"message":"sObject type 'SMS_Conversion__c' is not supported.","errorCode":"INVALID_TYPE"}]`, want: failed, inWhy: []string{"INVALID_TYPE"}},
		{name: "401 static token", status: 401, body: `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`,
			want: retry, inWhy: []string{"401 INVALID_SESSION_ID", "update config.access_token"}},
		// The 24-hour limit: waiting the longest the host honours, not the host's back-off.
		{name: "403 request limit", status: 403, body: `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`, want: retry, after: sdk.MaxRetryAfter, inWhy: []string{"REQUEST_LIMIT_EXCEEDED", "24-hour"}},
		{name: "403 concurrent request limit", status: 403, body: `[{"message":"ConcurrentRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`, want: retry, inWhy: []string{"REQUEST_LIMIT_EXCEEDED"}},
		{name: "403 request limit with Retry-After", status: 403, body: `[{"message":"ConcurrentRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`,
			header: func(time.Time) http.Header { return http.Header{"Retry-After": {"30"}} }, want: retry, after: 30 * time.Second},
		{name: "403 access", status: 403, body: `[{"message":"insufficient access rights on object id","errorCode":"INSUFFICIENT_ACCESS_OR_READONLY"}]`,
			want: failed, inWhy: []string{"INSUFFICIENT_ACCESS_OR_READONLY", "permission on SMS_Conversion__c"}},
		{name: "404", status: 404, body: `[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]`, want: failed, inWhy: []string{"NOT_FOUND", "config.object"}},
		{name: "429", status: 429, header: func(time.Time) http.Header { return http.Header{"Retry-After": {"7"}} }, want: retry, after: 7 * time.Second},
		{name: "500", status: 500, body: `[{"errorCode":"UNKNOWN_EXCEPTION","message":"An unexpected error occurred."}]`, want: retry, inWhy: []string{"500 UNKNOWN_EXCEPTION"}},
		{name: "503 date", status: 503, body: "<html>\n<h1>Maintenance</h1></html>", header: func(n time.Time) http.Header { return http.Header{"Retry-After": {date(n)}} },
			want: retry, after: 90 * time.Second, inWhy: []string{"503", "Maintenance"}},
		{name: "unlock in a 400", status: 400, body: `[{"errorCode":"UNABLE_TO_LOCK_ROW","message":"unable to obtain exclusive access to this record"}]`, want: retry},
		{name: "200 not results", status: 200, body: `{"ok":true}`, want: retry, inWhy: []string{"0 results for 1 records"}},
		{name: "200 too few results", status: 200, body: `[]`, want: retry},
		{name: "405", status: 405, body: `[{"errorCode":"METHOD_NOT_ALLOWED","message":"HTTP Method 'PATCH' not allowed"}]`, want: failed},
		{name: "connection refused", refused: true, want: retry, inWhy: []string{"request failed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now().Truncate(time.Second)
			api := newSalesforceAPI(t, "")
			api.respond = func(int, write) *sdktest.Reply {
				rep := sdktest.Reply{Status: tc.status, Body: tc.body}
				if tc.header != nil {
					rep.Header = tc.header(now)
				}
				return &rep
			}
			base := api.URL
			if tc.refused {
				base = "http://" + closedAddr(t)
			}
			p := connect(t, &Salesforce{now: func() time.Time { return now }}, config(base, ""))
			r := forward(t, p, conversions(t, 1))[0]
			if r.Status != tc.want || r.RetryAfter != tc.after {
				t.Errorf("result %+v, want status %d after %v", r, tc.want, tc.after)
			}
			for _, s := range tc.inWhy {
				if !strings.Contains(r.Reason, s) {
					t.Errorf("reason %q does not say %q", r.Reason, s)
				}
			}
			if r.Reason == "" {
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
	api := newSalesforceAPI(t, "Event_ID__c")
	p := connect(t, &Salesforce{}, config(api.URL, `,"external_id_field":"Event_ID__c"`))
	evs := conversions(t, 450)
	if res := forward(t, p, evs); !reflect.DeepEqual(statuses(res), repeat(delivered, 450)) {
		t.Fatal("not every event delivered")
	}
	var sizes []int
	var order []string
	for _, w := range api.Writes() {
		sizes = append(sizes, len(w.Records))
		for _, r := range w.Records {
			order = append(order, r["Event_ID__c"].(string))
		}
	}
	if !reflect.DeepEqual(sizes, []int{200, 200, 50}) {
		t.Errorf("batches of %v, want 200, 200, 50", sizes)
	}
	for i := range evs {
		if order[i] != fmt.Sprintf("ord-%d", i) {
			t.Fatalf("record %d out of order", i)
		}
	}
}

// A batch refused as a whole (a value Salesforce cannot read) is narrowed down so only
// the event at fault fails; a cause common to the records fails them all at once.
func TestRejectedBatchIsIsolated(t *testing.T) {
	api := newSalesforceAPI(t, "")
	api.respond = func(_ int, w write) *sdktest.Reply {
		for _, r := range w.Records {
			if r["Event_ID__c"] == "ord-13" {
				return &sdktest.Reply{Status: 400, Body: `[{"message":"Cannot deserialize instance of double from VALUE_STRING value A-13","errorCode":"JSON_PARSER_ERROR"}]`}
			}
		}
		return nil
	}
	p := connect(t, &Salesforce{}, config(api.URL, ""))
	res := forward(t, p, conversions(t, 40))
	for i, r := range res {
		if want := map[bool]sdk.Status{true: failed, false: delivered}[i == 13]; r.Status != want {
			t.Errorf("event %d: %+v", i, r)
		}
	}
	if !strings.Contains(res[13].Reason, "JSON_PARSER_ERROR") {
		t.Errorf("reason %q", res[13].Reason)
	}
	if n := len(api.Writes()); n > 13 {
		t.Errorf("%d requests to isolate one record among 40", n)
	}
	if n := len(api.Stored()); n != 39 {
		t.Errorf("%d records stored, want 39", n)
	}

	// Two records at fault with the same message, one in each half, do not pass for a
	// cause common to all.
	for _, at := range [][2]int{{5, 30}, {0, 20}} {
		t.Run(fmt.Sprintf("two alike at %v", at), func(t *testing.T) {
			api := newSalesforceAPI(t, "")
			api.respond = func(_ int, w write) *sdktest.Reply {
				for _, r := range w.Records {
					if r["Event_ID__c"] == fmt.Sprintf("ord-%d", at[0]) || r["Event_ID__c"] == fmt.Sprintf("ord-%d", at[1]) {
						return &sdktest.Reply{Status: 400, Body: `[{"message":"Cannot deserialize instance of double from VALUE_STRING","errorCode":"JSON_PARSER_ERROR"}]`}
					}
				}
				return nil
			}
			p := connect(t, &Salesforce{}, config(api.URL, ""))
			res := forward(t, p, conversions(t, 40))
			for i, r := range res {
				if want := map[bool]sdk.Status{true: failed, false: delivered}[i == at[0] || i == at[1]]; r.Status != want {
					t.Errorf("event %d: %+v", i, r)
				}
			}
			if n := len(api.Stored()); n != 38 {
				t.Errorf("%d records stored, want 38", n)
			}
		})
	}
	t.Run("common cause", func(t *testing.T) {
		api := newSalesforceAPI(t, "")
		p := connect(t, &Salesforce{}, configFields(api.URL, `"conversion_fields":{"Event_ID__c":"event_id","Discount__c":"value"}`, ""))
		res := forward(t, p, conversions(t, 100))
		if !reflect.DeepEqual(statuses(res), repeat(failed, 100)) || !strings.Contains(res[0].Reason, "No such column 'Discount__c'") {
			t.Fatalf("results %+v", res[0])
		}
		if n := len(api.Writes()); n != 7 {
			t.Errorf("%d requests, want the batch, its two halves and the first and last of each alone", n)
		}
	})
}

func TestRetryStopsTheCall(t *testing.T) {
	api := newSalesforceAPI(t, "")
	api.respond = func(n int, _ write) *sdktest.Reply {
		if n == 1 {
			return &sdktest.Reply{Status: 503, Header: http.Header{"Retry-After": {"5"}}}
		}
		return nil
	}
	p := connect(t, &Salesforce{}, config(api.URL, `,"max_batch":10`))
	res := forward(t, p, conversions(t, 30))
	if n := len(api.Writes()); n != 2 {
		t.Fatalf("%d requests; after a 503 the rest of the call waits", n)
	}
	if !reflect.DeepEqual(statuses(res), append(repeat(delivered, 10), append(repeat(retry, 10), repeat(notSent, 10)...)...)) {
		t.Fatalf("results %v", statuses(res))
	}
	for _, r := range res[10:] {
		if r.RetryAfter != 5*time.Second {
			t.Fatalf("retry %+v", r)
		}
	}
}

// A call returns before the host's deadline; what could not be sent in time is retried.
func TestCallDeadline(t *testing.T) {
	api := newSalesforceAPI(t, "")
	api.respond = func(int, write) *sdktest.Reply {
		time.Sleep(150 * time.Millisecond)
		return nil
	}
	p := connect(t, &Salesforce{}, config(api.URL, `,"max_batch":1`))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	res, err := p.Forward(ctx, conversions(t, 20))
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

// On 401 the plugin gets a new access token with the refresh token flow and sends the
// request again; a rotated refresh token is used from then on.
func TestRefreshTokenFlow(t *testing.T) {
	var log bytes.Buffer
	api := newSalesforceAPI(t, "")
	api.rotate = true
	p := connect(t, &Salesforce{log: slog.New(slog.NewJSONHandler(&log, nil))}, config(api.URL,
		`,"client_id":"`+clientID+`","client_secret":"`+clientSecret+`","refresh_token":"`+refreshToken+`"`))
	if res := forward(t, p, conversions(t, 2)); !reflect.DeepEqual(statuses(res), repeat(delivered, 2)) {
		t.Fatalf("with the configured token: %+v", res)
	}
	api.expire()
	if res := forward(t, p, conversions(t, 2)); !reflect.DeepEqual(statuses(res), repeat(delivered, 2)) {
		t.Fatalf("after the token expired: %+v", res)
	}
	api.expire()
	if res := forward(t, p, conversions(t, 1)); res[0].Status != delivered {
		t.Fatalf("after a second expiry: %+v", res)
	}
	grants := api.Grants()
	if len(grants) != 2 {
		t.Fatalf("%d token requests", len(grants))
	}
	first, second := grants[0], grants[1]
	want := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "client_secret": {clientSecret}, "refresh_token": {refreshToken}}
	if !reflect.DeepEqual(first, want) {
		t.Errorf("token request %v, want %v", first, want)
	}
	if second.Get("refresh_token") != refreshToken+"-rotated-1" {
		t.Errorf("second refresh used %q, not the rotated token", second.Get("refresh_token"))
	}
	if !strings.Contains(log.String(), "rotated the refresh token") || !strings.Contains(log.String(), "obtained an access token") {
		t.Errorf("log %s", log.String())
	}

	t.Run("refresh refused", func(t *testing.T) {
		api := newSalesforceAPI(t, "")
		api.expire()
		api.tokenErr = "invalid_grant"
		p := connect(t, &Salesforce{}, config(api.URL, `,"client_id":"`+clientID+`","client_secret":"`+clientSecret+`","refresh_token":"`+refreshToken+`"`))
		res := forward(t, p, conversions(t, 3))
		for _, r := range res {
			if r.Status != retry || !strings.Contains(r.Reason, "401 INVALID_SESSION_ID") || !strings.Contains(r.Reason, "invalid_grant: expired access/refresh token") {
				t.Fatalf("result %+v", r)
			}
		}
		if len(api.Writes()) != 0 || len(api.Grants()) != 1 {
			t.Errorf("%d writes, %d token requests", len(api.Writes()), len(api.Grants()))
		}
	})
}

// Without an access token, client_id and client_secret get one with the client
// credentials flow before the first write.
func TestClientCredentialsFlow(t *testing.T) {
	api := newSalesforceAPI(t, "")
	api.expire()
	p := connect(t, &Salesforce{}, `{"instance_url":"`+api.URL+`","object":"SMS_Conversion__c",`+conversionFields+
		`,"client_id":"`+clientID+`","client_secret":"`+clientSecret+`"}`)
	if res := forward(t, p, conversions(t, 2)); !reflect.DeepEqual(statuses(res), repeat(delivered, 2)) {
		t.Fatalf("results %+v", res)
	}
	want := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {clientSecret}}
	if grants := api.Grants(); len(grants) != 1 || !reflect.DeepEqual(grants[0], want) {
		t.Errorf("token requests %v", grants)
	}
	t.Run("token_url", func(t *testing.T) {
		other := newSalesforceAPI(t, "")
		api := newSalesforceAPI(t, "")
		api.expire()
		p := connect(t, &Salesforce{}, `{"instance_url":"`+api.URL+`","object":"SMS_Conversion__c",`+conversionFields+
			`,"client_id":"`+clientID+`","client_secret":"`+clientSecret+`","token_url":"`+other.URL+`/services/oauth2/token"}`)
		res := forward(t, p, conversions(t, 1))
		if len(other.Grants()) == 0 || len(api.Grants()) != 0 || res[0].Status != retry || !strings.Contains(res[0].Reason, "401") {
			// The other org's tokens are not valid here: retried, with a reason.
			t.Errorf("token requests: %d there, %d here; result %+v", len(other.Grants()), len(api.Grants()), res[0])
		}
	})
}

func TestUnmappableEventsFailAlone(t *testing.T) {
	api := newSalesforceAPI(t, "")
	p := connect(t, &Salesforce{}, `{"instance_url":"`+api.URL+`","object":"SMS_Conversion__c","access_token":"`+accessToken+`",`+conversionFields+`}`)
	evs := conversions(t, 6)
	evs[1].JSON = json.RawMessage(`{"event_id":`)
	evs[2].Type = "pageview"
	evs[3] = ev(t, click(3)) // no click_fields
	evs[4].JSON = json.RawMessage(`{"value":{"amount":1}}`)
	res := forward(t, p, evs)
	if !reflect.DeepEqual(statuses(res), []sdk.Status{delivered, failed, failed, failed, failed, delivered}) {
		t.Fatalf("results %+v", res)
	}
	if !strings.Contains(res[3].Reason, "events: [conversion]") || !strings.Contains(res[4].Reason, "Amount__c") {
		t.Errorf("reasons %q, %q", res[3].Reason, res[4].Reason)
	}
}

func TestConfigure(t *testing.T) {
	base := `"instance_url":"https://acme.my.salesforce.com","object":"Lead","access_token":"tok","conversion_fields":{"LastName":"user.email","Company":"=SMS"}`
	cases := []struct{ name, config, field string }{
		{"non-JSON", `instance_url=x`, "config"},
		{"trailing data", `{` + base + `} {}`, "config"},
		{"unknown field", `{` + base + `,"sobject":"Lead"}`, "sobject"},
		{"no instance_url", `{"object":"Lead","access_token":"t","conversion_fields":{"A__c":"value"}}`, "instance_url"},
		{"instance_url ftp", `{` + strings.Replace(base, "https://", "ftp://", 1) + `}`, "instance_url"},
		{"instance_url with /services", `{` + strings.Replace(base, ".com", ".com/services/data", 1) + `}`, "instance_url"},
		{"instance_url with user", `{` + strings.Replace(base, "https://", "https://u:p@", 1) + `}`, "instance_url"},
		{"api_version too old", `{` + base + `,"api_version":"45.0"}`, "api_version"},
		{"api_version junk", `{` + base + `,"api_version":"latest"}`, "api_version"},
		{"api_version minor", `{` + base + `,"api_version":"66.1"}`, "api_version"},
		{"no object", `{"instance_url":"https://a.my.salesforce.com","access_token":"t","conversion_fields":{"A__c":"value"}}`, "object"},
		{"object with space", `{` + strings.Replace(base, `"Lead"`, `"Lead X"`, 1) + `}`, "object"},
		{"no fields", `{"instance_url":"https://a.my.salesforce.com","object":"Lead","access_token":"t"}`, "conversion_fields"},
		{"field Id", `{` + base + `,"click_fields":{"Id":"click_id"}}`, "Id"},
		{"field name junk", `{` + base + `,"click_fields":{"Click ID":"click_id"}}`, "Click ID"},
		{"unknown path", `{` + base + `,"click_fields":{"A__c":"clickid"}}`, "clickid"},
		{"conversion path for a click", `{` + base + `,"click_fields":{"A__c":"attribution.campaign"}}`, "attribution.campaign"},
		{"external id not mapped", `{` + base + `,"external_id_field":"Event_ID__c"}`, "external_id_field"},
		{"external id junk", `{` + base + `,"external_id_field":"a b"}`, "external_id_field"},
		{"no credentials", `{"instance_url":"https://a.my.salesforce.com","object":"Lead","conversion_fields":{"A__c":"value"}}`, "access_token"},
		{"refresh without client", `{` + base + `,"refresh_token":"r"}`, "client_id"},
		{"client without secret", `{` + base + `,"client_id":"c"}`, "client_secret"},
		{"token with newline", `{` + strings.Replace(base, `"tok"`, `"tok\n"`, 1) + `}`, "access_token"},
		{"token_url junk", `{` + base + `,"token_url":"nope"}`, "token_url"},
		{"max_batch 201", `{` + base + `,"max_batch":201}`, "max_batch"},
		{"max_batch 0", `{` + base + `,"max_batch":0}`, "max_batch"},
		{"timeout", `{` + base + `,"timeout":"0s"}`, "timeout"},
	}
	p := sdktest.Connect(t, &Salesforce{log: slog.New(slog.DiscardHandler)})
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
		`{` + base + `,"api_version":"v62.0"}`,
		`{"instance_url":"https://a.my.salesforce.com/","object":"SMS_Conversion__c","client_id":"c","client_secret":"s","click_fields":{"Click_ID__c":"click_id"}}`,
		`{"instance_url":"https://a.my.salesforce.com","object":"Lead","client_id":"c","refresh_token":"r","conversion_fields":{"LastName":"user.email"}}`,
	} {
		if err := p.Configure(context.Background(), json.RawMessage(ok)); err != nil {
			t.Errorf("Configure(%s) = %v", ok, err)
		}
	}
}

// Credentials never appear in a log line, a reason or an error, even when Salesforce
// echoes them.
func TestSecretNeverLeaks(t *testing.T) {
	var log bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	secrets := []string{accessToken, clientSecret, refreshToken}
	var texts []string

	api := newSalesforceAPI(t, "")
	api.rotate = true
	api.respond = func(n int, _ write) *sdktest.Reply {
		if n%2 == 0 {
			return &sdktest.Reply{Status: 400, Body: `[{"errorCode":"JSON_PARSER_ERROR","message":"bad request: Authorization: Bearer ` + accessToken + `"}]`}
		}
		return nil
	}
	creds := `,"client_id":"` + clientID + `","client_secret":"` + clientSecret + `","refresh_token":"` + refreshToken + `"`
	p := connect(t, &Salesforce{log: logger}, config(api.URL, creds))
	for _, r := range forward(t, p, conversions(t, 2)) {
		texts = append(texts, r.Reason)
	}
	api.expire()
	api.mu.Lock()
	api.tokenErr = "invalid_client"
	api.mu.Unlock()
	for _, r := range forward(t, p, conversions(t, 1)) {
		texts = append(texts, r.Reason)
	}

	echo := sdktest.NewRecorder(t, func(r sdktest.Request) sdktest.Reply {
		return sdktest.Reply{Status: 400, Body: `{"error":"invalid_client","error_description":"bad secret ` + string(r.Body) + `"}`}
	})
	q := connect(t, &Salesforce{log: logger}, `{"instance_url":"`+echo.URL+`","object":"Lead",`+conversionFields+creds+`}`)
	for _, r := range forward(t, q, conversions(t, 1)) {
		texts = append(texts, r.Reason)
	}
	if err := sdktest.Connect(t, &Salesforce{log: logger}).Configure(context.Background(),
		json.RawMessage(`{"instance_url":"x","object":"Lead","access_token":"`+accessToken+`"}`)); err != nil {
		texts = append(texts, err.Error())
	}
	texts = append(texts, log.String())
	for _, s := range texts {
		for _, secret := range secrets {
			if strings.Contains(s, secret) || strings.Contains(s, url.QueryEscape(secret)) {
				t.Errorf("a secret leaked: %s", s)
			}
		}
	}
	if len(texts) < 5 || !strings.Contains(strings.Join(texts, " "), "[redacted]") {
		t.Errorf("texts %q", texts)
	}
}

func TestForwardBeforeConfigure(t *testing.T) {
	if _, err := (&Salesforce{}).Forward(context.Background(), conversions(t, 1)); err == nil {
		t.Fatal("Forward before Configure succeeded")
	}
}

// Hostile error bodies: parsing never fails and the summary is one bounded line.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"documented", `[{"message":"Email: invalid email address: 123","errorCode":"INVALID_EMAIL_ADDRESS","fields":["Email"]}]`,
			"INVALID_EMAIL_ADDRESS: Email: invalid email address: 123 (fields Email)"},
		{"collections entry", `{"statusCode":"DUPLICATE_VALUE","message":"duplicate value found","fields":[]}`, "DUPLICATE_VALUE: duplicate value found"},
		{"oauth", `{"error":"invalid_grant","error_description":"authentication failure"}`, "invalid_grant: authentication failure"},
		{"empty", ``, ""},
		{"empty array", `[]`, ""},
		{"HTML", "<html>\r\n<body>Service Unavailable</body></html>", "<html>  <body>Service Unavailable</body></html>"},
		{"wrong types", `[{"errorCode":7,"message":["m"],"fields":"Email"}]`, ""},
		{"fields of mixed types", `[{"errorCode":"X","fields":["A",1,null,"B"]}]`, "X (fields A, B)"},
		{"control characters", `[{"errorCode":"X","message":"a\nb\u0000c\u001b[31m"}]`, "X: a b c [31m"},
		{"invalid UTF-8", "[{\"errorCode\":\"X\",\"message\":\"a\xffb\"}]", "X: a b"},
		{"many", `[{"errorCode":"A"},{"errorCode":"B"},{"errorCode":"C"},{"errorCode":"D"},{"errorCode":"E"}]`, "A; B; C; and 2 more"},
		{"null entries", `[null, {"errorCode":"A"}]`, "A"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(parseErrors([]byte(tc.body)))
			if got != tc.want {
				t.Errorf("summary %q, want %q", got, tc.want)
			}
			checkLine(t, got)
		})
	}
	if s := summary(parseErrors([]byte(`[{"errorCode":"X","message":"` + strings.Repeat("é", 3000) + `"}]`))); !strings.HasSuffix(s, "…") {
		t.Errorf("a long message is not cut: %d bytes", len(s))
	}
}

func checkLine(t testing.TB, s string) {
	t.Helper()
	if len(s) > maxReason+len("…") || !utf8.ValidString(s) || strings.ContainsAny(s, "\n\r\x00\x1b") {
		t.Fatalf("reason is not one bounded, clean line: %q", s)
	}
}

func TestParseToken(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		token  string
		err    string
	}{
		{"documented", 200, `{"access_token":"00D!x","instance_url":"https://a.my.salesforce.com","token_type":"Bearer","issued_at":"1"}`, "00D!x", ""},
		{"no token type", 200, `{"access_token":"00D!x"}`, "00D!x", ""},
		{"not bearer", 200, `{"access_token":"00D!x","token_type":"MAC"}`, "", "token type"},
		{"no access token", 200, `{"instance_url":"x"}`, "", "token endpoint: 200"},
		{"oauth error", 400, `{"error":"invalid_grant","error_description":"expired access/refresh token"}`, "", "400 invalid_grant: expired access/refresh token"},
		{"not JSON", 502, `bad gateway`, "", "502 bad gateway"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := parseToken(answer{status: tc.status, body: []byte(tc.body)})
			if tc.err == "" && (err != nil || tok.AccessToken != tc.token) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("parseToken = %+v, %v; want %q, error %q", tok, err, tc.token, tc.err)
			}
		})
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
		defs := schema["$defs"].(map[string]any)
		for _, p := range paths {
			node := schema
			for _, part := range strings.Split(p, ".") {
				if ref, ok := node["$ref"].(string); ok {
					node = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
				}
				if one, ok := node["oneOf"].([]any); ok {
					node = defs[strings.TrimPrefix(one[len(one)-1].(map[string]any)["$ref"].(string), "#/$defs/")].(map[string]any)
				}
				props, _ := node["properties"].(map[string]any)
				next, ok := props[part].(map[string]any)
				if !ok && props == nil && node["type"] == "object" {
					next, ok = map[string]any{}, true // a touch's utm is a free object
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
		if d.Name != "salesforce" || d.ProtocolVersion != 1 || d.Version == "" {
			t.Errorf("describe = %+v", d)
		}
		var names, secrets []string
		for _, c := range d.Config {
			names = append(names, c.Name)
			if c.Secret {
				secrets = append(secrets, c.Name)
			}
			switch c.Name {
			case "api_version":
				if c.Default != "66.0" {
					t.Errorf("api_version default %v", c.Default)
				}
			case "max_batch":
				if c.Default != 200.0 {
					t.Errorf("max_batch default %v", c.Default)
				}
			case "instance_url", "object":
				if !c.Required {
					t.Errorf("%s must be required", c.Name)
				}
			}
		}
		want := []string{"instance_url", "api_version", "object", "click_fields", "conversion_fields", "external_id_field",
			"access_token", "client_id", "client_secret", "refresh_token", "token_url", "max_batch", "timeout"}
		if !reflect.DeepEqual(names, want) || !reflect.DeepEqual(secrets, []string{"access_token", "client_secret", "refresh_token"}) {
			t.Errorf("config fields %v (secret %v)", names, secrets)
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
		dir, err := os.MkdirTemp("", "clickgate-salesforce")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "salesforce")
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

// FuzzParseErrors: any error body, collection answer or token answer parses, and its
// reason is one bounded, clean line.
func FuzzParseErrors(f *testing.F) {
	f.Add(200, []byte(`[{"message":"m","errorCode":"INVALID_FIELD","fields":["A"]}]`))
	f.Add(200, []byte(`[{"id":"a","success":true,"errors":[]},{"success":false,"errors":[{"statusCode":"X","message":"m","fields":[]}]}]`))
	f.Add(400, []byte(`{"error":"invalid_grant","error_description":"d"}`))
	f.Add(200, []byte(`{"access_token":"t","token_type":"Bearer"}`))
	f.Add(503, []byte("\xff\x00<html>"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		checkLine(t, summary(parseErrors(body)))
		o := collectionOutcome(answer{status: 200, body: body}, []int{4, 5})
		if o.Verdict == 0 && len(o.Reason) > 0 {
			t.Fatal("an accepted answer with a reason")
		}
		if o.Verdict != 0 {
			checkLine(t, o.Reason)
		}
		for i, r := range o.Each {
			if i != 4 && i != 5 || r.Status == delivered || r.Reason == "" {
				t.Fatalf("record %d: %+v", i, r)
			}
			checkLine(t, r.Reason)
		}
		if _, err := parseToken(answer{status: status, body: body}); err != nil {
			checkLine(t, strings.TrimPrefix(err.Error(), "token endpoint: "))
		}
		s := &Salesforce{now: time.Now, cfg: Config{Object: "Lead"}}
		v, _, reason := s.classify(answer{status: status, body: body})
		if v == 0 || reason == "" {
			t.Fatalf("classify(%d) = %d %q", status, v, reason)
		}
	})
}

// FuzzRecord: any event either fails with a reason or becomes a record the org reads.
func FuzzRecord(f *testing.F) {
	doc, _ := json.Marshal(click(1))
	f.Add(sdk.TypeClick, doc)
	cdoc, _ := json.Marshal(conversion(1))
	f.Add(sdk.TypeConversion, cdoc)
	f.Add(sdk.TypeConversion, []byte(`{"event_id":"e","value":1e400,"user":{"email":"<a&b>\u2028"},"attribution":{"utm":{"campaign":[1]}}}`))
	f.Add(sdk.TypeClick, []byte(`{"event_id":"e","identity":{"kind":"customer_id","value":"c"}}`))
	s := &Salesforce{log: slog.New(slog.DiscardHandler)}
	if err := s.Configure(context.Background(), json.RawMessage(`{"instance_url":"https://a.my.salesforce.com","object":"SMS_Conversion__c",`+
		`"access_token":"t","external_id_field":"Event_ID__c",`+conversionFields+`,"click_fields":{"Event_ID__c":"event_id","Customer__c":"user.customer_id","Bot__c":"bot"}}`)); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ string, doc []byte) {
		rec, err := s.record(sdk.Event{Type: typ, Time: t0, JSON: doc})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a reason")
			}
			return
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(rec))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("record %s is not JSON: %v", rec, err)
		}
		if attrs, _ := m["attributes"].(map[string]any); attrs["type"] != "SMS_Conversion__c" {
			t.Fatalf("record %s", rec)
		}
		if v, ok := m["Event_ID__c"]; !ok || v == "" {
			t.Fatalf("record %s has no external ID", rec)
		}
		for k, v := range m {
			switch v.(type) {
			case string, json.Number, bool:
			default:
				if k != "attributes" {
					t.Fatalf("field %s holds %T", k, v)
				}
			}
		}
	})
}
