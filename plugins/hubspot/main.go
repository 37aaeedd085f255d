// Command hubspot is clickgate's HubSpot forwarder: it records clicks and conversions
// as custom event occurrences on contacts (POST /events/v3/send/batch), and can first
// upsert each converting contact by email with properties taken from the event
// (POST /crm/v3/objects/contacts/batch/upsert). It authenticates with a private app's
// access token.
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
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/plugins/internal/narrow"
	"github.com/clickgate/clickgate/sdk"
)

// version is set at build time.
var version = "dev"

func main() { sdk.Serve(&HubSpot{}) }

const (
	defaultBaseURL = "https://api.hubapi.com"
	eventsPath     = "/events/v3/send/batch"
	contactsPath   = "/crm/v3/objects/contacts/batch/upsert"
	eventsScope    = "analytics.behavioral_events.send"
	contactsScope  = "crm.objects.contacts.write"
)

// Config is the plugin's "config" object. Property maps go from a HubSpot property's
// internal name to where its value comes from (see source).
type Config struct {
	AccessToken          string            `json:"access_token"`
	BaseURL              string            `json:"base_url"`
	ClickEvent           string            `json:"click_event"`
	ConversionEvent      string            `json:"conversion_event"`
	ClickProperties      map[string]string `json:"click_properties"`
	ConversionProperties map[string]string `json:"conversion_properties"`
	URLProperties        []string          `json:"url_properties"`
	MatchingProperty     string            `json:"matching_property"`
	UpsertContacts       bool              `json:"upsert_contacts"`
	ContactProperties    map[string]string `json:"contact_properties"`
	MaxBatch             int               `json:"max_batch"`
	Timeout              string            `json:"timeout"`
}

// defaultClickProperties and defaultConversionProperties are what an event carries when
// the configuration names no properties; the event definitions must have them.
func defaultClickProperties() map[string]string {
	return map[string]string{
		"click_id": "click_id", "link_slug": "slug", "sms_campaign": "campaign",
		"utm_source": "utm.source", "utm_medium": "utm.medium", "utm_campaign": "utm.campaign",
		"utm_content": "utm.content", "utm_term": "utm.term", "destination_url": "destination",
	}
}

func defaultConversionProperties() map[string]string {
	return map[string]string{
		"conversion_type": "type", "conversion_status": "status", "order_id": "source_event_id",
		"value": "value", "currency": "currency",
		"click_id": "attribution.click_id", "sms_campaign": "attribution.campaign",
		"utm_campaign": "attribution.utm.campaign", "utm_content": "attribution.utm.content",
		"seconds_to_convert": "attribution.seconds_to_convert",
	}
}

// HubSpot forwards events to HubSpot.
type HubSpot struct {
	cfg             Config
	base            string
	client          *http.Client
	clickProps      []property
	conversionProps []property
	contactProps    map[string][]property // by event type
	now             func() time.Time
	log             *slog.Logger
}

var _ sdk.Forwarder = (*HubSpot)(nil)

// Info describes the plugin.
func (h *HubSpot) Info() sdk.Info {
	return sdk.Info{
		Name: "hubspot", Version: version,
		Description: "record clicks and conversions in HubSpot as custom events on contacts, optionally upserting the contact",
		Config: []sdk.ConfigField{
			{Name: "access_token", Type: "string", Required: true, Secret: true, Description: "a private app's access token, sent as Authorization: Bearer; scopes analytics.behavioral_events.send, and crm.objects.contacts.write to upsert contacts"},
			{Name: "base_url", Type: "string", Default: defaultBaseURL, Description: "HubSpot's API; requests go to {base_url}/events/v3/send/batch and {base_url}/crm/v3/objects/contacts/batch/upsert"},
			{Name: "click_event", Type: "string", Description: "fully qualified name of the custom event for clicks, like pe1234567_sms_link_clicked; empty: clicks fail, keep them away with events: [conversion]"},
			{Name: "conversion_event", Type: "string", Description: "fully qualified name of the custom event for conversions, like pe1234567_sms_conversion; empty: conversions fail"},
			{Name: "click_properties", Type: "object", Default: defaultClickProperties(), Description: "event property internal name → click field path (or \"=literal\"); at most 50"},
			{Name: "conversion_properties", Type: "object", Default: defaultConversionProperties(), Description: "event property internal name → conversion field path (or \"=literal\"); at most 50"},
			{Name: "url_properties", Type: "array", Default: []string{"destination_url"}, Description: "event properties of type URL or referrer, which take values up to 1,024 characters instead of 256"},
			{Name: "matching_property", Type: "string", Description: "the event property set up as the events' custom matching ID (say customer_id ← user.customer_id): events without an email are sent when it has a value"},
			{Name: "upsert_contacts", Type: "bool", Default: false, Description: "upsert the contact by email (creating it if needed) before sending its event"},
			{Name: "contact_properties", Type: "object", Description: "contact property internal name → field path (or \"=literal\"), set by the upsert, like {\"phone\": \"user.phone\"}"},
			{Name: "max_batch", Type: "int", Default: maxEventsPerBatch, Description: "occurrences per /events/v3/send/batch request, 1 to 500"},
			{Name: "timeout", Type: "duration", Default: "10s", Description: "per request"},
		},
	}
}

