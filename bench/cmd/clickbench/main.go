// Command clickbench runs clickgate's load benchmark suite: scenarios against the built
// bin/clickgate, each beside a same-run baseline (nginx `return 302`, or a bare fasthttp
// handler without nginx), with the server and the generator on different CPUs. It
// prints a Markdown table and PASS/FAIL per goal, and writes JSON, Markdown and a PNG
// latency plot to bench/results/.
//
//	clickbench            # the quick suite (make bench)
//	clickbench -full      # every scenario, 1,000,000 links, the 5-minute soak (make bench-full)
//	clickbench -only hot,bots -duration 10s
//
// Two helper subcommands are used by the suite itself:
//
//	clickbench pin CPUS -- PROGRAM [ARGS...]   run PROGRAM on CPUS only (like taskset -c)
//	clickbench sink -listen ADDR               the webhook plugin's destination: 204 to every POST
//
// and one to redraw a saved run (after a change to the output's code, or to look again):
//
//	clickbench render bench/results/latest.json   rewrites latest.md and latest.png beside it
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/clickgate/clickgate/bench/suite"
)

// pinnedEnv marks a clickbench that already re-executed itself on the generator's CPUs.
const pinnedEnv = "CLICKBENCH_PINNED"

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "pin":
			os.Exit(pin(log, os.Args[2:]))
		case "sink":
			os.Exit(sink(log, os.Args[2:]))
		case "render":
			os.Exit(render(log, os.Args[2:]))
		}
	}
	os.Exit(bench(log, os.Args[1:]))
}

