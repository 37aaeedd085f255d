package relay_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/clickgate/clickgate/proxy/relay"
	"github.com/clickgate/clickgate/proxy/relay/kafkatest"
)

// A partition's messages go in requests no bigger than the configured size, in order,
// and a retry writes only what the broker has not acknowledged: nothing twice, nothing
// lost.
func TestProducerSplitsAndResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("t%d.produce", time.Now().UnixNano())
	c := &kafka.Client{Addr: kafka.TCP(broker.Addr)}
	// The broker refuses a record batch over 4,000 bytes: a partition's 40 KB of
	// messages in one request would fail.
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
	for i := range msgs {
		msgs[i] = kafka.Message{Topic: topic, Key: []byte("visitor-" + strconv.Itoa(i%17)), Value: fmt.Appendf(nil, "%-200d", i)}
		p := kafka.Murmur2Balancer{}.Balance(msgs[i], 0, 1, 2)
		want[p] = append(want[p], string(msgs[i].Value))
	}
	// Retried after the broker acknowledged the first third of each partition's.
	for p := range want {
		want[p] = want[p][len(want[p])/3:]
	}
	// A new topic's leaders take a moment to be elected.
	for led := false; !led; time.Sleep(100 * time.Millisecond) {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			t.Fatal(err)
		}
		led = len(md.Topics) == 1 && len(md.Topics[0].Partitions) == 3
		for i := 0; led && i < 3; i++ {
			p := md.Topics[0].Partitions[i]
			led = p.Error == nil && p.Leader.Host != ""
		}
	}
	if err := relay.ProduceAcknowledged(ctx, []string{broker.Addr}, 2000, msgs, func(_, n int) int { return n / 3 }); err != nil {
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
		if !slices.Equal(values, want[p]) {
			t.Errorf("partition %d holds %d messages, want the last %d in order", p, len(values), len(want[p]))
		}
	}
}
