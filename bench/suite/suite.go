// Package suite runs clickgate's load benchmark scenarios against the built binary,
// each beside a same-run baseline (nginx `return 302`, or a bare fasthttp handler), and
// writes the figures as a Markdown table, JSON and a latency plot.
package suite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clickgate/clickgate/bench/loadgen"
	"github.com/clickgate/clickgate/bench/procstat"
)

// Options configure a run of the suite. Defaults fills what is left zero.
type Options struct {
	// Full runs the whole set (1,000,000 links, longer runs, the 5-minute soak).
	Full bool
	// Only, when not empty, names the scenarios to run (the baseline always runs).
	Only []string
	// BaselineOnly runs the baseline alone: a check of the machine and the generator.
	BaselineOnly bool
	// BinDir holds clickgate, plugins/webhook and baseline302 (default "bin").
	BinDir string
	// Self is the clickbench binary, used to pin processes and run the webhook sink.
	// Without it nothing is pinned and the plugin scenarios are skipped.
	Self string
	// RepoDir is the repository (for configs/kafka/kafka.sh and the git commit).
	RepoDir string
	// ResultsDir receives the JSON, Markdown and PNG of the run ("" writes nothing).
	ResultsDir string
	// Baseline is "auto" (nginx when on PATH, else fasthttp), "nginx" or "fasthttp".
	Baseline string
	// Pin places the server and the generator on different CPUs when there are two or
	// more; ServerCPUs and GeneratorCPUs override the plan.
	Pin                       bool
	ServerCPUs, GeneratorCPUs []int
	// Conns is the number of keep-alive connections of every run (default 64).
	Conns int
	// Warmup precedes each measured interval; Saturation and Constant are the measured
	// lengths of the closed-loop and constant-rate runs; Soak is the long run for memory
	// (0: none).
	Warmup, Saturation, Constant, Soak time.Duration
	// Links is the link count of the many-links scenarios; Tokens the recipient tokens;
	// Taps the most click IDs collected for the conversion scenario.
	Links, Tokens, Taps int
	// ZipfS is the Zipf exponent of the skewed scenario (> 1).
	ZipfS float64
	// BotShare is the share of preview-bot requests in the bot scenario.
	BotShare float64
	// SettleTimeout bounds the wait for an idle server between runs.
	SettleTimeout time.Duration
	// KeepWork keeps the temporary directory (logs, data) for inspection.
	KeepWork bool
	// Logger receives progress; Out receives the Markdown report.
	Logger *slog.Logger
	Out    io.Writer
}

// Defaults returns the quick or the full suite's settings.
func Defaults(full bool) Options {
	o := Options{
		Full: full, BinDir: "bin", RepoDir: ".", ResultsDir: filepath.Join("bench", "results"), Baseline: "auto", Pin: true,
		Conns: 64, Warmup: time.Second, Saturation: 3 * time.Second, Constant: 3 * time.Second,
		Links: 100_000, Tokens: 10_000, Taps: 20_000, ZipfS: 1.1, BotShare: 0.2, SettleTimeout: 10 * time.Second,
	}
	if full {
		o.Warmup, o.Saturation, o.Constant, o.Soak = 2*time.Second, 10*time.Second, 10*time.Second, 5*time.Minute
		o.Links, o.Tokens, o.Taps, o.SettleTimeout = 1_000_000, 100_000, 50_000, 60*time.Second
	}
	return o
}

// Suite is one run in progress.
type Suite struct {
	opt          Options
	log          *slog.Logger
	place        Placement
	work         string
	ncpu         int
	selfCPUs     string
	baselineKind string
	nginxPath    string
	rate         float64 // constant-rate runs: half the baseline's saturation
	seq          uint64
	broker       *broker
	brokerErr    error
	// brokerDone is closed when a broker started in the background is up (or failed).
	brokerDone chan struct{}
}

// scenario is one entry of the suite.
type scenario struct {
	name, title, about string
	fullOnly           bool
	kafka, plugin      bool
	run                func(ctx context.Context, s *Suite, sc *ScenarioResult) error
}

