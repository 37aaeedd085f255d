// Command salesforce is clickgate's Salesforce forwarder: it writes clicks and
// conversions as records of a configurable sObject (a Lead, a custom SMS_Conversion__c,
// …) through the REST API's sObject Collections, up to 200 records per request, with a
// result per record. With an external ID field it upserts, so a redelivered event
// updates its record instead of creating a second one.
//
// It is written only against the public SDK (packages sdk and sdk/sdktest), the way a
// third-party forwarder would be.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/plugins/internal/narrow"
	"github.com/clickgate/clickgate/sdk"
)

// version is set at build time.
var version = "dev"

func main() { sdk.Serve(&Salesforce{}) }

const (
	defaultAPIVersion = "66.0" // Spring '26
	// sObject Collections upsert is available from API version 46.0.
	minAPIVersion = 46.0
	// sObject Collections take up to 200 records per request.
	maxRecords = 200
)

// apiName is the shape of sObject and field API names: Lead, Amount__c, ns__Field__c.
var apiName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// apiVersion is the shape of a REST API version: 66.0.
var apiVersion = regexp.MustCompile(`^[0-9]{2,3}\.0$`)

// Config is the plugin's "config" object. Field maps go from an sObject field's API
// name to where its value comes from (see source).
type Config struct {
	InstanceURL      string            `json:"instance_url"`
	APIVersion       string            `json:"api_version"`
	Object           string            `json:"object"`
	ClickFields      map[string]string `json:"click_fields"`
	ConversionFields map[string]string `json:"conversion_fields"`
	ExternalIDField  string            `json:"external_id_field"`
	AccessToken      string            `json:"access_token"`
	ClientID         string            `json:"client_id"`
	ClientSecret     string            `json:"client_secret"`
	RefreshToken     string            `json:"refresh_token"`
	TokenURL         string            `json:"token_url"`
	MaxBatch         int               `json:"max_batch"`
	Timeout          string            `json:"timeout"`
}

// field is a configured sObject field.
type field struct {
	name string
	src  source
}

// Salesforce forwards events to a Salesforce org.
type Salesforce struct {
	cfg      Config
	endpoint string // sObject Collections: POST to create, PATCH to upsert
	method   string
	tokenURL string
	fields   map[string][]field // by event type
	client   *http.Client
	now      func() time.Time
	log      *slog.Logger

	accessToken  string
	refreshToken string // rotated by the token endpoint when the app says so
}

var _ sdk.Forwarder = (*Salesforce)(nil)

// Info describes the plugin.
func (s *Salesforce) Info() sdk.Info {
	return sdk.Info{
		Name: "salesforce", Version: version,
		Description: "write clicks and conversions as records of a Salesforce sObject, upserting by an external ID field when configured",
		Config: []sdk.ConfigField{
			{Name: "instance_url", Type: "string", Required: true, Description: "the org's URL, like https://acme.my.salesforce.com"},
			{Name: "api_version", Type: "string", Default: defaultAPIVersion, Description: "REST API version, 46.0 or later"},
			{Name: "object", Type: "string", Required: true, Description: "the sObject's API name, like Lead or SMS_Conversion__c"},
			{Name: "click_fields", Type: "object", Description: "field API name → click field path or \"=literal\", like {\"Click_ID__c\": \"click_id\"}; empty: clicks fail, keep them away with events: [conversion]"},
			{Name: "conversion_fields", Type: "object", Description: "field API name → conversion field path or \"=literal\", like {\"Amount__c\": \"value\"}; empty: conversions fail"},
			{Name: "external_id_field", Type: "string", Description: "an External ID field among the mapped fields, like Event_ID__c ← event_id: records are upserted on it, so a redelivered event updates its record"},
			{Name: "access_token", Type: "string", Secret: true, Description: "an OAuth access token, sent as Authorization: Bearer; optional when client_id and client_secret are set"},
			{Name: "client_id", Type: "string", Description: "the connected app's consumer key, for the refresh token or client credentials flow"},
			{Name: "client_secret", Type: "string", Secret: true, Description: "the connected app's consumer secret"},
			{Name: "refresh_token", Type: "string", Secret: true, Description: "with client_id: the refresh token flow; without it, client_id and client_secret use the client credentials flow"},
			{Name: "token_url", Type: "string", Description: "the OAuth token endpoint; default {instance_url}/services/oauth2/token"},
			{Name: "max_batch", Type: "int", Default: maxRecords, Description: "records per request, 1 to 200"},
			{Name: "timeout", Type: "duration", Default: "10s", Description: "per request"},
		},
	}
}

