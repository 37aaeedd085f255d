// Command segment is clickgate's Segment forwarder: it sends every click and conversion
// to Segment's HTTP Tracking API as track events, in
// POST {base_url}/v1/batch requests authenticated with the source's write key. Any
// Segment-compatible endpoint works (an EU workspace's events.eu1.segmentapis.com, a
// RudderStack data plane, ...).
//
// It is written only against the public SDK (packages sdk and sdk/sdktest), the way a
// third-party forwarder would be.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/clickgate/clickgate/sdk"
)

// version is set at build time.
var version = "dev"

func main() { sdk.Serve(&Segment{}) }

// Segment's documented limits for /v1/batch: at most 500 KB per request, 32 KB per
// message and 2,500 messages per request (over 2,500 the API still answers 200 but drops
// the events). Counted in decimal bytes, as Segment's own Go library counts them.
const (
	maxBatchBytes    = 500_000
	maxMessageBytes  = 32_000
	maxBatchMessages = 2500
)

const (
	defaultBaseURL    = "https://api.segment.io"
	defaultClickEvent = "SMS Link Clicked"
	batchPath         = "/v1/batch"
	bodyPrefix        = `{"batch":[`
	bodySuffix        = `]}`
	// A batch always has room for one message of the largest size Segment accepts.
	minBatchBytes = maxMessageBytes + len(bodyPrefix) + len(bodySuffix)
	// Segment drops messageIds of 100 characters or more.
	maxMessageIDLen = 99
)

// Config is the plugin's "config" object.
type Config struct {
	WriteKey      string `json:"write_key"`
	BaseURL       string `json:"base_url"`
	ClickEvent    string `json:"click_event"`
	Timeout       string `json:"timeout"`
	MaxBatchBytes int    `json:"max_batch_bytes"`
}

// Segment forwards events to Segment's HTTP Tracking API.
type Segment struct {
	cfg      Config
	endpoint string
	client   *http.Client
	now      func() time.Time
}

var _ sdk.Forwarder = (*Segment)(nil)

// Info describes the plugin.
func (s *Segment) Info() sdk.Info {
	return sdk.Info{
		Name: "segment", Version: version,
		Description: "send clicks to Segment (or a Segment-compatible API) as track events",
		Config: []sdk.ConfigField{
			{Name: "write_key", Type: "string", Required: true, Secret: true, Description: "the HTTP API source's write key (HTTP Basic user name, empty password)"},
			{Name: "base_url", Type: "string", Default: defaultBaseURL, Description: "https://events.eu1.segmentapis.com for EU workspaces, or any Segment-compatible API (RudderStack data plane URL, ...); requests go to {base_url}/v1/batch"},
			{Name: "click_event", Type: "string", Default: defaultClickEvent, Description: "track event name of a click"},
			{Name: "timeout", Type: "duration", Default: "10s", Description: "per request"},
			{Name: "max_batch_bytes", Type: "int", Default: maxBatchBytes, Description: fmt.Sprintf("request body limit, %d to %d (Segment accepts 500 KB)", minBatchBytes, maxBatchBytes)},
		},
	}
}