func scenarios() []scenario {
	return []scenario{
		{name: "hot", title: "one hot link", about: "every request taps the same link: the redirect path with its click durably committed before the 302",
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.redirect(ctx, sc, nil, seedHot)
			}},
		{name: "uniform", title: "many links, uniform", about: "N links seeded through bulk create, each request picks one uniformly: the link index at size",
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.redirect(ctx, sc, nil, s.seedMany(0))
			}},
		{name: "zipf", title: "many links, Zipf", about: "the same N links with Zipf popularity (s = 1.1): a few links take most taps, as campaigns do",
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.redirect(ctx, sc, nil, s.seedMany(s.opt.ZipfS))
			}},
		{name: "recipients", title: "per-recipient links", about: "one link with per-recipient tokens from the tokens API; each request taps /{slug}/{token} of a random recipient",
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.redirect(ctx, sc, nil, s.seedRecipients)
			}},
		{name: "bots", title: "20% preview bots", about: "one link; a share of requests come from link-preview fetchers (WhatsApp, iMessage, Facebook, Telegram, Slack), redirected and flagged as bots",
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.redirect(ctx, sc, nil, s.seedBots)
			}},
		{name: "kafka", title: "Kafka relay on", about: "the hot link with the Kafka relay streaming every click to a local broker (configs/kafka/kafka.sh, on the generator's CPUs)",
			fullOnly: true, kafka: true,
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.withExtras(ctx, sc, true, false)
			}},
		{name: "plugin", title: "webhook plugin on", about: "the hot link with the webhook forwarder (bin/plugins/webhook) posting every click to a sink that answers 204",
			fullOnly: true, plugin: true,
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.withExtras(ctx, sc, false, true)
			}},
		{name: "relay-plugin", title: "Kafka relay + webhook plugin", about: "the hot link with both the Kafka relay and the webhook plugin on: the full delivery path",
			kafka: true, plugin: true,
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error {
				return s.withExtras(ctx, sc, true, true)
			}},
		{name: "conversions", title: "conversion intake", about: "taps collect click IDs first, then purchases naming those clicks are POSTed to /v1/conversions; each answer must carry its attribution",
			run: func(ctx context.Context, s *Suite, sc *ScenarioResult) error { return s.conversions(ctx, sc) }},
	}
}

// ScenarioNames lists the scenarios in the order they run.
func ScenarioNames() []string {
	var out []string
	for _, sc := range scenarios() {
		out = append(out, sc.name)
	}
	return out
}

