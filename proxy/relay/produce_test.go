package relay_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/clickgate/clickgate/proxy/relay"
	"github.com/clickgate/clickgate/proxy/relay/kafkatest"
)

// A partition's messages go in requests no bigger than the configured size, in order; a
// retry writes only what the broker has not acknowledged, nothing twice and nothing
// lost; and a request the broker refuses stops its partition there, leaving the others
// written.
func TestProducerSplitsAndResumes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		comp     kafka.Compression
		oversize bool // one message in the middle of a partition the broker refuses
	}{
		{"plain", 0, false},
		{"lz4", kafka.Lz4, false},
		{"refused midway", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			topic := fmt.Sprintf("t%d.produce", time.Now().UnixNano())
			c := &kafka.Client{Addr: kafka.TCP(broker.Addr)}
			// The broker refuses a record batch over 4,000 bytes: a partition's 40 KB
			// of messages in one request would fail.
			res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
				Topic: topic, NumPartitions: 3, ReplicationFactor: 1,
				ConfigEntries: []kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: "4000"}},
			}}})
			if err != nil || res.Errors[topic] != nil {
				t.Fatalf("create topic: %v %v", err, res)
			}
			const n = 600
			msgs := make([]kafka.Message, n)
			want := map[int][]string{}
			refused := -1 // the partition of the refused message
			for i := range msgs {
				msgs[i] = kafka.Message{Topic: topic, Key: []byte("visitor-" + strconv.Itoa(i%17)), Value: fmt.Appendf(nil, "%-200d", i)}
				if tc.oversize && i == n/2 {
					msgs[i].Value = fmt.Appendf(nil, "%-5000d", i)
				}
				p := kafka.Murmur2Balancer{}.Balance(msgs[i], 0, 1, 2)
				if refused == p {
					continue // after the refused message: never written
				}
				if tc.oversize && i == n/2 {
					refused = p
					continue
				}
				want[p] = append(want[p], string(msgs[i].Value))
			}
			// Retried after the broker acknowledged the first third of each partition's.
			first := map[int]int{}
			for p, vs := range want {
				first[p] = len(vs) / 3
			}
			waitForLeaders(ctx, t, c, topic)
			err = relay.ProduceAcknowledged(ctx, []string{broker.Addr}, tc.comp, 2000, msgs, func(p, _ int) int { return first[p] })
			switch {
			case tc.oversize && (!errors.Is(err, kafka.MessageSizeTooLarge) || !strings.HasPrefix(err.Error(), "1 of 3 partitions failed")):
				t.Fatalf("a refused message answered %v, want its partition alone to fail as too large", err)
			case !tc.oversize && err != nil:
				t.Fatal(err)
			}
			got, err := kafkatest.ReadAll(ctx, broker.Addr, topic)
			if err != nil {
				t.Fatal(err)
			}
			for p := range 3 {
				var values []string
				for _, m := range got[p] {
					values = append(values, string(m.Value))
				}
				if w := want[p][first[p]:]; !slices.Equal(values, w) {
					t.Errorf("partition %d holds %d messages, want the %d after the acknowledged ones, in order", p, len(values), len(w))
				}
			}
		})
	}
}

// waitForLeaders waits until every partition of a new topic has a leader.
func waitForLeaders(ctx context.Context, t *testing.T, c *kafka.Client, topic string) {
	t.Helper()
	for led := false; !led; time.Sleep(100 * time.Millisecond) {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			t.Fatal(err)
		}
		led = len(md.Topics) == 1 && len(md.Topics[0].Partitions) > 0
		for i := 0; led && i < len(md.Topics[0].Partitions); i++ {
			p := md.Topics[0].Partitions[i]
			led = p.Error == nil && p.Leader.Host != ""
		}
	}
}