func bench(log *slog.Logger, args []string) int {
	fs := flag.NewFlagSet("clickbench", flag.ContinueOnError)
	full := fs.Bool("full", false, "the whole set: 1,000,000 links, 10 s runs, the 5-minute memory soak")
	opt := suite.Defaults(false)
	only := fs.String("only", "", "comma-separated scenarios to run ("+strings.Join(suite.ScenarioNames(), ", ")+"); the baseline always runs")
	fs.StringVar(&opt.BinDir, "bin", opt.BinDir, "directory with clickgate, plugins/webhook and baseline302")
	fs.StringVar(&opt.RepoDir, "repo", opt.RepoDir, "repository root (configs/kafka/kafka.sh, git commit)")
	fs.StringVar(&opt.ResultsDir, "results", opt.ResultsDir, "where to write JSON, Markdown and PNG (empty: nowhere)")
	fs.StringVar(&opt.Baseline, "baseline", opt.Baseline, "auto (nginx if on PATH, else fasthttp), nginx or fasthttp")
	fs.BoolVar(&opt.Pin, "pin", opt.Pin, "put the server and the generator on different CPUs when there are two or more")
	serverCPUs := fs.String("server-cpus", "", "CPUs of the server under test, e.g. 1 or 2-3 (default: the last CPU)")
	genCPUs := fs.String("generator-cpus", "", "CPUs of the generator, sink and Kafka broker (default: the others)")
	fs.IntVar(&opt.Conns, "conns", opt.Conns, "keep-alive connections per run")
	warmup := fs.Duration("warmup", 0, "warm-up before each measured run (default 1s, full 2s)")
	sat := fs.Duration("duration", 0, "measured length of each saturation run (default 3s, full 10s)")
	constant := fs.Duration("rate-duration", 0, "measured length of each constant-rate run (default 3s, full 10s)")
	soak := fs.Duration("soak", -1, "length of the memory soak with many links (default: full 5m, quick none)")
	links := fs.Int("links", 0, "links in the many-links scenarios (default 100,000, full 1,000,000)")
	tokens := fs.Int("tokens", 0, "recipient tokens (default 10,000, full 100,000)")
	fs.BoolVar(&opt.BaselineOnly, "baseline-only", false, "run the baseline alone: checks the machine and the generator")
	fs.BoolVar(&opt.KeepWork, "keep", false, "keep the work directory (server logs and data)")
	verbose := fs.Bool("v", false, "log every process started")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *full {
		d := suite.Defaults(true)
		opt.Full, opt.Warmup, opt.Saturation, opt.Constant, opt.Soak = true, d.Warmup, d.Saturation, d.Constant, d.Soak
		opt.Links, opt.Tokens, opt.Taps, opt.SettleTimeout = d.Links, d.Tokens, d.Taps, d.SettleTimeout
	}
	for _, v := range []struct {
		dst *int
		val int
	}{{&opt.Links, *links}, {&opt.Tokens, *tokens}} {
		if v.val > 0 {
			*v.dst = v.val
		}
	}
	if *warmup > 0 {
		opt.Warmup = *warmup
	}
	if *sat > 0 {
		opt.Saturation = *sat
	}
	if *constant > 0 {
		opt.Constant = *constant
	}
	if *soak >= 0 {
		opt.Soak = *soak
	}
	if *only != "" {
		opt.Only = strings.Split(*only, ",")
	}
	var err error
	if opt.ServerCPUs, err = suite.ParseCPUList(*serverCPUs); err != nil {
		log.Error("bad -server-cpus", "err", err)
		return 2
	}
	if opt.GeneratorCPUs, err = suite.ParseCPUList(*genCPUs); err != nil {
		log.Error("bad -generator-cpus", "err", err)
		return 2
	}
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if self, err := os.Executable(); err == nil {
		opt.Self = self
	}
	opt.Logger, opt.Out = log, os.Stdout

	// Put the generator on its CPUs before anything starts: re-execute this program
	// pinned, so every thread of the process is placed, not just this one.
	if opt.Pin && os.Getenv(pinnedEnv) == "" && opt.Self != "" {
		allowed, err := suite.AllowedCPUs()
		if err == nil {
			place, err := suite.Plan(allowed, opt.ServerCPUs, opt.GeneratorCPUs, false)
			if err != nil {
				log.Error("cpu placement", "err", err)
				return 2
			}
			if place.Pinned {
				os.Setenv(pinnedEnv, suite.FormatCPUList(place.Generator))
				// The server's CPUs are passed on explicitly: the pinned process sees only
				// the generator's CPUs as its own and could not plan them again.
				argv := append([]string{opt.Self}, args...)
				argv = append(argv, "-server-cpus", suite.FormatCPUList(place.Server), "-generator-cpus", suite.FormatCPUList(place.Generator))
				err := suite.ExecPinned(place.Generator, argv)
				log.Error("pinning the generator", "err", err)
				return 1
			}
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := suite.Run(ctx, opt); err != nil {
		log.Error("benchmark failed", "err", err)
		return 1
	}
	return 0
}

// pin runs a program on the given CPUs: clickbench pin 1 -- bin/clickgate serve.
func pin(log *slog.Logger, args []string) int {
	if len(args) < 3 || args[1] != "--" {
		fmt.Fprintln(os.Stderr, "usage: clickbench pin CPUS -- PROGRAM [ARGS...]")
		return 2
	}
	cpus, err := suite.ParseCPUList(args[0])
	if err != nil || len(cpus) == 0 {
		log.Error("pin: bad cpu list", "cpus", args[0], "err", err)
		return 2
	}
	if err := suite.ExecPinned(cpus, args[2:]); err != nil {
		log.Error("pin", "err", err)
	}
	return 1
}

// render rewrites the Markdown and the PNG of saved runs from their JSON.
func render(log *slog.Logger, files []string) int {
	if len(files) == 0 {
		fmt.Fprintln(os.Stderr, "usage: clickbench render RESULT.json...")
		return 2
	}
	for _, f := range files {
		rep, err := suite.LoadReport(f)
		if err == nil {
			err = rep.Save(strings.TrimSuffix(f, ".json"))
		}
		if err != nil {
			log.Error("render", "file", f, "err", err)
			return 1
		}
	}
	return 0
}

// sink serves the webhook plugin's destination until SIGTERM.
func sink(log *slog.Logger, args []string) int {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("sink", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Println("listening", ln.Addr())
	var k suite.Sink
	if err := k.Serve(ctx, ln); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Error("sink", "err", err)
		return 1
	}
	return 0
}