// Run runs the suite and writes its report; the returned Report is also what was written.
func Run(ctx context.Context, opt Options) (*Report, error) {
	d := Defaults(opt.Full)
	if opt.BinDir == "" {
		opt.BinDir = d.BinDir
	}
	if opt.RepoDir == "" {
		opt.RepoDir = d.RepoDir
	}
	if opt.Baseline == "" {
		opt.Baseline = d.Baseline
	}
	if opt.Conns <= 0 {
		opt.Conns = d.Conns
	}
	if opt.Warmup <= 0 {
		opt.Warmup = d.Warmup
	}
	if opt.Saturation <= 0 {
		opt.Saturation = d.Saturation
	}
	if opt.Constant <= 0 {
		opt.Constant = d.Constant
	}
	if opt.Links <= 0 {
		opt.Links = d.Links
	}
	if opt.Tokens <= 0 {
		opt.Tokens = d.Tokens
	}
	if opt.Taps <= 0 {
		opt.Taps = d.Taps
	}
	if opt.ZipfS <= 1 {
		opt.ZipfS = d.ZipfS
	}
	if opt.BotShare <= 0 || opt.BotShare > 1 {
		opt.BotShare = d.BotShare
	}
	if opt.SettleTimeout <= 0 {
		opt.SettleTimeout = d.SettleTimeout
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	for _, name := range opt.Only {
		if !slices.Contains(ScenarioNames(), name) {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", name, strings.Join(ScenarioNames(), ", "))
		}
	}
	s := &Suite{opt: opt, log: opt.Logger}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	if !opt.KeepWork {
		defer os.RemoveAll(s.work)
	} else {
		s.log.Info("work directory kept", "dir", s.work)
	}
	rep, err := s.run(ctx)
	if err != nil {
		return nil, err
	}
	return rep, s.write(rep)
}

// prepare checks the binaries, picks the baseline and the CPU placement.
func (s *Suite) prepare() error {
	var need []string
	for _, sc := range s.selected() {
		need = append(need, "clickgate")
		if sc.plugin {
			need = append(need, filepath.Join("plugins", "webhook"))
		}
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(s.opt.BinDir, b)); err != nil {
			return fmt.Errorf("%s missing in %s: run make build first", b, s.opt.BinDir)
		}
	}
	abs, err := filepath.Abs(s.opt.BinDir)
	if err != nil {
		return fmt.Errorf("bin dir: %w", err)
	}
	s.opt.BinDir = abs
	if s.opt.RepoDir, err = filepath.Abs(s.opt.RepoDir); err != nil {
		return fmt.Errorf("repo dir: %w", err)
	}
	switch s.opt.Baseline {
	case "auto", "nginx":
		if p, err := exec.LookPath("nginx"); err == nil {
			s.baselineKind, s.nginxPath = "nginx", p
		} else if s.opt.Baseline == "nginx" {
			return errors.New("nginx not on PATH: install it (apt-get install nginx-light) or use -baseline fasthttp")
		} else {
			s.baselineKind = "fasthttp"
		}
	case "fasthttp":
		s.baselineKind = "fasthttp"
	default:
		return fmt.Errorf("baseline %q: want auto, nginx or fasthttp", s.opt.Baseline)
	}
	if s.baselineKind == "fasthttp" {
		if _, err := os.Stat(filepath.Join(s.opt.BinDir, "baseline302")); err != nil {
			return fmt.Errorf("baseline302 missing in %s: go build -o bin/baseline302 ./bench/cmd/baseline302", s.opt.BinDir)
		}
	}
	allowed, err := AllowedCPUs()
	if err != nil {
		return err
	}
	s.ncpu = len(allowed)
	if len(s.opt.ServerCPUs) > 0 && len(s.opt.GeneratorCPUs) > 0 {
		// Both given: this process may already be pinned to the generator's CPUs and see
		// only those; the kernel refuses CPUs that do not exist when they are applied.
		allowed = union(union(allowed, s.opt.ServerCPUs), s.opt.GeneratorCPUs)
		slices.Sort(allowed)
		s.ncpu = len(allowed)
	}
	if s.place, err = Plan(allowed, s.opt.ServerCPUs, s.opt.GeneratorCPUs, !s.opt.Pin || s.opt.Self == ""); err != nil {
		return err
	}
	if st, err := procstat.ReadStatus(os.Getpid()); err == nil {
		s.selfCPUs = st.CPUs
	}
	s.work, err = os.MkdirTemp("", "clickbench-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	return nil
}

func (s *Suite) run(ctx context.Context) (*Report, error) {
	o := s.opt
	rep := &Report{Suite: "quick", Started: time.Now().UTC(), Machine: ReadMachine(o.RepoDir), Placement: s.place}
	if o.Full {
		rep.Suite = "full"
	}
	rep.Settings = Settings{
		Conns: o.Conns, WarmupSeconds: o.Warmup.Seconds(), SaturationSecs: o.Saturation.Seconds(), ConstantSecs: o.Constant.Seconds(),
		Links: o.Links, Tokens: o.Tokens, Taps: o.Taps, BotShare: o.BotShare, ZipfS: o.ZipfS, SoakSeconds: o.Soak.Seconds(), BaselineKind: s.baselineKind,
	}
	if s.baselineKind == "fasthttp" && o.Baseline == "auto" {
		rep.Notes = append(rep.Notes, "nginx is not on PATH, so the baseline is the bare fasthttp handler; for the nginx baseline: apt-get install nginx-light")
	}
	if !o.Full && o.Links < 1_000_000 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("quick suite: %s links in the many-links scenarios (the full suite, make bench-full, seeds 1,000,000 and runs the 5-minute memory soak)", count(float64(o.Links))))
	}
	if s.place.Pinned && s.selfCPUs != "" && s.selfCPUs != FormatCPUList(s.place.Generator) {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the generator process runs on CPUs %s, not on the planned %s", s.selfCPUs, FormatCPUList(s.place.Generator)))
	}
	s.log.Info("placement", "pinned", s.place.Pinned, "server_cpus", FormatCPUList(s.place.Server), "generator_cpus", s.selfCPUs, "note", s.place.Note)

	base, describe, err := s.baseline(ctx)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	rep.Baseline = base
	rep.Settings.BaselineDescribe = describe
	rep.Settings.ConstantRate = s.rate

	defer func() {
		s.waitKafka()
		s.stopKafka(s.broker)
	}()
	list := s.selected()
	needKafka := slices.ContainsFunc(list, func(x scenario) bool { return x.kafka })
	for i, sc := range list {
		res := &ScenarioResult{Name: sc.name, Title: sc.title, About: sc.about}
		rep.Scenarios = append(rep.Scenarios, res)
		if needKafka && sc.name == "uniform" {
			s.startKafkaEarly(ctx) // boots while the links are seeded
		}
		if sc.kafka {
			if err := s.ensureKafka(ctx); err != nil {
				res.Skipped = err.Error()
				continue
			}
		}
		if sc.plugin && o.Self == "" {
			res.Skipped = "the webhook sink runs as clickbench sink, and no clickbench binary was given"
			continue
		}
		s.log.Info("scenario", "name", sc.name)
		if err := sc.run(ctx, s, res); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		for _, r := range res.Runs {
			compare(r, base)
		}
		// The broker is needed by no later scenario: stop it now to free its CPU.
		if sc.kafka && !slices.ContainsFunc(list[i+1:], func(x scenario) bool { return x.kafka }) {
			s.stopKafka(s.broker)
			s.broker, s.brokerErr, s.brokerDone = nil, errors.New("stopped"), nil
		}
	}
	// The baseline once more: if it moved, the machine was noisy during the run.
	if again, err := s.baselineAgain(ctx); err == nil {
		first := base.run(Saturation).Rate
		base.Facts = map[string]float64{"saturation_rate_at_end": again}
		drift := again/first - 1
		rep.Notes = append(rep.Notes, fmt.Sprintf("baseline saturation at the start %s/s, at the end %s/s (%+.0f%%)%s",
			count(first), count(again), 100*drift, map[bool]string{true: ": the machine was noisy, read ratios with care", false: ""}[math.Abs(drift) > 0.1]))
	} else {
		s.log.Warn("baseline again", "err", err)
	}
	rep.Notes = append(rep.Notes, s.limits(rep)...)
	rep.Goals = s.goals(rep)
	rep.Finished = time.Now().UTC()
	return rep, nil
}

