package relay

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
)

// A batch split over partitions that no longer exist keeps, in outbox order, only what
// the broker has not acknowledged.
func TestResplitKeepsTheUnacknowledged(t *testing.T) {
	b := &batch{}
	for i := range 10 {
		b.msgs = append(b.msgs, kafka.Message{Value: []byte{byte(i)}})
	}
	even, odd := &partitionBatch{partition: 0, sent: 3}, &partitionBatch{partition: 1, sent: 1}
	for i := range b.msgs {
		pb := []*partitionBatch{even, odd}[i%2]
		pb.msgs = append(pb.msgs, &b.msgs[i])
	}
	b.parts = []*partitionBatch{even, odd}
	b.resplit()
	var got []int
	for _, m := range b.msgs {
		got = append(got, int(m.Value[0]))
	}
	// Acknowledged: 0, 2, 4 of the even partition and 1 of the odd one.
	if want := []int{3, 5, 6, 7, 8, 9}; !slices.Equal(got, want) || b.parts != nil {
		t.Fatalf("kept %v (parts %v), want %v and a fresh split", got, b.parts, want)
	}
}

func TestTopicGone(t *testing.T) {
	for _, tc := range []struct {
		err  error
		gone bool
	}{
		{summarize([]error{nil, fmt.Errorf("t/1: %w", kafka.NotLeaderForPartition), fmt.Errorf("t/2: %w", kafka.UnknownTopicOrPartition)}, 3), true},
		{fmt.Errorf("assign: %w", protocol.NewErrNoTopic("t")), true},
		{summarize([]error{fmt.Errorf("t/4: %w", protocol.NewErrNoPartition("t", 4))}, 1), true},
		{summarize([]error{fmt.Errorf("t/0: %w", kafka.NotLeaderForPartition)}, 1), false},
		{errors.New("dial tcp: connection refused"), false},
	} {
		if got := topicGone(tc.err); got != tc.gone {
			t.Errorf("topicGone(%v) = %v, want %v", tc.err, got, tc.gone)
		}
	}
}

func TestQuickRetry(t *testing.T) {
	for _, tc := range []struct {
		err   error
		retry bool
	}{
		{kafka.NotEnoughReplicas, true},
		{kafka.RequestTimedOut, true},
		{kafka.NotLeaderForPartition, false}, // the cached route sends it to the same broker
		{kafka.LeaderNotAvailable, false},
		{kafka.MessageSizeTooLarge, false},
		{errors.New("dial tcp: connection refused"), false},
		{nil, false},
	} {
		if got := quickRetry(tc.err); got != tc.retry {
			t.Errorf("quickRetry(%v) = %v, want %v", tc.err, got, tc.retry)
		}
	}
}
