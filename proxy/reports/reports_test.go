package reports_test

import (
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/proxy/reports"
	"github.com/clickgate/clickgate/proxy/server/servertest"
	"github.com/clickgate/clickgate/storage"
)

const ingest = "ingest-token-0123456789abcdef"

type expect struct {
	human, bot    int
	visitors      map[string]bool
	conversions   int
	reversed      int
	revenue       map[string]float64
	first, linear map[string]float64
	seconds       []int64
}

// A generated data set: the report agrees with a brute-force recomputation from what
// was tapped and converted. Attribution is recomputed too: every tap is inside the
// window, so last click is a visitor's last human tap, first click its first, and
// linear credit splits the value evenly over its human taps.
func TestReportAgreesWithBruteForce(t *testing.T) {
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_INGEST_TOKENS="+ingest)
	links := map[string]string{"s1": "spring_sale", "s2": "spring_sale", "f1": "fall_promo"}
	for slug, camp := range links {
		g.MustCreate(map[string]any{"slug": slug, "destination": "https://shop.example.com/" + slug,
			"utm": map[string]any{"medium": "promotional", "campaign": camp, "content": "v_" + slug}})
	}
	if st, out := g.API("PUT", "/api/v1/campaigns/spring_sale", map[string]any{"messages_sent": 1000, "cost": 50, "currency": "USD", "platform_conversions": 3}); st != 200 {
		t.Fatalf("campaign: %d %v", st, out)
	}
	// The span asked for runs from the day of the first tap to that of the last
	// conversion (up to the allowed skew ahead), so a run across midnight UTC counts all.
	first := time.Now().UTC().Format(time.DateOnly)
	rng := rand.New(rand.NewPCG(7, 9))
	exp := map[string]*expect{}
	get := func(c string) *expect {
		if exp[c] == nil {
			exp[c] = &expect{visitors: map[string]bool{}, revenue: map[string]float64{}, first: map[string]float64{}, linear: map[string]float64{}}
		}
		return exp[c]
	}
	slugs := []string{"s1", "s2", "f1"}
	var visitors []string
	humanTaps := map[string][]string{} // a visitor's human taps' campaigns, in order
	for v := 0; v < 30; v++ {
		vid := fmt.Sprintf("0%025d", v+1)
		visitors = append(visitors, vid)
		for i := 0; i < 1+rng.IntN(4); i++ {
			slug := slugs[rng.IntN(3)]
			ua := servertest.IPhone
			bot := rng.IntN(5) == 0
			if bot {
				ua = "WhatsApp/2.23.20.0 A"
			}
			g.Tap("GET", "/"+slug, map[string]string{"Cookie": "cg_vid=" + vid, "User-Agent": ua})
			e := get(links[slug])
			if bot {
				e.bot++
			} else {
				e.human++
				e.visitors[vid] = true
				humanTaps[vid] = append(humanTaps[vid], links[slug])
			}
		}
	}
	for i, vid := range visitors {
		if i%2 == 1 {
			continue
		}
		cur := []string{"USD", "EUR"}[rng.IntN(2)]
		value := float64(rng.IntN(10000)) / 100
		// Up to the allowed clock skew after the clicks, so times to conversion spread over
		// the histogram's wider buckets.
		at := time.Now().Add(time.Duration(rng.IntN(280)) * time.Second).UTC().Format(time.RFC3339)
		body := map[string]any{"event_id": fmt.Sprintf("o-%d", i), "type": "purchase", "value": value, "currency": cur, "visitor_id": vid, "occurred_at": at}
		out := convert(t, g, body)
		taps := humanTaps[vid]
		camp := "(unattributed)"
		if len(taps) > 0 {
			camp = taps[len(taps)-1]
		}
		att, _ := out["attribution"].(map[string]any)
		got := "(unattributed)"
		if att != nil {
			got = att["campaign"].(string)
			e := get(got)
			e.seconds = append(e.seconds, int64(att["seconds_to_convert"].(float64)))
		}
		if got != camp {
			t.Errorf("visitor %s (human taps %v): attributed to %s, want %s", vid, taps, got, camp)
		}
		e := get(camp)
		if i%6 == 0 { // refunded later: shown apart, no revenue
			body["status"] = "refunded"
			convert(t, g, body)
			e.reversed++
			continue
		}
		e.conversions++
		e.revenue[cur] += value
		if len(taps) > 0 {
			get(taps[0]).first[cur] += value
			for _, c := range taps {
				get(c).linear[cur] += value / float64(len(taps))
			}
		}
		convert(t, g, body) // a duplicate changes nothing
	}
	span := "&from=" + first + "&to=" + time.Now().Add(10*time.Minute).UTC().Format(time.DateOnly)
	var rows map[string]map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, rep := g.API("GET", "/api/v1/reports/campaigns?group_by=campaign"+span, nil)
		rows = map[string]map[string]any{}
		total, want := 0, 0
		for _, r := range rep["rows"].([]any) {
			m := r.(map[string]any)
			rows[m["group"].(string)] = m
			total += int(m["human_clicks"].(float64)) + int(m["conversions_total"].(float64)) + int(num(m["refunded_or_rejected"], "purchase"))
		}
		for _, e := range exp {
			want += e.human + e.conversions + e.reversed
		}
		if total == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report counters never caught up: %d of %d", total, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for camp, e := range exp {
		r := rows[camp]
		if r == nil {
			t.Fatalf("no row for %s", camp)
		}
		check := func(name string, got, want float64) {
			if math.Abs(got-want) > 1e-6 {
				t.Errorf("%s %s = %v, want %v", camp, name, got, want)
			}
		}
		// Unique visitors come from a HyperLogLog sketch (exact at these counts, 0.8 %
		// standard error at scale); times to conversion from buckets at most 4 % wide.
		near := func(name string, got, want, rel float64) {
			if math.Abs(got-want) > rel*want+1 {
				t.Errorf("%s %s = %v, want %v within %v %%", camp, name, got, want, rel*100)
			}
		}
		check("human_clicks", r["human_clicks"].(float64), float64(e.human))
		check("bot_clicks", r["bot_clicks"].(float64), float64(e.bot))
		check("unique_visitors", r["unique_visitors"].(float64), float64(len(e.visitors)))
		check("conversions_total", r["conversions_total"].(float64), float64(e.conversions))
		check("refunded", num(r["refunded_or_rejected"], "purchase"), float64(e.reversed))
		for name, want := range map[string]map[string]float64{"revenue": e.revenue, "first_click_revenue": e.first, "linear_revenue": e.linear} {
			got, _ := r[name].(map[string]any)
			for cur, v := range want {
				// Reports round sums to four decimals; linear credit is a third, a quarter…
				if g := num(got, cur); math.Abs(g-v) > 1e-3 {
					t.Errorf("%s %s %s = %v, want %v", camp, name, cur, g, v)
				}
			}
			for cur := range got {
				if _, ok := want[cur]; !ok {
					t.Errorf("%s %s in %s, which none of its conversions paid in", camp, name, cur)
				}
			}
		}
		if len(e.seconds) > 0 {
			s := append([]int64(nil), e.seconds...)
			sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
			near("median seconds", r["median_seconds_to_convert"].(float64), float64(s[(len(s)-1)/2]), 0.02)
			near("p90 seconds", r["p90_seconds_to_convert"].(float64), float64(s[int(math.Ceil(0.9*float64(len(s))))-1]), 0.02)
		}
		if e.human > 0 {
			check("conversion rate", r["conversion_rate"].(float64), math.Round(float64(e.conversions)/float64(e.human)*1e4)/1e4)
		}
	}
	sp := rows["spring_sale"]
	for cur, v := range exp["spring_sale"].revenue {
		if got := num(sp["revenue_per_message"], cur); math.Abs(got-math.Round(v/1000*1e4)/1e4) > 1e-9 {
			t.Errorf("revenue per message %s %v, revenue %v over 1,000 messages", cur, got, v)
		}
	}
	if c := exp["spring_sale"].conversions; c > 0 {
		if got := sp["cost_per_conversion"].(float64); math.Abs(got-math.Round(50/float64(c)*1e4)/1e4) > 1e-9 {
			t.Errorf("cost per conversion %v with %d conversions", got, c)
		}
	}
	if d := sp["discrepancy"].(float64); d != float64(exp["spring_sale"].conversions-3) {
		t.Errorf("discrepancy %v", d)
	}
	if rows["fall_promo"]["cost_per_conversion"] != nil || rows["fall_promo"]["revenue_per_message"] != nil {
		t.Errorf("rates without campaign data must be empty, not zero: %v", rows["fall_promo"])
	}
	// Other groupings add up to the same clicks; CSV carries the same rows.
	for _, by := range []string{"link", "medium", "content", "day", "week"} {
		_, rep := g.API("GET", "/api/v1/reports/campaigns?group_by="+by+span, nil)
		sum := 0.0
		for _, r := range rep["rows"].([]any) {
			sum += r.(map[string]any)["human_clicks"].(float64)
		}
		want := 0
		for _, e := range exp {
			want += e.human
		}
		if sum != float64(want) {
			t.Errorf("group_by=%s: %v human clicks, want %d", by, sum, want)
		}
	}
	req, _ := http.NewRequest("GET", g.Adm+"/api/v1/reports/campaigns?format=csv"+span, nil)
	req.Header.Set("Authorization", "Bearer "+servertest.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(resp.Body).ReadAll()
	resp.Body.Close()
	if err != nil || len(recs) != len(rows)+1 || recs[0][0] != "campaign" {
		t.Fatalf("csv: %v %v", recs, err)
	}
	for _, bad := range []string{"group_by=colour", "from=yesterday", "from=2026-02-01&to=2026-01-01", "format=xml"} {
		if st, _ := g.API("GET", "/api/v1/reports/campaigns?"+bad, nil); st != 400 {
			t.Errorf("%s: %d", bad, st)
		}
	}
}

