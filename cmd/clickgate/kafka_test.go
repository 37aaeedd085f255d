package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/relay/kafkatest"
)

// kill -9 while the relay drains a backlog: after a restart every answered click still
// reaches Kafka (duplicates allowed, loss not).
func TestKill9WhileDrainingBacklog(t *testing.T) {
	broker, err := kafkatest.Start(19492)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	if !broker.Controllable() {
		t.Skip("CLICKGATE_TEST_KAFKA_BROKERS names a broker this test cannot stop")
	}
	topic := fmt.Sprintf("crash%d.clicks", time.Now().UnixNano())
	env := []string{"CLICKGATE_KAFKA_BROKERS=" + broker.Addr, "CLICKGATE_KAFKA_CLICKS_TOPIC=" + topic, "CLICKGATE_KAFKA_PARTITIONS=3",
		// Small batches so the kill lands mid-drain rather than after it.
		"CLICKGATE_KAFKA_BATCH_SIZE=200"}
	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	p := start(t, dir, pub, adm, env...)
	if st, out := p.api("POST", "/api/v1/links", `{"slug":"crash","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"crash"}}`); st != 201 {
		t.Fatalf("create: %d %v", st, out)
	}
	// One click through Kafka first: topics exist and the relay is connected.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(p.pub + "/crash")
	if err != nil || resp.StatusCode != 302 {
		t.Fatalf("first tap: %v %v", resp, err)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	warm := []string{loc.Query().Get("cgid")}
	waitMetric(t, p, "clickgate_kafka_batches_total", 0)

	if err := broker.Stop(); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	wait := load(t, p.pub+"/crash", 32, stop)
	time.Sleep(3 * time.Second)
	close(stop)
	ids := append(wait(), warm...)
	if err := broker.Resume(); err != nil {
		t.Fatal(err)
	}
	sent := waitMetric(t, p, "clickgate_kafka_messages_total", 1) // the drain has begun
	p.cmd.Process.Kill()
	<-p.exited
	t.Logf("%d clicks answered during the outage; killed after %.0f had been relayed", len(ids), sent)

	start(t, dir, pub, adm, env...) // the restarted relay drains the rest
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		parts, err := kafkatest.ReadAll(ctx, broker.Addr, topic)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		total := 0
		for _, msgs := range parts {
			for _, m := range msgs {
				var ev struct {
					ClickID string `json:"click_id"`
				}
				json.Unmarshal(m.Value, &ev)
				seen[ev.ClickID]++
				total++
			}
		}
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("every answered click in Kafka: %d messages for %d clicks", total, len(ids))
			tailPrints(t, broker.Addr, topic)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d answered clicks never reached Kafka", missing, len(ids))
		}
		time.Sleep(time.Second)
	}
}

// waitMetric waits until a counter exceeds floor and returns its value.
func waitMetric(t *testing.T, p *proc, name string, floor float64) float64 {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(p.adm + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				var v float64
				if strings.HasPrefix(line, name+" ") {
					fmt.Sscan(strings.TrimPrefix(line, name+" "), &v)
					if v > floor {
						return v
					}
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never rose above %v", name, floor)
	return 0
}

// tailPrints runs `clickgate tail` against the topic and checks it prints click events.
func tailPrints(t *testing.T, addr, topic string) {
	cmd := exec.Command(binary, "tail", "-topic", topic, "-from-beginning", "-n", "5")
	cmd.Env = append(os.Environ(), "CLICKGATE_KAFKA_BROKERS="+addr)
	out, err := cmd.Output()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil || len(lines) != 5 {
		t.Fatalf("clickgate tail: %v, %d lines\n%s", err, len(lines), out)
	}
	for _, l := range lines {
		var ev map[string]any
		if json.Unmarshal([]byte(l), &ev) != nil || ev["event_type"] != "click" {
			t.Fatalf("tail printed %q", l)
		}
	}
}
