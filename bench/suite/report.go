package suite

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is one run of the suite, as written to bench/results/*.json.
type Report struct {
	// Suite is "quick" or "full".
	Suite string `json:"suite"`
	// Started and Finished bound the run (UTC).
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Machine  Machine   `json:"machine"`
	// Placement is which CPUs the servers and the generator had.
	Placement Placement `json:"placement"`
	Settings  Settings  `json:"settings"`
	// Baseline is the same-run reference every figure is divided by.
	Baseline  *ScenarioResult   `json:"baseline"`
	Scenarios []*ScenarioResult `json:"scenarios"`
	Goals     []Goal            `json:"goals"`
	// Notes are caveats about this run (noise, skipped scenarios, smaller data sets).
	Notes []string `json:"notes,omitempty"`
}

// Machine identifies where and on what code the figures were measured. Dirty is set
// when the work tree had uncommitted changes outside bench/results.
type Machine struct {
	CPUModel  string `json:"cpu_model"`
	CPUs      int    `json:"cpus"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Commit    string `json:"commit"`
	Dirty     bool   `json:"dirty"`
	Hostname  string `json:"hostname"`
}

// Settings are the suite's parameters for this run (see Options).
type Settings struct {
	// Conns is the keep-alive connections of every run.
	Conns int `json:"conns"`
	// WarmupSeconds, SaturationSecs and ConstantSecs are the warm-up and the measured
	// lengths of the closed-loop and constant-rate runs.
	WarmupSeconds  float64 `json:"warmup_seconds"`
	SaturationSecs float64 `json:"saturation_seconds"`
	ConstantSecs   float64 `json:"constant_seconds"`
	// ConstantRate is the redirect scenarios' constant rate: half the baseline's
	// saturation.
	ConstantRate float64 `json:"constant_rate"`
	// Links, Tokens and Taps size the many-links, recipients and conversion scenarios.
	Links  int `json:"links"`
	Tokens int `json:"tokens"`
	Taps   int `json:"taps"`
	// BotShare is the share of preview-bot requests; ZipfS the Zipf exponent.
	BotShare float64 `json:"bot_share"`
	ZipfS    float64 `json:"zipf_s"`
	// SoakSeconds is the memory soak's length (0: none).
	SoakSeconds float64 `json:"soak_seconds,omitempty"`
	// BaselineKind is "nginx" or "fasthttp"; BaselineDescribe says which server exactly.
	BaselineKind     string `json:"baseline_kind"`
	BaselineDescribe string `json:"baseline"`
}

// ScenarioResult is one scenario: what it seeded and its runs.
type ScenarioResult struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	About string `json:"about"`
	// Skipped says why a scenario did not run.
	Skipped string       `json:"skipped,omitempty"`
	Runs    []*RunResult `json:"runs,omitempty"`
	// Facts are figures read from the server after the runs (clicks counted, events
	// relayed to Kafka or delivered by the plugin, backlog left).
	Facts map[string]float64 `json:"facts,omitempty"`
	Notes []string           `json:"notes,omitempty"`
}

// run returns the scenario's first run of a kind, or nil (for Constant: the run at half
// the baseline's saturation where there is one).
func (sc *ScenarioResult) run(kind string) *RunResult {
	if sc == nil {
		return nil
	}
	for _, r := range sc.Runs {
		if r.Kind == kind {
			return r
		}
	}
	return nil
}

// RunResult is one load generator run with the server's costs.
type RunResult struct {
	Kind       string  `json:"kind"`
	Conns      int     `json:"conns"`
	TargetRate float64 `json:"target_rate,omitempty"`
	// RateOf says whose saturation the constant rate is half of: "baseline" (the rate
	// every redirect scenario shares, the latency goal's) or "own" (the scenario's own).
	RateOf  string  `json:"rate_of,omitempty"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
	// PerSecond counts the correct answers of each whole second of the measured
	// interval. Rate averages them; their spread is how much the server's own pace
	// varied within the run, which two runs' rates must differ by more than to differ.
	PerSecond  []int64          `json:"per_second,omitempty"`
	Answered   int64            `json:"answered"`
	Responses  int64            `json:"responses"`
	Errors     map[string]int64 `json:"errors"`
	ErrorTotal int64            `json:"error_total"`
	Unsent     int64            `json:"unsent,omitempty"`
	Reconnects int64            `json:"reconnects,omitempty"`
	// Latency is in microseconds: from the intended send time for constant-rate runs,
	// from the actual send for closed-loop runs.
	Latency Percentiles `json:"latency_us"`
	// Service is the uncorrected latency of a constant-rate run (from the actual send).
	Service *Percentiles `json:"service_us,omitempty"`
	// GeneratorLag is how late requests left against their schedule when a connection
	// was free for them: the generator's own lateness, part of Latency.
	GeneratorLag *Percentiles `json:"generator_lag_us,omitempty"`
	// Curve is the latency percentile distribution: [percentile, µs] pairs.
	Curve     [][2]float64 `json:"curve"`
	Server    Usage        `json:"server"`
	Generator Usage        `json:"generator"`
	// Helpers is CPU µs per request of processes working for the scenario on the
	// generator's CPUs (webhook sink, Kafka broker).
	Helpers    map[string]float64 `json:"helpers_cpu_us_per_request,omitempty"`
	VsBaseline *Ratios            `json:"vs_baseline,omitempty"`
}

// Percentiles of a latency histogram, in microseconds.
type Percentiles struct {
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	P999  int64 `json:"p99_9"`
	P9999 int64 `json:"p99_99"`
	Max   int64 `json:"max"`
	Count int64 `json:"count"`
}

// Usage is what a process tree cost during a run.
type Usage struct {
	// CPUPerRequestUS is user+system CPU µs per answered request, of the process and
	// its children (for clickgate: its plugin processes).
	CPUPerRequestUS float64 `json:"cpu_us_per_request"`
	// MainCPUPerReqUS is the same for the main process alone.
	MainCPUPerReqUS float64 `json:"main_cpu_us_per_request,omitempty"`
	// Busy is CPU time over wall time, divided by the CPUs it had (1 = all of them).
	Busy float64 `json:"busy"`
	// PeakRSS is the sum of VmHWM over the process tree, in bytes; MainPeakRSS the main
	// process's alone.
	PeakRSS     int64 `json:"peak_rss_bytes,omitempty"`
	MainPeakRSS int64 `json:"main_peak_rss_bytes,omitempty"`
	// MainRSSAnon and MainRSSFile split the main process's resident set at the end of
	// the run into anonymous memory and mapped file pages (Badger's memory-mapped
	// tables and value log count as resident while cached).
	MainRSSAnon int64 `json:"main_rss_anon_bytes,omitempty"`
	MainRSSFile int64 `json:"main_rss_file_bytes,omitempty"`
	// RequestsPerCommit is the answers of the interval over clickgate's group commits in
	// it: each commit has a fixed cost besides its clicks' (or conversions') own, so the
	// fewer share it, the more CPU each takes. CommitBusy is the share of the interval's
	// wall time a commit was in progress. Zero for the baseline.
	RequestsPerCommit float64 `json:"requests_per_commit,omitempty"`
	CommitBusy        float64 `json:"commit_busy,omitempty"`
	CPUs              string  `json:"cpus,omitempty"`
	Processes         int     `json:"processes,omitempty"`
}

// Ratios divide a run's figures by the baseline's run of the same kind.
type Ratios struct {
	Rate       float64 `json:"rate"`
	P50        float64 `json:"p50"`
	P90        float64 `json:"p90"`
	P99        float64 `json:"p99"`
	P999       float64 `json:"p99_9"`
	P9999      float64 `json:"p99_99"`
	Max        float64 `json:"max"`
	CPUPerReq  float64 `json:"cpu_per_request"`
	PeakRSS    float64 `json:"peak_rss"`
	BaseKind   string  `json:"baseline_run"`
	Comparable bool    `json:"comparable"`
}

// Goal is one target the suite checks.
type Goal struct {
	Name     string  `json:"name"`
	Scenario string  `json:"scenario"`
	Measured float64 `json:"measured"`
	Limit    float64 `json:"limit"`
	// Unit tells how to read Measured and Limit: "x" (a ratio), "ms", "MiB".
	Unit string `json:"unit"`
	// Compare is how Measured must stand to Limit: ">=", "<=" or "<".
	Compare string `json:"compare"`
	// Result is PASS, FAIL or SKIP (not measured in this run, with Note saying why).
	Result string `json:"result"`
	Note   string `json:"note,omitempty"`
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0
	}
	return a / b
}

// compare fills a run's ratios against the baseline's run of the same kind (a soak is
// compared with the saturation run).
func compare(r *RunResult, base *ScenarioResult) {
	kind := r.Kind
	if kind == Soak {
		kind = Saturation
	}
	b := base.run(kind)
	if b == nil {
		return
	}
	r.VsBaseline = &Ratios{
		Rate: ratio(r.Rate, b.Rate), P50: ratio(float64(r.Latency.P50), float64(b.Latency.P50)),
		P90: ratio(float64(r.Latency.P90), float64(b.Latency.P90)), P99: ratio(float64(r.Latency.P99), float64(b.Latency.P99)),
		P999: ratio(float64(r.Latency.P999), float64(b.Latency.P999)), P9999: ratio(float64(r.Latency.P9999), float64(b.Latency.P9999)),
		Max: ratio(float64(r.Latency.Max), float64(b.Latency.Max)), CPUPerReq: ratio(r.Server.CPUPerRequestUS, b.Server.CPUPerRequestUS),
		PeakRSS: ratio(float64(r.Server.PeakRSS), float64(b.Server.PeakRSS)), BaseKind: b.Kind,
		Comparable: r.Kind != Constant || math.Abs(r.TargetRate-b.TargetRate) < 1,
	}
}

// pairs matches a two-number array as json.Indent lays it out over four lines.
var pairs = regexp.MustCompile(`\[\s+(-?[0-9.eE+-]+),\s+(-?[0-9.eE+-]+)\s+\]`)

// perSecond matches a per_second array as json.Indent lays it out, a number a line.
var perSecond = regexp.MustCompile(`("per_second": \[)([\s0-9,]*)\]`)

// WriteJSON writes the report as indented JSON, with each [percentile, µs] point of a
// curve on one line so that a results file stays short enough to read and to diff.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	b = pairs.ReplaceAll(b, []byte("[$1, $2]"))
	b = perSecond.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := perSecond.FindSubmatch(m)
		return append(append(sub[1], strings.Join(strings.Fields(string(sub[2])), " ")...), ']')
	})
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("report json: %w", err)
	}
	return nil
}

// WriteMarkdown writes the report as Markdown: a header, one table row per run with
// every figure beside its ratio to the baseline, errors by kind, goals, notes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "## clickgate load benchmark: %s suite, %s\n\n", r.Suite, r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	dirty := ""
	if m.Dirty {
		dirty = " with uncommitted changes"
	}
	fmt.Fprintf(&b, "- machine: %s, %d CPUs, %d MiB, Linux %s, %s, commit %s%s\n", m.CPUModel, m.CPUs, m.MemoryMiB, m.Kernel, m.GoVersion, m.Commit, dirty)
	p := r.Placement
	if p.Pinned {
		fmt.Fprintf(&b, "- CPUs: server under test on %s; load generator, webhook sink and Kafka broker on %s\n", FormatCPUList(p.Server), FormatCPUList(p.Generator))
	} else {
		fmt.Fprintf(&b, "- CPUs: not pinned (%s)\n", p.Note)
	}
	st := r.Settings
	fmt.Fprintf(&b, "- baseline: %s\n", st.BaselineDescribe)
	if bs := r.Baseline.run(Saturation); bs != nil {
		fmt.Fprintf(&b, "- load generator: %.1f µs of CPU per request at the baseline's saturation, its CPUs %.0f%% busy (the server's %.0f%%)\n",
			bs.Generator.CPUPerRequestUS, 100*bs.Generator.Busy, 100*bs.Server.Busy)
	}
	fmt.Fprintf(&b, "- runs: %d keep-alive connections; warm-up %s; saturation (closed loop) %s; constant rate %s at %s req/s (half the baseline's saturation), latency from each request's intended send time\n",
		st.Conns, secs(st.WarmupSeconds), secs(st.SaturationSecs), secs(st.ConstantSecs), count(st.ConstantRate))
	fmt.Fprintf(&b, "- data: %s links for the many-links scenarios, %s recipient tokens, %s taps before conversions\n\n", count(float64(st.Links)), count(float64(st.Tokens)), count(float64(st.Taps)))

	b.WriteString("| scenario | run | req/s | slowest–fastest second | errors | p50 | p90 | p99 | p99.9 | p99.99 | max | server CPU/req | server busy | requests/commit | peak RSS |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	all := append([]*ScenarioResult{r.Baseline}, r.Scenarios...)
	var errLines []string
	for _, sc := range all {
		if sc == nil {
			continue
		}
		if sc.Skipped != "" {
			fmt.Fprintf(&b, "| %s | skipped | | | | | | | | | | | | | |\n", sc.Title)
			continue
		}
		for _, run := range sc.Runs {
			q := run.VsBaseline
			rt := func(f func(*Ratios) float64) float64 {
				// A constant-rate run at another rate than the baseline's has no ratio.
				if q == nil || sc == r.Baseline || !q.Comparable {
					return 0
				}
				return f(q)
			}
			errs := strconv.FormatInt(run.ErrorTotal, 10)
			if run.Unsent > 0 {
				errs += fmt.Sprintf(" (+%s unsent)", count(float64(run.Unsent)))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% | %s | %s |\n",
				sc.Title, runLabel(run), withRatio(count(run.Rate), rt(func(q *Ratios) float64 { return q.Rate })), spread(run.PerSecond), errs,
				withRatio(micros(run.Latency.P50), rt(func(q *Ratios) float64 { return q.P50 })),
				withRatio(micros(run.Latency.P90), rt(func(q *Ratios) float64 { return q.P90 })),
				withRatio(micros(run.Latency.P99), rt(func(q *Ratios) float64 { return q.P99 })),
				withRatio(micros(run.Latency.P999), rt(func(q *Ratios) float64 { return q.P999 })),
				withRatio(micros(run.Latency.P9999), rt(func(q *Ratios) float64 { return q.P9999 })),
				withRatio(micros(run.Latency.Max), rt(func(q *Ratios) float64 { return q.Max })),
				withRatio(fmt.Sprintf("%.1f µs", run.Server.CPUPerRequestUS), rt(func(q *Ratios) float64 { return q.CPUPerReq })),
				100*run.Server.Busy, perCommit(run.Server.RequestsPerCommit),
				withRatio(mib(run.Server.PeakRSS), rt(func(q *Ratios) float64 { return q.PeakRSS })))
			if run.ErrorTotal > 0 {
				errLines = append(errLines, fmt.Sprintf("%s / %s: %s", sc.Title, runLabel(run), kinds(run.Errors)))
			}
		}
	}
	b.WriteString("\nRatios in parentheses divide by the baseline's run of the same kind (a constant-rate run at another rate, \"½ own sat.\", has none). The slowest and fastest second are the answers of the run's slowest and fastest whole second: a difference between two runs smaller than their spread is noise. Constant-rate latency counts from each request's intended send time (coordinated omission corrected); requests the server was too slow to let the generator send are \"unsent\" and are in the percentiles with the time they had waited. Requests/commit is how many answers shared each of clickgate's durable group commits: each commit has a fixed cost besides its requests' own, so the fewer share it, the more CPU each request takes.\n")
	if len(errLines) > 0 {
		b.WriteString("\nErrors by kind:\n")
		for _, l := range errLines {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	b.WriteString("\n| goal | scenario | measured | limit | result |\n|---|---|--:|--:|---|\n")
	for _, g := range r.Goals {
		res := g.Result
		if g.Note != "" {
			res += " (" + g.Note + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s %s | %s |\n", g.Name, g.Scenario, goalValue(g.Measured, g.Unit, g.Result), symbol(g.Compare), goalValue(g.Limit, g.Unit, ""), res)
	}
	var facts []string
	for _, sc := range r.Scenarios {
		if sc.Skipped != "" {
			facts = append(facts, fmt.Sprintf("%s: skipped: %s", sc.Title, sc.Skipped))
		}
		for _, n := range sc.Notes {
			facts = append(facts, fmt.Sprintf("%s: %s", sc.Title, n))
		}
	}
	if len(facts)+len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range append(r.Notes, facts...) {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("report markdown: %w", err)
	}
	return nil
}

// GoalLines are the PASS/FAIL/SKIP lines printed after the table.
func (r *Report) GoalLines() []string {
	var out []string
	for _, g := range r.Goals {
		line := fmt.Sprintf("%s %s: %s (goal %s %s; scenario %s)", g.Result, g.Name, goalValue(g.Measured, g.Unit, g.Result), symbol(g.Compare), goalValue(g.Limit, g.Unit, ""), g.Scenario)
		if g.Note != "" {
			line += ": " + g.Note
		}
		out = append(out, line)
	}
	return out
}

func symbol(cmp string) string {
	switch cmp {
	case ">=":
		return "≥"
	case "<=":
		return "≤"
	}
	return cmp
}

func runLabel(r *RunResult) string {
	switch r.Kind {
	case Constant:
		if r.RateOf == ownRate {
			return count(r.TargetRate) + "/s (½ own sat.)"
		}
		return count(r.TargetRate) + "/s"
	case Soak:
		return "soak " + secs(math.Round(r.Seconds))
	}
	return r.Kind
}

func kinds(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func withRatio(s string, r float64) string {
	if r == 0 {
		return s
	}
	return fmt.Sprintf("%s (%s×)", s, trimRatio(r))
}

func trimRatio(r float64) string {
	switch {
	case r >= 100:
		return strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 10:
		return strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strconv.FormatFloat(r, 'f', 2, 64)
}

// micros formats a latency in µs with a unit a reader takes in at a glance.
func micros(us int64) string {
	switch {
	case us == 0:
		return "-"
	case us < 1000:
		return fmt.Sprintf("%d µs", us)
	case us < 1_000_000:
		return fmt.Sprintf("%.2f ms", float64(us)/1000)
	}
	return fmt.Sprintf("%.2f s", float64(us)/1e6)
}

// perCommit formats requests per group commit ("-" for none: the baseline).
func perCommit(n float64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", n)
}

func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func secs(s float64) string {
	if s >= 60 && math.Mod(s, 60) == 0 {
		return fmt.Sprintf("%.0f min", s/60)
	}
	return strconv.FormatFloat(s, 'f', -1, 64) + " s"
}

// spread formats the slowest and the fastest of a run's seconds, or "-" for a run of
// fewer than two whole seconds.
func spread(perSecond []int64) string {
	if len(perSecond) < 2 {
		return "-"
	}
	return count(float64(slices.Min(perSecond))) + "–" + count(float64(slices.Max(perSecond)))
}

// count formats a number with thousands separators.
func count(v float64) string {
	n := int64(math.Round(v))
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func goalValue(v float64, unit, result string) string {
	if result == "SKIP" {
		return "-"
	}
	switch unit {
	case "x":
		return trimRatio(v) + "×"
	case "ms":
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case "MiB":
		return strconv.FormatFloat(v, 'f', 0, 64) + " MiB"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}
