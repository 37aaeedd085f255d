package relay

import (
	"context"

	"github.com/segmentio/kafka-go"
)

// ProduceAcknowledged produces msgs the way the relay does, in requests of at most
// maxBytes, as if the broker had already acknowledged the first acked of each partition.
func ProduceAcknowledged(ctx context.Context, brokers []string, comp kafka.Compression, maxBytes int64, msgs []kafka.Message, acked func(partition, n int) int) error {
	p := &producer{client: &kafka.Client{Addr: kafka.TCP(brokers...)}, comp: comp, maxBytes: maxBytes}
	parts, err := p.assign(ctx, msgs)
	if err != nil {
		return err
	}
	for _, pb := range parts {
		pb.sent = acked(pb.partition, len(pb.msgs))
	}
	return p.write(ctx, parts)
}
