// Command example is the forwarder of sdk/GUIDE.md: it POSTs each batch of events to a
// URL as a JSON array.
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
	"strconv"
	"time"

	"github.com/clickgate/clickgate/sdk"
)

func main() { sdk.Serve(&Poster{}) }

// Config is the plugin's "config" object from the plugins file.
type Config struct {
	URL     string `json:"url"`
	Token   string `json:"token"`
	Timeout string `json:"timeout"`
}

// Poster sends events to an HTTP endpoint.
type Poster struct {
	cfg    Config
	client *http.Client
}

// Info names the plugin and documents its configuration (see `describe`).
func (p *Poster) Info() sdk.Info {
	return sdk.Info{
		Name: "example", Version: "0.1.0",
		Description: "POST each batch of events to a URL as a JSON array",
		Config: []sdk.ConfigField{
			{Name: "url", Type: "string", Required: true, Description: "http or https endpoint"},
			{Name: "token", Type: "string", Secret: true, Description: "sent as Authorization: Bearer"},
			{Name: "timeout", Type: "duration", Default: "10s", Description: "per request"},
		},
	}
}

// Configure checks the configuration; an error is shown to the operator as is.
func (p *Poster) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{Timeout: "10s"}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field is an error, not a silent default
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("config.url: want an http or https URL")
	}
	timeout, err := time.ParseDuration(cfg.Timeout)
	if err != nil || timeout <= 0 {
		return errors.New("config.timeout: want a duration like 10s")
	}
	p.cfg, p.client = cfg, sdk.HTTPClient(timeout)
	return nil
}

// Forward returns one result per event, in order.
func (p *Poster) Forward(ctx context.Context, events []sdk.Event) ([]sdk.Result, error) {
	if p.client == nil {
		return nil, errors.New("not configured") // the host sends the batch again later
	}
	results := make([]sdk.Result, len(events))
	var batch []json.RawMessage
	var sent []int // indexes of the events in batch
	for i, e := range events {
		if !json.Valid(e.JSON) {
			results[i] = sdk.Failed("event is not valid JSON") // dead-lettered alone
			continue
		}
		batch = append(batch, e.JSON)
		sent = append(sent, i)
	}
	if len(batch) > 0 {
		r := p.post(ctx, batch)
		for _, i := range sent {
			results[i] = r
		}
	}
	return results, nil
}

func (p *Poster) post(ctx context.Context, batch []json.RawMessage) sdk.Result {
	body, err := json.Marshal(batch)
	if err != nil {
		return sdk.Failed(err.Error())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return sdk.Failed(err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return sdk.Retry(0, err.Error()) // network trouble: the host backs off
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return sdk.Delivered()
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return sdk.Retry(time.Duration(max(secs, 0))*time.Second, resp.Status)
	default:
		return sdk.Failed(resp.Status) // it will never be accepted
	}
}

// Close releases what Configure opened.
func (p *Poster) Close(context.Context) error {
	if p.client != nil {
		p.client.CloseIdleConnections()
	}
	return nil
}
