package suite

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/clickgate/clickgate/bench/loadgen"
)

func sampleReport() *Report {
	run := func(kind string, rate, target float64, p99 int64, cpu float64) *RunResult {
		return &RunResult{Kind: kind, Conns: 64, Rate: rate, TargetRate: target, Seconds: 3, Answered: int64(rate * 3), Responses: int64(rate * 3),
			Errors: map[string]int64{}, Latency: Percentiles{P50: p99 / 4, P90: p99 / 2, P99: p99, P999: 2 * p99, P9999: 3 * p99, Max: 4 * p99, Count: int64(rate * 3)},
			Curve:  [][2]float64{{0, 10}, {90, float64(p99 / 2)}, {99, float64(p99)}, {100, float64(4 * p99)}},
			Server: Usage{CPUPerRequestUS: cpu, Busy: 0.97, PeakRSS: 12 << 20}}
	}
	base := &ScenarioResult{Name: "baseline", Title: "baseline (nginx)", Runs: []*RunResult{run(Saturation, 60000, 0, 2000, 15), run(Constant, 30000, 30000, 200, 15)}}
	hot := &ScenarioResult{Name: "hot", Title: "one hot link", Runs: []*RunResult{run(Constant, 15000, 30000, 900000, 60), run(Saturation, 16000, 0, 8000, 55)}}
	hot.Runs[0].Unsent = 44000
	hot.Runs[1].PerSecond = []int64{17200, 12950, 17850}
	hot.Runs[1].Server.RequestsPerCommit = 9.46
	hot.Runs[1].Errors = map[string]int64{"location": 2, "reset": 1}
	hot.Runs[1].ErrorTotal = 3
	for _, sc := range []*ScenarioResult{base, hot} {
		for _, r := range sc.Runs {
			compare(r, base)
		}
	}
	rep := &Report{Suite: "quick", Started: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), Machine: Machine{CPUModel: "AMD EPYC", CPUs: 2, Commit: "abc123"},
		Placement: Placement{Pinned: true, Server: []int{1}, Generator: []int{0}},
		Settings:  Settings{Conns: 64, ConstantRate: 30000, BaselineDescribe: "nginx `return 302`"},
		Baseline:  base, Scenarios: []*ScenarioResult{hot, {Name: "relay-plugin", Title: "Kafka relay + webhook plugin", Skipped: "java not on PATH"}}}
	s := &Suite{rate: 30000, opt: Options{Links: 100000}}
	rep.Goals = s.goals(rep)
	return rep
}

func TestMarkdownShape(t *testing.T) {
	rep := sampleReport()
	var b bytes.Buffer
	if err := rep.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| scenario | run | req/s | slowest–fastest second | errors | p50 | p90 | p99 | p99.9 | p99.99 | max | server CPU/req | server busy | requests/commit | peak RSS |",
		"| 8.00 ms | 15.0 µs | 97% | - | 12 MiB |",
		"| 55.0 µs (3.67×) | 97% | 9.5 | 12 MiB (1.00×) |",
		"| 60.0 µs (4.00×) | 97% | - | 12 MiB (1.00×) |",
		"| baseline (nginx) | saturation | 60,000 | - | 0 | 500 µs | 1.00 ms | 2.00 ms |",
		"| one hot link | saturation | 16,000 (0.27×) | 12,950–17,850 | 3 | 2.00 ms (4.00×) |",
		"| one hot link | 30,000/s | 15,000 (0.50×) | - | 0 (+44,000 unsent) | 225.00 ms (4500×) |",
		"55.0 µs (3.67×)",
		"| Kafka relay + webhook plugin | skipped |",
		"- one hot link / saturation: location 2, reset 1",
		"| p99 at constant rate 30,000/s (half the baseline's saturation) | hot | 900.00 ms | < 2.00 ms | FAIL (over capacity: 44,000 requests unsent) |",
		"SKIP (scenario skipped)",
		"server under test on 1; load generator, webhook sink and Kafka broker on 0",
		"- load generator: 0.0 µs of CPU per request at the baseline's saturation",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	// Every table row has the header's number of cells.
	table := strings.Split(md[strings.Index(md, "| scenario |"):], "\n")
	header := strings.Count(table[0], "|")
	if n := strings.Count(table[1], "|"); n != header {
		t.Errorf("separator with %d bars under a header with %d: %s", n, header, table[1])
	}
	for _, line := range table {
		if strings.HasPrefix(line, "| one hot link") || strings.HasPrefix(line, "| baseline") || strings.HasPrefix(line, "| Kafka relay") {
			if n := strings.Count(line, "|"); n != header {
				t.Errorf("row with %d separators: %s", n, line)
			}
		}
	}
	lines := strings.Join(rep.GoalLines(), "\n")
	for _, want := range []string{"FAIL p99 at constant rate", "SKIP saturation throughput, click durable", "SKIP clickgate peak RSS"} {
		if !strings.Contains(lines, want) {
			t.Errorf("goal lines lack %q:\n%s", want, lines)
		}
	}
}

