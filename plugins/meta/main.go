// Command meta is clickgate's Meta Conversions API forwarder: it sends attributed
// conversions, and clicks as a custom event, to POST
// {base_url}/{api_version}/{pixel_id}/events, authenticated with a system user's access
// token.
//
// Meta rejects a whole request for one bad event (an event_time over 7 days old is
// documented to fail the entire request), so the forwarder checks every event before
// sending and an event that breaks a rule fails alone; when Meta still refuses a batch
// for something only it can see, the batch is split to find the event, so the others
// are delivered.
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

func main() { sdk.Serve(&Meta{}) }

const (
	// Up to 1,000 events per request in data.
	maxBatch = 1000
	// "The event_time can be up to 7 days before you send an event to Facebook. If any
	// event_time in data is greater than 7 days in the past, we return an error for the
	// entire request and process no events."
	maxEventAge = 7 * 24 * time.Hour
	// "For offline and physical store events with physical_store as action_source, you
	// should upload transactions within 62 days of the conversion."
	maxStoreEventAge = 62 * 24 * time.Hour
	// maxClockSkew is how far ahead an event time may be and still be sent, as now:
	// Meta reports future event times as errors, but a merchant's clock a few seconds
	// ahead should not cost a conversion.
	maxClockSkew = time.Minute
	// maxSplitRequests bounds the extra requests one call may spend finding the event
	// Meta refused a batch for; what is left is retried in the next call.
	maxSplitRequests = 24
)

const (
	defaultBaseURL             = "https://graph.facebook.com"
	defaultAPIVersion          = "v25.0"
	defaultClickEvent          = "SMSLinkClick"
	defaultClickSource         = "website"
	defaultConversionSrc       = "other"
	defaultTimeout             = "10s"
	redactedToken              = "[access_token]"
	maxReasonLen               = 500
	maxSnippet                 = 2048
	maxResponseBytes     int64 = 1 << 20
)

var (
	pixelIDRE    = regexp.MustCompile(`^[0-9]{5,20}$`)
	apiVersionRE = regexp.MustCompile(`^v[0-9]{1,3}\.[0-9]{1,2}$`)
)

// Config is the plugin's "config" object.
type Config struct {
	PixelID     string `json:"pixel_id"`
	AccessToken string `json:"access_token"`
	APIVersion  string `json:"api_version"`
	BaseURL     string `json:"base_url"`
	// ClickEvent is the custom event name of a click; empty turns clicks off.
	ClickEvent string `json:"click_event"`
	// EventNames maps clickgate conversion types to Meta event names, over the
	// defaults (Purchase, Lead, CompleteRegistration, AddToCart, Contact).
	EventNames             map[string]string `json:"event_names"`
	ClickActionSource      string            `json:"click_action_source"`
	ConversionActionSource string            `json:"conversion_action_source"`
	TestEventCode          string            `json:"test_event_code"`
	MaxBatch               int               `json:"max_batch"`
	Timeout                string            `json:"timeout"`
}

// Meta forwards events to the Meta Conversions API.
type Meta struct {
	cfg      Config
	names    map[string]string
	endpoint string
	timeout  time.Duration
	client   *http.Client
	log      *slog.Logger
	// stderr receives the plugin's log lines (os.Stderr when nil), which the host
	// passes on to its own log; tests capture it.
	stderr io.Writer
	now    func() time.Time
}

var _ sdk.Forwarder = (*Meta)(nil)

