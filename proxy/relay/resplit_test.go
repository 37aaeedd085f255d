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
// the broker has not acknowledged, each message with its outbox sequence; a message the
// broker refused for good is kept for its dead letter, not split again.
func TestResplitKeepsTheUnacknowledged(t *testing.T) {
	b := &batch{}
	for i := range 10 {
		b.msgs = append(b.msgs, kafka.Message{Value: []byte{byte(i)}})
		b.seqs = append(b.seqs, uint64(100+i))
	}
	even, odd := &partitionBatch{partition: 0, sent: 3}, &partitionBatch{partition: 1, sent: 1}
	for i := range b.msgs {
		pb := []*partitionBatch{even, odd}[i%2]
		pb.msgs = append(pb.msgs, &b.msgs[i])
		pb.idx = append(pb.idx, i)
	}
	// The even partition's third message (4) was refused, and counts as sent.
	even.refused = []refusal{{idx: 4, err: kafka.MessageSizeTooLarge}}
	b.parts = []*partitionBatch{even, odd}
	b.collectRefused()
	b.collectRefused() // a retry of the same parts records nothing twice
	b.resplit()
	var got []int
	for i, m := range b.msgs {
		got = append(got, int(m.Value[0]))
		if b.seqs[i] != uint64(100+int(m.Value[0])) {
			t.Fatalf("message %d kept with sequence %d", m.Value[0], b.seqs[i])
		}
	}
	// Acknowledged: 0, 2, 4 of the even partition and 1 of the odd one.
	if want := []int{3, 5, 6, 7, 8, 9}; !slices.Equal(got, want) || b.parts != nil {
		t.Fatalf("kept %v (parts %v), want %v and a fresh split", got, b.parts, want)
	}
	if len(b.refused) != 1 || b.refused[0].seq != 104 || b.refused[0].msg.Value[0] != 4 || !errors.Is(b.refused[0].err, kafka.MessageSizeTooLarge) {
		t.Fatalf("refused %+v, want message 4 (sequence 104)", b.refused)
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
