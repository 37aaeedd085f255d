// Package preflight checks a short link end to end before a send, without counting a
// click: the redirect carries every UTM value and a click ID, and the destination answers.
package preflight

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
)

// CheckHeader marks the request as a preflight; the edge records it as a test click.
const CheckHeader = "X-Clickgate-Check"

// Expect is what the redirect must carry.
type Expect struct {
	ShortURL   string
	UTM        map[string]string // utm_source -> sms, ... (empty values are not expected)
	ClickParam string
}

// Step is one finding.
type Step struct {
	OK     bool
	What   string
	Detail string
}

// Report is the outcome of a check.
type Report struct {
	Steps    []Step
	Location string
	ClickID  string
	// DestinationStatus is the final status after following the destination's own
	// redirects; 0 when it could not be reached.
	DestinationStatus int
}

// OK reports whether every step passed.
func (r *Report) OK() bool {
	for _, s := range r.Steps {
		if !s.OK {
			return false
		}
	}
	return len(r.Steps) > 0
}

func (r *Report) add(ok bool, what, format string, a ...any) {
	r.Steps = append(r.Steps, Step{OK: ok, What: what, Detail: fmt.Sprintf(format, a...)})
}

// Run performs the check. Client may be nil.
func Run(ctx context.Context, client *http.Client, ex Expect) (*Report, error) {
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	r := &Report{}
	noFollow := *client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ex.ShortURL, nil)
	if err != nil {
		return nil, fmt.Errorf("short URL: %w", err)
	}
	req.Header.Set(CheckHeader, "1")
	req.Header.Set("User-Agent", "clickgate-preflight/1")
	resp, err := noFollow.Do(req)
	if err != nil {
		r.add(false, "short link answers", "%v", err)
		return r, nil
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		r.add(false, "short link answers 302", "got %d", resp.StatusCode)
		return r, nil
	}
	r.add(true, "short link answers 302", "")
	r.Location = resp.Header.Get("Location")
	u, err := url.Parse(r.Location)
	if err != nil || !u.IsAbs() {
		r.add(false, "Location is an absolute URL", "%q", r.Location)
		return r, nil
	}
	q := u.Query()
	for _, k := range []string{"utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"} {
		want := ex.UTM[k]
		if want == "" {
			continue
		}
		got := q[k]
		r.add(len(got) == 1 && got[0] == want, k+" reaches the destination", "want %q, got %q", want, got)
	}
	cid := q.Get(ex.ClickParam)
	_, perr := ids.ParseClickID(cid)
	r.add(perr == nil, "click ID reaches the destination", "%s=%s", ex.ClickParam, cid)
	r.ClickID = cid

	dreq, err := http.NewRequestWithContext(ctx, http.MethodGet, r.Location, nil)
	if err != nil {
		r.add(false, "destination answers", "%v", err)
		return r, nil
	}
	dreq.Header.Set("User-Agent", "clickgate-preflight/1")
	dresp, err := client.Do(dreq)
	if err != nil {
		r.add(false, "destination answers", "%v", err)
		return r, nil
	}
	dresp.Body.Close()
	r.DestinationStatus = dresp.StatusCode
	r.add(dresp.StatusCode < 400, "destination answers", "%d at %s", dresp.StatusCode, dresp.Request.URL)
	return r, nil
}
