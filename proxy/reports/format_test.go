package reports

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"regexp"
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
	r, err := Build(twoCampaignCells(), week("campaign"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// week is the report over 2026-11-23 to 2026-11-29.
func week(by string) Query {
	return Query{From: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), GroupBy: by}
}

func twoCampaignCells() *fake {
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
	// Types named like other columns: they must not collide with them.
	add("2026-11-25", "fall", storage.Cell{HumanClicks: 5, Conversions: map[string]int64{"lead": 1, "platform": 1, "change_lead": 1}}, []string{"v9"}, []int64{30})
	return f
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
		"conversions[purchase]": 1.0, "conversions[lead]": nil, "refunded_or_rejected[purchase]": nil,
		"revenue[USD]": 1.5, "first_click_revenue[USD]": 0.5, "first_click_revenue[EUR]": nil, "linear_revenue[USD]": 1.0,
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
	// Times to conversion: 100 s before, a median of 600 s and a p90 of 7,200 s now
	// (buckets 4 % wide).
	if m := spring.Change["median_seconds_to_convert"]; m == nil || *m < 4.8 || *m > 5.2 {
		t.Errorf("median change %s", fmtOpt(m))
	}
	if m := spring.Change["p90_seconds_to_convert"]; m == nil || *m < 68 || *m > 73 {
		t.Errorf("p90 change %s", fmtOpt(m))
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
		flat := flatten(t, r, row)
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
	perKey := regexp.MustCompile(`^(revenue|first_click_revenue|linear_revenue|revenue_per_message)\[([A-Z]{3})\]$`)
	for k := range all {
		if m := perKey.FindStringSubmatch(k); m != nil {
			currencies[m[2]] = true
		}
	}
	for _, h := range head {
		if m := perKey.FindStringSubmatch(h); !all[h] && (m == nil || !currencies[m[2]]) {
			t.Errorf("column %s is no figure of the JSON form", h)
		}
	}
	if recs[2][col["first_click_revenue[EUR]"]] != "12" || recs[1][col["first_click_revenue[EUR]"]] != "0" || recs[1][col["revenue_per_message[USD]"]] != "" ||
		recs[1][col["conversions[platform]"]] != "1" || recs[1][col["platform_conversions"]] != "" {
		t.Errorf("per-currency cells: %v", recs)
	}
}

// flatten names each figure of a row the way the CSV does: the group under the report's
// group_by, maps per type or currency, changes as change_NAME, and the report's periods;
// the previous period's figures are in the CSV only through their change.
func flatten(t *testing.T, r *Report, row Row) map[string]any {
	raw, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	out := map[string]any{"from": r.From, "to": r.To, "previous_from": r.PreviousFrom, "previous_to": r.PreviousTo}
	for k, v := range m {
		switch k {
		case "group":
			out[r.GroupBy] = v
		case "previous":
		case "conversions", "refunded_or_rejected", "revenue", "first_click_revenue", "linear_revenue", "revenue_per_message", "change":
			sub, _ := v.(map[string]any)
			for kk, vv := range sub {
				if k == "change" {
					out["change_"+kk] = vv
				} else {
					out[keyed(k, kk)] = vv
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
	figures, changes, ok := strings.Cut(out, "change against 2026-11-16 to 2026-11-22")
	if !ok {
		t.Fatalf("no change table:\n%s", out)
	}
	check := func(table, group string, want map[string]string) {
		t.Helper()
		cells := tableRow(t, table, group)
		for column, w := range want {
			if got, ok := cells[column]; !ok || got != w {
				t.Errorf("%s %s: %q, want %q\n%s", group, column, got, w, table)
			}
		}
	}
	check(figures, "spring", map[string]string{
		"CLICKS": "20", "BOTS": "1", "VISITORS": "2", "CONV": "3", "BY TYPE": "lead 1, purchase 2", "REFUNDED": "purchase 1",
		"CONV RATE": "15.0%", "PER VISITOR": "150.0%", "REVENUE": "50.00 USD", "FIRST CLICK": "12.00 EUR + 30.00 USD", "LINEAR": "40.00 USD",
		"REV/MSG": "0.25 USD", "COST": "30.00 USD", "COST/CONV": "10.00 USD", "TTC MEDIAN": "10m", "TTC P90": "2.0h",
		"SENT": "200", "PLATFORM": "4", "VS PLATFORM": "-1", "RATIO": "0.75",
	})
	check(figures, "fall", map[string]string{"CONV": "3", "BY TYPE": "change_lead 1, lead 1, platform 1", "REVENUE": "-", "SENT": "-", "RATIO": "-"})
	check(changes, "spring", map[string]string{
		"CLICKS": "+100.0%", "BOTS": "-50.0%", "VISITORS": "+100.0%", "CONV": "+200.0%", "BY TYPE": "lead -, purchase +100.0%",
		"REFUNDED": "purchase -", "CONV RATE": "+50.0%", "PER VISITOR": "+50.0%", "REVENUE": "USD +150.0%",
		"FIRST CLICK": "EUR -, USD +50.0%", "LINEAR": "USD +100.0%",
	})
}

// tableRow reads one group's row of a table into its cells by column: tabwriter puts at
// least two spaces between cells, and no cell holds two in a row.
func tableRow(t *testing.T, table, group string) map[string]string {
	t.Helper()
	split := regexp.MustCompile(`\s{2,}`)
	var head []string
	for _, line := range strings.Split(table, "\n") {
		cells := split.Split(strings.TrimSpace(line), -1)
		switch {
		case head == nil && strings.Contains(line, "CLICKS"):
			head = cells
		case head != nil && len(cells) > 0 && cells[0] == group:
			if len(cells) != len(head) {
				t.Fatalf("%d cells under %d columns: %q", len(cells), len(head), line)
			}
			out := map[string]string{}
			for i, h := range head {
				out[h] = cells[i]
			}
			return out
		}
	}
	t.Fatalf("no row %s in\n%s", group, table)
	return nil
}

// Grouped by day or week, a row compares with the day or week one period before.
func TestChangeByDayAndWeek(t *testing.T) {
	for _, tc := range []struct {
		by, group string
		change    float64
	}{
		{"day", "2026-11-24", 1},    // spring's 20 clicks against its 10 a week before
		{"week", "2026-11-23", 1.5}, // and fall's 5 the same week
	} {
		rep, err := Build(twoCampaignCells(), week(tc.by))
		if err != nil {
			t.Fatal(err)
		}
		var row *Row
		for i := range rep.Rows {
			if rep.Rows[i].Group == tc.group {
				row = &rep.Rows[i]
			}
		}
		if row == nil {
			t.Fatalf("%s: no row %s in %+v", tc.by, tc.group, rep.Rows)
		}
		if c := row.Change["human_clicks"]; row.Previous.HumanClicks != 10 || c == nil || *c != tc.change {
			t.Errorf("%s %s: previous %+v, change %s", tc.by, tc.group, row.Previous, fmtOpt(c))
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