// convert posts one conversion and wants it taken.
func convert(t *testing.T, g *servertest.Gate, body map[string]any) map[string]any {
	t.Helper()
	st, out := g.Ingest("POST", "/v1/conversions", body, ingest)
	if st != http.StatusOK {
		t.Fatalf("conversion %v: %d %v", body, st, out)
	}
	return out
}

func num(m any, k string) float64 {
	mm, _ := m.(map[string]any)
	v, _ := mm[k].(float64)
	return v
}

// Campaign metadata: what is set reads back; a refused update names its field and
// changes nothing.
func TestCampaignMetadata(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	if st, _ := g.API("GET", "/api/v1/campaigns/spring", nil); st != 404 {
		t.Fatalf("unknown campaign: %d", st)
	}
	set := map[string]any{"messages_sent": 12000, "cost": 180.5, "currency": "USD", "platform_conversions": 41}
	if st, out := g.API("PUT", "/api/v1/campaigns/spring", set); st != 200 || out["id"] != "spring" {
		t.Fatalf("set: %d %v", st, out)
	}
	want := func() {
		t.Helper()
		st, out := g.API("GET", "/api/v1/campaigns/spring", nil)
		if st != 200 || out["messages_sent"] != 12000.0 || out["cost"] != 180.5 || out["currency"] != "USD" || out["platform_conversions"] != 41.0 {
			t.Fatalf("get: %d %v", st, out)
		}
	}
	want()
	for _, bad := range []struct {
		body  string
		field string
	}{
		{`{"messages_sent": -1}`, "messages_sent"},
		{`{"cost": -5, "currency": "USD"}`, "cost"},
		{`{"cost": 5}`, "currency"},
		{`{"cost": 5, "currency": "usd"}`, "currency"},
		{`{"cost": 5, "currency": "XYZ"}`, "currency"},
		{`{"platform_conversions": -2}`, "platform_conversions"},
		{`{"messages_sent": "many"}`, ""},
		{`{"colour": "red"}`, ""},
		{`not json`, ""},
	} {
		st, out := g.API("PUT", "/api/v1/campaigns/spring", bad.body)
		e, _ := out["error"].(map[string]any)
		if st != 400 || e == nil || bad.field != "" && e["field"] != bad.field {
			t.Errorf("%s: %d %v", bad.body, st, out)
		}
	}
	if st, _ := g.API("PUT", "/api/v1/campaigns/"+strings.Repeat("c", 101), set); st != 400 {
		t.Errorf("a 101-character id: %d", st)
	}
	if st, out := g.API("PUT", "/api/v1/campaigns/%20%E6%98%A5%20", set); st != 200 || out["id"] != "春" {
		t.Errorf("an id in another script, kept as given: %d %v", st, out)
	}
	for _, bad := range []string{"%E6%98%A5%0A%E7%A7%8B", "%FF"} {
		if st, _ := g.API("PUT", "/api/v1/campaigns/"+bad, set); st != 400 {
			t.Errorf("id %s: %d, want 400", bad, st)
		}
	}
	want()
}

