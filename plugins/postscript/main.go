// Command postscript is clickgate's Postscript forwarder: it sends attributed
// conversions, and the clicks that carry someone Postscript can identify, to
// Postscript's Custom Events API (POST {base_url}/api/v2/events), where they can trigger
// and filter Flows. It authenticates with a shop's private API key as a bearer token,
// or with a partner key and the shop's token.
//
// Postscript matches events to subscribers by phone, email or its own subscriber ID, in
// plain form, so conversions are sent from the identifiers their sender gave (the
// event's "user"), and clicks only when they carry a user (CLICKGATE_EVENT_USER_DATA=all)
// or, when the operator says so, a subscriber ID captured from the link.
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

func main() { sdk.Serve(&Postscript{}) }

const (
	defaultBaseURL         = "https://api.postscript.io"
	eventsPath             = "/api/v2/events"
	defaultClickEvent      = "sms_link_clicked"
	defaultConversionEvent = "sms_conversion"
	defaultTimeout         = "10s"
	defaultConcurrency     = 4
	// Postscript allows 15 requests a second per token (or partner and shop token
	// pair); the default leaves room for the shop's other integrations.
	defaultMaxRate = 10.0
	maxRate        = 15.0
	// A 429 without a delay waits out Postscript's one-second window.
	rateWindow = time.Second
)

