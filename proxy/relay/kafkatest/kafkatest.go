// Package kafkatest runs the real Apache Kafka broker of configs/kafka for tests, and
// reads topics back. Tests never use a fake broker.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// Broker is a broker started for one test binary, or an existing one named by
// CLICKGATE_TEST_KAFKA_BROKERS (which tests cannot stop and start).
type Broker struct {
	Addr     string
	script   string
	env      []string
	runDir   string
	external bool
}

// Start starts a broker on port with its own data directory, or uses the broker in
// CLICKGATE_TEST_KAFKA_BROKERS.
func Start(port int) (*Broker, error) {
	if addr := os.Getenv("CLICKGATE_TEST_KAFKA_BROKERS"); addr != "" {
		return &Broker{Addr: addr, external: true}, nil
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	run, err := os.MkdirTemp("", "clickgate-kafka-")
	if err != nil {
		return nil, err
	}
	b := &Broker{
		Addr:   fmt.Sprintf("127.0.0.1:%d", port),
		script: filepath.Join(root, "configs", "kafka", "kafka.sh"),
		runDir: run,
		env: append(os.Environ(), "CLICKGATE_KAFKA_RUN="+run, "CLICKGATE_KAFKA_PORT="+strconv.Itoa(port),
			"CLICKGATE_KAFKA_CONTROLLER_PORT="+strconv.Itoa(port+1)),
	}
	if err := b.do("up"); err != nil {
		os.RemoveAll(run)
		return nil, err
	}
	return b, nil
}

func (b *Broker) do(cmd string) error {
	c := exec.Command("bash", b.script, cmd)
	c.Env = b.env
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kafka.sh %s: %v\n%s", cmd, err, out)
	}
	return nil
}

// Controllable reports whether tests may stop and start this broker.
func (b *Broker) Controllable() bool { return !b.external }

// Stop stops the broker, keeping its data.
func (b *Broker) Stop() error { return b.do("stop") }

// Resume starts a stopped broker with its data.
func (b *Broker) Resume() error { return b.do("start") }

// Close stops the broker and deletes its data.
func (b *Broker) Close() error {
	if b.external {
		return nil
	}
	err := b.do("down")
	os.RemoveAll(b.runDir)
	return err
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "configs", "kafka", "kafka.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kafkatest: configs/kafka/kafka.sh not found above the working directory")
		}
		dir = parent
	}
}

// ReadAll reads every message of every partition of topic, from the first offset to
// the end offsets current when it is called, in partition order.
func ReadAll(ctx context.Context, addr, topic string) (map[int][]kafka.Message, error) {
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	out := map[int][]kafka.Message{}
	for _, p := range parts {
		first, last, err := offsets(ctx, addr, topic, p.ID)
		if err != nil {
			return nil, err
		}
		if last <= first {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p.ID, MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond})
		r.SetOffset(first)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return nil, fmt.Errorf("read %s/%d: %w", topic, p.ID, err)
			}
			out[p.ID] = append(out[p.ID], m)
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return out, nil
}

// offsets returns a partition's first and end offsets. A new topic's partition that
// nothing was written to may still be taking its leader when the test reads it: that
// answer is retried until ctx ends.
func offsets(ctx context.Context, addr, topic string, partition int) (first, last int64, err error) {
	for {
		var lc *kafka.Conn
		if lc, err = kafka.DialLeader(ctx, "tcp", addr, topic, partition); err == nil {
			first, last, err = lc.ReadOffsets()
			lc.Close()
		}
		var ke kafka.Error
		if !errors.As(err, &ke) || !ke.Temporary() {
			return first, last, err
		}
		select {
		case <-ctx.Done():
			return 0, 0, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Header returns a message header's value.
func Header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, key) {
			return string(h.Value)
		}
	}
	return ""
}
