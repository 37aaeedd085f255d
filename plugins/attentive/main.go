// Command attentive is clickgate's Attentive forwarder: it sends attributed conversions,
// and the clicks that carry someone Attentive can identify, to Attentive's Custom Events
// API (POST {base_url}/v1/events/custom), and optionally purchases to its eCommerce
// Purchase API, authenticated with a private app's API key as a bearer token.
//
// Attentive matches events to people by phone, email or a client user ID, in plain
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
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/sdk"
)

// version is set at build time.
var version = "dev"

func main() { sdk.Serve(&Attentive{}) }

const (
	defaultBaseURL         = "https://api.attentivemobile.com"
	customPath             = "/v1/events/custom"
	purchasePath           = "/v1/events/ecommerce/purchase"
	defaultClickEvent      = "SMS Link Clicked"
	defaultConversionEvent = "SMS Conversion"
	defaultTimeout         = "10s"
	defaultConcurrency     = 8
	// Attentive allows 150 requests a second per endpoint and access token; the
	// default leaves room for the account's other integrations.
	defaultMaxRate = 100.0
	maxRate        = 150.0
	// A 429 without Retry-After waits out Attentive's one-second window.
	rateWindow = time.Second
)

// Config is the plugin's "config" object.
type Config struct {
	APIKey            string  `json:"api_key"`
	BaseURL           string  `json:"base_url"`
	ClickEvent        string  `json:"click_event"`
	ConversionEvent   string  `json:"conversion_event"`
	PurchaseProductID string  `json:"purchase_product_id"`
	Timeout           string  `json:"timeout"`
	Concurrency       int     `json:"concurrency"`
	MaxRate           float64 `json:"max_rate"`
}

// Attentive forwards events to Attentive's Custom Events and eCommerce APIs.
type Attentive struct {
	cfg    Config
	base   string
	client *http.Client
	pace   *pacer
	log    *slog.Logger
	// stderr receives the plugin's log lines (os.Stderr when nil), which the host
	// passes on to its own log; tests capture it.
	stderr io.Writer
	now    func() time.Time
}

var _ sdk.Forwarder = (*Attentive)(nil)

// Info describes the plugin.
func (a *Attentive) Info() sdk.Info {
	return sdk.Info{
		Name: "attentive", Version: version,
		Description: "send attributed conversions, and clicks that identify someone, to Attentive as custom events",
		Config: []sdk.ConfigField{
			{Name: "api_key", Type: "string", Required: true, Secret: true, Description: "a private app's API key with the events:write scope (and ecommerce:write for purchase_product_id), sent as Authorization: Bearer"},
			{Name: "base_url", Type: "string", Default: defaultBaseURL, Description: "requests go to {base_url}/v1/events/custom and {base_url}/v1/events/ecommerce/purchase"},
			{Name: "click_event", Type: "string", Default: defaultClickEvent, Description: "custom event type of a click"},
			{Name: "conversion_event", Type: "string", Default: defaultConversionEvent, Description: "custom event type of a conversion (refunds and rejections add \" Refunded\" or \" Rejected\")"},
			{Name: "purchase_product_id", Type: "string", Description: "when set, approved purchases with a value go to the eCommerce Purchase API as one line item with this product and variant ID; empty: they are custom events"},
			{Name: "timeout", Type: "duration", Default: defaultTimeout, Description: "per request"},
			{Name: "concurrency", Type: "int", Default: defaultConcurrency, Description: "requests in flight at once, 1 to 64"},
			{Name: "max_rate", Type: "number", Default: defaultMaxRate, Description: "requests per second, at most 150 (Attentive's limit per endpoint)"},
		},
	}
}