// typeRE is what Postscript accepts in an event type: letters, digits and underscores.
// The plugin appends at most "_refunded" to the configured names.
var typeRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,100}$`)

// Config is the plugin's "config" object.
type Config struct {
	APIKey                   string  `json:"api_key"`
	ShopToken                string  `json:"shop_token"`
	BaseURL                  string  `json:"base_url"`
	ClickEvent               string  `json:"click_event"`
	ConversionEvent          string  `json:"conversion_event"`
	CustomerIDIsSubscriberID bool    `json:"customer_id_is_subscriber_id"`
	Timeout                  string  `json:"timeout"`
	Concurrency              int     `json:"concurrency"`
	MaxRate                  float64 `json:"max_rate"`
}

// Postscript forwards events to Postscript's Custom Events API.
type Postscript struct {
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

var _ sdk.Forwarder = (*Postscript)(nil)

// Info describes the plugin.
func (p *Postscript) Info() sdk.Info {
	return sdk.Info{
		Name: "postscript", Version: version,
		Description: "send attributed conversions, and clicks that identify someone, to Postscript as custom events for Flows",
		Config: []sdk.ConfigField{
			{Name: "api_key", Type: "string", Required: true, Secret: true, Description: "the shop's private API key (sk_…), or a partner's key (sk_partner_…) with shop_token; sent as Authorization: Bearer"},
			{Name: "shop_token", Type: "string", Secret: true, Description: "partners only: the shop's API token, sent as X-Postscript-Shop-Token"},
			{Name: "base_url", Type: "string", Default: defaultBaseURL, Description: "requests go to {base_url}/api/v2/events"},
			{Name: "click_event", Type: "string", Default: defaultClickEvent, Description: "event type of a click (letters, digits, underscores)"},
			{Name: "conversion_event", Type: "string", Default: defaultConversionEvent, Description: "event type of a conversion (refunds and rejections add _refunded or _rejected)"},
			{Name: "customer_id_is_subscriber_id", Type: "bool", Default: false, Description: "the customer IDs clickgate captures are Postscript subscriber IDs: send them as subscriber_id"},
			{Name: "timeout", Type: "duration", Default: defaultTimeout, Description: "per request"},
			{Name: "concurrency", Type: "int", Default: defaultConcurrency, Description: "requests in flight at once, 1 to 16"},
			{Name: "max_rate", Type: "number", Default: defaultMaxRate, Description: "requests per second, at most 15 (Postscript's limit per token)"},
		},
	}
}

// Configure validates the configuration. Errors name the field and never repeat a secret.
func (p *Postscript) Configure(_ context.Context, raw json.RawMessage) error {
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
	blank := func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }
	switch {
	case cfg.APIKey == "":
		return errors.New("config.api_key: required (the shop's private API key, or a partner key with shop_token)")
	case strings.IndexFunc(cfg.APIKey, blank) >= 0:
		return errors.New("config.api_key: contains white space or control characters")
	case strings.IndexFunc(cfg.ShopToken, blank) >= 0:
		return errors.New("config.shop_token: contains white space or control characters")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("config.base_url: want an http or https URL without query, like " + defaultBaseURL)
	}
	base := strings.TrimRight(u.String(), "/")
	if strings.HasSuffix(base, "/api") || strings.Contains(base, "/api/v") {
		return errors.New("config.base_url: give the API's base URL without /api/v2, like " + defaultBaseURL)
	}
	for _, f := range []struct {
		name string
		val  *string
	}{{"click_event", &cfg.ClickEvent}, {"conversion_event", &cfg.ConversionEvent}} {
		if !typeRE.MatchString(*f.val) || !typeRE.MatchString(*f.val+"_refunded") {
			return fmt.Errorf("config.%s: %q: Postscript takes letters, digits and underscores, up to %d characters", f.name, *f.val, 100-len("_refunded"))
		}
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 2*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 2m")
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > 16 {
		return errors.New("config.concurrency: want 1 to 16")
	}
	if !(cfg.MaxRate > 0 && cfg.MaxRate <= maxRate) {
		return fmt.Errorf("config.max_rate: want more than 0 and at most %v requests per second", maxRate)
	}
	p.cfg, p.endpoint = cfg, base+eventsPath
	p.client = sdk.HTTPClient(t)
	p.pace = newPacer(cfg.MaxRate)
	if p.now == nil {
		p.now = time.Now
	}
	w := p.stderr
	if w == nil {
		w = os.Stderr
	}
	p.log = slog.New(slog.NewJSONHandler(w, nil))
	p.log.Info("configured", "endpoint", p.endpoint, "partner", cfg.ShopToken != "", "subscriber_ids", cfg.CustomerIDIsSubscriberID,
		"concurrency", cfg.Concurrency, "max_rate", cfg.MaxRate)
	return nil
}

// redactJSONError keeps a decoding error from quoting config values: the standard
// library's messages name the field and type, but a syntax error near a secret could
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

// Forward sends one request per event (Postscript has no batch endpoint for events), up
// to config.concurrency at once and no faster than config.max_rate. An event that cannot
// be mapped fails alone. After a result that must be retried (429, 5xx, a network error)
// no new request is started: the events not yet sent are retried with it.
func (p *Postscript) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if p.client == nil {
		return nil, errors.New("postscript: Forward before Configure")
	}
	results := make([]sdk.Result, len(evs))
	bodies := make([][]byte, len(evs))
	var todo []int
	for i, e := range evs {
		b, err := p.payload(e)
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
	send(ctx, todo, p.cfg.Concurrency, p.pace, results, func(ctx context.Context, i int) sdk.Result {
		return p.post(ctx, bodies[i])
	})
	return results, nil
}

// callMargin is kept free at the end of a call for the results to reach the host.
const callMargin = 500 * time.Millisecond

func (p *Postscript) post(ctx context.Context, body []byte) sdk.Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return sdk.Retry(0, p.redact(err.Error()))
	}
	req.Header.Set("Authorization", "Bearer "+p.cfg.APIKey)
	if p.cfg.ShopToken != "" {
		req.Header.Set("X-Postscript-Shop-Token", p.cfg.ShopToken)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "clickgate-postscript/"+version)
	resp, err := p.client.Do(req)
	if err != nil {
		return sdk.Retry(0, p.redact(err.Error()))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return sdk.Delivered()
	}
	reason := p.redact(strings.TrimSpace(fmt.Sprintf("%d %s", code, errorSummary(raw))))
	switch {
	case code == http.StatusTooManyRequests:
		after := retryAfter(resp.Header, p.now())
		if after == 0 {
			after = rateWindow
		}
		return sdk.Retry(after, reason)
	case code == http.StatusRequestTimeout || code >= 500:
		return sdk.Retry(retryAfter(resp.Header, p.now()), reason)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		p.log.Warn("Postscript refused the API key", "status", code, "partner", p.cfg.ShopToken != "")
		return sdk.Failed(reason + " (check api_key and shop_token)")
	default:
		return sdk.Failed(reason)
	}
}

// redact removes the secrets from text that may have come back from the network.
func (p *Postscript) redact(s string) string {
	if p.cfg.APIKey != "" {
		s = strings.ReplaceAll(s, p.cfg.APIKey, "[api_key]")
	}
	if p.cfg.ShopToken != "" {
		s = strings.ReplaceAll(s, p.cfg.ShopToken, "[shop_token]")
	}
	return s
}

// Close has only idle connections to release.
func (p *Postscript) Close(context.Context) error {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
	return nil
}

// send runs post for each index in todo, at most workers at once, paced by pc, and
// stores each result. Once a result asks for a retry, or ctx ends, the indexes not yet
// started get a retry result instead of a request.
func send(ctx context.Context, todo []int, workers int, pc *pacer, results []sdk.Result, post func(context.Context, int) sdk.Result) {
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
				if err := pc.wait(ctx); err != nil {
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