// Configure validates the configuration. Errors name the field.
func (s *Salesforce) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{APIVersion: defaultAPIVersion, MaxBatch: maxRecords, Timeout: "10s"}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return errors.New("config: want a single JSON object")
	}
	instance, err := baseURL(cfg.InstanceURL)
	if err != nil {
		return fmt.Errorf("config.instance_url: %v, like https://acme.my.salesforce.com", err)
	}
	if strings.Contains(instance, "/services") {
		return errors.New("config.instance_url: give the org's URL, like https://acme.my.salesforce.com, without /services/…")
	}
	v := strings.TrimPrefix(cfg.APIVersion, "v")
	if f, err := strconv.ParseFloat(v, 64); err != nil || !apiVersion.MatchString(v) || f < minAPIVersion {
		return fmt.Errorf("config.api_version: want a version like %s, at least 46.0 (sObject Collections upsert)", defaultAPIVersion)
	}
	if !apiName.MatchString(cfg.Object) {
		return errors.New("config.object: want the sObject's API name, like Lead or SMS_Conversion__c")
	}
	fields := map[string][]field{}
	for _, f := range []struct {
		name, typ string
		m         map[string]string
	}{{"click_fields", sdk.TypeClick, cfg.ClickFields}, {"conversion_fields", sdk.TypeConversion, cfg.ConversionFields}} {
		if fields[f.typ], err = parseFields(f.name, f.typ, f.m); err != nil {
			return err
		}
	}
	if len(cfg.ClickFields) == 0 && len(cfg.ConversionFields) == 0 {
		return errors.New("config.click_fields, config.conversion_fields: map at least one event type to fields, like {\"Click_ID__c\": \"click_id\"}")
	}
	if x := cfg.ExternalIDField; x != "" {
		if !apiName.MatchString(x) {
			return errors.New("config.external_id_field: want a field's API name, like Event_ID__c")
		}
		for typ, m := range map[string]map[string]string{sdk.TypeClick: cfg.ClickFields, sdk.TypeConversion: cfg.ConversionFields} {
			if _, ok := m[x]; len(m) > 0 && !ok {
				return fmt.Errorf("config.external_id_field: %s is not in %s_fields; map it, like \"%s\": \"event_id\"", x, typ, x)
			}
		}
	}
	for name, secret := range map[string]string{"access_token": cfg.AccessToken, "client_id": cfg.ClientID, "client_secret": cfg.ClientSecret, "refresh_token": cfg.RefreshToken} {
		if strings.IndexFunc(secret, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			return fmt.Errorf("config.%s: contains white space or control characters", name)
		}
	}
	switch {
	case cfg.RefreshToken != "" && cfg.ClientID == "":
		return errors.New("config.client_id: required with refresh_token (the connected app's consumer key)")
	case cfg.ClientID != "" && cfg.ClientSecret == "" && cfg.RefreshToken == "":
		return errors.New("config.client_secret: required with client_id for the client credentials flow (or give a refresh_token)")
	case cfg.grant() == "" && cfg.AccessToken == "":
		return errors.New("config.access_token: required, unless client_id and client_secret (and refresh_token) let the plugin get tokens itself")
	}
	tokenURL := instance + "/services/oauth2/token"
	if cfg.TokenURL != "" {
		if tokenURL, err = baseURL(cfg.TokenURL); err != nil {
			return fmt.Errorf("config.token_url: %v", err)
		}
	}
	if cfg.MaxBatch < 1 || cfg.MaxBatch > maxRecords {
		return fmt.Errorf("config.max_batch: want 1 to %d (sObject Collections' limit)", maxRecords)
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 5*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 5m")
	}
	cfg.APIVersion = v
	s.cfg, s.fields, s.tokenURL = cfg, fields, tokenURL
	s.endpoint, s.method = instance+"/services/data/v"+v+"/composite/sobjects", http.MethodPost
	if cfg.ExternalIDField != "" {
		s.endpoint += "/" + cfg.Object + "/" + cfg.ExternalIDField
		s.method = http.MethodPatch
	}
	s.accessToken, s.refreshToken = cfg.AccessToken, cfg.RefreshToken
	s.client = sdk.HTTPClient(t)
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	s.log.Info("configured", "endpoint", s.redact(s.method+" "+s.endpoint), "grant_type", cfg.grant())
	return nil
}

// baseURL checks an http or https URL without query or credentials and trims its
// trailing slash.
func baseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", errors.New("want an http or https URL without query")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// parseFields reads a field map for an event type, sorted by field name.
func parseFields(name, typ string, m map[string]string) ([]field, error) {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]field, 0, len(names))
	for _, n := range names {
		if !apiName.MatchString(n) || strings.EqualFold(n, "Id") || n == "attributes" {
			return nil, fmt.Errorf("config.%s.%s: want a field's API name, like Amount__c (not Id)", name, n)
		}
		src, err := parseSource(m[n], typ)
		if err != nil {
			return nil, fmt.Errorf("config.%s.%s: %v", name, n, err)
		}
		out = append(out, field{name: n, src: src})
	}
	return out, nil
}

