package suite

import (
	"fmt"
	"strings"
	"time"
)

// How a goal compares its figure with its limit.
const (
	atLeast = ">="
	atMost  = "<="
	below   = "<"
)

// goals checks the performance goals on this run's figures. A goal whose scenario did
// not run is SKIP with the reason, never a silent PASS.
func (s *Suite) goals(rep *Report) []Goal {
	find := func(name string) *ScenarioResult {
		for _, sc := range rep.Scenarios {
			if sc.Name == name {
				return sc
			}
		}
		return nil
	}
	var out []Goal
	check := func(g Goal, sc *ScenarioResult, kind string, measure func(*RunResult) (float64, bool), cmp string) {
		g.Compare = cmp
		r := sc.run(kind)
		switch {
		case sc == nil:
			g.Result, g.Note = "SKIP", "scenario not run"
		case sc.Skipped != "":
			g.Result, g.Note = "SKIP", "scenario skipped"
		case r == nil:
			g.Result, g.Note = "SKIP", kind+" run missing"
		default:
			v, ok := measure(r)
			if !ok {
				g.Result, g.Note = "SKIP", "no figure to compare"
				break
			}
			g.Measured = v
			var pass bool
			switch cmp {
			case atLeast:
				pass = v >= g.Limit
			case atMost:
				pass = v <= g.Limit
			case below:
				pass = v < g.Limit
			}
			g.Result = map[bool]string{true: "PASS", false: "FAIL"}[pass]
			if r.ErrorTotal > 0 {
				g.Note = fmt.Sprintf("%d errors in the run", r.ErrorTotal)
			}
			if r.Unsent > 0 {
				g.Note = fmt.Sprintf("over capacity: %s requests unsent", count(float64(r.Unsent)))
			}
		}
		out = append(out, g)
	}
	vsBase := func(f func(*Ratios) float64) func(*RunResult) (float64, bool) {
		return func(r *RunResult) (float64, bool) {
			if r.VsBaseline == nil {
				return 0, false
			}
			return f(r.VsBaseline), true
		}
	}
	full := find("relay-plugin")
	check(Goal{Name: "saturation throughput, click durable + Kafka relay + webhook plugin, vs baseline", Scenario: "relay-plugin", Limit: 0.8, Unit: "x"},
		full, Saturation, vsBase(func(q *Ratios) float64 { return q.Rate }), atLeast)
	check(Goal{Name: "server CPU per redirect, same run, vs baseline", Scenario: "relay-plugin", Limit: 1.25, Unit: "x"},
		full, Saturation, vsBase(func(q *Ratios) float64 { return q.CPUPerReq }), atMost)
	hot := find("hot")
	ms := func(f func(Percentiles) int64) func(*RunResult) (float64, bool) {
		return func(r *RunResult) (float64, bool) { return float64(f(r.Latency)) / 1000, r.Latency.Count > 0 }
	}
	check(Goal{Name: fmt.Sprintf("p99 at constant rate %s/s (half the baseline's saturation)", count(s.rate)), Scenario: "hot", Limit: 2, Unit: "ms"},
		hot, Constant, ms(func(p Percentiles) int64 { return p.P99 }), below)
	check(Goal{Name: fmt.Sprintf("p99.9 at constant rate %s/s", count(s.rate)), Scenario: "hot", Limit: 5, Unit: "ms"},
		hot, Constant, ms(func(p Percentiles) int64 { return p.P999 }), below)
	// A latency goal the baseline itself misses at the same rate cannot be judged here:
	// the generator or the machine sets that tail.
	if b := rep.Baseline.run(Constant); b != nil {
		for i := len(out) - 2; i < len(out); i++ {
			limit := int64(out[i].Limit * 1000)
			own := b.Latency.P99
			if i == len(out)-1 {
				own = b.Latency.P999
			}
			if own >= limit && out[i].Result != "SKIP" {
				out[i].Note = strings.TrimPrefix(out[i].Note+"; ", "; ") + fmt.Sprintf("the baseline's own figure at this rate is %s: this machine or the generator cannot show this goal", micros(own))
			}
		}
	}
	hotSat := hot.run(Saturation)
	for _, name := range []string{"uniform", "zipf"} {
		g := Goal{Name: fmt.Sprintf("saturation with %s links (%s) vs one link", count(float64(s.opt.Links)), name), Scenario: name, Limit: 0.9, Unit: "x"}
		check(g, find(name), Saturation, func(r *RunResult) (float64, bool) {
			if hotSat == nil || hotSat.Rate == 0 {
				return 0, false
			}
			return r.Rate / hotSat.Rate, true
		}, atLeast)
		if s.opt.Links < 1_000_000 && out[len(out)-1].Result != "SKIP" {
			out[len(out)-1].Note = "quick suite: fewer than 1,000,000 links"
		}
	}
	rss := Goal{Name: "clickgate peak RSS with 1,000,000 links after a 5-minute run", Scenario: "uniform", Limit: 256, Unit: "MiB"}
	if s.opt.Soak < 5*time.Minute || s.opt.Links < 1_000_000 {
		rss.Result, rss.Note, rss.Compare = "SKIP", "full suite only (make bench-full)", below
		out = append(out, rss)
	} else {
		check(rss, find("uniform"), Soak, func(r *RunResult) (float64, bool) {
			return float64(r.Server.MainPeakRSS) / (1 << 20), r.Server.MainPeakRSS > 0
		}, below)
		if g := &out[len(out)-1]; g.Result != "SKIP" {
			r := find("uniform").run(Soak)
			g.Note = strings.TrimPrefix(g.Note+"; ", "; ") + fmt.Sprintf("VmHWM; at the end %s anonymous and %s of mapped files (Badger's tables and value log)",
				mib(r.Server.MainRSSAnon), mib(r.Server.MainRSSFile))
		}
	}
	return out
}