// A campaign is named as its links name it: "Black Friday" on a link, on its metadata or
// in a report path is the campaign black_friday, so the metadata meets the link's clicks
// in the report, and two spellings do not split a campaign in two rows.
func TestCampaignNamesAreNormalised(t *testing.T) {
	g := servertest.Start(t, t.TempDir())
	for slug, name := range map[string]string{"bf1": "Black Friday", "bf2": "black friday "} {
		g.MustCreate(map[string]any{"slug": slug, "destination": "https://shop.example.com/", "campaign": name,
			"utm": map[string]any{"medium": "promotional", "campaign": "bf"}})
		g.Tap("GET", "/"+slug, map[string]string{"User-Agent": servertest.Android})
	}
	if st, out := g.API("PUT", "/api/v1/campaigns/Black%20Friday", map[string]any{"messages_sent": 100}); st != 200 || out["id"] != "black_friday" {
		t.Fatalf("set: %d %v", st, out)
	}
	if st, out := g.API("GET", "/api/v1/campaigns/black_friday", nil); st != 200 || out["messages_sent"] != 100.0 {
		t.Fatalf("get: %d %v", st, out)
	}
	var rows []any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, rep := g.API("GET", "/api/v1/reports/campaigns", nil)
		rows, _ = rep["rows"].([]any)
		if len(rows) == 1 && rows[0].(map[string]any)["human_clicks"] == 2.0 || time.Now().After(deadline) {
			break
		}
	}
	if len(rows) != 1 {
		t.Fatalf("rows %v, want one for both links", rows)
	}
	if r := rows[0].(map[string]any); r["group"] != "black_friday" || r["human_clicks"] != 2.0 || r["messages_sent"] != 100.0 {
		t.Fatalf("row %v", r)
	}
}

