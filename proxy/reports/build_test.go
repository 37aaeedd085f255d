package reports

import (
	"math"
	"testing"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/clickgate/clickgate/storage"
)

type fake struct {
	cells []*storage.CellData
	camps map[string]*storage.Campaign
}

func (f *fake) ReportCells(from, to storage.Day) ([]*storage.CellData, error) {
	var out []*storage.CellData
	for _, c := range f.cells {
		if c.Day >= from && c.Day < to {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fake) GetCampaign(id string) (*storage.Campaign, error) {
	if c := f.camps[id]; c != nil {
		return c, nil
	}
	return nil, storage.ErrNotFound
}

func day(s string) storage.Day { t, _ := time.Parse(time.DateOnly, s); return storage.DayOf(t) }

func TestBuildPeriodOverPeriodAndGroupings(t *testing.T) {
	id := storage.CellID{Campaign: "spring", Medium: "promotional", Content: "a", Slug: "s"}
	sent, cost, platform := int64(200), 30.0, int64(4)
	f := &fake{camps: map[string]*storage.Campaign{"spring": {ID: "spring", MessagesSent: &sent, Cost: &cost, Currency: "USD", PlatformConversions: &platform}}}
	add := func(d string, human int64, conv int64, rev float64, visitors []string, secs []int64) {
		sk := hyperloglog.New14()
		for _, v := range visitors {
			sk.Insert([]byte(v))
		}
		ttc := map[int]int64{}
		for _, s := range secs {
			ttc[storage.TTCBucket(s)]++
		}
		f.cells = append(f.cells, &storage.CellData{Day: day(d), ID: id, Visitors: sk, Cell: storage.Cell{
			HumanClicks: human, Conversions: map[string]int64{"purchase": conv}, Revenue: map[string]float64{"USD": rev}, TTC: ttc}})
	}
	near := func(got *int64, want int64) bool { // histogram buckets are at most 4 % wide
		return got != nil && math.Abs(float64(*got-want)) <= 0.02*float64(want)
	}
	// Previous week: 10 clicks, 1 conversion. This week: 30 clicks over two days, 3 conversions.
	add("2026-11-17", 10, 1, 20, []string{"v1"}, []int64{100})
	add("2026-11-24", 20, 2, 50, []string{"v1", "v2"}, []int64{60, 600})
	add("2026-11-26", 10, 1, 30, []string{"v2", "v3"}, []int64{3600})
	r, err := Build(f, Query{From: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), GroupBy: "campaign"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 1 {
		t.Fatalf("rows %v", r.Rows)
	}
	row := r.Rows[0]
	if row.HumanClicks != 30 || row.UniqueVisitors != 3 || row.ConversionsTotal != 3 || row.Revenue["USD"] != 80 {
		t.Fatalf("metrics %+v", row.Metrics)
	}
	if *row.ConversionRate != 0.1 || *row.ConversionRatePerVisitor != 1 || !near(row.MedianSecondsToConvert, 600) || !near(row.P90SecondsToConvert, 3600) {
		t.Fatalf("rates %+v", row.Metrics)
	}
	if row.RevenuePerMessage["USD"] != 0.4 || *row.CostPerConversion != 10 || *row.Discrepancy != -1 || *row.DiscrepancyRatio != 0.75 {
		t.Fatalf("campaign figures %+v", row)
	}
	if row.Previous.HumanClicks != 10 || *row.Change["human_clicks"] != 2 || *row.Change["conversions_total"] != 2 || *row.Change["revenue[USD]"] != 3 {
		t.Fatalf("period over period %+v %v", row.Previous, row.Change)
	}
	w, _ := Build(f, Query{From: time.Date(2026, 11, 17, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), GroupBy: "week"})
	if len(w.Rows) != 2 || w.Rows[0].Group != "2026-11-16" || w.Rows[1].Group != "2026-11-23" || w.Rows[1].HumanClicks != 30 {
		t.Fatalf("weeks %+v", w.Rows)
	}
	// Without campaign data, rates that need it are empty, not zero.
	f.camps = nil
	r, _ = Build(f, Query{From: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), GroupBy: "campaign"})
	if r.Rows[0].CostPerConversion != nil || r.Rows[0].RevenuePerMessage != nil || r.Rows[0].Discrepancy != nil {
		t.Fatalf("%+v", r.Rows[0])
	}
}

// Percentiles read off the histogram stay within 2 % (and a second of rounding) of the
// exact nearest-rank ones.
func TestPercentilesFromHistogram(t *testing.T) {
	for _, secs := range [][]int64{
		{0}, {7}, {24, 25, 26}, {60, 600, 3600}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		{30, 90, 300, 900, 3600, 7200, 86400, 172800, 604800, 2592000},
	} {
		ttc := map[int]int64{}
		for _, s := range secs {
			ttc[storage.TTCBucket(s)]++
		}
		med, p90, ok := percentiles(ttc)
		wantMed, wantP90 := secs[(len(secs)-1)/2], secs[int(math.Ceil(0.9*float64(len(secs))))-1]
		if !ok || math.Abs(float64(med-wantMed)) > 0.02*float64(wantMed)+1 || math.Abs(float64(p90-wantP90)) > 0.02*float64(wantP90)+1 {
			t.Errorf("%v: median %d p90 %d, want %d %d", secs, med, p90, wantMed, wantP90)
		}
	}
	if _, _, ok := percentiles(map[int]int64{}); ok {
		t.Error("an empty histogram has percentiles")
	}
}

// A link stored before campaign names were normalised is reported with the links of the
// same campaign stored since: one row, with the campaign's metadata.
func TestCampaignStoredBeforeNormalisingSharesItsRow(t *testing.T) {
	sent := int64(100)
	f := &fake{camps: map[string]*storage.Campaign{"black_friday": {ID: "black_friday", MessagesSent: &sent}}}
	for _, camp := range []string{"Black Friday", "black_friday"} {
		f.cells = append(f.cells, &storage.CellData{Day: day("2026-11-27"), ID: storage.CellID{Campaign: camp, Medium: "promotional", Slug: camp},
			Visitors: hyperloglog.New14(), Cell: storage.Cell{HumanClicks: 5}})
	}
	r, err := Build(f, Query{From: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), GroupBy: "campaign"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 1 || r.Rows[0].Group != "black_friday" || r.Rows[0].HumanClicks != 10 || r.Rows[0].MessagesSent == nil {
		t.Fatalf("rows %+v", r.Rows)
	}
}
