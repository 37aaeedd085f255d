package relay

import (
	"context"
	"errors"
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
	p := &producer{client: &kafka.Client{Addr: kafka.TCP(brokers...)}, comp: comp, maxBytes: maxBytes}
	parts, err := p.assign(ctx, msgs)
	if err != nil {
		return nil, 0, err
	}
	for _, pb := range parts {
		pb.sent = acked(pb.partition, len(pb.msgs))
	}
	for attempt := 0; ; attempt++ {
		err = p.write(ctx, parts)
		if err == nil || attempt == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, pb := range parts {
		for _, f := range pb.refused {
			if !errors.Is(f.err, kafka.MessageSizeTooLarge) {
				return nil, 0, f.err
			}
			refused = append(refused, f.idx)
		}
	}
	return refused, p.limit(msgs[0].Topic), err
}