// record maps an event to its sObject record: {"attributes": {"type": …}, fields…}.
func (s *Salesforce) record(e sdk.Event) (json.RawMessage, error) {
	fields, ok := s.fields[e.Type]
	switch {
	case !ok:
		return nil, fmt.Errorf("event type %q is not click or conversion", e.Type)
	case len(fields) == 0 && e.Type == sdk.TypeClick:
		return nil, errors.New("clicks are not sent: config.click_fields is empty; keep clicks away from this plugin with events: [conversion] in the plugins file")
	case len(fields) == 0:
		return nil, errors.New("conversions are not sent: config.conversion_fields is empty; keep conversions away from this plugin with events: [click] in the plugins file")
	}
	doc, err := decodeDocument(e)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"attributes":{"type":`)
	b.Write(quote(s.cfg.Object))
	b.WriteByte('}')
	n := 0
	for _, f := range fields {
		v, ok, err := doc.value(f.src)
		if err != nil {
			return nil, fmt.Errorf("field %s: %v", f.name, err)
		}
		if !ok {
			if f.name == s.cfg.ExternalIDField {
				return nil, fmt.Errorf("the external ID field %s gets no value from %s in this event", f.name, f.src)
			}
			continue
		}
		b.WriteByte(',')
		b.Write(quote(f.name))
		b.WriteByte(':')
		b.Write(v)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s event has none of the mapped fields", e.Type)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Forward maps the events to records and writes them with sObject Collections, in
// batches, with a result per record. After a request that must be retried (a 429, a
// 5xx, the org's request limit, a network error) the rest of the call is not sent: it
// is retried with it.
func (s *Salesforce) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if s.client == nil {
		return nil, errors.New("salesforce: Forward before Configure")
	}
	ctx, cancel := narrow.Context(ctx)
	defer cancel()
	results := make([]sdk.Result, len(evs))
	records := make([]json.RawMessage, len(evs))
	var pending []int
	for i, e := range evs {
		r, err := s.record(e)
		if err != nil {
			results[i] = sdk.Failed(err.Error())
			continue
		}
		records[i] = r
		pending = append(pending, i)
	}
	c := &narrow.Call{Ctx: ctx, Budget: narrow.Budget}
	c.Set = func(i int, r sdk.Result) { results[i] = r }
	c.Send = func(items []int) outcome {
		var body bytes.Buffer
		body.WriteString(`{"allOrNone":false,"records":[`)
		for k, i := range items {
			if k > 0 {
				body.WriteByte(',')
			}
			body.Write(records[i])
		}
		body.WriteString("]}")
		return s.write(ctx, body.Bytes(), items)
	}
	c.Deliver(pending, s.cfg.MaxBatch)
	for i := range results {
		results[i].Reason = s.redact(results[i].Reason)
	}
	return results, nil
}

// write sends one sObject Collections request, getting an access token first when
// there is none and a new one once when Salesforce answers 401.
func (s *Salesforce) write(ctx context.Context, body []byte, items []int) outcome {
	if s.accessToken == "" {
		if err := s.obtainToken(ctx); err != nil {
			return outcome{Verdict: verdictRetry, Reason: "no access token: " + err.Error() + " (" + s.authHint() + ")"}
		}
	}
	a := s.send(ctx, s.method, s.endpoint, body, s.accessToken)
	if a.err == nil && a.status == http.StatusUnauthorized && s.cfg.grant() != "" {
		if err := s.obtainToken(ctx); err != nil {
			return outcome{Verdict: verdictRetry, Reason: fmt.Sprintf("%d %s; no new access token: %v", a.status, summary(parseErrors(a.body)), err)}
		}
		a = s.send(ctx, s.method, s.endpoint, body, s.accessToken)
	}
	if a.err == nil && a.status >= 200 && a.status < 300 {
		return collectionOutcome(a, items)
	}
	v, after, reason := s.classify(a)
	o := outcome{Verdict: v, After: after, Reason: reason}
	if v == verdictSplit {
		o.Key = summary(parseErrors(a.body))
		if len(items) > 1 {
			s.log.Warn("Salesforce rejected a batch without naming the record at fault; sending it in halves", "records", len(items), "reason", s.redact(reason))
		}
	}
	return o
}

// redact keeps the credentials out of text that may quote them.
func (s *Salesforce) redact(t string) string {
	for _, secret := range []string{s.accessToken, s.cfg.AccessToken, s.cfg.ClientSecret, s.cfg.RefreshToken, s.refreshToken} {
		if len(secret) >= 4 {
			t = strings.ReplaceAll(t, secret, "[redacted]")
		}
	}
	return t
}

// Close has only idle connections to release.
func (s *Salesforce) Close(context.Context) error {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	return nil
}