// Configure validates the configuration. Errors name the field.
func (h *HubSpot) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{BaseURL: defaultBaseURL, MaxBatch: maxEventsPerBatch, Timeout: "10s"}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return errors.New("config: want a single JSON object")
	}
	switch {
	case cfg.AccessToken == "":
		return errors.New("config.access_token: required (a private app's access token)")
	case strings.IndexFunc(cfg.AccessToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("config.access_token: contains white space or control characters")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("config.base_url: want an http or https URL without query, like https://api.hubapi.com")
	}
	base := strings.TrimRight(u.String(), "/")
	if strings.HasSuffix(base, "/events/v3/send") || strings.HasSuffix(base, eventsPath) || strings.Contains(base, "/crm/") {
		return errors.New("config.base_url: give the API's base URL, like https://api.hubapi.com, not an endpoint")
	}
	for field, name := range map[string]string{"click_event": cfg.ClickEvent, "conversion_event": cfg.ConversionEvent} {
		if strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 || len(name) > 200 {
			return fmt.Errorf("config.%s: want the event's fully qualified name, like pe1234567_sms_link_clicked", field)
		}
	}
	if cfg.ClickEvent == "" && cfg.ConversionEvent == "" {
		return errors.New("config.click_event, config.conversion_event: name at least one custom event (its fully qualified name, like pe1234567_sms_conversion)")
	}
	if cfg.ClickProperties == nil {
		cfg.ClickProperties = defaultClickProperties()
	}
	if cfg.ConversionProperties == nil {
		cfg.ConversionProperties = defaultConversionProperties()
	}
	if cfg.URLProperties == nil {
		cfg.URLProperties = []string{"destination_url"}
	}
	urls := map[string]bool{}
	for _, n := range cfg.URLProperties {
		urls[n] = true
	}
	clickProps, err := properties("click_properties", sdk.TypeClick, cfg.ClickProperties, urls, true)
	if err != nil {
		return err
	}
	conversionProps, err := properties("conversion_properties", sdk.TypeConversion, cfg.ConversionProperties, urls, true)
	if err != nil {
		return err
	}
	if m := cfg.MatchingProperty; m != "" && cfg.ClickProperties[m] == "" && cfg.ConversionProperties[m] == "" {
		return fmt.Errorf("config.matching_property: %q is not in click_properties or conversion_properties", m)
	}
	contactProps, err := contactProperties(cfg.ContactProperties)
	if err != nil {
		return err
	}
	if len(cfg.ContactProperties) > 0 && !cfg.UpsertContacts {
		return errors.New("config.contact_properties: set upsert_contacts to true as well, or the contacts are not written")
	}
	if cfg.MaxBatch < 1 || cfg.MaxBatch > maxEventsPerBatch {
		return fmt.Errorf("config.max_batch: want 1 to %d (HubSpot's limit per batch)", maxEventsPerBatch)
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 5*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 5m")
	}
	h.cfg, h.base, h.client = cfg, base, sdk.HTTPClient(t)
	h.clickProps, h.conversionProps, h.contactProps = clickProps, conversionProps, contactProps
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	h.log.Info("configured", "base_url", h.redact(base), "click_event", cfg.ClickEvent, "conversion_event", cfg.ConversionEvent, "upsert_contacts", cfg.UpsertContacts)
	return nil
}

// contactProperties reads config.contact_properties: a path may exist in only one of
// the event types (attribution.campaign, say), and is then set from that type only.
func contactProperties(cfg map[string]string) (map[string][]property, error) {
	out := map[string][]property{}
	for _, typ := range []string{sdk.TypeClick, sdk.TypeConversion} {
		sub := map[string]string{}
		for n, s := range cfg {
			if _, err := parseSource(s, typ); err == nil {
				sub[n] = s
			}
		}
		props, err := properties("contact_properties", typ, sub, nil, false)
		if err != nil {
			return nil, err
		}
		out[typ] = props
	}
	for n, s := range cfg {
		_, errClick := parseSource(s, sdk.TypeClick)
		_, errConv := parseSource(s, sdk.TypeConversion)
		if errClick != nil && errConv != nil {
			return nil, fmt.Errorf("config.contact_properties.%s: %v", n, errConv)
		}
	}
	return out, nil
}

