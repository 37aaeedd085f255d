// Command webhook is clickgate's webhook forwarder: it POSTs batches of events as JSON
// to a URL, signed with HMAC-SHA256 (see package signature for how to verify).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/clickgate/clickgate/plugins/webhook/signature"
	"github.com/clickgate/clickgate/sdk"
	segjson "github.com/segmentio/encoding/json"
	"golang.org/x/net/http/httpguts"
)

// version is set at build time.
var version = "dev"

func main() { sdk.Serve(&Webhook{}) }

// Config is the plugin's "config" object.
type Config struct {
	URL      string            `json:"url"`
	Secret   string            `json:"secret"`
	Timeout  string            `json:"timeout"`
	MaxBatch int               `json:"max_batch"`
	Headers  map[string]string `json:"headers"`
}

// Webhook forwards events to an HTTP endpoint.
type Webhook struct {
	cfg     Config
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

var _ sdk.Forwarder = (*Webhook)(nil)

// Info describes the plugin.
func (w *Webhook) Info() sdk.Info {
	return sdk.Info{
		Name: "webhook", Version: version,
		Description: "POST signed JSON batches of events to a URL",
		Config: []sdk.ConfigField{
			{Name: "url", Type: "string", Required: true, Description: "http or https endpoint receiving POST {\"events\": [...]}"},
			{Name: "secret", Type: "string", Required: true, Secret: true, Description: "HMAC-SHA256 key; use 16 or more random characters"},
			{Name: "timeout", Type: "duration", Default: "10s", Description: "per request"},
			{Name: "max_batch", Type: "int", Default: 100, Description: "events per request"},
			{Name: "headers", Type: "object", Description: "extra request headers"},
		},
	}
}

// Configure validates the configuration.
func (w *Webhook) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{Timeout: "10s", MaxBatch: 100}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("config.url: want an http or https URL")
	}
	if cfg.Secret == "" {
		return errors.New("config.secret: required (the HMAC-SHA256 signing key)")
	}
	if len(cfg.Secret) < 16 {
		// Stderr reaches the host's log under this plugin's name.
		fmt.Fprintln(os.Stderr, "config.secret is shorter than 16 characters; use a longer random key")
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 5*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 5m")
	}
	if cfg.MaxBatch < 1 || cfg.MaxBatch > 10000 {
		return errors.New("config.max_batch: want 1 to 10000")
	}
	// Checked here, not at the first request: an invalid header fails every request,
	// and as a transport error it would be retried until the events are dead letters.
	for k, v := range cfg.Headers {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("config.headers: %q is not a valid header name", k)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			// The value is not quoted: it is often a secret.
			return fmt.Errorf("config.headers.%s: the value holds a control character (a trailing newline from a secret file?)", k)
		}
	}
	w.cfg, w.timeout = cfg, t
	w.client = sdk.HTTPClient(t) // redirects come back as answers: see post
	if w.now == nil {
		w.now = time.Now
	}
	return nil
}

// Forward posts the events in batches of max_batch. An event that is not valid JSON
// fails alone rather than spoiling its batch. segmentio's validator gives the standard
// library's answers (FuzzValid) at a quarter of its cost, which was a quarter of this
// plugin's CPU per click.
func (w *Webhook) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if w.client == nil {
		return nil, errors.New("not configured")
	}
	out := make([]sdk.Result, len(evs))
	var good []int
	for i, e := range evs {
		if !segjson.Valid(e.JSON) {
			out[i] = sdk.Failed("event is not valid JSON")
			continue
		}
		good = append(good, i)
	}
	for start := 0; start < len(good); start += w.cfg.MaxBatch {
		idx := good[start:min(start+w.cfg.MaxBatch, len(good))]
		chunk := make([]sdk.Event, len(idx))
		for j, i := range idx {
			chunk[j] = evs[i]
		}
		r := w.post(ctx, chunk)
		for _, i := range idx {
			out[i] = r
		}
	}
	return out, nil
}

func (w *Webhook) post(ctx context.Context, evs []sdk.Event) sdk.Result {
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for i, e := range evs {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e.JSON)
	}
	body.WriteString("]}")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body.Bytes()))
	if err != nil {
		return sdk.Failed(err.Error())
	}
	// Configured headers first, so they can never replace the content type or the
	// signature.
	for k, v := range w.cfg.Headers {
		req.Header.Set(k, v)
	}
	ts, sig := signature.Sign([]byte(w.cfg.Secret), w.now(), body.Bytes())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clickgate-webhook/"+version)
	req.Header.Set(signature.TimestampHeader, ts)
	req.Header.Set(signature.SignatureHeader, sig)
	resp, err := w.client.Do(req)
	if err != nil {
		return sdk.Retry(0, err.Error())
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return sdk.Delivered()
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		return sdk.Retry(sdk.RetryAfter(resp.Header, w.now()), fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(snippet)))
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return sdk.Failed(fmt.Sprintf("%d redirect to %q: set url to the address that accepts the POST", resp.StatusCode, resp.Header.Get("Location")))
	default:
		return sdk.Failed(fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(snippet)))
	}
}

// Close has nothing to release.
func (w *Webhook) Close(context.Context) error { return nil }