// Info describes the plugin.
func (m *Meta) Info() sdk.Info {
	return sdk.Info{
		Name: "meta", Version: version,
		Description: "send attributed conversions, and clicks as a custom event, to the Meta Conversions API",
		Config: []sdk.ConfigField{
			{Name: "pixel_id", Type: "string", Required: true, Description: "the Meta Pixel (dataset) ID events are sent to"},
			{Name: "access_token", Type: "string", Required: true, Secret: true, Description: "a Conversions API access token (system user); sent as the access_token body parameter, never in the URL"},
			{Name: "api_version", Type: "string", Default: defaultAPIVersion, Description: "Graph API version, vNN.N"},
			{Name: "base_url", Type: "string", Default: defaultBaseURL, Description: "requests go to {base_url}/{api_version}/{pixel_id}/events"},
			{Name: "click_event", Type: "string", Default: defaultClickEvent, Description: "custom event name of a click; empty turns clicks off (they are then dead-lettered: filter them out with events: [conversion])"},
			{Name: "event_names", Type: "object", Description: "conversion type to Meta event name, over the defaults purchase: Purchase, lead: Lead, signup: CompleteRegistration, add_to_cart: AddToCart, call: Contact; other types are sent under their own name"},
			{Name: "click_action_source", Type: "string", Default: defaultClickSource, Description: "action_source of clicks: website (sent with the tap's user agent and the destination URL), or another Meta value"},
			{Name: "conversion_action_source", Type: "string", Default: defaultConversionSrc, Description: "action_source of conversions: other, system_generated, physical_store, phone_call, email or chat (not website: a conversion carries no user agent or page URL)"},
			{Name: "test_event_code", Type: "string", Description: "sends every event to Events Manager's Test Events tool"},
			{Name: "max_batch", Type: "int", Default: maxBatch, Description: "events per request, 1 to 1000"},
			{Name: "timeout", Type: "duration", Default: defaultTimeout, Description: "per request"},
		},
	}
}

// actionSources are Meta's action_source values this forwarder can honestly send:
// app needs app_data and business_messaging a messaging_channel, which clickgate does
// not have.
var actionSources = map[string]bool{
	"website": true, "email": true, "phone_call": true, "chat": true, "physical_store": true, "system_generated": true, "other": true,
}