func (s *Suite) selected() []scenario {
	var out []scenario
	if s.opt.BaselineOnly {
		return nil
	}
	for _, sc := range scenarios() {
		if len(s.opt.Only) > 0 {
			if slices.Contains(s.opt.Only, sc.name) {
				out = append(out, sc)
			}
			continue
		}
		if sc.fullOnly && !s.opt.Full {
			continue
		}
		out = append(out, sc)
	}
	return out
}

// startKafkaEarly starts the broker in the background, so that its JVM boots while a
// scenario seeds data (nothing is measured then); measure waits for it to be up before
// any measured run, so the boot never overlaps a measurement.
func (s *Suite) startKafkaEarly(ctx context.Context) {
	if s.brokerDone != nil {
		return
	}
	s.brokerDone = make(chan struct{})
	s.log.Info("starting a Kafka broker", "script", s.kafkaScript())
	go func() {
		defer close(s.brokerDone)
		s.broker, s.brokerErr = s.startKafka(ctx)
	}()
}

// waitKafka waits for a broker start in progress.
func (s *Suite) waitKafka() {
	if s.brokerDone != nil {
		<-s.brokerDone
	}
}

func (s *Suite) ensureKafka(ctx context.Context) error {
	s.startKafkaEarly(ctx)
	s.waitKafka()
	return s.brokerErr
}

// baseline measures the baseline's saturation, then a constant-rate run at half of it;
// that rate is the one every redirect scenario's constant-rate run uses.
func (s *Suite) baseline(ctx context.Context) (*ScenarioResult, string, error) {
	sv, describe, err := s.startBaseline(ctx)
	if err != nil {
		return nil, "", err
	}
	defer sv.stop(10 * time.Second)
	res := &ScenarioResult{Name: "baseline", Title: "baseline (" + s.baselineKind + ")", About: describe}
	src := fixedRedirect(sv.addr, "/"+hotSlug, hotLocation, "")
	sat, err := s.measure(ctx, sv, Saturation, src, 0, s.opt.Saturation)
	if err != nil {
		return nil, "", err
	}
	if sat.Rate == 0 {
		return nil, "", fmt.Errorf("the baseline answered nothing correctly: %v", sat.Errors)
	}
	s.rate = math.Round(sat.Rate / 2)
	s.settle(ctx, sv)
	c, err := s.measure(ctx, sv, Constant, src, s.rate, s.opt.Constant)
	if err != nil {
		return nil, "", err
	}
	res.Runs = []*RunResult{sat, c}
	for _, r := range res.Runs {
		compare(r, res)
	}
	return res, describe, nil
}

