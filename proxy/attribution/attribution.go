// Package attribution decides which SMS click a conversion belongs to. Candidates: the
// explicit click ID; else the clicks of the same visitor; else the clicks of every
// visitor joined to the conversion's identities. Bot clicks, test clicks and clicks
// after the conversion are never candidates, and each click counts only inside its
// attribution window (per campaign and conversion type). Last click decides; first click
// and linear credit are recorded beside it for reports.
package attribution

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

// Windows are attribution windows: the most specific match wins (campaign and type,
// then campaign, then type, then the default).
type Windows struct {
	Default time.Duration
	// Rules map "campaign/type", "campaign/*" or "*/type" to a window.
	Rules map[string]time.Duration
}

// For returns the window for a click of campaign converting with type.
func (w Windows) For(campaign, typ string) time.Duration {
	for _, k := range []string{campaign + "/" + typ, campaign + "/*", "*/" + typ} {
		if d, ok := w.Rules[k]; ok {
			return d
		}
	}
	return w.Default
}

// Longest returns the longest window of all: no click older than that before a
// conversion can be a candidate.
func (w Windows) Longest() time.Duration {
	d := w.Default
	for _, r := range w.Rules {
		d = max(d, r)
	}
	return d
}

// ParseWindows reads "purchase=48h,spring_sale/*=14d,promo/purchase=24h": keys are
// "type", "campaign/*" or "campaign/type"; durations take h, m, s and d (days).
func ParseWindows(def time.Duration, spec string) (Windows, error) {
	w := Windows{Default: def, Rules: map[string]time.Duration{}}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return w, fmt.Errorf("%q is not key=duration", part)
		}
		d, err := ParseDuration(v)
		if err != nil || d <= 0 {
			return w, fmt.Errorf("%q: want a positive duration like 48h or 7d", part)
		}
		if !strings.Contains(k, "/") {
			k = "*/" + k
		}
		w.Rules[k] = d
	}
	return w, nil
}

