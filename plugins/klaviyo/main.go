// Command klaviyo is clickgate's Klaviyo forwarder: it sends attributed conversions, and
// the clicks that carry someone Klaviyo can identify, to Klaviyo's Create Event API
// (POST {base_url}/api/events), authenticated with a private API key.
//
// Klaviyo matches events to profiles by email, phone number or external ID, in plain
// form, so conversions are sent from the identifiers their sender gave (the event's
// "user"), and clicks only when they carry a user (CLICKGATE_EVENT_USER_DATA=all) or a
// customer ID captured from the link.
//
// It is written only against the public SDK, the way a third-party forwarder would be.
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
	"sync"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/sdk"
)

// version is set at build time.
var version = "dev"

func main() { sdk.Serve(&Klaviyo{}) }

const (
	defaultBaseURL = "https://a.klaviyo.com"
	eventsPath     = "/api/events"
	// defaultRevision is the latest revision Klaviyo documents; the operator moves to a
	// newer one with config.revision once it has been checked against this mapping.
	defaultRevision         = "2026-10-15"
	defaultClickMetric      = "SMS Link Clicked"
	defaultConversionMetric = "SMS Conversion"
	defaultTimeout          = "10s"
	defaultConcurrency      = 8
	// Create Event allows a burst of 350 requests a second and a steady 3,500 a
	// minute (58 a second) per account, shared with every other integration that
	// writes events (the store's own Placed Order, for one): the default takes two
	// thirds of the steady rate, so a backlog drained at it leaves them room.
	defaultMaxRate = 38.0
	maxBurstRate   = 350.0
	jsonAPI        = "application/vnd.api+json"
)

// Klaviyo's limits on one event.
const (
	maxPayloadBytes = 5 << 20 // the whole request body
	maxStringBytes  = 100_000 // any one string
	maxMetricName   = 127     // "must be less than 128 characters"
)

var revisionRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[a-z]+)?$`)

// Config is the plugin's "config" object.
type Config struct {
	APIKey           string  `json:"api_key"`
	BaseURL          string  `json:"base_url"`
	Revision         string  `json:"revision"`
	ClickMetric      string  `json:"click_metric"`
	ConversionMetric string  `json:"conversion_metric"`
	Timeout          string  `json:"timeout"`
	Concurrency      int     `json:"concurrency"`
	MaxRate          float64 `json:"max_rate"`
}

// Klaviyo forwards events to Klaviyo's Create Event API.
type Klaviyo struct {
	cfg      Config
	endpoint string
	client   *http.Client
	pace     *pacer
	log      *slog.Logger
	// stderr receives the plugin's log lines (os.Stderr when nil), which the host
	// passes on to its own log; tests capture it.
	stderr io.Writer
	now    func() time.Time
}

var _ sdk.Forwarder = (*Klaviyo)(nil)

// Info describes the plugin.
func (k *Klaviyo) Info() sdk.Info {
	return sdk.Info{
		Name: "klaviyo", Version: version,
		Description: "send attributed conversions, and clicks that identify someone, to Klaviyo as events",
		Config: []sdk.ConfigField{
			{Name: "api_key", Type: "string", Required: true, Secret: true, Description: "a private API key with the events:write scope, sent as Authorization: Klaviyo-API-Key"},
			{Name: "base_url", Type: "string", Default: defaultBaseURL, Description: "requests go to {base_url}/api/events"},
			{Name: "revision", Type: "string", Default: defaultRevision, Description: "Klaviyo API revision header (YYYY-MM-DD)"},
			{Name: "click_metric", Type: "string", Default: defaultClickMetric, Description: "metric name of a click"},
			{Name: "conversion_metric", Type: "string", Default: defaultConversionMetric, Description: "metric name of conversions other than purchases (refunds and rejections add \" Refunded\" or \" Rejected\")"},
			{Name: "timeout", Type: "duration", Default: defaultTimeout, Description: "per request"},
			{Name: "concurrency", Type: "int", Default: defaultConcurrency, Description: "requests in flight at once, 1 to 64"},
			{Name: "max_rate", Type: "number", Default: defaultMaxRate, Description: "requests per second, at most 350 (Klaviyo allows 3,500 a minute steady, shared by the account's integrations)"},
		},
	}
}

// Configure validates the configuration. Errors name the field and never repeat the key.
func (k *Klaviyo) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{
		BaseURL: defaultBaseURL, Revision: defaultRevision, ClickMetric: defaultClickMetric, ConversionMetric: defaultConversionMetric,
		Timeout: defaultTimeout, Concurrency: defaultConcurrency, MaxRate: defaultMaxRate,
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field is an error, not a silent default
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", redactJSONError(err))
	}
	if dec.More() {
		return errors.New("config: want a single JSON object")
	}
	switch {
	case cfg.APIKey == "":
		return errors.New("config.api_key: required (a Klaviyo private API key with the events:write scope)")
	case strings.IndexFunc(cfg.APIKey, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("config.api_key: contains white space or control characters")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("config.base_url: want an http or https URL without query, like " + defaultBaseURL)
	}
	base := strings.TrimRight(u.String(), "/")
	if strings.HasSuffix(base, "/api") || strings.HasSuffix(base, eventsPath) {
		return errors.New("config.base_url: give the API's base URL without /api/events, like " + defaultBaseURL)
	}
	if !revisionRE.MatchString(cfg.Revision) {
		return fmt.Errorf("config.revision: want a Klaviyo API revision date like %s", defaultRevision)
	}
	for _, f := range []struct {
		name string
		val  *string
	}{{"click_metric", &cfg.ClickMetric}, {"conversion_metric", &cfg.ConversionMetric}} {
		*f.val = strings.TrimSpace(*f.val)
		switch n := len([]rune(*f.val)); {
		case n == 0:
			return fmt.Errorf("config.%s: must not be empty", f.name)
		case n+len(" Refunded") > maxMetricName:
			return fmt.Errorf("config.%s: at most %d characters (Klaviyo metric names are under 128)", f.name, maxMetricName-len(" Refunded"))
		}
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 2*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 2m")
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 64 {
		return errors.New("config.concurrency: want 1 to 64")
	}
	if !(cfg.MaxRate > 0 && cfg.MaxRate <= maxBurstRate) {
		return fmt.Errorf("config.max_rate: want more than 0 and at most %v requests per second", maxBurstRate)
	}
	k.cfg, k.endpoint = cfg, base+eventsPath
	k.client = sdk.HTTPClient(t)
	k.pace = newPacer(cfg.MaxRate)
	if k.now == nil {
		k.now = time.Now
	}
	w := k.stderr
	if w == nil {
		w = os.Stderr
	}
	k.log = slog.New(slog.NewJSONHandler(w, nil))
	k.log.Info("configured", "endpoint", k.endpoint, "revision", cfg.Revision, "concurrency", cfg.Concurrency, "max_rate", cfg.MaxRate)
	return nil
}

// redactJSONError keeps a decoding error from quoting config values: the standard
// library's messages name the field and type, but a syntax error near the key could
// otherwise carry part of it.
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

// Forward sends one request per event, up to config.concurrency at once and no faster
// than config.max_rate. An event that cannot be mapped fails alone. After a result that
// must be retried (429, 5xx, a network error) no new request is started: the events not
// yet sent are retried with it, after the same delay.
func (k *Klaviyo) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if k.client == nil {
		return nil, errors.New("klaviyo: Forward before Configure")
	}
	results := make([]sdk.Result, len(evs))
	bodies := make([][]byte, len(evs))
	var todo []int
	for i, e := range evs {
		b, err := k.payload(e)
		if err != nil {
			results[i] = sdk.Failed(err.Error())
			continue
		}
		bodies[i] = b
		todo = append(todo, i)
	}
	// Finish before the host's deadline for the call: a plugin that overruns it is
	// killed, and every result of the call is lost with it.
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-callMargin))
		defer cancel()
	}
	send(ctx, todo, k.cfg.Concurrency, k.pace, results, func(ctx context.Context, i int) sdk.Result {
		return k.post(ctx, bodies[i])
	})
	return results, nil
}

// callMargin is kept free at the end of a call for the results to reach the host.
const callMargin = 500 * time.Millisecond

func (k *Klaviyo) post(ctx context.Context, body []byte) sdk.Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.endpoint, bytes.NewReader(body))
	if err != nil {
		return sdk.Retry(0, k.redact(err.Error()))
	}
	req.Header.Set("Authorization", "Klaviyo-API-Key "+k.cfg.APIKey)
	req.Header.Set("Revision", k.cfg.Revision)
	req.Header.Set("Content-Type", jsonAPI)
	req.Header.Set("Accept", jsonAPI)
	req.Header.Set("User-Agent", "clickgate-klaviyo/"+version)
	resp, err := k.client.Do(req)
	if err != nil {
		return sdk.Retry(0, k.redact(err.Error()))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return sdk.Delivered()
	}
	reason := k.redact(fmt.Sprintf("%d %s", code, errorSummary(raw)))
	switch {
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return sdk.Retry(sdk.RetryAfter(resp.Header, k.now()), reason)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		k.log.Warn("Klaviyo refused the API key", "status", code)
		return sdk.Failed(reason + " (check api_key and its events:write scope)")
	default:
		return sdk.Failed(reason)
	}
}

// redact removes the API key from text that may have come back from the network.
func (k *Klaviyo) redact(s string) string {
	if k.cfg.APIKey == "" {
		return s
	}
	return strings.ReplaceAll(s, k.cfg.APIKey, "[api_key]")
}

// Close has only idle connections to release.
func (k *Klaviyo) Close(context.Context) error {
	if k.client != nil {
		k.client.CloseIdleConnections()
	}
	return nil
}

// send runs post for each index in todo, at most workers at once, paced by p, and
// stores each result. Once a result asks for a retry, or ctx ends, the indexes not yet
// started get a retry result instead of a request.
func send(ctx context.Context, todo []int, workers int, p *pacer, results []sdk.Result, post func(context.Context, int) sdk.Result) {
	var (
		mu   sync.Mutex
		stop *sdk.Result
		next int
		wg   sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if stop != nil || next >= len(todo) {
			return 0, false
		}
		i := todo[next]
		next++
		return i, true
	}
	for range min(workers, len(todo)) {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				var r sdk.Result
				if err := p.wait(ctx); err != nil {
					r = sdk.NotSent(0, "not sent before the call's deadline")
				} else {
					r = post(ctx, i)
				}
				mu.Lock()
				results[i] = r
				if r.Status == sdk.StatusRetry && stop == nil {
					stop = &r
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, i := range todo[next:] {
		results[i] = sdk.NotSent(stop.RetryAfter, "not sent after an earlier request of the call: "+stop.Reason)
	}
}
