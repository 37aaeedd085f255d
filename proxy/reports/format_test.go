package reports

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/clickgate/clickgate/storage"
)

// twoCampaigns is a report over a week with its previous week: spring has campaign data,
// two conversion types, a refund and a currency only first click credits; fall has
// none of that.
func twoCampaigns(t *testing.T) *Report {
	t.Helper()
	sent, cost, platform := int64(200), 30.0, int64(4)
	f := &fake{camps: map[string]*storage.Campaign{"spring": {ID: "spring", MessagesSent: &sent, Cost: &cost, Currency: "USD", PlatformConversions: &platform}}}
	add := func(d, camp string, c storage.Cell, visitors []string, secs []int64) {
		sk := hyperloglog.New14()
		for _, v := range visitors {
			sk.Insert([]byte(v))
		}
		c.TTC = map[int]int64{}
		for _, s := range secs {
			c.TTC[storage.TTCBucket(s)]++
		}
		f.cells = append(f.cells, &storage.CellData{Day: day(d), ID: storage.CellID{Campaign: camp, Medium: "promotional", Slug: camp}, Visitors: sk, Cell: c})
	}
	add("2026-11-17", "spring", storage.Cell{HumanClicks: 10, BotClicks: 2, Conversions: map[string]int64{"purchase": 1},
		Revenue: map[string]float64{"USD": 20}, FirstRevenue: map[string]float64{"USD": 20}, LinearRevenue: map[string]float64{"USD": 20}}, []string{"v1"}, []int64{100})
	add("2026-11-24", "spring", storage.Cell{HumanClicks: 20, BotClicks: 1, Conversions: map[string]int64{"purchase": 2, "lead": 1}, Reversed: map[string]int64{"purchase": 1},
		Revenue: map[string]float64{"USD": 50}, FirstRevenue: map[string]float64{"USD": 30, "EUR": 12}, LinearRevenue: map[string]float64{"USD": 40}}, []string{"v1", "v2"}, []int64{60, 600, 7200})
	add("2026-11-25", "fall", storage.Cell{HumanClicks: 5, Conversions: map[string]int64{"lead": 1}}, []string{"v9"}, []int64{30})
	r, err := Build(f, Query{From: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), GroupBy: "campaign"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Every figure of a row changes against the same figure of the previous period.
func TestChangeOfEveryFigure(t *testing.T) {
	r := twoCampaigns(t)
	if r.PreviousFrom != "2026-11-16" || r.PreviousTo != "2026-11-22" {
		t.Fatalf("previous period %s to %s", r.PreviousFrom, r.PreviousTo)
	}
	spring := r.Rows[1]
	want := map[string]any{
		"human_clicks": 1.0, "bot_clicks": -0.5, "unique_visitors": 1.0, "conversions_total": 2.0,
		"purchase_conversions": 1.0, "lead_conversions": nil, "purchase_refunded_or_rejected": nil,
		"revenue_USD": 1.5, "first_click_revenue_USD": 0.5, "first_click_revenue_EUR": nil, "linear_revenue_USD": 1.0,
		"conversion_rate": 0.5, "conversion_rate_per_visitor": 0.5,
	}
	for k, w := range want {
		got, ok := spring.Change[k]
		switch {
		case !ok:
			t.Errorf("no change %s", k)
		case w == nil && got != nil:
			t.Errorf("change %s = %v, want none (nothing before)", k, *got)
		case w != nil && (got == nil || *got != w.(float64)):
			t.Errorf("change %s = %v, want %v", k, fmtOpt(got), w)
		}
	}
	// Times to conversion: 100 s before, a median of 600 s now (buckets 4 % wide).
	if m := spring.Change["median_seconds_to_convert"]; m == nil || *m < 4.8 || *m > 5.2 {
		t.Errorf("median change %s", fmtOpt(m))
	}
	if len(spring.Change) != len(want)+2 {
		t.Errorf("changes %v", keys(spring.Change))
	}
	// fall had nothing before: every change is empty, none is a division by zero.
	for k, v := range r.Rows[0].Change {
		if v != nil {
			t.Errorf("fall: change %s = %v from nothing", k, *v)
		}
	}
}

// The CSV carries every figure of the JSON form, with the same value, under the JSON
// name, and nothing else.
func TestCSVHasEveryFigureOfTheJSON(t *testing.T) {
	r := twoCampaigns(t)
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("csv: %v %q", err, buf.String())
	}
	head := recs[0]
	col := map[string]int{}
	for i, h := range head {
		if _, dup := col[h]; dup {
			t.Errorf("column %s twice", h)
		}
		col[h] = i
	}
	all := map[string]bool{}
	for i, row := range r.Rows {
		flat := flatten(t, row)
		for k, v := range flat {
			all[k] = true
			c, ok := col[k]
			if !ok {
				t.Errorf("no column %s", k)
				continue
			}
			if got := recs[i+1][c]; !sameValue(got, v) {
				t.Errorf("%s %s: csv %q, json %v", row.Group, k, got, v)
			}
		}
	}
	// Each currency has a column under every money figure, so rows line up; nothing
	// else is a column of its own.
	currencies := map[string]bool{}
	for k := range all {
		for _, p := range []string{"revenue_", "first_click_revenue_", "linear_revenue_", "revenue_per_message_"} {
			if c, ok := strings.CutPrefix(k, p); ok && len(c) == 3 {
				currencies[c] = true
			}
		}
	}
	for _, h := range head {
		i := strings.LastIndexByte(h, '_')
		if !all[h] && !(i > 0 && currencies[h[i+1:]] && !strings.HasPrefix(h, "change_")) {
			t.Errorf("column %s is no figure of the JSON form", h)
		}
	}
	if recs[2][col["first_click_revenue_EUR"]] != "12" || recs[1][col["first_click_revenue_EUR"]] != "0" || recs[1][col["revenue_per_message_USD"]] != "" {
		t.Errorf("per-currency cells: %v", recs)
	}
}

// flatten names each figure of a row the way the CSV does: the group under the report's
// group_by, maps per type or currency, changes as change_NAME; the previous period's
// figures are in the CSV only through their change.
func flatten(t *testing.T, row Row) map[string]any {
	raw, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	out := map[string]any{}
	for k, v := range m {
		switch k {
		case "group":
			out["campaign"] = v
		case "previous":
		case "conversions", "refunded_or_rejected":
			for typ, n := range v.(map[string]any) {
				out[map[string]func(string) string{"conversions": TypeConversions, "refunded_or_rejected": TypeReversed}[k](typ)] = n
			}
		case "revenue", "first_click_revenue", "linear_revenue", "revenue_per_message", "change":
			sub, _ := v.(map[string]any)
			for kk, vv := range sub {
				if k == "change" {
					out["change_"+kk] = vv
				} else {
					out[k+"_"+kk] = vv
				}
			}
		default:
			out[k] = v
		}
	}
	return out
}

func sameValue(cell string, v any) bool {
	switch v := v.(type) {
	case nil:
		return cell == ""
	case string:
		return cell == v
	case float64:
		f, err := strconv.ParseFloat(cell, 64)
		return err == nil && f == v
	}
	return false
}

func TestTableShowsEveryFigure(t *testing.T) {
	r := twoCampaigns(t)
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(out, "\n")
	line := func(prefix string, nth int) string {
		for _, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				if nth == 0 {
					return l
				}
				nth--
			}
		}
		t.Fatalf("no line %q:\n%s", prefix, out)
		return ""
	}
	for _, want := range []string{"CLICKS", "BOTS", "VISITORS", "BY TYPE", "REFUNDED", "CONV RATE", "PER VISITOR", "REVENUE", "FIRST CLICK", "LINEAR",
		"REV/MSG", "COST/CONV", "TTC MEDIAN", "TTC P90", "SENT", "PLATFORM", "VS PLATFORM"} {
		if !strings.Contains(line("CAMPAIGN", 0), want) {
			t.Errorf("no column %s", want)
		}
	}
	spring := line("spring", 0)
	for _, want := range []string{"lead 1, purchase 2", "purchase 1", "15.0%", "150.0%", "50.00 USD", "12.00 EUR + 30.00 USD", "40.00 USD",
		"0.25 USD", "10.00 USD", "10m", "2.0h", "200", "  4", "-1"} {
		if !strings.Contains(spring, want) {
			t.Errorf("spring row lacks %q: %s", want, spring)
		}
	}
	if !strings.Contains(out, "change against 2026-11-16 to 2026-11-22") {
		t.Fatalf("no change table:\n%s", out)
	}
	change := line("spring", 1)
	for _, want := range []string{"+100.0%", "-50.0%", "+200.0%", "lead -, purchase +100.0%", "USD +150.0%", "EUR -, USD +50.0%", "+50.0%"} {
		if !strings.Contains(change, want) {
			t.Errorf("spring change row lacks %q: %s", want, change)
		}
	}
}

func fmtOpt(v *float64) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprint(*v)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