// Three weeks of clicks and conversions, stored the way the redirect and the intake store
// them: every report over them (whole span and one week; by campaign, day and week;
// the change against the week before) agrees with a brute-force recomputation from the
// stored click and conversion records, read back one by one.
func TestReportsOverWeeksAgreeWithStoredRecords(t *testing.T) {
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_INGEST_TOKENS="+ingest)
	db := g.S.DB
	links := map[string]string{"s1": "spring_sale", "s2": "spring_sale", "f1": "fall_promo"}
	slugs := []string{"s1", "s2", "f1"}
	rng := rand.New(rand.NewPCG(3, 5))
	now := time.Now().UTC()
	const span = 21 * 24 * time.Hour
	gen := ids.NewClickIDs(7)
	var clickIDs [][16]byte
	for i := 0; i < 900; i++ {
		slug := slugs[rng.IntN(3)]
		at := now.Add(-time.Duration(rng.Int64N(int64(span)))).Truncate(time.Millisecond)
		c := &storage.Click{ID: gen.New(at), Time: at, Node: "n", Slug: slug, Campaign: links[slug], Variant: -1,
			UTM:         storage.UTM{Source: "sms", Medium: "promotional", Campaign: links[slug], Content: "v_" + slug},
			Destination: "https://shop.example.com/" + slug, VisitorID: fmt.Sprintf("0%025d", rng.IntN(80)+1),
			UserAgent: servertest.IPhone, Bot: rng.IntN(6) == 0}
		kind := storage.KindHuman
		if c.Bot {
			kind = storage.KindBot
		}
		if err := db.Committer().CommitClick(storage.AppendClick(nil, c), db.Counters("", slug), kind); err != nil {
			t.Fatal(err)
		}
		clickIDs = append(clickIDs, c.ID)
	}
	var convIDs [][16]byte
	for i := 0; i < 160; i++ {
		body := map[string]any{"event_id": fmt.Sprintf("w-%d", i), "type": []string{"purchase", "purchase", "lead"}[rng.IntN(3)],
			"visitor_id":  fmt.Sprintf("0%025d", rng.IntN(90)+1), // some visitors never tapped
			"occurred_at": now.Add(-time.Duration(rng.Int64N(int64(span)))).Format(time.RFC3339)}
		if body["type"] == "purchase" {
			body["value"], body["currency"] = float64(rng.IntN(20000))/100, []string{"USD", "EUR"}[rng.IntN(2)]
		}
		out := convert(t, g, body)
		id, err := ids.ParseClickID(out["conversion_id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		convIDs = append(convIDs, id)
		if i%7 == 0 {
			body["status"] = "refunded"
			convert(t, g, body)
		}
	}

	// The brute force: every stored click and conversion, read back and added up per
	// campaign and day.
	type tally struct {
		human, bot, conversions, reversed int64
		visitors                          map[string]bool
		revenue, first, linear            map[string]float64
	}
	per := map[string]map[storage.Day]*tally{}
	cell := func(camp string, d storage.Day) *tally {
		if per[camp] == nil {
			per[camp] = map[storage.Day]*tally{}
		}
		if per[camp][d] == nil {
			per[camp][d] = &tally{visitors: map[string]bool{}, revenue: map[string]float64{}, first: map[string]float64{}, linear: map[string]float64{}}
		}
		return per[camp][d]
	}
	for _, id := range clickIDs {
		c, err := db.GetClick(id)
		if err != nil {
			t.Fatal(err)
		}
		x := cell(c.Campaign, storage.DayOf(c.Time))
		if c.Bot {
			x.bot++
		} else {
			x.human++
			x.visitors[c.VisitorID] = true
		}
	}
	for _, id := range convIDs {
		c, err := db.GetConversion(id)
		if err != nil {
			t.Fatal(err)
		}
		d, camp := storage.DayOf(c.OccurredAt), "(unattributed)"
		if c.LastClick != nil {
			camp = c.LastClick.Campaign
		}
		if c.Status != "approved" {
			cell(camp, d).reversed++
			continue
		}
		cell(camp, d).conversions++
		if c.Type != "purchase" {
			continue
		}
		cell(camp, d).revenue[c.Currency] += *c.Value
		if c.FirstClick != nil {
			cell(c.FirstClick.Campaign, d).first[c.Currency] += *c.Value
		}
		for _, tc := range c.Linear {
			cell(tc.Campaign, d).linear[c.Currency] += *c.Value * tc.Credit
		}
	}
	// The data set has what the reports must get right: attributed and unattributed
	// conversions, refunds, and conversions credited to more than one campaign.
	attributed, split := 0, 0
	for _, id := range convIDs {
		c, _ := db.GetConversion(id)
		if c.LastClick != nil {
			attributed++
		}
		if c.FirstClick != nil && c.FirstClick.Campaign != c.LastClick.Campaign {
			split++
		}
	}
	if attributed < 40 || attributed == len(convIDs) || split < 5 {
		t.Fatalf("%d of %d conversions attributed, %d across two campaigns", attributed, len(convIDs), split)
	}
	// sum adds the tallies of the days [from, to] that key puts in group.
	sum := func(from, to storage.Day, group string, key func(camp string, d storage.Day) string) *tally {
		s := &tally{visitors: map[string]bool{}, revenue: map[string]float64{}, first: map[string]float64{}, linear: map[string]float64{}}
		for camp, days := range per {
			for d, x := range days {
				if d < from || d > to || key(camp, d) != group {
					continue
				}
				s.human, s.bot, s.conversions, s.reversed = s.human+x.human, s.bot+x.bot, s.conversions+x.conversions, s.reversed+x.reversed
				for v := range x.visitors {
					s.visitors[v] = true
				}
				for _, m := range []struct{ dst, src map[string]float64 }{{s.revenue, x.revenue}, {s.first, x.first}, {s.linear, x.linear}} {
					for cur, v := range m.src {
						m.dst[cur] += v
					}
				}
			}
		}
		return s
	}
	byCampaign := func(camp string, _ storage.Day) string { return camp }
	// Unattributed conversions are a row of their own in every grouping.
	byDay := func(camp string, d storage.Day) string {
		if camp == "(unattributed)" {
			return camp
		}
		return d.Time().Format(time.DateOnly)
	}
	byWeek := func(camp string, d storage.Day) string {
		if camp == "(unattributed)" {
			return camp
		}
		t := d.Time()
		return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)).Format(time.DateOnly)
	}
	dayStr := func(d storage.Day) string { return d.Time().Format(time.DateOnly) }
	last, first := storage.DayOf(now), storage.DayOf(now.Add(-span))
	var total int64
	for _, days := range per {
		for _, x := range days {
			total += x.human + x.bot + x.conversions + x.reversed
		}
	}
	report := func(by string, from, to storage.Day) map[string]map[string]any {
		_, rep := g.API("GET", "/api/v1/reports/campaigns?group_by="+by+"&from="+dayStr(from)+"&to="+dayStr(to), nil)
		rows := map[string]map[string]any{}
		for _, r := range rep["rows"].([]any) {
			m := r.(map[string]any)
			rows[m["group"].(string)] = m
		}
		return rows
	}
	// The counters are written every 2 seconds: wait until they hold every event.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var got int64
		for _, r := range report("campaign", first, last) {
			got += int64(r["human_clicks"].(float64) + r["bot_clicks"].(float64) + r["conversions_total"].(float64))
			for _, n := range mapOf(r["refunded_or_rejected"]) {
				got += int64(n)
			}
		}
		if got == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report counters never caught up: %d of %d events", got, total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	compare := func(what string, r map[string]any, want *tally) {
		t.Helper()
		if r == nil {
			if want.human+want.bot+want.conversions+want.reversed > 0 {
				t.Errorf("%s: no row, want %+v", what, want)
			}
			return
		}
		for name, pair := range map[string][2]float64{
			"human_clicks": {r["human_clicks"].(float64), float64(want.human)}, "bot_clicks": {r["bot_clicks"].(float64), float64(want.bot)},
			"unique_visitors":   {r["unique_visitors"].(float64), float64(len(want.visitors))}, // exact at these counts
			"conversions_total": {r["conversions_total"].(float64), float64(want.conversions)},
		} {
			if pair[0] != pair[1] {
				t.Errorf("%s %s = %v, want %v", what, name, pair[0], pair[1])
			}
		}
		var reversed float64
		for _, n := range mapOf(r["refunded_or_rejected"]) {
			reversed += n
		}
		if reversed != float64(want.reversed) {
			t.Errorf("%s refunded = %v, want %d", what, reversed, want.reversed)
		}
		for name, w := range map[string]map[string]float64{"revenue": want.revenue, "first_click_revenue": want.first, "linear_revenue": want.linear} {
			got := mapOf(r[name])
			for _, m := range []map[string]float64{got, w} { // a currency either side lacks is a zero there
				for cur := range m {
					if math.Abs(got[cur]-w[cur]) > 1e-3 {
						t.Errorf("%s %s %s = %v, want %v", what, name, cur, got[cur], w[cur])
					}
				}
			}
		}
	}
	for _, q := range []struct {
		by       string
		from, to storage.Day
		key      func(string, storage.Day) string
	}{
		{"campaign", first, last, byCampaign},
		{"campaign", last - 6, last, byCampaign},
		{"day", first, last, byDay},
		{"week", first, last, byWeek},
	} {
		rows := report(q.by, q.from, q.to)
		groups := map[string]bool{}
		for k := range rows {
			groups[k] = true
		}
		for camp, days := range per {
			for d := range days {
				if d >= q.from && d <= q.to {
					groups[q.key(camp, d)] = true
				}
			}
		}
		for grp := range groups {
			compare(fmt.Sprintf("group_by=%s %s..%s %s", q.by, dayStr(q.from), dayStr(q.to), grp), rows[grp], sum(q.from, q.to, grp, q.key))
		}
	}
	// The change against the week before, by campaign.
	for camp, r := range report("campaign", last-6, last) {
		cur, prev := sum(last-6, last, camp, byCampaign), sum(last-13, last-7, camp, byCampaign)
		got, _ := r["change"].(map[string]any)["human_clicks"].(float64)
		if prev.human > 0 && math.Abs(got-math.Round(float64(cur.human-prev.human)/float64(prev.human)*1e4)/1e4) > 1e-9 {
			t.Errorf("%s: human clicks change %v, from %d to %d", camp, got, prev.human, cur.human)
		}
	}
}

