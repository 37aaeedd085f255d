package suite

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/clickgate/clickgate/bench/loadgen"
	"github.com/clickgate/clickgate/bench/procstat"
)

// What a constant-rate run's rate is half of.
const (
	baselineRate = "baseline"
	ownRate      = "own"
)

// Run kinds.
const (
	Saturation = "saturation" // closed loop: as fast as the server answers
	Constant   = "constant"   // open loop at a fixed rate, coordinated omission corrected
	Soak       = "soak"       // a long closed-loop run, for memory
)

// measure runs the load generator against sv and reads the server's CPU time at the
// edges of the measured interval, and its peak memory after it.
func (s *Suite) measure(ctx context.Context, sv *server, kind string, src loadgen.Source, rate float64, d time.Duration) (*RunResult, error) {
	s.waitKafka() // a broker booting in the background must not share a measured run
	s.seq++
	cfg := loadgen.Config{
		Addr: sv.addr, Conns: s.opt.Conns, Rate: rate, Warmup: s.opt.Warmup, Duration: d,
		Source: src, Seed: s.seq, Timeout: 10 * time.Second,
	}
	var (
		tree0                  []int
		srv0, srv1, gen0, gen1 time.Duration
		helpers0, helpers1     = map[string]time.Duration{}, map[string]time.Duration{}
		main0, main1           time.Duration
		commits0, commits1     commitCounters
	)
	self := os.Getpid()
	cfg.Begin = func() {
		tree0, _ = procstat.Tree(sv.pid())
		srv0 = procstat.CPUOf(tree0)
		main0 = procstat.CPUOf([]int{sv.pid()})
		gen0 = procstat.CPUOf([]int{self})
		for name, pid := range sv.helpers {
			helpers0[name] = procstat.CPUOf([]int{pid})
		}
		// Scraped after the CPU is read, at both ends: a server slow to answer under
		// load must not shift the CPU's interval off the answers' (rendering /metrics
		// costs the server a millisecond or two, inside the run).
		commits0 = readCommits(ctx, sv)
	}
	cfg.End = func() {
		tree1, _ := procstat.Tree(sv.pid())
		// A process of the tree that exited during the interval loses its share; one
		// that started in it brings all of its CPU time, which was spent in the interval.
		srv1 = procstat.CPUOf(union(tree0, tree1))
		main1 = procstat.CPUOf([]int{sv.pid()})
		gen1 = procstat.CPUOf([]int{self})
		for name, pid := range sv.helpers {
			helpers1[name] = procstat.CPUOf([]int{pid})
		}
		commits1 = readCommits(ctx, sv)
	}
	s.log.Info("run", "server", sv.name, "kind", kind, "rate", math.Round(rate), "seconds", d.Seconds())
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", sv.name, kind, err)
	}
	rr := summarize(kind, res)
	if kind == Constant {
		rr.RateOf = baselineRate
	}
	// CPU per request divides the CPU spent in the interval by the answers that arrived
	// in it; with none (a server that answered nothing) there is no figure.
	arrived := float64(res.ArrivedInInterval)
	perReq := func(d time.Duration) float64 {
		if arrived == 0 {
			return 0
		}
		return float64(d.Microseconds()) / arrived
	}
	cpus := len(s.place.Server)
	if !s.place.Pinned {
		cpus = s.ncpu
	}
	rr.Server = Usage{
		CPUPerRequestUS: perReq(srv1 - srv0),
		MainCPUPerReqUS: perReq(main1 - main0),
		Busy:            (srv1 - srv0).Seconds() / res.Elapsed.Seconds() / float64(max(cpus, 1)),
	}
	rr.Server.RequestsPerCommit, rr.Server.CommitBusy = commitUsage(commits0, commits1, arrived, res.Elapsed)
	if st, err := procstat.ReadStatus(sv.pid()); err == nil {
		rr.Server.PeakRSS = st.PeakRSS
		rr.Server.MainPeakRSS = st.PeakRSS
		rr.Server.MainRSSAnon, rr.Server.MainRSSFile = st.RSSAnon, st.RSSFile
		rr.Server.CPUs = st.CPUs
	}
	if tree, err := procstat.Tree(sv.pid()); err == nil {
		for _, p := range tree[1:] {
			if st, err := procstat.ReadStatus(p); err == nil {
				rr.Server.PeakRSS += st.PeakRSS
			}
		}
		rr.Server.Processes = len(tree)
	}
	gcpus := len(s.place.Generator)
	if !s.place.Pinned {
		gcpus = s.ncpu
	}
	rr.Generator = Usage{
		CPUPerRequestUS: perReq(gen1 - gen0),
		Busy:            (gen1 - gen0).Seconds() / res.Elapsed.Seconds() / float64(max(gcpus, 1)),
		CPUs:            s.selfCPUs,
	}
	for name := range sv.helpers {
		if rr.Helpers == nil {
			rr.Helpers = map[string]float64{}
		}
		rr.Helpers[name] = perReq(helpers1[name] - helpers0[name])
	}
	s.log.Info("measured", "server", sv.name, "kind", kind, "rate", math.Round(rr.Rate), "errors", rr.ErrorTotal,
		"p99_us", rr.Latency.P99, "server_cpu_us", fmt.Sprintf("%.1f", rr.Server.CPUPerRequestUS), "server_busy", fmt.Sprintf("%.2f", rr.Server.Busy))
	return rr, nil
}

