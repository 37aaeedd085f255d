// Package reports answers the marketer's questions from the counters storage keeps as
// events arrive: clicks, visitors, conversions, revenue under each attribution model,
// conversion rate, revenue per message, cost per conversion, time to conversion, change
// against the previous period, and attributed against platform-reported conversions.
package reports

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/clickgate/clickgate/proxy/links"
	"github.com/clickgate/clickgate/storage"
)

// GroupBys are the dimensions a report groups by.
var GroupBys = []string{"campaign", "medium", "content", "link", "day", "week"}

// Query selects a report: the days [From, To] inclusive, grouped by GroupBy.
type Query struct {
	From, To time.Time
	GroupBy  string
}

// Metrics are one group's figures for one period.
type Metrics struct {
	HumanClicks       int64              `json:"human_clicks"`
	BotClicks         int64              `json:"bot_clicks"`
	UniqueVisitors    int64              `json:"unique_visitors"`
	Conversions       map[string]int64   `json:"conversions"`
	ConversionsTotal  int64              `json:"conversions_total"`
	Reversed          map[string]int64   `json:"refunded_or_rejected"`
	Revenue           map[string]float64 `json:"revenue"`
	FirstClickRevenue map[string]float64 `json:"first_click_revenue"`
	LinearRevenue     map[string]float64 `json:"linear_revenue"`
	// Rates are empty (null), not zero, when their denominator is zero or unknown.
	ConversionRate           *float64 `json:"conversion_rate"`
	ConversionRatePerVisitor *float64 `json:"conversion_rate_per_visitor"`
	MedianSecondsToConvert   *int64   `json:"median_seconds_to_convert"`
	P90SecondsToConvert      *int64   `json:"p90_seconds_to_convert"`
}

// Row is one group of a report.
type Row struct {
	Group string `json:"group"`
	Metrics
	// Campaign metadata and what follows from it (group_by=campaign only).
	MessagesSent        *int64             `json:"messages_sent"`
	Cost                *float64           `json:"cost"`
	CostCurrency        string             `json:"cost_currency,omitempty"`
	RevenuePerMessage   map[string]float64 `json:"revenue_per_message"`
	CostPerConversion   *float64           `json:"cost_per_conversion"`
	PlatformConversions *int64             `json:"platform_conversions"`
	Discrepancy         *int64             `json:"discrepancy"`
	DiscrepancyRatio    *float64           `json:"discrepancy_ratio"`
	// Previous is the same group over the previous period of equal length (grouped by
	// day or week, the day or week that far before); Change is the relative change of
	// each of its figures, named as in the JSON and per type or currency as
	// NAME[KEY] (keyed), null where the previous figure is zero or empty. Revenue per
	// message and cost per conversion divide the campaign's messages and cost, which
	// are not per period, so they change as revenue and conversions do.
	Previous *Metrics            `json:"previous"`
	Change   map[string]*float64 `json:"change"`
}

// Report is a whole report.
type Report struct {
	From    string `json:"from"`
	To      string `json:"to"`
	GroupBy string `json:"group_by"`
	// The previous period of equal length the change is measured against (empty when
	// it would start before 1970).
	PreviousFrom string `json:"previous_from,omitempty"`
	PreviousTo   string `json:"previous_to,omitempty"`
	Rows         []Row  `json:"rows"`
}

// Source is what reports read.
type Source interface {
	ReportCells(from, to storage.Day) ([]*storage.CellData, error)
	GetCampaign(id string) (*storage.Campaign, error)
}