// Configure validates the configuration. Errors name the field.
func (s *Segment) Configure(_ context.Context, raw json.RawMessage) error {
	cfg := Config{BaseURL: defaultBaseURL, ClickEvent: defaultClickEvent, Timeout: "10s", MaxBatchBytes: maxBatchBytes}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if dec.More() {
		return errors.New("config: want a single JSON object")
	}
	switch {
	case cfg.WriteKey == "":
		return errors.New("config.write_key: required (the write key of a Segment HTTP API source)")
	case strings.ContainsRune(cfg.WriteKey, ':'):
		return errors.New("config.write_key: must not contain ':'")
	case strings.IndexFunc(cfg.WriteKey, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("config.write_key: contains white space or control characters")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("config.base_url: want an http or https URL without query, like https://api.segment.io")
	}
	base := strings.TrimRight(u.String(), "/")
	if strings.HasSuffix(base, "/v1") || strings.HasSuffix(base, batchPath) {
		return errors.New("config.base_url: give the API's base URL without /v1/batch, like https://api.segment.io")
	}
	cfg.ClickEvent = strings.TrimSpace(cfg.ClickEvent)
	if cfg.ClickEvent == "" {
		return errors.New("config.click_event: must not be empty")
	}
	if strings.EqualFold(cfg.ClickEvent, sdk.TypeClick) {
		return fmt.Errorf("config.click_event: %q is too generic to mean anything in Segment; name the action, like %q", cfg.ClickEvent, defaultClickEvent)
	}
	t, err := time.ParseDuration(cfg.Timeout)
	if err != nil || t <= 0 || t > 5*time.Minute {
		return errors.New("config.timeout: want a duration like 10s, at most 5m")
	}
	if cfg.MaxBatchBytes < minBatchBytes || cfg.MaxBatchBytes > maxBatchBytes {
		return fmt.Errorf("config.max_batch_bytes: want %d to %d (Segment accepts at most 500 KB per request and 32 KB per message)", minBatchBytes, maxBatchBytes)
	}
	s.cfg, s.endpoint = cfg, base+batchPath
	s.client = sdk.HTTPClient(t)
	if s.now == nil {
		s.now = time.Now
	}
	return nil
}

// Forward maps the events to track messages, packs them into requests under the byte
// limit and sends them in order. An event that cannot be mapped, or whose message is over
// Segment's per-message limit, fails on its own. After a request that must be retried
// (429, 5xx, a network error) the rest of the call is not sent: it is retried with it.
func (s *Segment) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	if s.client == nil {
		return nil, errors.New("segment: Forward before Configure")
	}
	results := make([]sdk.Result, len(evs))
	msgs := make([][]byte, len(evs))
	sizes := make([]int, len(evs))
	for i, e := range evs {
		sizes[i] = -1
		m, err := s.message(e)
		if err != nil {
			results[i] = sdk.Failed(err.Error())
			continue
		}
		if len(m) > maxMessageBytes {
			results[i] = sdk.Failed(fmt.Sprintf("message over 32 KB (%d bytes as a Segment message)", len(m)))
			continue
		}
		msgs[i], sizes[i] = m, len(m)
	}
	var stop *sdk.Result
	for _, batch := range pack(sizes, s.cfg.MaxBatchBytes, maxBatchMessages) {
		var r sdk.Result
		if stop != nil {
			r = sdk.NotSent(stop.RetryAfter, "not sent after an earlier request of the call: "+stop.Reason)
		} else {
			r = s.post(ctx, body(msgs, batch))
			if r.Status == sdk.StatusRetry {
				stop = &r
			}
		}
		for _, i := range batch {
			results[i] = r
		}
	}
	return results, nil
}

// pack groups the indexes of the events to send (size >= 0) into batches, in order,
// each at most maxCount messages and maxBytes of body.
func pack(sizes []int, maxBytes, maxCount int) [][]int {
	const envelope = len(bodyPrefix) + len(bodySuffix)
	var out [][]int
	var cur []int
	n := envelope
	for i, size := range sizes {
		if size < 0 {
			continue
		}
		add := size
		if len(cur) > 0 {
			add++ // the comma
		}
		if len(cur) > 0 && (n+add > maxBytes || len(cur) >= maxCount) {
			out = append(out, cur)
			cur, n, add = nil, envelope, size
		}
		cur = append(cur, i)
		n += add
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func body(msgs [][]byte, batch []int) []byte {
	var b bytes.Buffer
	b.WriteString(bodyPrefix)
	for k, i := range batch {
		if k > 0 {
			b.WriteByte(',')
		}
		b.Write(msgs[i])
	}
	b.WriteString(bodySuffix)
	return b.Bytes()
}

func (s *Segment) post(ctx context.Context, body []byte) sdk.Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(body))
	if err != nil {
		return sdk.Retry(0, err.Error())
	}
	req.SetBasicAuth(s.cfg.WriteKey, "")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "clickgate-segment/"+version)
	resp, err := s.client.Do(req)
	if err != nil {
		return sdk.Retry(0, err.Error())
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	reason := strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(snippet)))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return sdk.Delivered()
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return sdk.Retry(retryAfter(resp.Header, s.now()), reason)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return sdk.Failed(reason + " (check write_key)")
	default:
		return sdk.Failed(reason)
	}
}

