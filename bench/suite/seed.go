package suite

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tokens the suite gives clickgate; they are not secrets, the data dir is thrown away.
const (
	adminToken  = "clickbench-admin-token-0123456789"
	ingestToken = "clickbench-ingest-token-0123456789"
)

// The hot link, and the constant Location the baseline answers with: the same URL
// clickgate builds for the hot link, less the click ID.
const (
	hotSlug     = "spring"
	hotLocation = "https://shop.example.com/p/spring?utm_source=sms&utm_medium=promotional&utm_campaign=spring_sale_2026&utm_content=version_a"
)

// hotLink is the create request of the hot link.
func hotLink() map[string]any {
	return map[string]any{
		"slug": hotSlug, "destination": "https://shop.example.com/p/spring",
		"utm": map[string]any{"medium": "promotional", "campaign": "spring_sale_2026", "content": "version_a"},
	}
}

// adminClient talks to clickgate's admin API.
type adminClient struct {
	base, token string
	c           *http.Client
}

func newAdminClient(base, token string) *adminClient {
	return &adminClient{base: base, token: token, c: &http.Client{Timeout: 5 * time.Minute}}
}

// do sends a JSON request and decodes a 2xx answer into out.
func (a *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
	} else {
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return nil
}

// createLink creates one link and returns its final destination (with UTM values).
func (a *adminClient) createLink(ctx context.Context, spec map[string]any) (string, error) {
	var out struct {
		Destination string `json:"destination"`
	}
	if err := a.do(ctx, "POST", "/api/v1/links", spec, &out); err != nil {
		return "", err
	}
	return out.Destination, nil
}

// manyLinksDest is the destination of link i of the many-links scenarios, and the start
// of the Location clickgate must answer with (UTM values follow the '?').
func manyLinksDest(i int) string { return "https://shop.example.com/p/" + strconv.Itoa(i) }

const manyLinksUTM = "?utm_source=sms&utm_medium=promotional&utm_campaign=bench&"

// seedLinks creates links l0 … l{n-1} through bulk create, 10,000 per call (the API's
// limit), and checks the first answer of each call against the Location the load
// generator will expect.
func (a *adminClient) seedLinks(ctx context.Context, n int) error {
	const per = 10000
	for from := 0; from < n; from += per {
		to := min(n, from+per)
		specs := make([]map[string]any, 0, to-from)
		for i := from; i < to; i++ {
			specs = append(specs, map[string]any{"slug": "l" + strconv.Itoa(i), "destination": manyLinksDest(i),
				"utm": map[string]any{"medium": "promotional", "campaign": "bench"}})
		}
		var out struct {
			Created int `json:"created"`
			Failed  int `json:"failed"`
			Results []struct {
				Destination string `json:"destination"`
			} `json:"results"`
		}
		if err := a.do(ctx, "POST", "/api/v1/links/bulk", map[string]any{"links": specs}, &out); err != nil {
			return fmt.Errorf("seeding links %d-%d: %w", from, to-1, err)
		}
		if out.Created != to-from || out.Failed != 0 {
			return fmt.Errorf("seeding links %d-%d: created %d, failed %d", from, to-1, out.Created, out.Failed)
		}
		if want := manyLinksDest(from) + manyLinksUTM; len(out.Results) == 0 || !strings.HasPrefix(out.Results[0].Destination+"&", want) {
			return fmt.Errorf("link l%d: destination %q, the generator expects %q", from, out.Results[0].Destination, want)
		}
	}
	return nil
}

// seedTokens issues n per-recipient tokens for slug, 100,000 per call (the API's limit).
func (a *adminClient) seedTokens(ctx context.Context, slug string, n int) ([]string, error) {
	const per = 100000
	tokens := make([]string, 0, n)
	for from := 0; from < n; from += per {
		to := min(n, from+per)
		rs := make([]map[string]string, 0, to-from)
		for i := from; i < to; i++ {
			rs = append(rs, map[string]string{"customer_id": "cust-" + strconv.Itoa(i)})
		}
		var out struct {
			Tokens []struct {
				Token string `json:"token"`
			} `json:"tokens"`
		}
		if err := a.do(ctx, "POST", "/api/v1/links/"+slug+"/tokens", map[string]any{"recipients": rs}, &out); err != nil {
			return nil, fmt.Errorf("seeding tokens: %w", err)
		}
		if len(out.Tokens) != to-from {
			return nil, fmt.Errorf("seeding tokens: asked %d, got %d", to-from, len(out.Tokens))
		}
		for _, t := range out.Tokens {
			tokens = append(tokens, t.Token)
		}
	}
	return tokens, nil
}

// clicks returns a link's human and bot click counts.
func (a *adminClient) clicks(ctx context.Context, slug string) (human, bot int64, err error) {
	var out struct {
		Clicks struct {
			Human int64 `json:"human"`
			Bot   int64 `json:"bot"`
		} `json:"clicks"`
	}
	err = a.do(ctx, "GET", "/api/v1/links/"+slug, nil, &out)
	return out.Clicks.Human, out.Clicks.Bot, err
}

// metrics scrapes /metrics and sums each metric over its labels, so callers can read
// e.g. clickgate_kafka_messages_total without caring about label sets.
func (a *adminClient) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

// parseMetrics reads Prometheus text format, summing samples by metric name.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			// Label values may hold spaces; the value follows the closing brace.
			rest = rest[strings.LastIndexByte(rest, '}')+1:]
		}
		fs := strings.Fields(rest) // value, then an optional timestamp
		if len(fs) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return out, nil
}