func mapOf(v any) map[string]float64 {
	out := map[string]float64{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		out[k], _ = x.(float64)
	}
	return out
}

// Metadata stored under a campaign name from before names were normalised is copied to
// the name its links now report under, unless that already has its own.
func TestNormaliseCampaigns(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := func(v int64) *int64 { return &v }
	at := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []*storage.Campaign{
		// Two old spellings of one campaign: the one updated last is its metadata.
		{ID: "Black Friday", MessagesSent: n(100), UpdatedAt: at.Add(time.Hour)},
		{ID: "black-friday", MessagesSent: n(50), UpdatedAt: at},
		{ID: "Cyber Monday", MessagesSent: n(1)}, {ID: "cyber_monday", MessagesSent: n(2)},
		{ID: "spring", MessagesSent: n(3)}, {ID: "春", MessagesSent: n(4)},
	} {
		if err := db.PutCampaign(c); err != nil {
			t.Fatal(err)
		}
	}
	copied, err := reports.NormaliseCampaigns(db)
	if err != nil || copied != 1 {
		t.Fatalf("copied %d, %v; want the one", copied, err)
	}
	for id, want := range map[string]int64{"black_friday": 100, "cyber_monday": 2, "spring": 3, "春": 4, "Black Friday": 100} {
		if c, err := db.GetCampaign(id); err != nil || *c.MessagesSent != want {
			t.Errorf("%s: %+v, %v; want %d messages", id, c, err, want)
		}
	}
	if again, err := reports.NormaliseCampaigns(db); err != nil || again != 0 {
		t.Errorf("a second run copied %d, %v", again, err)
	}
}