// Forward maps the events, upserts their contacts when configured, then sends the
// occurrences in batches. Every event gets its own result: one HubSpot cannot take
// fails alone. After a request that must be retried (429, 5xx, a network error) the
// rest of the call is not sent: it is retried with it.
func (h *HubSpot) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if h.client == nil {
		return nil, errors.New("hubspot: Forward before Configure")
	}
	ctx, cancel := narrow.Context(ctx)
	defer cancel()
	results := make([]sdk.Result, len(evs))
	ms := make([]mapped, len(evs))
	var pending []int
	for i, e := range evs {
		m, err := h.mapEvent(e)
		if err != nil {
			results[i] = sdk.Failed(err.Error())
			continue
		}
		ms[i] = m
		pending = append(pending, i)
	}
	c := &narrow.Call{Ctx: ctx, Budget: narrow.Budget}
	if h.cfg.UpsertContacts {
		pending = h.upsertContacts(c, ms, pending, results)
	}
	c.Set = func(i int, r sdk.Result) { results[i] = r }
	c.Send = func(items []int) outcome {
		inputs := make([]eventInput, len(items))
		for k, i := range items {
			inputs[k] = ms[i].event
		}
		a := h.post(ctx, eventsPath, map[string]any{"inputs": inputs})
		if a.err == nil && a.status >= 200 && a.status < 300 {
			return outcome{}
		}
		return h.rejected(a, eventsScope, len(items))
	}
	c.Deliver(pending, h.cfg.MaxBatch)
	for i := range results {
		results[i].Reason = h.redact(results[i].Reason)
	}
	return results, nil
}

// redact keeps the access token out of text that may quote it: an error body that
// echoes the request, a URL in a network error.
func (h *HubSpot) redact(s string) string {
	if h.cfg.AccessToken == "" {
		return s
	}
	return strings.ReplaceAll(s, h.cfg.AccessToken, "[access_token]")
}

// upsertContacts upserts the contacts of the pending events, one input per email, and
// returns the events whose contact is in HubSpot (or that have none to upsert); the
// others have their result.
func (h *HubSpot) upsertContacts(c *narrow.Call, ms []mapped, pending []int, results []sdk.Result) []int {
	var contacts []contactInput
	var owners [][]int // events of each contact
	byEmail := map[string]int{}
	for _, i := range pending {
		m := ms[i]
		if m.email == "" {
			continue
		}
		k, ok := byEmail[m.email]
		if !ok {
			// HubSpot rejects a batch that names one record twice: the events of a
			// contact share one input, later events' values winning.
			k = len(contacts)
			byEmail[m.email] = k
			contacts = append(contacts, contactInput{ID: m.email, IDProperty: "email", ObjectWriteTraceID: strconv.Itoa(k), Properties: map[string]string{}})
			owners = append(owners, nil)
		}
		for p, v := range m.contact {
			contacts[k].Properties[p] = v
		}
		owners[k] = append(owners[k], i)
	}
	if len(contacts) == 0 {
		return pending
	}
	held := map[int]bool{} // events whose contact is not in HubSpot yet
	c.Set = func(k int, r sdk.Result) {
		if r.Status == sdk.StatusDelivered {
			return
		}
		r.Reason = "contact upsert: " + r.Reason
		for _, i := range owners[k] {
			results[i], held[i] = r, true
		}
	}
	c.Send = func(items []int) outcome {
		inputs := make([]contactInput, len(items))
		for n, k := range items {
			inputs[n] = contacts[k]
		}
		a := h.post(c.Ctx, contactsPath, map[string]any{"inputs": inputs})
		if a.err == nil && a.status >= 200 && a.status < 300 {
			return upsertOutcome(a, items)
		}
		return h.rejected(a, contactsScope, len(items))
	}
	all := make([]int, len(contacts))
	for k := range all {
		all[k] = k
	}
	c.Deliver(all, maxContactsBatch)
	var next []int
	for _, i := range pending {
		if !held[i] {
			next = append(next, i)
		}
	}
	return next
}

// upsertOutcome reads a successful upsert answer. HubSpot's multi-status answer lists
// the inputs it did not write in errors[], each naming the input's objectWriteTraceId;
// an error that names none cannot be pinned on an input, so the inputs not named are
// sent again (an upsert by email is safe to repeat).
func upsertOutcome(a answer, items []int) outcome {
	var body struct {
		Errors []json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(a.body, &body) != nil || len(body.Errors) == 0 {
		return outcome{}
	}
	o := outcome{Each: map[int]sdk.Result{}}
	var loose []string
	for _, raw := range body.Errors {
		e := parseAPIError(raw)
		traces := e.Context["objectWriteTraceId"]
		for _, t := range traces {
			if k, err := strconv.Atoi(t); err == nil {
				o.Each[k] = sdk.Failed(e.summary(a.status))
			}
		}
		if len(traces) == 0 {
			loose = append(loose, e.summary(a.status))
		}
	}
	if len(loose) > 0 {
		r := sdk.Retry(0, "HubSpot reported an error it tied to no input: "+clean(strings.Join(loose, " | "), maxReason))
		for _, k := range items {
			if _, ok := o.Each[k]; !ok {
				o.Each[k] = r
			}
		}
	}
	return o
}

// rejected turns an answer that is not a success into an outcome.
func (h *HubSpot) rejected(a answer, scope string, n int) outcome {
	v, after, reason := classify(a, h.now(), scope)
	o := outcome{Verdict: v, After: after, Reason: reason}
	if v == verdictSplit {
		o.Key = parseAPIError(a.body).key(a.status)
		if n > 1 {
			h.log.Warn("HubSpot rejected a batch without naming the input at fault; sending it in halves", "inputs", n, "reason", h.redact(reason))
		}
	}
	return o
}

// Close has only idle connections to release.
func (h *HubSpot) Close(context.Context) error {
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
	return nil
}