// Build computes a report.
func Build(src Source, q Query) (*Report, error) {
	from, to := storage.DayOf(q.From), storage.DayOf(q.To)+1
	if to <= from {
		return nil, fmt.Errorf("to is before from")
	}
	cur, err := groups(src, from, to, q.GroupBy)
	if err != nil {
		return nil, err
	}
	n := to - from
	r := &Report{From: from.Time().Format(time.DateOnly), To: (to - 1).Time().Format(time.DateOnly), GroupBy: q.GroupBy, Rows: []Row{}}
	prev := map[string]*acc{}
	if from >= n {
		if prev, err = groups(src, from-n, from, q.GroupBy); err != nil {
			return nil, err
		}
		r.PreviousFrom, r.PreviousTo = (from - n).Time().Format(time.DateOnly), (from - 1).Time().Format(time.DateOnly)
	}
	var keys []string
	for k := range cur {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row := Row{Group: k, Metrics: cur[k].metrics()}
		if p := prev[previousKey(k, q.GroupBy, n)]; p != nil {
			m := p.metrics()
			row.Previous = &m
		} else {
			row.Previous = &Metrics{}
		}
		row.Change = changes(&row.Metrics, row.Previous)
		if q.GroupBy == "campaign" {
			if err := campaignFigures(src, &row); err != nil {
				return nil, err
			}
		}
		r.Rows = append(r.Rows, row)
	}
	return r, nil
}

// previousKey is the group of the previous period a row compares with: the same
// campaign, medium, content or link; the day n days before; the week holding the day n
// days before the week's Monday (a period that is not whole weeks compares partial
// weeks).
func previousKey(k, by string, n storage.Day) string {
	if by != "day" && by != "week" {
		return k
	}
	t, err := time.Parse(time.DateOnly, k)
	if err != nil {
		return k
	}
	return periodKey(storage.DayOf(t)-n, by)
}

func campaignFigures(src Source, row *Row) error {
	c, err := src.GetCampaign(row.Group)
	if err == storage.ErrNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	row.MessagesSent, row.Cost, row.CostCurrency, row.PlatformConversions = c.MessagesSent, c.Cost, c.Currency, c.PlatformConversions
	if c.MessagesSent != nil && *c.MessagesSent > 0 {
		row.RevenuePerMessage = map[string]float64{}
		for cur, v := range row.Revenue {
			row.RevenuePerMessage[cur] = round(v / float64(*c.MessagesSent))
		}
	}
	if c.Cost != nil && row.ConversionsTotal > 0 {
		v := round(*c.Cost / float64(row.ConversionsTotal))
		row.CostPerConversion = &v
	}
	if c.PlatformConversions != nil {
		d := row.ConversionsTotal - *c.PlatformConversions
		row.Discrepancy = &d
		if *c.PlatformConversions > 0 {
			ratio := round(float64(row.ConversionsTotal) / float64(*c.PlatformConversions))
			row.DiscrepancyRatio = &ratio
		}
	}
	return nil
}

// acc accumulates cells into one group.
type acc struct {
	m        Metrics
	visitors *hyperloglog.Sketch // merged from the cells' sketches
	ttc      map[int]int64       // time to conversion histogram
}

func groups(src Source, from, to storage.Day, by string) (map[string]*acc, error) {
	cells, err := src.ReportCells(from, to)
	if err != nil {
		return nil, err
	}
	out := map[string]*acc{}
	names := map[string]string{} // campaign names as stored, and as reported
	for _, c := range cells {
		k := key(c, by, names)
		a := out[k]
		if a == nil {
			a = &acc{visitors: hyperloglog.New14(), ttc: map[int]int64{}, m: Metrics{Conversions: map[string]int64{}, Reversed: map[string]int64{},
				Revenue: map[string]float64{}, FirstClickRevenue: map[string]float64{}, LinearRevenue: map[string]float64{}}}
			out[k] = a
		}
		a.m.HumanClicks += c.Cell.HumanClicks
		a.m.BotClicks += c.Cell.BotClicks
		if c.Visitors != nil {
			if err := a.visitors.Merge(c.Visitors); err != nil {
				return nil, fmt.Errorf("visitors of %v: %w", c.ID, err)
			}
		}
		for b, n := range c.Cell.TTC {
			a.ttc[b] += n
		}
		for t, n := range c.Cell.Conversions {
			a.m.Conversions[t] += n
			a.m.ConversionsTotal += n
		}
		for t, n := range c.Cell.Reversed {
			a.m.Reversed[t] += n
		}
		for _, pair := range []struct{ dst, src map[string]float64 }{
			{a.m.Revenue, c.Cell.Revenue}, {a.m.FirstClickRevenue, c.Cell.FirstRevenue}, {a.m.LinearRevenue, c.Cell.LinearRevenue},
		} {
			for cur, v := range pair.src {
				pair.dst[cur] += v
			}
		}
	}
	return out, nil
}

