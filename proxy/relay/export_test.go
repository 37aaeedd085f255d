package relay

import (
	"context"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
)

// ProduceAcknowledged produces msgs (all to one topic) the way the relay does, in
// requests of at most maxBytes, as if the broker had already acknowledged the first acked
// of each partition. Like the relay, it retries what failed (a new topic's partitions can
// refuse writes for a moment after they have a leader), resuming after what was
// acknowledged. It returns the indexes of the messages the broker refused for good, and
// the request limit the producer ended with for the topic.
func ProduceAcknowledged(ctx context.Context, brokers []string, comp kafka.Compression, maxBytes int64, msgs []kafka.Message, acked func(partition, n int) int) (refused []int, limit int64, err error) {
	p := &Producer{p: &producer{client: &kafka.Client{Addr: kafka.TCP(brokers...)}, comp: comp, maxBytes: maxBytes}}
	refused, err = p.Produce(ctx, msgs, acked)
	if err != nil {
		return nil, 0, err
	}
	return refused, p.Limit(msgs[0].Topic), nil
}

// Producer is the relay's producer, kept across calls (its request limits with it).
type Producer struct {
	p *producer
	// Refusals holds the broker's answer for each message the last Produce saw refused,
	// by index.
	Refusals map[int]error
}

// NewProducer returns a producer of requests of at most maxBytes whose lowered limits
// double after growEvery requests taken in a row.
func NewProducer(brokers []string, maxBytes, growEvery int64) *Producer {
	return &Producer{p: &producer{client: &kafka.Client{Addr: kafka.TCP(brokers...)}, maxBytes: maxBytes, growEvery: growEvery}}
}

// Limit is the request size the producer uses for topic.
func (t *Producer) Limit(topic string) int64 { return t.p.limit(topic) }

// Produce writes msgs (all to one topic) as ProduceAcknowledged does; acked may be nil.
func (t *Producer) Produce(ctx context.Context, msgs []kafka.Message, acked func(partition, n int) int) (refused []int, err error) {
	p := t.p
	parts, err := p.assign(ctx, msgs)
	if err != nil {
		return nil, err
	}
	for _, pb := range parts {
		if acked != nil {
			pb.sent = acked(pb.partition, len(pb.msgs))
		}
	}
	for attempt := 0; ; attempt++ {
		err = p.write(ctx, parts)
		if err == nil || attempt == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Refusals = map[int]error{}
	for _, pb := range parts {
		for _, f := range pb.refused {
			refused = append(refused, f.idx)
			t.Refusals[f.idx] = f.err
		}
	}
	slices.Sort(refused)
	return refused, err
}
