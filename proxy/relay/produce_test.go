package relay_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/clickgate/clickgate/proxy/relay"
	"github.com/clickgate/clickgate/proxy/relay/kafkatest"
)

// A partition's messages go in requests no bigger than the configured size, in order; a
// retry writes only what the broker has not acknowledged, nothing twice and nothing
// lost; a request the broker refuses as too large is split until it takes the parts;
// and a message it refuses alone is set aside while the rest of its partition goes on.
func TestProducerSplitsAndResumes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		comp     kafka.Compression
		maxBytes int64 // the producer's request limit; the topic takes 4,000 bytes
		oversize bool  // one message in the middle of a partition the broker refuses
	}{
		{"plain", 0, 2000, false},
		{"lz4", kafka.Lz4, 2000, false},
		{"refused midway", 0, 2000, true},
		{"topic takes less than the producer sends", 0, 40_000, false},
		{"both", kafka.Lz4, 40_000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			topic := fmt.Sprintf("t%d.produce", time.Now().UnixNano())
			// The broker refuses a record batch over 4,000 bytes: a partition's 40 KB
			// of messages in one request would fail.
			c := createTopic(ctx, t, topic, 3, 4000)
			const n = 600
			msgs := make([]kafka.Message, n)
			want := map[int][]string{}
			for i := range msgs {
				msgs[i] = kafka.Message{Topic: topic, Key: []byte("visitor-" + strconv.Itoa(i%17)), Value: fmt.Appendf(nil, "%-200d", i)}
				if tc.oversize && i == n/2 {
					// Random hex: over 4,000 bytes even compressed.
					raw := make([]byte, 6000)
					rand.Read(raw)
					msgs[i].Value = hex.AppendEncode(nil, raw)
				}
				if tc.oversize && i == n/2 {
					continue // refused, not written
				}
				p := kafka.Murmur2Balancer{}.Balance(msgs[i], 0, 1, 2)
				want[p] = append(want[p], string(msgs[i].Value))
			}
			// Retried after the broker acknowledged the first third of each partition's.
			first := map[int]int{}
			for p, vs := range want {
				first[p] = len(vs) / 3
			}
			waitForLeaders(ctx, t, c, topic)
			refused, limit, err := relay.ProduceAcknowledged(ctx, []string{broker.Addr}, tc.comp, tc.maxBytes, msgs, func(p, _ int) int { return first[p] })
			if err != nil {
				t.Fatal(err)
			}
			if wantRefused := []int(nil); tc.oversize && !slices.Equal(refused, []int{n / 2}) || !tc.oversize && !slices.Equal(refused, wantRefused) {
				t.Errorf("refused %v, want only the oversized message", refused)
			}
			switch {
			case tc.maxBytes <= 4000 && limit != tc.maxBytes:
				t.Errorf("the request limit moved to %d, though the topic takes every request", limit)
			case tc.maxBytes > 4000 && tc.comp == 0 && limit > 3*4000:
				// Halved from the size of a request refused: near the topic's 4,000 bytes,
				// as the producer estimates sizes.
				t.Errorf("request limit %d after a topic that takes 4,000 bytes refused requests of up to %d", limit, tc.maxBytes)
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

// Records a broker refuses for what they hold (named in its answer, which refuses the
// whole request) are set aside with its reason; the others of their request are sent again
// without them, in order, once each.
func TestProducerSetsAsideRecordsTheBrokerNames(t *testing.T) {
	const n = 300
	// Refused at the start and end of the batch, alone and five in a row.
	refusedAt := func(i int) bool { return i == 0 || i == n-1 || i%37 == 5 || i >= 100 && i < 105 }
	for _, tc := range []struct {
		name     string
		settings []kafka.ConfigEntry
		maxBytes int64 // 2,000 bytes: several requests a partition
		spoil    func(*kafka.Message)
		want     kafka.Error
	}{
		{"timestamp before the topic's window", []kafka.ConfigEntry{{ConfigName: "message.timestamp.before.max.ms", ConfigValue: "3600000"}},
			1 << 20, func(m *kafka.Message) { m.Time = m.Time.Add(-2 * time.Hour) }, kafka.InvalidTimestamp},
		{"timestamp, small requests", []kafka.ConfigEntry{{ConfigName: "message.timestamp.before.max.ms", ConfigValue: "3600000"}},
			2000, func(m *kafka.Message) { m.Time = m.Time.Add(-2 * time.Hour) }, kafka.InvalidTimestamp},
		{"no key in a compacted topic", []kafka.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}},
			1 << 20, func(m *kafka.Message) { m.Key = nil }, kafka.InvalidRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			topic := fmt.Sprintf("t%d.refused", time.Now().UnixNano())
			c := createTopic(ctx, t, topic, 3, 1<<20, tc.settings...)
			msgs := make([]kafka.Message, n)
			want := map[int][]string{}
			var wantRefused []int
			for i := range msgs {
				msgs[i] = kafka.Message{Topic: topic, Key: []byte("visitor-" + strconv.Itoa(i%17)), Value: fmt.Appendf(nil, "%-200d", i), Time: time.Now()}
				if refusedAt(i) {
					tc.spoil(&msgs[i])
					wantRefused = append(wantRefused, i)
					continue
				}
				p := kafka.Murmur2Balancer{}.Balance(msgs[i], 0, 1, 2)
				want[p] = append(want[p], string(msgs[i].Value))
			}
			waitForLeaders(ctx, t, c, topic)
			p := relay.NewProducer([]string{broker.Addr}, tc.maxBytes, 0)
			refused, err := p.Produce(ctx, msgs, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(refused, wantRefused) {
				t.Fatalf("refused %v, want %v", refused, wantRefused)
			}
			for i, err := range p.Refusals {
				if !errors.Is(err, tc.want) {
					t.Fatalf("message %d refused with %v, want %v", i, err, tc.want)
				}
			}
			got, err := kafkatest.ReadAll(ctx, broker.Addr, topic)
			if err != nil {
				t.Fatal(err)
			}
			for part := range 3 {
				var values []string
				for _, m := range got[part] {
					values = append(values, string(m.Value))
				}
				if !slices.Equal(values, want[part]) {
					t.Errorf("partition %d holds %d messages, want the %d not refused, in order", part, len(values), len(want[part]))
				}
			}
		})
	}
}

// A topic that takes less than the smallest request the producer builds (two 300-byte
// messages against 500 bytes) gets one message a request, not the same refused request
// again and again.
func TestProducerBelowItsSmallestRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := fmt.Sprintf("t%d.tiny", time.Now().UnixNano())
	c := createTopic(ctx, t, topic, 1, 500)
	msgs := make([]kafka.Message, 20)
	var want []string
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte("v"), Value: fmt.Appendf(nil, "%-300d", i)}
		want = append(want, string(msgs[i].Value))
	}
	waitForLeaders(ctx, t, c, topic)
	refused, _, err := relay.ProduceAcknowledged(ctx, []string{broker.Addr}, 0, 1<<20, msgs, func(int, int) int { return 0 })
	if err != nil || len(refused) != 0 {
		t.Fatalf("refused %v, %v", refused, err)
	}
	if values := partitionValues(ctx, t, topic); !slices.Equal(values, want) {
		t.Fatalf("the topic holds %d messages, want the 20 in order", len(values))
	}
}

