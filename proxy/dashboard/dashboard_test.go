package dashboard

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/dop251/goja"

	"github.com/clickgate/clickgate/proxy/reports"
)

func TestServesThePage(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for _, tc := range []struct {
		path, typ, has string
		status         int
	}{
		{"/ui/", "text/html; charset=utf-8", `<script src="app.js"></script>`, 200},
		{"/ui/app.js", "text/javascript; charset=utf-8", "var CG", 200},
		{"/ui/style.css", "text/css; charset=utf-8", "table", 200},
		{"/ui/nothing.js", "", "", 404},
	} {
		res, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || tc.typ != "" && res.Header.Get("Content-Type") != tc.typ || !strings.Contains(string(body), tc.has) {
			t.Errorf("%s: %d %q, want %d %q holding %q", tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.status, tc.typ, tc.has)
		}
		// Only the page's own script may run, and nothing may frame it.
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", tc.path, csp)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", tc.path)
		}
	}
}

// script runs app.js as a browser would load it, without a document, and returns its CG.
func script(t *testing.T) (*goja.Runtime, *goja.Object) {
	t.Helper()
	src, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	vm := goja.New()
	if _, err := vm.RunScript("app.js", string(src)); err != nil {
		t.Fatal(err)
	}
	return vm, vm.Get("CG").ToObject(vm)
}

// call calls CG's function name with JSON arguments and returns its string result.
func call(t *testing.T, vm *goja.Runtime, cg *goja.Object, name string, args ...any) string {
	t.Helper()
	fn, ok := goja.AssertFunction(cg.Get(name))
	if !ok {
		t.Fatalf("CG.%s is not a function", name)
	}
	var vals []goja.Value
	for _, a := range args {
		raw, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		v, err := vm.RunString("(" + string(raw) + ")")
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	out, err := fn(goja.Undefined(), vals...)
	if err != nil {
		t.Fatalf("CG.%s: %v", name, err)
	}
	if o, ok := out.Export().(map[string]any); ok {
		raw, _ := json.Marshal(o)
		return string(raw)
	}
	return out.String()
}

// The page renders the report the API answers, built here from the API's own types so
// a renamed field shows: every figure as the CLI's table writes it, an unknown one as
// "–" (never zero), changes as signed percentages, and names from link creators as
// text, never markup.
func TestRendersAReport(t *testing.T) {
	vm, cg := script(t)
	f := func(v float64) *float64 { return &v }
	i := func(v int64) *int64 { return &v }
	rep := reports.Report{From: "2026-11-23", To: "2026-11-29", GroupBy: "campaign", PreviousFrom: "2026-11-16", PreviousTo: "2026-11-22",
		Rows: []reports.Row{
			{
				Group: "black_friday",
				Metrics: reports.Metrics{
					HumanClicks: 12345, BotClicks: 67, UniqueVisitors: 9876,
					Conversions: map[string]int64{"purchase": 40, "lead": 0}, ConversionsTotal: 40,
					Reversed:       map[string]int64{"purchase": 2},
					Revenue:        map[string]float64{"USD": 1234.5, "EUR": 10},
					ConversionRate: f(0.125), ConversionRatePerVisitor: nil,
					MedianSecondsToConvert: i(5400), P90SecondsToConvert: i(200000),
				},
				MessagesSent: i(12000), Cost: f(180), CostCurrency: "USD", RevenuePerMessage: map[string]float64{"USD": 0.10287},
				CostPerConversion: f(4.5), PlatformConversions: i(41), Discrepancy: i(-1), DiscrepancyRatio: f(0.9756),
				Change: map[string]*float64{"human_clicks": f(0.25), "conversions_total": f(-0.5), "revenue[USD]": f(1), "revenue[EUR]": nil},
			},
			{Group: `<img src=x onerror=alert(1)>`},
			{Group: "(unattributed)", Metrics: reports.Metrics{Conversions: map[string]int64{"purchase": 3}, ConversionsTotal: 3}},
		}}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	json.Unmarshal(raw, &doc)
	html := call(t, vm, cg, "render", doc)
	for _, want := range []string{
		"2026-11-23 to 2026-11-29, by campaign; changes against 2026-11-16 to 2026-11-22",
		"<td>12,345 <small class=\"up\">+25.0%</small></td>", "<td>67</td>", "<td>9,876</td>",
		"<td>40 <small class=\"down\">-50.0%</small></td>", "<td>purchase 40</td>", "<td>purchase 2</td>",
		"<td>12.5%</td>", "10.00 EUR<br>1234.50 USD<div class=\"changes\">USD <small class=\"up\">+100.0%</small></div>",
		"<td>0.1029 USD</td>", "<td>180.00 USD</td>", "<td>4.50 USD</td>", "<td>90m</td>", "<td>2.3d</td>",
		"<td>12,000</td>", "<td>41</td>", "<td>-1</td>", "<td>0.9756</td>",
		`&lt;img src=x onerror=alert(1)&gt;`, `<tr class="unattributed"><th scope="row">(unattributed)</th>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("render lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "<img") {
		t.Errorf("a group name became markup:\n%s", html)
	}
	// A group with nothing known but its zero counts: every other figure unknown, not
	// zero; a type with no conversions is left out.
	unknown := `<td><span class="unknown" title="unknown">–</span></td>`
	if want := `<th scope="row">&lt;img src=x onerror=alert(1)&gt;</th>` + strings.Repeat("<td>0</td>", 4) + strings.Repeat(unknown, 16) + "</tr>"; !strings.Contains(html, want) || strings.Contains(html, "lead 0") {
		t.Errorf("unknown figures: want %s in\n%s", want, html)
	}
	if empty := call(t, vm, cg, "render", map[string]any{"from": "2026-11-01", "to": "2026-11-01", "group_by": "day", "rows": nil}); !strings.Contains(empty, "No clicks or conversions") {
		t.Errorf("an empty report: %s", empty)
	}
}

func TestQueryAndPeriod(t *testing.T) {
	vm, cg := script(t)
	if q := call(t, vm, cg, "query", "2026-11-01", "2026-11-07", "week", "csv"); q != "/api/v1/reports/campaigns?from=2026-11-01&to=2026-11-07&group_by=week&format=csv" {
		t.Errorf("query %s", q)
	}
	// The API's default period: the seven days to today, UTC.
	if w := call(t, vm, cg, "lastWeek", 1795947000000); w != `{"from":"2026-11-23","to":"2026-11-29"}` { // 2026-11-29T10:10Z
		t.Errorf("last week %s", w)
	}
	for s, want := range map[int]string{59: "59s", 119: "119s", 120: "2m", 7199: "119m", 7200: "2.0h", 172800: "2.0d"} {
		if got := call(t, vm, cg, "seconds", s); got != want {
			t.Errorf("seconds(%d) = %s, want %s", s, got, want)
		}
	}
}
