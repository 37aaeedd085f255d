package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
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