func (s *Suite) baselineAgain(ctx context.Context) (float64, error) {
	sv, _, err := s.startBaseline(ctx)
	if err != nil {
		return 0, err
	}
	defer sv.stop(10 * time.Second)
	r, err := s.measure(ctx, sv, Saturation, fixedRedirect(sv.addr, "/"+hotSlug, hotLocation, ""), 0, s.opt.Saturation)
	if err != nil {
		return 0, err
	}
	return r.Rate, nil
}

// settle waits until the server's processes are idle (under 5 % of a CPU over 250 ms),
// so that work left from one run (clicks being indexed, a relay backlog) is not billed
// to the next.
func (s *Suite) settle(ctx context.Context, sv *server) time.Duration {
	start := time.Now()
	const window = 250 * time.Millisecond
	for time.Since(start) < s.opt.SettleTimeout {
		tree, _ := procstat.Tree(sv.pid())
		c0 := procstat.CPUOf(tree)
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(window):
		}
		if procstat.CPUOf(tree)-c0 < window/20 {
			return time.Since(start)
		}
	}
	s.log.Warn("server still busy before the next run", "server", sv.name, "waited", s.opt.SettleTimeout)
	return time.Since(start)
}

// seedFunc creates a scenario's data on a fresh clickgate and returns its workload.
type seedFunc func(ctx context.Context, g *gate, sc *ScenarioResult) (loadgen.Source, error)

func seedHot(ctx context.Context, g *gate, _ *ScenarioResult) (loadgen.Source, error) {
	dest, err := g.adm.createLink(ctx, hotLink())
	if err != nil {
		return nil, err
	}
	if dest != hotLocation {
		return nil, fmt.Errorf("hot link destination %q, the baseline answers %q", dest, hotLocation)
	}
	return fixedRedirect(g.addr, "/"+hotSlug, hotLocation+"&", "cgid"), nil
}

func (s *Suite) seedMany(zipfS float64) seedFunc {
	return func(ctx context.Context, g *gate, sc *ScenarioResult) (loadgen.Source, error) {
		start := time.Now()
		if err := g.adm.seedLinks(ctx, s.opt.Links); err != nil {
			return nil, err
		}
		took := time.Since(start)
		sc.Facts = map[string]float64{"links": float64(s.opt.Links), "seed_seconds": took.Seconds()}
		sc.Notes = append(sc.Notes, fmt.Sprintf("%s links created through bulk create in %s", count(float64(s.opt.Links)), took.Round(100*time.Millisecond)))
		return newManyLinks(g.addr, s.opt.Links, zipfS), nil
	}
}

func (s *Suite) seedRecipients(ctx context.Context, g *gate, sc *ScenarioResult) (loadgen.Source, error) {
	spec := map[string]any{"slug": "vip", "destination": "https://shop.example.com/p/vip",
		"utm": map[string]any{"medium": "promotional", "campaign": "vip_early_access"}}
	dest, err := g.adm.createLink(ctx, spec)
	if err != nil {
		return nil, err
	}
	tokens, err := g.adm.seedTokens(ctx, "vip", s.opt.Tokens)
	if err != nil {
		return nil, err
	}
	sc.Facts = map[string]float64{"tokens": float64(len(tokens))}
	return newRecipients(g.addr, "vip", dest+"&", tokens), nil
}

func (s *Suite) seedBots(ctx context.Context, g *gate, _ *ScenarioResult) (loadgen.Source, error) {
	if _, err := g.adm.createLink(ctx, hotLink()); err != nil {
		return nil, err
	}
	return newBotMix(g.addr, "/"+hotSlug, hotLocation+"&", s.opt.BotShare), nil
}

// redirect runs a redirect scenario on a fresh clickgate: the constant-rate run first,
// on a server that has served nothing yet, then saturation.
func (s *Suite) redirect(ctx context.Context, sc *ScenarioResult, env []string, seed seedFunc) error {
	g, err := s.startGate(ctx, sc.Name, env...)
	if err != nil {
		return err
	}
	defer g.stopGate()
	return s.redirectOn(ctx, g, sc, seed)
}

