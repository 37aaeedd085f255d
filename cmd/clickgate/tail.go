package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/segmentio/kafka-go"

	"github.com/clickgate/clickgate/proxy/config"
	"github.com/clickgate/clickgate/proxy/relay"
)

// tail prints events from a topic, one JSON value per line: a small consumer for
// operators. It reads every partition directly (no consumer group, no offsets stored).
func tail(args []string) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	topic := fs.String("topic", cfg.KafkaClicksTopic, "topic to read")
	fromStart := fs.Bool("from-beginning", false, "start at the oldest message instead of new ones")
	limit := fs.Int64("n", 0, "stop after this many messages (0: run until interrupted)")
	keys := fs.Bool("keys", false, "print the key and partition before each value")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(cfg.KafkaBrokers) == 0 {
		return errors.New("set CLICKGATE_KAFKA_BROKERS")
	}
	dialer, err := relay.Security{
		TLS: cfg.KafkaTLS, CAFile: cfg.KafkaTLSCAFile, CertFile: cfg.KafkaTLSCertFile, KeyFile: cfg.KafkaTLSKeyFile,
		SkipVerify: cfg.KafkaTLSSkipVerify, SASLMechanism: cfg.KafkaSASLMechanism,
		SASLUsername: cfg.KafkaSASLUsername, SASLPassword: cfg.KafkaSASLPassword,
	}.Dialer()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	conn, err := dialer.DialContext(ctx, "tcp", cfg.KafkaBrokers[0])
	if err != nil {
		return err
	}
	parts, err := conn.ReadPartitions(*topic)
	conn.Close()
	if err != nil {
		return fmt.Errorf("topic %s: %w", *topic, err)
	}
	start := kafka.LastOffset
	if *fromStart {
		start = kafka.FirstOffset
	}
	var mu sync.Mutex
	var n atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(parts))
	for _, p := range parts {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.KafkaBrokers, Topic: *topic, Partition: p, Dialer: dialer, MaxBytes: 8 << 20})
			defer r.Close()
			r.SetOffset(start)
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
				// Count and print under one lock, so -n is exact across partitions.
				mu.Lock()
				if *limit > 0 && n.Load() >= *limit {
					mu.Unlock()
					return
				}
				if *keys {
					fmt.Printf("%d\t%s\t", m.Partition, m.Key)
				}
				os.Stdout.Write(append(m.Value, '\n'))
				done := *limit > 0 && n.Add(1) >= *limit
				mu.Unlock()
				if done {
					cancel()
					return
				}
			}
		}(p.ID)
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
