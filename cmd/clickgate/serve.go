package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/clickgate/clickgate/proxy/config"
	"github.com/clickgate/clickgate/proxy/server"
)

func serve() error {
	cfg, err := config.Load()
	if err != nil {
		// One line naming the variable, and a distinct exit status for bad configuration.
		fmt.Fprintln(os.Stderr, "clickgate:", err)
		os.Exit(2)
	}
	lvl, _ := cfg.SlogLevel()
	opts := &slog.HandlerOptions{Level: lvl}
	var log *slog.Logger
	if cfg.LogFormat == "text" {
		log = slog.New(slog.NewTextHandler(os.Stderr, opts))
	} else {
		log = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	slog.SetDefault(log)
	if n := minProcs(os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); n != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
		log.Info("one CPU: running the Go scheduler with two processors", "gomaxprocs", n)
	}
	if limit := cgroupMemoryLimit(os.DirFS("/")); limit > 0 {
		if soft := softMemoryLimit(os.Getenv("GOMEMLIMIT"), limit); soft > 0 {
			debug.SetMemoryLimit(soft)
			log.Info("cgroup memory limit: Go's soft memory limit set below it (GOMEMLIMIT overrides)",
				"cgroup_limit_bytes", limit, "gomemlimit_bytes", soft)
		}
	}

	s, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	if s.TokenCreated {
		// Printed once, on the terminal rather than in the structured log.
		fmt.Fprintf(os.Stderr, "\nclickgate: admin token (saved in %s): %s\n\n",
			filepath.Join(cfg.DataDir, "admin.token"), s.AdminToken)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return s.Run(ctx)
}

// minProcs is the number of Go processors to serve with: at least two unless GOMAXPROCS
// is set. On one CPU (an affinity mask, or a container's quota of one) Go gives one,
// and then the index consumer, a compaction or the garbage collector holds it for
// whole 10 ms slices while redirects wait. With two, the kernel interleaves them: p99
// went from 76–95 ms to 15–21 ms at the same throughput (one CPU, wrk with 64
// keep-alive connections).
func minProcs(env string, procs int) int {
	if env != "" {
		return procs
	}
	return max(procs, 2)
}