// ParseDuration is time.ParseDuration, or a number of days with a "d" suffix ("7d",
// "1.5d"); days do not mix with other units.
func ParseDuration(s string) (time.Duration, error) {
	n, ok := strings.CutSuffix(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	days, err := strconv.ParseFloat(n, 64)
	if err != nil || !daysRE.MatchString(n) || days > maxDays {
		return 0, fmt.Errorf("%q is not a number of days like 7d", s)
	}
	return time.Duration(days * float64(24*time.Hour)), nil
}

// daysRE is a number of days: decimal digits and a fraction, nothing ParseFloat takes
// besides (a sign, an exponent, hexadecimal, NaN).
var daysRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// maxDays keeps a duration in days inside time.Duration (about 292 years).
const maxDays = 100_000

// Source is what attribution reads: clicks and the identity graph.
type Source interface {
	GetClick(id [16]byte) (*storage.Click, error)
	// VisitorClicks also reports whether the visitor has a human click before from.
	VisitorClicks(visitor string, from, to time.Time, limit int) (clicks []*storage.Click, earlier bool, err error)
	IdentityVisitors(id storage.IdentityRef, limit int) ([]string, error)
	VisitorIdentities(visitor string, limit int) ([]storage.IdentityRef, error)
}

// Conversion is what attribution needs to know about a conversion.
type Conversion struct {
	Type       string
	OccurredAt time.Time
	ClickID    *ids.ClickID
	VisitorID  string
	Identities []storage.IdentityRef
}

// Result is the attribution of one conversion.
type Result struct {
	Last, First *storage.Touch
	Linear      []storage.Touch
	// Reason says why there is no attribution.
	Reason string
}

// Bounds on the graph walk: one conversion never reads without limit.
const (
	maxClicksPerVisitor = 500
	maxVisitors         = 50
	maxIdentities       = 20
)

// Attribute finds the touches of a conversion.
func Attribute(src Source, w Windows, c Conversion) (Result, error) {
	var cands []*storage.Click
	outside := 0
	// Clicks are read from the longest window before the conversion up to it: a click
	// outside that span is never a candidate, however many the visitor has.
	from := c.OccurredAt.Add(-w.Longest())
	consider := func(cl *storage.Click) {
		if cl.Bot || cl.Test || cl.Time.After(c.OccurredAt) {
			return
		}
		if c.OccurredAt.Sub(cl.Time) > w.For(cl.Campaign, c.Type) {
			outside++
			return
		}
		cands = append(cands, cl)
	}
	if c.ClickID != nil {
		cl, err := src.GetClick(*c.ClickID)
		if errors.Is(err, storage.ErrNotFound) {
			return Result{Reason: "click_id not found"}, nil
		}
		if err != nil {
			return Result{}, err
		}
		switch {
		case cl.Bot:
			return Result{Reason: "click_id is a bot or preview click"}, nil
		case cl.Test:
			return Result{Reason: "click_id is a preflight test click"}, nil
		case cl.Time.After(c.OccurredAt):
			return Result{Reason: "click_id is later than the conversion"}, nil
		}
		consider(cl)
		if len(cands) == 0 {
			return Result{Reason: fmt.Sprintf("click_id is outside the %s attribution window", human(w.For(cl.Campaign, c.Type)))}, nil
		}
		return build(cands, c.OccurredAt), nil
	}
	// A click before the span read is outside every window: if that is all there is, the
	// answer says so rather than that there is none.
	earlier := false
	if c.VisitorID != "" {
		cls, before, err := src.VisitorClicks(c.VisitorID, from, c.OccurredAt, maxClicksPerVisitor)
		if err != nil {
			return Result{}, err
		}
		earlier = earlier || before
		for _, cl := range cls {
			consider(cl)
		}
		if len(cands) > 0 {
			return build(cands, c.OccurredAt), nil
		}
	}
	// Cross-device: every visitor joined to the conversion's identities (and to the
	// identities this visitor was seen with).
	idents := append([]storage.IdentityRef(nil), c.Identities...)
	if c.VisitorID != "" {
		more, err := src.VisitorIdentities(c.VisitorID, maxIdentities)
		if err != nil {
			return Result{}, err
		}
		idents = append(idents, more...)
	}
	seen := map[string]bool{c.VisitorID: true}
	for _, id := range idents {
		vs, err := src.IdentityVisitors(id, maxVisitors)
		if err != nil {
			return Result{}, err
		}
		for _, v := range vs {
			if seen[v] || len(seen) > maxVisitors {
				continue
			}
			seen[v] = true
			cls, before, err := src.VisitorClicks(v, from, c.OccurredAt, maxClicksPerVisitor)
			if err != nil {
				return Result{}, err
			}
			earlier = earlier || before
			for _, cl := range cls {
				consider(cl)
			}
		}
	}
	if len(cands) > 0 {
		return build(cands, c.OccurredAt), nil
	}
	if outside > 0 || earlier {
		return Result{Reason: "every click is outside its attribution window"}, nil
	}
	if c.VisitorID == "" && len(c.Identities) == 0 {
		return Result{Reason: "no click_id, visitor_id or user identity to attribute by"}, nil
	}
	return Result{Reason: "no human click before the conversion for this visitor or identity"}, nil
}

func build(cands []*storage.Click, at time.Time) Result {
	sort.Slice(cands, func(i, j int) bool { return cands[i].Time.Before(cands[j].Time) })
	r := Result{}
	for _, cl := range cands {
		r.Linear = append(r.Linear, touch(cl, at, 1/float64(len(cands))))
	}
	last, first := touch(cands[len(cands)-1], at, 1), touch(cands[0], at, 1)
	r.Last, r.First = &last, &first
	return r
}

func touch(c *storage.Click, at time.Time, credit float64) storage.Touch {
	t := storage.Touch{
		ClickID: ids.ClickID(c.ID).String(), Slug: c.Slug, Domain: c.Domain, Campaign: c.Campaign, UTM: c.UTM,
		ClickTime: c.Time, SecondsToConvert: int64(at.Sub(c.Time) / time.Second), Credit: credit,
	}
	if c.Variant >= 0 {
		v := c.Variant
		t.Variant = &v
	}
	return t
}

func human(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