// createTopic creates a topic whose record batches may be at most maxMessageBytes, with
// the other settings given, and returns a client of the test broker.
func createTopic(ctx context.Context, t *testing.T, topic string, partitions, maxMessageBytes int, settings ...kafka.ConfigEntry) *kafka.Client {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(broker.Addr)}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1,
		ConfigEntries: append([]kafka.ConfigEntry{{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(maxMessageBytes)}}, settings...),
	}}})
	if err != nil || res.Errors[topic] != nil {
		t.Fatalf("create topic: %v %v", err, res)
	}
	return c
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

// A topic that refused requests gets smaller ones; once its max.message.bytes is raised,
// requests grow back to the full size without a restart. While the topic still refuses
// them, the producer's tries at a larger size cost requests, never messages or order.
func TestProducerLimitGrowsBack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("t%d.regrow", time.Now().UnixNano())
	c := createTopic(ctx, t, topic, 1, 1000)
	waitForLeaders(ctx, t, c, topic)
	const full = 1 << 20
	p := relay.NewProducer([]string{broker.Addr}, full, 4)
	var want []string
	produce := func(n int) {
		t.Helper()
		msgs := make([]kafka.Message, n)
		for i := range msgs {
			msgs[i] = kafka.Message{Topic: topic, Key: []byte("v"), Value: fmt.Appendf(nil, "%-300d", len(want))}
			want = append(want, string(msgs[i].Value))
		}
		if refused, err := p.Produce(ctx, msgs, nil); err != nil || len(refused) != 0 {
			t.Fatalf("refused %v, %v", refused, err)
		}
	}
	for range 10 {
		produce(20) // the limit shrinks, tries to grow every four requests, shrinks again
	}
	if l := p.Limit(topic); l >= full {
		t.Fatalf("limit %d against a topic taking 1,000 bytes", l)
	}
	raiseMaxMessageBytes(ctx, t, c, topic)
	// Ten doublings of four requests each, and the broker may take a moment to apply the
	// new setting: a hundred rounds are plenty.
	for round := 0; p.Limit(topic) < full; round++ {
		if round == 100 {
			t.Fatalf("the limit stayed at %d after the topic's was raised", p.Limit(topic))
		}
		produce(20)
	}
	if values := partitionValues(ctx, t, topic); !slices.Equal(values, want) {
		t.Fatalf("the topic holds %d messages, want the %d produced, in order, once each", len(values), len(want))
	}
}

// partitionValues reads the values of a one-partition topic, in order.
func partitionValues(ctx context.Context, t *testing.T, topic string) []string {
	t.Helper()
	got, err := kafkatest.ReadAll(ctx, broker.Addr, topic)
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, m := range got[0] {
		values = append(values, string(m.Value))
	}
	return values
}

// raiseMaxMessageBytes sets a topic's max.message.bytes to 1 MiB and a little more.
func raiseMaxMessageBytes(ctx context.Context, t *testing.T, c *kafka.Client, topic string) {
	t.Helper()
	setTopicConfig(ctx, t, c, topic, "max.message.bytes", "1048588")
}

// setTopicConfig changes one setting of a topic. The broker applies it a moment after it
// answers.
func setTopicConfig(ctx context.Context, t *testing.T, c *kafka.Client, topic, name, value string) {
	t.Helper()
	alter, err := c.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: name, Value: value, ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if err != nil || alter.Resources[0].Error != nil {
		t.Fatalf("set %s: %v %v", name, err, alter)
	}
}