func (s *Suite) redirectOn(ctx context.Context, g *gate, sc *ScenarioResult, seed seedFunc) error {
	src, err := seed(ctx, g, sc)
	if err != nil {
		return err
	}
	s.settle(ctx, &g.server)
	c, err := s.measure(ctx, &g.server, Constant, src, s.rate, s.opt.Constant)
	if err != nil {
		return err
	}
	s.settle(ctx, &g.server)
	sat, err := s.measure(ctx, &g.server, Saturation, src, 0, s.opt.Saturation)
	if err != nil {
		return err
	}
	sc.Runs = append(sc.Runs, c, sat)
	if sc.Name == "hot" {
		// The goal's rate is beyond clickgate's capacity while it is below half the
		// baseline's saturation; half its own saturation shows its latency unloaded.
		s.settle(ctx, &g.server)
		own, err := s.measure(ctx, &g.server, Constant, src, math.Round(sat.Rate/2), s.opt.Constant)
		if err != nil {
			return err
		}
		own.RateOf = ownRate
		sc.Runs = append(sc.Runs, own)
	}
	if sc.Name == "uniform" && s.opt.Soak > 0 {
		s.settle(ctx, &g.server)
		soak, err := s.measure(ctx, &g.server, Soak, src, 0, s.opt.Soak)
		if err != nil {
			return err
		}
		sc.Runs = append(sc.Runs, soak)
	}
	if m, err := g.adm.metrics(ctx); err == nil {
		if sc.Facts == nil {
			sc.Facts = map[string]float64{}
		}
		sc.Facts["clicks_stored"] = m["clickgate_clicks_total"]
	}
	if sc.Name == "bots" {
		human, bot, err := g.adm.clicks(ctx, hotSlug)
		if err != nil {
			return err
		}
		share := ratio(float64(bot), float64(human+bot))
		sc.Facts["bot_clicks"], sc.Facts["human_clicks"] = float64(bot), float64(human)
		sc.Notes = append(sc.Notes, fmt.Sprintf("clickgate flagged %.1f%% of the clicks as bots (%.0f%% of the requests came from preview bots)", 100*share, 100*s.opt.BotShare))
	}
	return nil
}

const webhookSecret = "clickbench-webhook-secret-0123456789"

// withExtras runs the hot link with the Kafka relay and/or the webhook plugin on.
func (s *Suite) withExtras(ctx context.Context, sc *ScenarioResult, kafka, plugin bool) error {
	var env []string
	helpers := map[string]int{}
	if kafka {
		env = append(env, "CLICKGATE_KAFKA_BROKERS="+s.broker.addr,
			fmt.Sprintf("CLICKGATE_KAFKA_CLICKS_TOPIC=bench-%s.clicks", sc.Name),
			fmt.Sprintf("CLICKGATE_KAFKA_CONVERSIONS_TOPIC=bench-%s.conversions", sc.Name))
		helpers["kafka broker"] = s.broker.pid
	}
	var sinkURL string
	if plugin {
		sink, url, err := s.startSink(ctx)
		if err != nil {
			return err
		}
		defer sink.stop(5 * time.Second)
		sinkURL = url
		helpers["webhook sink"] = sink.pid()
		pf := filepath.Join(s.work, "plugins-"+sc.Name+".json")
		raw, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
			"name": "hook", "path": filepath.Join(s.opt.BinDir, "plugins", "webhook"),
			"config": map[string]any{"url": sinkURL + "/hook", "secret": webhookSecret},
		}}})
		if err := os.WriteFile(pf, raw, 0o600); err != nil {
			return fmt.Errorf("plugins file: %w", err)
		}
		env = append(env, "CLICKGATE_PLUGINS_FILE="+pf)
	}
	g, err := s.startGate(ctx, sc.Name, env...)
	if err != nil {
		return err
	}
	defer g.stopGate()
	g.helpers = helpers
	seed := func(ctx context.Context, g *gate, sc *ScenarioResult) (loadgen.Source, error) {
		src, err := seedHot(ctx, g, sc)
		if err != nil {
			return nil, err
		}
		return src, s.prime(ctx, g, src, kafka, plugin)
	}
	if err := s.redirectOn(ctx, g, sc, seed); err != nil {
		return err
	}
	m, err := g.adm.metrics(ctx)
	if err != nil {
		return err
	}
	if kafka {
		sc.Facts["kafka_messages"] = m["clickgate_kafka_messages_total"]
		sc.Facts["kafka_backlog_at_end"] = m["clickgate_kafka_backlog_events"]
		sc.Facts["kafka_errors"] = m["clickgate_kafka_errors_total"]
		sc.Notes = append(sc.Notes, fmt.Sprintf("the relay had published %s clicks to Kafka when the runs ended (%s stored, backlog %s); the broker ran on CPUs %s and its CPU is not in the server's figure",
			count(m["clickgate_kafka_messages_total"]), count(sc.Facts["clicks_stored"]), count(m["clickgate_kafka_backlog_events"]), FormatCPUList(s.place.Generator)))
	}
	if plugin {
		var st struct{ Requests, Events int64 }
		if err := getJSON(ctx, sinkURL+"/stats", &st); err == nil {
			sc.Facts["sink_events"], sc.Facts["sink_requests"] = float64(st.Events), float64(st.Requests)
		}
		sc.Facts["plugin_delivered"] = m["clickgate_plugin_delivered_total"]
		sc.Facts["plugin_lag_at_end"] = m["clickgate_plugin_lag_events"]
		sat := sc.run(Saturation)
		sc.Notes = append(sc.Notes, fmt.Sprintf("the webhook plugin had delivered %s clicks in %s POSTs to the sink when the runs ended (lag %s); the plugin process is clickgate's child on the server's CPUs and its CPU is counted in the server's figure (%.1f of %.1f µs per redirect at saturation), the sink ran on CPUs %s and cost %.1f µs per redirect there, not counted",
			count(float64(st.Events)), count(float64(st.Requests)), count(m["clickgate_plugin_lag_events"]),
			sat.Server.CPUPerRequestUS-sat.Server.MainCPUPerReqUS, sat.Server.CPUPerRequestUS, FormatCPUList(s.place.Generator), sat.Helpers["webhook sink"]))
	}
	return nil
}