// retryAfter reads Retry-After (seconds or an HTTP date), else X-RateLimit-Reset, which
// Segment documents as seconds (a Unix time is accepted too).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if strings.TrimSpace(h.Get("Retry-After")) != "" {
		return sdk.RetryAfter(h, now)
	}
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil || n < 0:
		case n <= 86400:
			return time.Duration(n) * time.Second
		case n > now.Unix() && n-now.Unix() <= 86400:
			return time.Unix(n, 0).Sub(now)
		}
	}
	return 0
}

// Close has only idle connections to release.
func (s *Segment) Close(context.Context) error {
	if s.client != nil {
		s.client.CloseIdleConnections()
	}
	return nil
}

// message is a Segment track call.
type message struct {
	Type        string         `json:"type"`
	Event       string         `json:"event"`
	MessageID   string         `json:"messageId"`
	AnonymousID string         `json:"anonymousId,omitempty"`
	UserID      string         `json:"userId,omitempty"`
	Timestamp   string         `json:"timestamp"`
	Properties  any            `json:"properties"`
	Context     messageContext `json:"context"`
}

type messageContext struct {
	Campaign  *campaign `json:"campaign,omitempty"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
	Library   library   `json:"library"`
}

// campaign is context.campaign, Segment's UTM object.
type campaign struct {
	Name    string `json:"name,omitempty"`
	Source  string `json:"source,omitempty"`
	Medium  string `json:"medium,omitempty"`
	Term    string `json:"term,omitempty"`
	Content string `json:"content,omitempty"`
}

type library struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type clickProperties struct {
	ClickID     string `json:"click_id,omitempty"`
	Slug        string `json:"slug"`
	Campaign    string `json:"campaign"`
	UTMSource   string `json:"utm_source,omitempty"`
	UTMMedium   string `json:"utm_medium,omitempty"`
	UTMCampaign string `json:"utm_campaign,omitempty"`
	UTMContent  string `json:"utm_content,omitempty"`
	UTMTerm     string `json:"utm_term,omitempty"`
	Destination string `json:"destination"`
	Variant     *int   `json:"variant,omitempty"`
	Bot         bool   `json:"bot"`
	BotReason   string `json:"bot_reason,omitempty"`
	NewVisitor  bool   `json:"new_visitor"`
}

// conversion is the conversion event document (configs/schemas/conversion.v1.json), as
// far as this plugin reads it.
type conversion struct {
	EventID       string    `json:"event_id"`
	SourceEventID string    `json:"source_event_id"`
	Type          string    `json:"type"`
	Status        string    `json:"status"`
	Value         *float64  `json:"value"`
	Currency      string    `json:"currency"`
	OccurredAt    time.Time `json:"occurred_at"`
	// StatusChangedAt is when a refund or rejection happened: such an event is stamped
	// with it, not with the purchase's time.
	StatusChangedAt time.Time `json:"status_changed_at"`
	VisitorID       string    `json:"visitor_id"`
	Identities      []struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	} `json:"identities"`
	Attribution *struct {
		ClickID  string `json:"click_id"`
		Slug     string `json:"slug"`
		Campaign string `json:"campaign"`
	} `json:"attribution"`
}

// orderProperties are the properties of Segment's Order Completed, Order Refunded and
// Order Cancelled events.
type orderProperties struct {
	OrderID  string   `json:"order_id,omitempty"`
	Revenue  *float64 `json:"revenue,omitempty"`
	Total    *float64 `json:"total,omitempty"`
	Currency string   `json:"currency,omitempty"`
	ClickID  string   `json:"click_id,omitempty"`
	Slug     string   `json:"slug,omitempty"`
	Campaign string   `json:"campaign,omitempty"`
}

type conversionProperties struct {
	Type     string   `json:"type"`
	Status   string   `json:"status,omitempty"`
	Value    *float64 `json:"value,omitempty"`
	Currency string   `json:"currency,omitempty"`
	ClickID  string   `json:"click_id,omitempty"`
	Slug     string   `json:"slug,omitempty"`
	Campaign string   `json:"campaign,omitempty"`
}

// orderEvents names a purchase by its status, after Segment's e-commerce spec.
var orderEvents = map[string]string{"": "Order Completed", "approved": "Order Completed", "refunded": "Order Refunded", "rejected": "Order Cancelled"}

// message maps an event to its JSON-encoded Segment message.
func (s *Segment) message(e sdk.Event) ([]byte, error) {
	m := message{Type: "track", MessageID: e.ID, Context: messageContext{Library: library{"clickgate-segment", version}}}
	var docID, visitor string
	var identity *sdk.Identity
	var at time.Time
	switch e.Type {
	case sdk.TypeClick:
		c, err := e.Click()
		if err != nil {
			return nil, fmt.Errorf("click event is not valid JSON: %v", err)
		}
		docID, visitor, identity, at = c.EventID, c.VisitorID, c.Identity, c.Time
		m.Event = s.cfg.ClickEvent
		m.Properties = clickProperties{
			ClickID: c.ClickID, Slug: c.Slug, Campaign: c.Campaign,
			UTMSource: c.UTM.Source, UTMMedium: c.UTM.Medium, UTMCampaign: c.UTM.Campaign, UTMContent: c.UTM.Content, UTMTerm: c.UTM.Term,
			Destination: c.Destination, Variant: c.Variant, Bot: c.Bot, BotReason: c.BotReason, NewVisitor: c.NewVisitor,
		}
		if c.UTM != (sdk.UTM{}) {
			m.Context.Campaign = &campaign{Name: c.UTM.Campaign, Source: c.UTM.Source, Medium: c.UTM.Medium, Term: c.UTM.Term, Content: c.UTM.Content}
		}
		m.Context.IP, m.Context.UserAgent = c.IP, c.UserAgent
	case sdk.TypeConversion:
		var c conversion
		if err := json.Unmarshal(e.JSON, &c); err != nil {
			return nil, fmt.Errorf("conversion event is not valid JSON: %v", err)
		}
		docID, visitor, at = c.EventID, c.VisitorID, cmp.Or(c.StatusChangedAt, c.OccurredAt)
		for _, id := range c.Identities {
			if id.Kind == "customer_id" && identity == nil {
				identity = &sdk.Identity{Kind: id.Kind, Value: id.Value}
			}
		}
		var clickID, slug, camp string
		if a := c.Attribution; a != nil {
			clickID, slug, camp = a.ClickID, a.Slug, a.Campaign
		}
		if name, ok := orderEvents[c.Status]; ok && c.Type == "purchase" {
			order := c.SourceEventID
			if order == "" {
				order = c.EventID
			}
			m.Event = name
			props := orderProperties{OrderID: order, Revenue: c.Value, Currency: c.Currency, ClickID: clickID, Slug: slug, Campaign: camp}
			if c.Status == "refunded" || c.Status == "rejected" {
				// revenue is reserved for what an event earned, and destinations add it
				// up whatever the event's name: a reversal says its amount as total.
				props.Revenue, props.Total = nil, c.Value
			}
			m.Properties = props
		} else {
			m.Event = "Conversion"
			m.Properties = conversionProperties{Type: c.Type, Status: c.Status, Value: c.Value, Currency: c.Currency, ClickID: clickID, Slug: slug, Campaign: camp}
		}
	default:
		return nil, fmt.Errorf("event type %q is not click or conversion", e.Type)
	}
	if m.MessageID == "" {
		m.MessageID = docID
	}
	if m.MessageID == "" {
		return nil, errors.New("event has no ID for Segment's messageId")
	}
	if len(m.MessageID) > maxMessageIDLen {
		return nil, fmt.Errorf("event ID is %d characters; Segment's messageId must be under 100", len(m.MessageID))
	}
	m.AnonymousID = visitor
	if identity != nil && identity.Kind == "customer_id" {
		m.UserID = identity.Value
	}
	if m.AnonymousID == "" && m.UserID == "" {
		return nil, fmt.Errorf("%s event has no visitor_id or customer_id identity: Segment needs an anonymousId or a userId", e.Type)
	}
	if at.IsZero() {
		at = e.Time
	}
	if at.Year() < 2000 {
		return nil, fmt.Errorf("%s event has no time", e.Type)
	}
	m.Timestamp = at.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // destinations keep their & and <
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("encoding the Segment message: %v", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
