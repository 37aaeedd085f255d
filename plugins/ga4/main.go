// Command ga4 is clickgate's Google Analytics 4 forwarder: it sends clicks and
// conversions to the GA4 Measurement Protocol, POST {base_url}/mp/collect with the
// web stream's measurement_id and an API secret in the query.
//
// The Measurement Protocol answers 2xx even to payloads it drops, so the forwarder
// checks every event against the documented limits before sending, and an event that
// breaks one fails alone with the reason. With config.debug it sends to the validation
// server instead (/debug/mp/collect) and turns its validation messages into per-event
// results: a dry run that records nothing in reports.
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
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/sdk"
)

// version is set at build time.
var version = "dev"

func main() { sdk.Serve(&GA4{}) }

// The Measurement Protocol's documented limits
// (developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events#limitations).
const (
	maxEventsPerRequest = 25
	// "The post body must be smaller than 130kB", counted in decimal bytes.
	maxBodyBytes = 130_000
	maxParams    = 25
	maxNameLen   = 40
	// Parameter values of a standard property; 360 properties take 500, but a value
	// cut to 100 is valid for both.
	maxParamValueLen = 100
	// User-ID values are at most 256 characters (GA4 collection limits).
	maxUserIDLen = 256
	// Events can be backdated up to 72 hours; older ones are recorded at "72 hours
	// ago" (or rejected under validation_behavior ENFORCE_RECOMMENDATIONS).
	maxBackdate = 72 * time.Hour
)

// maxClockSkew is how far in the future an event time may be and still be sent, as
// now: GA4 wants timestamps at or before the request time, and a merchant's clock a
// few seconds ahead of this one should not cost a conversion.
const maxClockSkew = time.Minute

const (
	defaultBaseURL    = "https://www.google-analytics.com"
	defaultClickEvent = "sms_link_click"
	defaultTimeout    = "10s"
	collectPath       = "/mp/collect"
	debugPath         = "/debug/mp/collect"
)

// Config is the plugin's "config" object.
type Config struct {
	MeasurementID string `json:"measurement_id"`
	APISecret     string `json:"api_secret"`
	BaseURL       string `json:"base_url"`
	ClickEvent    string `json:"click_event"`
	// EventNames maps clickgate conversion types to GA4 event names, over the
	// built-in defaults (purchase, generate_lead, sign_up, add_to_cart).
	EventNames     map[string]string `json:"event_names"`
	Debug          bool              `json:"debug"`
	SendLateEvents bool              `json:"send_late_events"`
	Timeout        string            `json:"timeout"`
}

// GA4 forwards events to the GA4 Measurement Protocol.
type GA4 struct {
	cfg      Config
	names    map[string]string
	endpoint string // without the query, which carries the secret
	query    string
	client   *http.Client
	log      *slog.Logger
	// stderr receives the plugin's log lines (os.Stderr when nil), which the host
	// passes on to its own log; tests capture it.
	stderr io.Writer
	now    func() time.Time
}

var _ sdk.Forwarder = (*GA4)(nil)

var measurementIDRE = regexp.MustCompile(`^G-[A-Z0-9]{4,20}$`)

// Info describes the plugin.
func (g *GA4) Info() sdk.Info {
	return sdk.Info{
		Name: "ga4", Version: version,
		Description: "send clicks and attributed conversions to Google Analytics 4 through the Measurement Protocol",
		Config: []sdk.ConfigField{
			{Name: "measurement_id", Type: "string", Required: true, Description: "the web data stream's measurement ID, G-XXXXXXXXXX"},
			{Name: "api_secret", Type: "string", Required: true, Secret: true, Description: "a Measurement Protocol API secret of that stream (sent in the query, as GA4 requires)"},
			{Name: "base_url", Type: "string", Default: defaultBaseURL, Description: "https://region1.google-analytics.com to collect in the EU, or a test server; requests go to {base_url}/mp/collect"},
			{Name: "click_event", Type: "string", Default: defaultClickEvent, Description: "GA4 event name of a click (\"click\" is reserved by GA4)"},
			{Name: "event_names", Type: "object", Description: "conversion type to GA4 event name, over the defaults purchase, lead: generate_lead, signup: sign_up, add_to_cart; other types are sent under their own name"},
			{Name: "debug", Type: "bool", Default: false, Description: "dry run: send to /debug/mp/collect, which validates and records nothing; events it accepts count as delivered"},
			{Name: "send_late_events", Type: "bool", Default: false, Description: "send events older than 72 hours, which GA4 records at 72 hours ago; by default they are dead-lettered"},
			{Name: "timeout", Type: "duration", Default: defaultTimeout, Description: "per request"},
		},
	}
}