func (a *acc) metrics() Metrics {
	m := a.m
	m.UniqueVisitors = int64(a.visitors.Estimate())
	for _, rev := range []map[string]float64{m.Revenue, m.FirstClickRevenue, m.LinearRevenue} {
		for k, v := range rev {
			rev[k] = round(v)
			if math.Abs(rev[k]) < 1e-9 {
				delete(rev, k)
			}
		}
	}
	for t, n := range m.Conversions {
		if n == 0 {
			delete(m.Conversions, t)
		}
	}
	if m.HumanClicks > 0 {
		v := round(float64(m.ConversionsTotal) / float64(m.HumanClicks))
		m.ConversionRate = &v
	}
	if m.UniqueVisitors > 0 {
		v := round(float64(m.ConversionsTotal) / float64(m.UniqueVisitors))
		m.ConversionRatePerVisitor = &v
	}
	if med, p90, ok := percentiles(a.ttc); ok {
		m.MedianSecondsToConvert, m.P90SecondsToConvert = &med, &p90
	}
	return m
}

// percentiles reads the median and the 90th percentile (nearest rank) off a time to
// conversion histogram.
func percentiles(ttc map[int]int64) (med, p90 int64, ok bool) {
	var n int64
	buckets := make([]int, 0, len(ttc))
	for b, c := range ttc {
		if c > 0 {
			n += c
			buckets = append(buckets, b)
		}
	}
	if n == 0 {
		return 0, 0, false
	}
	sort.Ints(buckets)
	at := func(rank int64) int64 { // rank counts from 1
		for _, b := range buckets {
			if rank -= ttc[b]; rank <= 0 {
				return storage.TTCValue(b)
			}
		}
		return storage.TTCValue(buckets[len(buckets)-1])
	}
	return at((n-1)/2 + 1), at(int64(math.Ceil(0.9 * float64(n)))), true
}

// key is the group of a cell; names remembers the campaign names already worked out,
// since a report reads many cells of each campaign.
func key(c *storage.CellData, by string, names map[string]string) string {
	if c.ID.Slug == "" {
		// Conversions no click was credited with: a day's or week's row counts only
		// attributed conversions and revenue, like every other grouping's.
		return "(unattributed)"
	}
	switch by {
	case "medium":
		return orNone(c.ID.Medium)
	case "content":
		return orNone(c.ID.Content)
	case "link":
		if c.ID.Domain != "" {
			return c.ID.Domain + "/" + c.ID.Slug
		}
		return c.ID.Slug
	case "day", "week":
		return periodKey(c.Day, by)
	}
	// Links store their campaign normalised; one stored before that was is reported
	// under the name it has now.
	n, ok := names[c.ID.Campaign]
	if !ok {
		n = orNone(links.CampaignName(c.ID.Campaign))
		names[c.ID.Campaign] = n
	}
	return n
}

// periodKey is the group of day d by day, or by week (its Monday).
func periodKey(d storage.Day, by string) string {
	t := d.Time()
	if by == "week" {
		t = t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7))
	}
	return t.Format(time.DateOnly)
}

