package relay

import (
	"context"
	"errors"
	"time"

	"github.com/segmentio/kafka-go"
)

// ProduceAcknowledged produces msgs the way the relay does, in requests of at most
// maxBytes, as if the broker had already acknowledged the first acked of each partition.
// Like the relay, it retries what failed for any reason but a message too large (a new
// topic's partitions can refuse writes for a moment after they have a leader), resuming
// after what was acknowledged.
func ProduceAcknowledged(ctx context.Context, brokers []string, comp kafka.Compression, maxBytes int64, msgs []kafka.Message, acked func(partition, n int) int) error {
	p := &producer{client: &kafka.Client{Addr: kafka.TCP(brokers...)}, comp: comp, maxBytes: maxBytes}
	parts, err := p.assign(ctx, msgs)
	if err != nil {
		return err
	}
	for _, pb := range parts {
		pb.sent = acked(pb.partition, len(pb.msgs))
	}
	for attempt := 0; ; attempt++ {
		err := p.write(ctx, parts)
		if err == nil || onlyTooLarge(err) || attempt == 50 {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func onlyTooLarge(err error) bool {
	var pe *produceError
	if !errors.As(err, &pe) {
		return false
	}
	for _, e := range pe.errs {
		if !errors.Is(e, kafka.MessageSizeTooLarge) {
			return false
		}
	}
	return true
}