// commitCounters are a clickgate's group-commit counters at one moment.
type commitCounters struct {
	commits, seconds float64
	ok               bool // the server had them
}

// readCommits scrapes the group-commit counters of sv; a server without /metrics (the
// baseline) or a failed scrape gives none.
func readCommits(ctx context.Context, sv *server) commitCounters {
	if sv.metrics == nil {
		return commitCounters{}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := sv.metrics(ctx)
	if err != nil {
		return commitCounters{}
	}
	n, ok := m["clickgate_click_commit_duration_seconds_count"]
	return commitCounters{commits: n, seconds: m["clickgate_click_commit_duration_seconds_sum"], ok: ok}
}

// commitUsage is the answers per group commit over an interval and the share of its
// wall time a commit was in progress; zeros when either end lacks the counters or no
// commit happened (the counters cannot go back, short of a restart).
func commitUsage(c0, c1 commitCounters, answered float64, elapsed time.Duration) (per, busy float64) {
	n := c1.commits - c0.commits
	if !c0.ok || !c1.ok || n <= 0 {
		return 0, 0
	}
	if elapsed > 0 {
		busy = (c1.seconds - c0.seconds) / elapsed.Seconds()
	}
	return answered / n, busy
}

func union(a, b []int) []int {
	out := slices.Clone(a)
	for _, p := range b {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// summarize turns a load generator result into the report's figures.
func summarize(kind string, res *loadgen.Result) *RunResult {
	rr := &RunResult{
		Kind: kind, Conns: res.Conns, TargetRate: res.TargetRate, Seconds: res.Elapsed.Seconds(),
		Rate: res.Rate(), Answered: res.Answered, Responses: res.Responses, Errors: res.Errors,
		ErrorTotal: res.ErrorCount(), Unsent: res.Unsent, Reconnects: res.Reconnects,
		Latency: percentiles(res.Latency), Curve: curve(res.Latency),
	}
	if res.Slice == time.Second {
		rr.PerSecond = res.Slices
	}
	if res.Open {
		svc, lag := percentiles(res.Service), percentiles(res.GeneratorLag)
		rr.Service, rr.GeneratorLag = &svc, &lag
	}
	return rr
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), P9999: h.ValueAtQuantile(99.99), Max: h.Max(), Count: h.TotalCount(),
	}
}

// curve samples the percentile distribution on the "nines" scale the plot uses: x =
// -log10(1 - q/100), 10 points per nine, up to the last nine the sample count supports
// (with n samples, percentiles past 1 - 1/n are all the maximum).
func curve(h *hdrhistogram.Histogram) [][2]float64 {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	top := math.Min(math.Log10(float64(n)), 6)
	var out [][2]float64
	for i := 0; float64(i)/10 <= top+1e-9; i++ {
		x := float64(i) / 10
		q := 100 * (1 - math.Pow(10, -x))
		out = append(out, [2]float64{q, float64(h.ValueAtQuantile(q))})
	}
	return append(out, [2]float64{100, float64(h.Max())})
}