// NormaliseCampaigns copies the metadata of campaigns stored under a name that is not in
// the form links keep campaigns in (before names were normalised) to that form, unless
// metadata is there already, so reports and the API find it. It returns how many it
// copied; the old records stay.
//
// Several old names may come to one ("Black Friday", "black-friday"): the metadata
// updated last is copied, as the operator's latest word.
func NormaliseCampaigns(db *storage.DB) (int, error) {
	latest := map[string]*storage.Campaign{}
	if err := db.EachCampaign(func(c *storage.Campaign) bool {
		id := links.CampaignName(c.ID)
		if id != c.ID && (latest[id] == nil || c.UpdatedAt.After(latest[id].UpdatedAt)) {
			latest[id] = c
		}
		return true
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range slices.Sorted(maps.Keys(latest)) {
		switch _, err := db.GetCampaign(id); {
		case err == nil:
			continue // set since under its new name
		case !errors.Is(err, storage.ErrNotFound):
			return n, err
		}
		c := *latest[id]
		c.ID = id
		if err := db.PutCampaign(&c); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// changes returns the relative change of every figure of cur against prev.
func changes(cur, prev *Metrics) map[string]*float64 {
	out := map[string]*float64{}
	for _, f := range figures {
		if f.counts == nil {
			c, okc := f.value(cur)
			p, okp := f.value(prev)
			out[f.name] = nil
			if okc && okp {
				out[f.name] = change(c, p)
			}
			continue
		}
		for k := range union(f.counts(cur), f.counts(prev)) {
			out[keyed(f.name, k)] = change(f.counts(cur)[k], f.counts(prev)[k])
		}
	}
	return out
}

// A figure is one number of Metrics (value), or one per conversion type or currency
// (counts), named as its JSON field.
type figure struct {
	name   string
	value  func(*Metrics) (float64, bool)
	counts func(*Metrics) map[string]float64
}

var figures = []figure{
	{name: "human_clicks", value: func(m *Metrics) (float64, bool) { return float64(m.HumanClicks), true }},
	{name: "bot_clicks", value: func(m *Metrics) (float64, bool) { return float64(m.BotClicks), true }},
	{name: "unique_visitors", value: func(m *Metrics) (float64, bool) { return float64(m.UniqueVisitors), true }},
	{name: "conversions_total", value: func(m *Metrics) (float64, bool) { return float64(m.ConversionsTotal), true }},
	{name: "conversions", counts: func(m *Metrics) map[string]float64 { return floats(m.Conversions) }},
	{name: "refunded_or_rejected", counts: func(m *Metrics) map[string]float64 { return floats(m.Reversed) }},
	{name: "revenue", counts: func(m *Metrics) map[string]float64 { return m.Revenue }},
	{name: "first_click_revenue", counts: func(m *Metrics) map[string]float64 { return m.FirstClickRevenue }},
	{name: "linear_revenue", counts: func(m *Metrics) map[string]float64 { return m.LinearRevenue }},
	{name: "conversion_rate", value: func(m *Metrics) (float64, bool) { return optFloat(m.ConversionRate) }},
	{name: "conversion_rate_per_visitor", value: func(m *Metrics) (float64, bool) { return optFloat(m.ConversionRatePerVisitor) }},
	{name: "median_seconds_to_convert", value: func(m *Metrics) (float64, bool) { return optInt(m.MedianSecondsToConvert) }},
	{name: "p90_seconds_to_convert", value: func(m *Metrics) (float64, bool) { return optInt(m.P90SecondsToConvert) }},
}

// keyed names a figure of one conversion type or currency in a change or a CSV column:
// keyed("conversions", "purchase") is conversions[purchase]. Types are lowercase letters,
// digits and underscores, so no name made this way is another figure's.
func keyed(name, key string) string { return name + "[" + key + "]" }

func floats(m map[string]int64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = float64(v)
	}
	return out
}

func union[V any](a, b map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func optFloat(v *float64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return *v, true
}

func optInt(v *int64) (float64, bool) {
	if v == nil {
		return 0, false
	}
	return float64(*v), true
}

func change(cur, prev float64) *float64 {
	if prev == 0 {
		return nil
	}
	v := round((cur - prev) / prev)
	return &v
}

func round(v float64) float64 { return math.Round(v*1e4) / 1e4 }