// Configure validates the configuration. Errors name the field and never repeat the key.
func (a *Attentive) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{
		BaseURL: defaultBaseURL, ClickEvent: defaultClickEvent, ConversionEvent: defaultConversionEvent,
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
		return errors.New("config.api_key: required (the API key of an Attentive private app)")
	case strings.IndexFunc(cfg.APIKey, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("config.api_key: contains white space or control characters")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("config.base_url: want an http or https URL without query, like " + defaultBaseURL)
	}
	base := strings.TrimRight(u.String(), "/")
	if strings.HasSuffix(base, "/v1") || strings.Contains(base, "/v1/events") {
		return errors.New("config.base_url: give the API's base URL without /v1, like " + defaultBaseURL)
	}
	for _, f := range []struct {
		name string
		val  *string
	}{{"click_event", &cfg.ClickEvent}, {"conversion_event", &cfg.ConversionEvent}} {
		*f.val = strings.TrimSpace(*f.val)
		if err := checkEventType(*f.val); err != nil {
			return fmt.Errorf("config.%s: %v", f.name, err)
		}
	}
	cfg.PurchaseProductID = strings.TrimSpace(cfg.PurchaseProductID)
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 2*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 2m")
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 64 {
		return errors.New("config.concurrency: want 1 to 64")
	}
	if !(cfg.MaxRate > 0 && cfg.MaxRate <= maxRate) {
		return fmt.Errorf("config.max_rate: want more than 0 and at most %v requests per second", maxRate)
	}
	a.cfg, a.base = cfg, base
	a.client = sdk.HTTPClient(t)
	a.pace = newPacer(cfg.MaxRate)
	if a.now == nil {
		a.now = time.Now
	}
	w := a.stderr
	if w == nil {
		w = os.Stderr
	}
	a.log = slog.New(slog.NewJSONHandler(w, nil))
	a.log.Info("configured", "base_url", base, "purchases", map[bool]string{true: "ecommerce", false: "custom events"}[cfg.PurchaseProductID != ""],
		"concurrency", cfg.Concurrency, "max_rate", cfg.MaxRate)
	return nil
}

// checkEventType applies Attentive's rule for custom event types: case-sensitive names
// without quotes, parentheses, braces, brackets, backslashes, bars or commas. The longest
// suffix the plugin appends (" Refunded") is counted in.
func checkEventType(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case strings.ContainsAny(s, typeForbidden):
		return fmt.Errorf("%q: Attentive does not allow any of %s in an event type", s, typeForbidden)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("contains control characters")
	case len(s)+len(" Refunded") > maxTypeBytes:
		return fmt.Errorf("at most %d bytes", maxTypeBytes-len(" Refunded"))
	}
	return nil
}

const (
	typeForbidden = `"'(){}[]\|,`
	// Attentive documents no length limit; names past this are not names.
	maxTypeBytes = 255
)

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

// Forward sends one request per event (Attentive has no batch endpoint for events), up
// to config.concurrency at once and no faster than config.max_rate. An event that cannot
// be mapped fails alone. After a result that must be retried (429, 5xx, a network error)
// no new request is started: the events not yet sent are retried with it.
func (a *Attentive) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if a.client == nil {
		return nil, errors.New("attentive: Forward before Configure")
	}
	results := make([]sdk.Result, len(evs))
	reqs := make([]request, len(evs))
	var todo []int
	for i, e := range evs {
		r, err := a.request(e)
		if err != nil {
			results[i] = sdk.Failed(err.Error())
			continue
		}
		reqs[i] = r
		todo = append(todo, i)
	}
	// Finish before the host's deadline for the call: a plugin that overruns it is
	// killed, and every result of the call is lost with it.
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-callMargin))
		defer cancel()
	}
	send(ctx, todo, a.cfg.Concurrency, a.pace, results, func(ctx context.Context, i int) sdk.Result {
		return a.post(ctx, reqs[i])
	})
	return results, nil
}

// callMargin is kept free at the end of a call for the results to reach the host.
const callMargin = 500 * time.Millisecond

func (a *Attentive) post(ctx context.Context, r request) sdk.Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+r.path, bytes.NewReader(r.body))
	if err != nil {
		return sdk.Retry(0, a.redact(err.Error()))
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "clickgate-attentive/"+version)
	resp, err := a.client.Do(req)
	if err != nil {
		return sdk.Retry(0, a.redact(err.Error()))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return sdk.Delivered()
	}
	reason := a.redact(strings.TrimSpace(fmt.Sprintf("%d %s", code, errorSummary(raw))))
	switch {
	case code == http.StatusTooManyRequests:
		after := sdk.RetryAfter(resp.Header, a.now())
		if after == 0 {
			after = rateWindow
		}
		return sdk.Retry(after, reason)
	case code == http.StatusRequestTimeout || code >= 500:
		return sdk.Retry(sdk.RetryAfter(resp.Header, a.now()), reason)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		a.log.Warn("Attentive refused the API key", "status", code, "path", r.path)
		return sdk.Failed(reason + " (check api_key and its " + r.scope + " scope)")
	default:
		return sdk.Failed(reason)
	}
}

// redact removes the API key from text that may have come back from the network.
func (a *Attentive) redact(s string) string {
	if a.cfg.APIKey == "" {
		return s
	}
	return strings.ReplaceAll(s, a.cfg.APIKey, "[api_key]")
}

// Close has only idle connections to release.
func (a *Attentive) Close(context.Context) error {
	if a.client != nil {
		a.client.CloseIdleConnections()
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