// Configure validates the configuration. Errors name the field and never repeat the
// secret.
func (g *GA4) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{BaseURL: defaultBaseURL, ClickEvent: defaultClickEvent, Timeout: defaultTimeout}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field is an error, not a silent default
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", redactJSONError(err))
	}
	if dec.More() {
		return errors.New("config: want a single JSON object")
	}
	cfg.MeasurementID = strings.TrimSpace(cfg.MeasurementID)
	if !measurementIDRE.MatchString(cfg.MeasurementID) {
		return errors.New("config.measurement_id: want a GA4 web stream measurement ID like G-ABC123XYZ9 (Admin > Data streams), not a property or stream ID")
	}
	switch {
	case cfg.APISecret == "":
		return errors.New("config.api_secret: required (Admin > Data streams > your stream > Measurement Protocol API secrets)")
	case strings.IndexFunc(cfg.APISecret, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("config.api_secret: contains white space or control characters")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("config.base_url: want an http or https URL without query, like " + defaultBaseURL)
	}
	base := strings.TrimRight(u.String(), "/")
	if strings.HasSuffix(base, "/mp/collect") || strings.HasSuffix(base, "/mp") || strings.HasSuffix(base, "/debug") {
		return errors.New("config.base_url: give the base URL without /mp/collect, like " + defaultBaseURL + " (set debug for the validation server)")
	}
	if err := checkEventName(cfg.ClickEvent); err != nil {
		return fmt.Errorf("config.click_event: %v", err)
	}
	names := map[string]string{}
	for typ, name := range defaultEventNames {
		names[typ] = name
	}
	for typ, name := range cfg.EventNames {
		if !conversionTypeRE.MatchString(typ) {
			return fmt.Errorf("config.event_names: %q is not a clickgate conversion type (lowercase snake_case)", typ)
		}
		if err := checkEventName(name); err != nil {
			return fmt.Errorf("config.event_names.%s: %v", typ, err)
		}
		names[typ] = name
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 2*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 2m")
	}
	path := collectPath
	if cfg.Debug {
		path = debugPath
	}
	g.cfg, g.names, g.endpoint = cfg, names, base+path
	g.query = url.Values{"measurement_id": {cfg.MeasurementID}, "api_secret": {cfg.APISecret}}.Encode()
	g.client = sdk.HTTPClient(t)
	if g.now == nil {
		g.now = time.Now
	}
	w := g.stderr
	if w == nil {
		w = os.Stderr
	}
	g.log = slog.New(slog.NewJSONHandler(w, nil))
	g.log.Info("configured", "endpoint", g.endpoint, "measurement_id", cfg.MeasurementID, "debug", cfg.Debug)
	if cfg.Debug {
		g.log.Warn("debug is on: events are validated by GA4 and not recorded, yet accepted ones count as delivered; turn it off for production")
	}
	return nil
}

// redactJSONError keeps a decoding error from quoting config values.
func redactJSONError(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("not valid JSON at byte %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("%s: want a %s", typ.Field, typ.Type)
	}
	return err
}

// Forward maps the events, groups them by the identity GA4 takes per request
// (client_id, user_id, user_data), packs each group into requests of at most 25 events
// under the byte limit, and sends them in order. An event that cannot be mapped or
// breaks a documented limit fails alone. After a request that must be retried (429,
// 5xx, a network error) the rest of the call is not sent: it is retried with it. So is
// what is left once less than a request's timeout remains of the call: the host kills
// a plugin whose call overruns and sends the whole batch again, and GA4 dedupes only
// purchases, so the events already sent would count twice.
func (g *GA4) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if g.client == nil {
		return nil, errors.New("ga4: Forward before Configure")
	}
	results := make([]sdk.Result, len(evs))
	now := g.now()
	var groups []*group
	byKey := map[string]*group{}
	for i, e := range evs {
		m, err := g.mapEvent(e, now)
		if err != nil {
			results[i] = sdk.Failed(err.Error())
			continue
		}
		k := m.key()
		gr := byKey[k]
		if gr == nil {
			gr = &group{head: m.request}
			byKey[k] = gr
			groups = append(groups, gr)
		}
		if size := gr.envelope() + len(m.event); size >= maxBodyBytes {
			results[i] = sdk.Failed(fmt.Sprintf("event is %d bytes as a Measurement Protocol request; GA4 takes bodies under 130 kB", size))
			continue
		}
		gr.events = append(gr.events, m.event)
		gr.ids = append(gr.ids, m.id)
		gr.index = append(gr.index, i)
	}
	var stop *sdk.Result
	for _, gr := range groups {
		for _, batch := range gr.pack() {
			if dl, ok := ctx.Deadline(); ok && stop == nil && time.Until(dl) < g.client.Timeout {
				r := sdk.NotSent(0, "not sent: less than config.timeout is left of the call (the plugin's timeout in the plugins file)")
				for _, k := range batch {
					results[gr.index[k]] = r
				}
				stop = &r
				continue
			}
			if stop != nil {
				r := *stop // the call ran short of time
				if stop.Status != sdk.StatusNotSent {
					r = sdk.NotSent(stop.RetryAfter, "not sent after an earlier request of the call: "+stop.Reason)
				}
				for _, k := range batch {
					results[gr.index[k]] = r
				}
				continue
			}
			rs := g.send(ctx, gr, batch)
			for j, k := range batch {
				results[gr.index[k]] = rs[j]
				if rs[j].Status == sdk.StatusRetry && stop == nil {
					stop = &rs[j]
				}
			}
		}
	}
	return results, nil
}