// Configure validates the configuration. Errors name the field and never repeat the
// token.
func (m *Meta) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{
		APIVersion: defaultAPIVersion, BaseURL: defaultBaseURL, ClickEvent: defaultClickEvent,
		ClickActionSource: defaultClickSource, ConversionActionSource: defaultConversionSrc, MaxBatch: maxBatch, Timeout: defaultTimeout,
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field is an error, not a silent default
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", redactJSONError(err))
	}
	if dec.More() {
		return errors.New("config: want a single JSON object")
	}
	cfg.PixelID = strings.TrimSpace(cfg.PixelID)
	if !pixelIDRE.MatchString(cfg.PixelID) {
		return errors.New("config.pixel_id: want the numeric Pixel (dataset) ID from Events Manager")
	}
	switch {
	case cfg.AccessToken == "":
		return errors.New("config.access_token: required (Events Manager > your dataset > Settings > Conversions API > Generate access token)")
	case strings.IndexFunc(cfg.AccessToken, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("config.access_token: contains white space or control characters")
	}
	if !apiVersionRE.MatchString(cfg.APIVersion) {
		return fmt.Errorf("config.api_version: want a Graph API version like %s", defaultAPIVersion)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("config.base_url: want an http or https URL without query, like " + defaultBaseURL)
	}
	base := strings.TrimRight(u.String(), "/")
	if strings.HasSuffix(base, "/events") || apiVersionRE.MatchString(base[strings.LastIndexByte(base, '/')+1:]) {
		return errors.New("config.base_url: give the Graph API host without version or path, like " + defaultBaseURL)
	}
	cfg.ClickEvent = strings.TrimSpace(cfg.ClickEvent)
	if cfg.ClickEvent != "" {
		if err := checkEventName(cfg.ClickEvent); err != nil {
			return fmt.Errorf("config.click_event: %v", err)
		}
		if standardEvents[cfg.ClickEvent] {
			return fmt.Errorf("config.click_event: %q is a Meta standard event; a click is not one, name it as a custom event like %q", cfg.ClickEvent, defaultClickEvent)
		}
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
	if !actionSources[cfg.ClickActionSource] {
		return fmt.Errorf("config.click_action_source: %q is not one of website, email, phone_call, chat, physical_store, system_generated, other", cfg.ClickActionSource)
	}
	switch {
	case cfg.ConversionActionSource == "website":
		return errors.New("config.conversion_action_source: website events need client_user_agent and event_source_url, which a clickgate conversion does not carry; use other, system_generated, physical_store, phone_call, email or chat")
	case !actionSources[cfg.ConversionActionSource]:
		return fmt.Errorf("config.conversion_action_source: %q is not one of other, system_generated, physical_store, phone_call, email, chat", cfg.ConversionActionSource)
	}
	cfg.TestEventCode = strings.TrimSpace(cfg.TestEventCode)
	if len(cfg.TestEventCode) > 64 || strings.IndexFunc(cfg.TestEventCode, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 {
		return errors.New("config.test_event_code: want the code shown in Events Manager's Test Events tool, like TEST12345")
	}
	if cfg.MaxBatch < 1 || cfg.MaxBatch > maxBatch {
		return errors.New("config.max_batch: want 1 to 1000 (Meta takes up to 1,000 events per request)")
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 2*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 2m")
	}
	m.cfg, m.names, m.timeout = cfg, names, t
	m.endpoint = base + "/" + cfg.APIVersion + "/" + cfg.PixelID + "/events"
	m.client = sdk.HTTPClient(t)
	if m.now == nil {
		m.now = time.Now
	}
	w := m.stderr
	if w == nil {
		w = os.Stderr
	}
	m.log = slog.New(slog.NewJSONHandler(w, nil))
	m.log.Info("configured", "endpoint", m.endpoint, "clicks", cfg.ClickEvent != "", "test_event_code", cfg.TestEventCode != "", "max_batch", cfg.MaxBatch)
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

// Forward maps the events and sends them in requests of up to max_batch, in order. An
// event that cannot be mapped or breaks a documented rule fails alone, unsent. After a
// request that must be retried (rate limit, a transient error, 5xx, a network error)
// the rest of the call is not sent: it is retried with it.
func (m *Meta) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if m.client == nil {
		return nil, errors.New("meta: Forward before Configure")
	}
	results := make([]sdk.Result, len(evs))
	now := m.now()
	s := &sender{m: m, budget: maxSplitRequests}
	var send []int
	for i, e := range evs {
		ev, err := m.mapEvent(e, now)
		if err != nil {
			results[i] = sdk.Failed(err.Error())
			continue
		}
		s.events = append(s.events, ev)
		s.ids = append(s.ids, e.ID)
		send = append(send, i)
	}
	for from := 0; from < len(send); from += m.cfg.MaxBatch {
		to := min(from+m.cfg.MaxBatch, len(send))
		batch := make([]int, 0, to-from)
		for k := from; k < to; k++ {
			batch = append(batch, k)
		}
		for k, r := range s.send(ctx, batch) {
			results[send[batch[k]]] = r
		}
	}
	return results, nil
}

// sender sends one call's mapped events.
type sender struct {
	m      *Meta
	events []json.RawMessage
	ids    []string
	budget int // split requests left
	stop   *sdk.Result
}

// send posts the events at idx and returns their results. A batch Meta refuses for
// one of its events is split in halves, within the call's budget, until the event is
// alone.
func (s *sender) send(ctx context.Context, idx []int) []sdk.Result {
	if s.stop != nil {
		if s.stop.Status == sdk.StatusNotSent { // the call ran short of time
			return sdk.All(len(idx), *s.stop)
		}
		return sdk.All(len(idx), sdk.NotSent(s.stop.RetryAfter, "not sent after an earlier request of the call: "+s.stop.Reason))
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < s.m.timeout {
		r := sdk.NotSent(0, "not sent: less than config.timeout is left of the call (the plugin's timeout in the plugins file)")
		s.stop = &r
		return sdk.All(len(idx), r)
	}
	out := s.m.post(ctx, s.body(idx), len(idx))
	switch {
	case out.kind == outcomeEvent && len(idx) > 1 && s.budget >= 2:
		s.budget -= 2
		half := len(idx) / 2
		return append(s.send(ctx, idx[:half]), s.send(ctx, idx[half:])...)
	case out.kind == outcomeEvent && len(idx) > 1:
		return sdk.All(len(idx), sdk.NotSent(0, fmt.Sprintf("Meta refused a batch of %d for one of its events (%s); split further in a later call", len(idx), out.result.Reason)))
	}
	if out.result.Status == sdk.StatusRetry {
		s.stop = &out.result
	}
	if out.result.Status == sdk.StatusFailed {
		s.m.log.Warn("events refused", "events", len(idx), "first_event_id", s.ids[idx[0]], "reason", out.result.Reason)
	}
	return sdk.All(len(idx), out.result)
}

func (s *sender) body(idx []int) []byte {
	data := make([]json.RawMessage, len(idx))
	for j, k := range idx {
		data[j] = s.events[k]
	}
	b, _ := marshal(struct {
		Data          []json.RawMessage `json:"data"`
		TestEventCode string            `json:"test_event_code,omitempty"`
		AccessToken   string            `json:"access_token"`
	}{data, s.m.cfg.TestEventCode, s.m.cfg.AccessToken})
	return b
}

// outcome is what an answer means for the events of a request.
type outcome struct {
	kind   int
	result sdk.Result
}

const (
	outcomeRequest = iota // the result applies to every event: delivered, retry, or a failure of the request itself
	outcomeEvent          // refused for an event in it: split to find which
)

// post sends one request of n events and interprets the answer.
func (m *Meta) post(ctx context.Context, body []byte, n int) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint, bytes.NewReader(body))
	if err != nil {
		return outcome{outcomeRequest, sdk.Failed("building the request failed")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clickgate-meta/"+version)
	resp, err := m.client.Do(req)
	if err != nil {
		return outcome{outcomeRequest, sdk.Retry(0, m.scrub(err.Error()))}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		var ok struct {
			EventsReceived *int   `json:"events_received"`
			FBTraceID      string `json:"fbtrace_id"`
		}
		if json.Unmarshal(b, &ok) == nil && ok.EventsReceived != nil && *ok.EventsReceived != n {
			m.log.Warn("Meta acknowledged fewer events than sent", "sent", n, "events_received", *ok.EventsReceived, "fbtrace_id", clean(ok.FBTraceID))
		}
		return outcome{outcomeRequest, sdk.Delivered()}
	}
	ge, parsed := parseGraphError(b)
	reason := m.scrub(ge.reason(resp.StatusCode, parsed, b))
	after := sdk.RetryAfter(resp.Header, m.now())
	switch classify(resp.StatusCode, ge, parsed) {
	case classRetry:
		m.log.Warn("Meta asked to retry", "status", resp.StatusCode, "reason", reason)
		return outcome{outcomeRequest, sdk.Retry(after, reason)}
	case classAuth:
		return outcome{outcomeRequest, sdk.Failed(reason + " (check access_token and its access to pixel_id)")}
	case classPixel:
		return outcome{outcomeRequest, sdk.Failed(reason + " (check pixel_id)")}
	default:
		return outcome{outcomeEvent, sdk.Failed(reason)}
	}
}

// scrub removes the access token from a text that may have echoed it.
func (m *Meta) scrub(s string) string {
	if m.cfg.AccessToken == "" {
		return s
	}
	s = strings.ReplaceAll(s, m.cfg.AccessToken, redactedToken)
	return strings.ReplaceAll(s, url.QueryEscape(m.cfg.AccessToken), redactedToken)
}

// Close has only idle connections to release.
func (m *Meta) Close(context.Context) error {
	if m.client != nil {
		m.client.CloseIdleConnections()
	}
	return nil
}