// prime sends a few taps and waits until the relay has published and the plugin has
// delivered at least one click, so that topic creation, leader election and the plugin's
// launch happen before the measured runs instead of inside them.
func (s *Suite) prime(ctx context.Context, g *gate, src loadgen.Source, kafka, plugin bool) error {
	if _, err := loadgen.Run(ctx, loadgen.Config{Addr: g.addr, Conns: 4, Duration: 200 * time.Millisecond, Source: src}); err != nil {
		return fmt.Errorf("priming: %w", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		m, err := g.adm.metrics(ctx)
		if err != nil {
			return err
		}
		if (!kafka || m["clickgate_kafka_messages_total"] > 0) && (!plugin || m["clickgate_plugin_delivered_total"] > 0) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after 90 s the relay had published %.0f clicks and the plugin delivered %.0f: see %s",
				m["clickgate_kafka_messages_total"], m["clickgate_plugin_delivered_total"], g.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// conversions: tap the hot link to collect click IDs, then post conversions naming them,
// at saturation and at half that rate.
func (s *Suite) conversions(ctx context.Context, sc *ScenarioResult) error {
	g, err := s.startGate(ctx, sc.Name)
	if err != nil {
		return err
	}
	defer g.stopGate()
	if _, err := g.adm.createLink(ctx, hotLink()); err != nil {
		return err
	}
	ids := make([][]string, 16)
	per := max(1, s.opt.Taps/len(ids))
	tapFor := time.Second
	if s.opt.Full {
		tapFor = 4 * time.Second
	}
	_, err = loadgen.Run(ctx, loadgen.Config{
		Addr: g.addr, Conns: len(ids), Duration: tapFor, Source: fixedRedirect(g.addr, "/"+hotSlug, hotLocation+"&", "cgid"),
		Observe: func(w int, resp *loadgen.Response) {
			if len(ids[w]) < per {
				ids[w] = append(ids[w], string(loadgen.QueryValue(resp.Location, "cgid")))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("taps: %w", err)
	}
	var all []string
	for _, l := range ids {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return errors.New("taps: no click ID collected")
	}
	sc.Facts = map[string]float64{"click_ids": float64(len(all))}
	sc.Notes = append(sc.Notes, fmt.Sprintf("%s click IDs collected from taps before the conversions; the constant-rate run is at half this scenario's own saturation", count(float64(len(all)))))
	src := newConversions(g.addr, all)
	s.settle(ctx, &g.server)
	sat, err := s.measure(ctx, &g.server, Saturation, src, 0, s.opt.Saturation)
	if err != nil {
		return err
	}
	if sat.Rate == 0 {
		return fmt.Errorf("no conversion answered correctly: %v", sat.Errors)
	}
	s.settle(ctx, &g.server)
	c, err := s.measure(ctx, &g.server, Constant, src, math.Round(sat.Rate/2), s.opt.Constant)
	if err != nil {
		return err
	}
	c.RateOf = ownRate
	sc.Runs = append(sc.Runs, sat, c)
	return nil
}

func getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// limits notes runs whose figures say more about the generator or the machine than the
// server: a saturation run where the server's CPUs were not busy was limited elsewhere.
func (s *Suite) limits(rep *Report) []string {
	var out []string
	all := append([]*ScenarioResult{rep.Baseline}, rep.Scenarios...)
	if !s.place.Pinned {
		out = append(out, "server and generator were not pinned to separate CPUs: each run's figures include their competition for the same CPUs")
	}
	for _, sc := range all {
		for _, r := range sc.Runs {
			if s.place.Pinned && r.Server.CPUs != "" && r.Server.CPUs != FormatCPUList(s.place.Server) {
				out = append(out, fmt.Sprintf("%s %s: /proc says the server ran on CPUs %s, not the planned %s", sc.Title, runLabel(r), r.Server.CPUs, FormatCPUList(s.place.Server)))
			}
			if r.Kind == Constant {
				if g := r.GeneratorLag; g != nil && g.P99 > 1000 {
					out = append(out, fmt.Sprintf("%s at %s/s: the generator itself sent requests late (p99 %s, p50 %s, of %s requests whose connection was free): that lateness is inside the latency figures",
						sc.Title, count(r.TargetRate), micros(g.P99), micros(g.P50), count(float64(g.Count))))
				}
				if r.Unsent > 0 {
					out = append(out, fmt.Sprintf("%s at %s/s: over capacity, %s requests could not be sent on schedule (their wait is in the percentiles)", sc.Title, count(r.TargetRate), count(float64(r.Unsent))))
				}
				continue
			}
			if s.place.Pinned && r.Server.Busy < 0.85 {
				what := "something else on the machine"
				if r.Generator.Busy > 0.9 {
					what = "the load generator, whose CPUs were busy"
				}
				out = append(out, fmt.Sprintf("%s %s: the server used only %.0f%% of its CPUs, so %s limited this run", sc.Title, runLabel(r), 100*r.Server.Busy, what))
			}
		}
	}
	return out
}

// write saves the report as JSON, Markdown and PNG in the results directory, the same
// three also as latest.*, and prints the Markdown and the goal lines.
func (s *Suite) write(rep *Report) error {
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		return err
	}
	lines := rep.GoalLines()
	fmt.Fprintf(s.opt.Out, "%s\n%s\n", md.String(), strings.Join(lines, "\n"))
	if s.opt.ResultsDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.opt.ResultsDir, 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	stem := filepath.Join(s.opt.ResultsDir, rep.Started.Format("2006-01-02T15-04-05Z")+"-"+rep.Suite)
	for _, st := range []string{stem, filepath.Join(s.opt.ResultsDir, "latest")} {
		if err := rep.Save(st); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.opt.Out, "\nwritten: %s.{json,md,png} (and latest.*)\n", stem)
	return nil
}

// Save writes the report to stem.json, stem.md (with the goal lines) and stem.png.
func (rep *Report) Save(stem string) error {
	var js, md strings.Builder
	if err := rep.WriteJSON(&js); err != nil {
		return err
	}
	if err := rep.WriteMarkdown(&md); err != nil {
		return err
	}
	md.WriteString("\n" + strings.Join(rep.GoalLines(), "\n") + "\n")
	for _, f := range []struct{ path, text string }{{stem + ".json", js.String()}, {stem + ".md", md.String()}} {
		if err := os.WriteFile(f.path, []byte(f.text), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	return rep.Plot(stem + ".png")
}

// Plot draws the constant-rate runs' latency distributions into a PNG.
func (rep *Report) Plot(path string) error {
	var series []Series
	add := func(sc *ScenarioResult, dashed bool) {
		for _, r := range sc.Runs {
			if r.Kind == Constant {
				series = append(series, Series{Label: fmt.Sprintf("%s @ %s", sc.Title, runLabel(r)), Curve: r.Curve, Dashed: dashed})
			}
		}
	}
	add(rep.Baseline, true)
	for _, sc := range rep.Scenarios {
		add(sc, false)
	}
	title := fmt.Sprintf("clickgate %s, %s suite, %s: latency by percentile at constant rate (coordinated omission corrected)",
		rep.Machine.Commit, rep.Suite, rep.Started.Format("2006-01-02 15:04Z"))
	return WritePlot(path, title, series)
}

// LoadReport reads a report written by a run (its .json file).
func LoadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	return &rep, nil
}