func TestJSONShape(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\n          [90, 1000],\n") {
		t.Errorf("curve points are not one per line:\n%s", b.String())
	}
	if !strings.Contains(b.String(), `"per_second": [17200, 12950, 17850],`) {
		t.Errorf("per_second is not on one line:\n%s", b.String())
	}
	var doc struct {
		Suite   string `json:"suite"`
		Machine struct {
			CPUModel string `json:"cpu_model"`
			Commit   string `json:"commit"`
		} `json:"machine"`
		Placement struct {
			Server []int `json:"server_cpus"`
		} `json:"placement"`
		Baseline struct {
			Runs []map[string]json.RawMessage `json:"runs"`
		} `json:"baseline"`
		Scenarios []struct {
			Name    string `json:"name"`
			Skipped string `json:"skipped"`
			Runs    []struct {
				Kind       string             `json:"kind"`
				Rate       float64            `json:"rate"`
				Latency    map[string]int64   `json:"latency_us"`
				Curve      [][2]float64       `json:"curve"`
				Errors     map[string]int64   `json:"errors"`
				Server     map[string]any     `json:"server"`
				VsBaseline map[string]any     `json:"vs_baseline"`
				Helpers    map[string]float64 `json:"helpers_cpu_us_per_request"`
			} `json:"runs"`
		} `json:"scenarios"`
		Goals []struct {
			Name, Result, Compare string
		} `json:"goals"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Suite != "quick" || doc.Machine.CPUModel == "" || doc.Machine.Commit == "" || len(doc.Placement.Server) != 1 || len(doc.Baseline.Runs) != 2 {
		t.Fatalf("top level: %+v", doc)
	}
	hot := doc.Scenarios[0].Runs[1]
	for _, k := range []string{"p50", "p90", "p99", "p99_9", "p99_99", "max", "count"} {
		if _, ok := hot.Latency[k]; !ok {
			t.Errorf("latency_us lacks %s", k)
		}
	}
	if hot.Kind != Saturation || hot.Rate != 16000 || len(hot.Curve) == 0 || hot.Errors["location"] != 2 {
		t.Errorf("hot saturation run: %+v", hot)
	}
	for _, k := range []string{"rate", "p99", "cpu_per_request", "peak_rss"} {
		if _, ok := hot.VsBaseline[k]; !ok {
			t.Errorf("vs_baseline lacks %s", k)
		}
	}
	if _, ok := hot.Server["cpu_us_per_request"]; !ok {
		t.Error("server lacks cpu_us_per_request")
	}
	if doc.Scenarios[1].Skipped == "" || len(doc.Goals) != 7 || doc.Goals[0].Compare != ">=" {
		t.Errorf("skipped scenario or goals: %+v %+v", doc.Scenarios[1], doc.Goals)
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP clickgate_kafka_messages_total Messages.
# TYPE clickgate_kafka_messages_total counter
clickgate_kafka_messages_total{topic="clickgate.clicks"} 1200
clickgate_kafka_messages_total{topic="clickgate.conversions"} 34
clickgate_plugin_delivered_total{plugin="a b}"} 7 1700000000000
clickgate_links 3
clickgate_click_commit_duration_seconds_bucket{le="0.0001"} 5
clickgate_click_commit_duration_seconds_bucket{le="+Inf"} 9
clickgate_click_commit_duration_seconds_sum 0.0042
clickgate_click_commit_duration_seconds_count 9
garbage line
`
	m, err := parseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if m["clickgate_kafka_messages_total"] != 1234 || m["clickgate_plugin_delivered_total"] != 7 || m["clickgate_links"] != 3 ||
		m["clickgate_click_commit_duration_seconds_count"] != 9 || m["clickgate_click_commit_duration_seconds_sum"] != 0.0042 {
		t.Fatalf("got %v", m)
	}
}

func TestCurve(t *testing.T) {
	h := newHist(t, 1000, 100)
	c := curve(h)
	if len(c) < 10 || c[0][0] != 0 || c[len(c)-1][0] != 100 {
		t.Fatalf("curve %v", c)
	}
	for i := 1; i < len(c); i++ {
		if c[i][0] < c[i-1][0] || c[i][1] < c[i-1][1] {
			t.Fatalf("curve not monotonic at %d: %v %v", i, c[i-1], c[i])
		}
	}
}

// newHist records n samples: 1 µs … n µs, plus one outlier.
func newHist(t *testing.T, n int, outlierMS int64) *hdrhistogram.Histogram {
	t.Helper()
	h := loadgen.NewHistogram()
	for i := 1; i <= n; i++ {
		h.RecordValue(int64(i))
	}
	h.RecordValue(outlierMS * 1000)
	return h
}