// group is the events of one request identity, in order.
type group struct {
	head   request
	events []json.RawMessage
	ids    []string
	index  []int // position of each event in the call
}

// envelope is the size of the group's request body without its events.
func (gr *group) envelope() int {
	b, _ := gr.head.body(nil)
	return len(b)
}

// pack splits the group's events into batches of at most 25 events and under
// maxBodyBytes, in order.
func (gr *group) pack() [][]int {
	env := gr.envelope()
	var out [][]int
	var cur []int
	n := env
	for k, ev := range gr.events {
		add := len(ev)
		if len(cur) > 0 {
			add++ // the comma
		}
		if len(cur) > 0 && (n+add >= maxBodyBytes || len(cur) >= maxEventsPerRequest) {
			out = append(out, cur)
			cur, n, add = nil, env, len(ev)
		}
		cur = append(cur, k)
		n += add
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// send posts one batch of a group and returns a result per event of the batch.
func (g *GA4) send(ctx context.Context, gr *group, batch []int) []sdk.Result {
	evs := make([]json.RawMessage, len(batch))
	for j, k := range batch {
		evs[j] = gr.events[k]
	}
	body, err := gr.head.body(evs)
	if err != nil {
		return sdk.All(len(batch), sdk.Failed("encoding the request: "+err.Error()))
	}
	status, header, resp, err := g.post(ctx, body)
	if err != nil {
		return sdk.All(len(batch), sdk.Retry(0, err.Error()))
	}
	reason := strings.TrimSpace(fmt.Sprintf("GA4 %d %s", status, bytes.TrimSpace(snippet(resp))))
	switch {
	case status >= 200 && status < 300:
		if !g.cfg.Debug {
			return sdk.All(len(batch), sdk.Delivered())
		}
		perEvent, whole, err := parseValidation(resp, len(batch))
		if err != nil {
			return sdk.All(len(batch), sdk.Failed("the validation server's answer is not understood: "+err.Error()))
		}
		out := make([]sdk.Result, len(batch))
		for j := range out {
			why := append(append([]string(nil), whole...), perEvent[j]...)
			if len(why) == 0 {
				out[j] = sdk.Delivered()
				continue
			}
			out[j] = sdk.Failed("GA4 validation: " + strings.Join(why, "; "))
			g.log.Warn("event rejected by the validation server", "event_id", gr.ids[batch[j]], "reason", g.scrub(out[j].Reason))
		}
		return out
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		return sdk.All(len(batch), sdk.Retry(sdk.RetryAfter(header, g.now()), g.scrub(reason)))
	default:
		r := sdk.Failed(g.scrub(reason))
		if status == http.StatusUnauthorized || status == http.StatusForbidden {
			r = sdk.Failed(r.Reason + " (check measurement_id and api_secret)")
		}
		g.log.Warn("request refused", "status", status, "events", len(batch), "reason", r.Reason)
		return sdk.All(len(batch), r)
	}
}

// post sends a body and returns the answer. Network errors are returned without the
// request URL, whose query holds the API secret.
func (g *GA4) post(ctx context.Context, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.endpoint+"?"+g.query, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clickgate-ga4/"+version)
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, nil, nil, errors.New(g.scrub(withoutURL(err)))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	return resp.StatusCode, resp.Header, b, nil
}

// withoutURL describes a client error by its cause: *url.Error's message repeats the
// whole URL.
func withoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return "POST " + ue.Op + " failed: " + ue.Err.Error()
	}
	return err.Error()
}

// scrub removes the API secret from a text that may have echoed it.
func (g *GA4) scrub(s string) string {
	if g.cfg.APISecret == "" {
		return s
	}
	s = strings.ReplaceAll(s, g.cfg.APISecret, "[api_secret]")
	return strings.ReplaceAll(s, url.QueryEscape(g.cfg.APISecret), "[api_secret]")
}

func snippet(b []byte) []byte {
	if len(b) > 300 {
		return b[:300]
	}
	return b
}

// Close has only idle connections to release.
func (g *GA4) Close(context.Context) error {
	if g.client != nil {
		g.client.CloseIdleConnections()
	}
	return nil
}
