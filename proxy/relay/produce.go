package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/clickgate/clickgate/proxy/backoff"
)

// producer writes a batch with one produce request per partition (more when a
// partition's records pass maxBytes), all partitions in flight at once, each acknowledged
// by every in-sync replica.
//
// kafka-go's Writer is not used: it gives every partition's batch a slice sized for a
// full batch (5,000 messages, 760 KB) however few messages it holds, which at a few
// thousand clicks a second was most of the relay's allocation, and it holds a batch
// that is not full for its batch timeout even when the caller has nothing more to add.
//
// A broker that refuses a request as too large gets smaller ones from then on; a single
// message it refuses is set aside (refused) rather than retried forever, for the relay to
// dead-letter: one oversized event must not stop the stream. So are the records a broker
// names when it refuses a request for them (a timestamp outside the topic's window, a
// record its settings forbid); the rest of the request is sent again without them.
type producer struct {
	client   *kafka.Client
	comp     kafka.Compression
	maxBytes int64
	balancer kafka.Murmur2Balancer
	// limits holds, per topic, a request size below one the broker refused as too large
	// (*atomic.Int64); a topic without one gets maxBytes.
	limits sync.Map
	// streaks counts, per topic with a lowered limit, the requests taken since the limit
	// last changed (*atomic.Int64); after growEvery of them the limit doubles, so that a
	// topic whose max.message.bytes was raised gets full requests again without a
	// restart. A doubled limit the topic still refuses costs one request, resent smaller.
	streaks sync.Map
	// growEvery is growAfter; tests lower it.
	growEvery int64
	// shrinks counts the times a limit went down, for the relay to log.
	shrinks atomic.Int64
}

// growAfter is how many requests in a row a topic takes at a lowered limit before the
// producer tries twice that size: one refused request in every few hundred at worst.
const growAfter = 256

// partitionBatch is one partition's share of a batch, in outbox order. sent counts the
// records the broker acknowledged: a retry resumes after them rather than writing them
// again.
type partitionBatch struct {
	topic     string
	partition int
	msgs      []*kafka.Message
	idx       []int // each message's index in the batch assign split
	sizes     []int64
	sent      int
	// refused holds the messages the broker will never take, by index in the batch, with
	// its answer; they count as sent.
	refused []refusal
	// bad holds, by index in msgs, the messages the broker named when it refused a
	// request for them: requests stop before them, and they are refused in their turn.
	bad map[int]error
}

type refusal struct {
	idx int
	err error
}

// records reads messages as Kafka records, reusing one record and its readers: the
// protocol encoder reads each record once, through io.Reader.
type records struct {
	msgs       []*kafka.Message
	record     kafka.Record
	key, value bytesReadCloser
}

func (r *records) ReadRecord() (*kafka.Record, error) {
	if len(r.msgs) == 0 {
		return nil, io.EOF
	}
	m := r.msgs[0]
	r.msgs = r.msgs[1:]
	r.record = kafka.Record{Time: m.Time, Headers: m.Headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.record.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.record.Value = &r.value
	}
	return &r.record, nil
}

type bytesReadCloser struct{ bytes.Reader }

func (*bytesReadCloser) Close() error { return nil }

// assign splits msgs by partition: Murmur2 on the key over the topic's partitions, as
// the Java client's default partitioner does, so other producers keyed by visitor ID
// land on the same partitions. The partition counts come from the transport's cached
// metadata.
func (p *producer) assign(ctx context.Context, msgs []kafka.Message) ([]*partitionBatch, error) {
	partitions := map[string][]int{}
	type tp struct {
		topic     string
		partition int
	}
	byPartition := map[tp]*partitionBatch{}
	var out []*partitionBatch
	for i := range msgs {
		m := &msgs[i]
		all, ok := partitions[m.Topic]
		if !ok {
			n, err := p.partitions(ctx, m.Topic)
			if err != nil {
				return nil, err
			}
			all = make([]int, n)
			for j := range all {
				all[j] = j
			}
			partitions[m.Topic] = all
		}
		k := tp{m.Topic, p.balancer.Balance(*m, all...)}
		pb := byPartition[k]
		if pb == nil {
			pb = &partitionBatch{topic: k.topic, partition: k.partition}
			byPartition[k] = pb
			out = append(out, pb)
		}
		pb.msgs = append(pb.msgs, m)
		pb.idx = append(pb.idx, i)
		size := int64(len(m.Key) + len(m.Value) + 32)
		for _, h := range m.Headers {
			size += int64(len(h.Key) + len(h.Value))
		}
		pb.sizes = append(pb.sizes, size)
	}
	return out, nil
}

func (p *producer) partitions(ctx context.Context, topic string) (int, error) {
	md, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata: %w", err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("topic %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			return 0, fmt.Errorf("topic %s: %w", topic, kafka.LeaderNotAvailable)
		}
		return len(t.Partitions), nil
	}
	return 0, fmt.Errorf("topic %s: %w", topic, kafka.UnknownTopicOrPartition)
}

// write produces what each partition has not had acknowledged yet, the partitions in
// parallel and each partition's requests in order, stopping a partition at its first
// failure. It returns nil once every record is acknowledged.
func (p *producer) write(ctx context.Context, batches []*partitionBatch) error {
	errs := make([]error, len(batches))
	var wg sync.WaitGroup
	for i, pb := range batches {
		if pb.sent == len(pb.msgs) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.writePartition(ctx, pb)
		}()
	}
	wg.Wait()
	return summarize(errs, len(batches))
}

// batchHeader is the size of a Kafka record batch's own header, which counts against
// the broker's message.max.bytes with the records.
const batchHeader = 61

// temporaryRetry is how long a partition waits before its one quick retry of a request
// the broker refused for a moment (too few in-sync replicas, a timeout on its side):
// such blips should not count as outages. Anything longer is the relay's back-off.
const temporaryRetry = 50 * time.Millisecond

// quickRetry reports whether err is worth one quick retry. A leader that moved is not:
// requests are routed by the client's cached metadata, which refreshes on its own timer,
// so a retry 50 ms later goes to the same broker.
func quickRetry(err error) bool {
	var ke kafka.Error
	return errors.As(err, &ke) && ke.Temporary() && ke != kafka.NotLeaderForPartition && ke != kafka.LeaderNotAvailable
}

// tooLarge reports whether the broker refused a request for its size: a record batch
// over the topic's max.message.bytes, or over its log segment.
func tooLarge(err error) bool {
	return errors.Is(err, kafka.MessageSizeTooLarge) || errors.Is(err, kafka.RecordListTooLarge)
}

// refusedRecords is a request the broker refused for some of its records, which it
// named. Kafka appends a partition's record batch whole or not at all, so none of the
// request's records were written.
type refusedRecords struct {
	err     error         // the partition's error, such as kafka.InvalidTimestamp
	records map[int]error // the broker's reason, by index in the request
}

func (e *refusedRecords) Error() string {
	for i, r := range e.records {
		return fmt.Sprintf("%v: %d of the request's records refused, such as record %d: %v", e.err, len(e.records), i, r)
	}
	return e.err.Error()
}

func (e *refusedRecords) Unwrap() error { return e.err }

// refusedForGood reports whether err refuses records for what they hold, which no retry
// changes: a timestamp outside the topic's message.timestamp.before.max.ms or
// after.max.ms, or a record the topic's settings forbid (a compacted topic's record
// without a key).
func refusedForGood(err error) bool {
	return errors.Is(err, kafka.InvalidTimestamp) || errors.Is(err, kafka.InvalidRecord)
}

// named returns the records, by index in pb.msgs, that err refuses for good in a request
// of pb's messages from sent to end; nil when err is no such refusal or names a record
// outside the request.
func (pb *partitionBatch) named(err error, end int) map[int]error {
	var rr *refusedRecords
	if !refusedForGood(err) || !errors.As(err, &rr) || len(rr.records) == 0 {
		return nil
	}
	out := make(map[int]error, len(rr.records))
	for i, reason := range rr.records {
		if i < 0 || i >= end-pb.sent {
			return nil
		}
		out[pb.sent+i] = fmt.Errorf("%w: %v", rr.err, reason)
	}
	return out
}

// minRequestBytes is the smallest request limit the producer shrinks to: below it every
// message goes alone anyway.
const minRequestBytes = 1 << 10

// limit returns the request size topic takes, as far as the producer knows.
func (p *producer) limit(topic string) int64 {
	if l, ok := p.limits.Load(topic); ok {
		return l.(*atomic.Int64).Load()
	}
	return p.maxBytes
}

// shrink lowers topic's request limit below a request of size bytes the broker refused,
// and reports whether it went down.
func (p *producer) shrink(topic string, size int64) bool {
	next := max((size+batchHeader)/2, minRequestBytes)
	l, _ := p.limits.LoadOrStore(topic, new(atomic.Int64))
	lim := l.(*atomic.Int64)
	for {
		cur := lim.Load()
		if cur > 0 && cur <= next {
			return false
		}
		if lim.CompareAndSwap(cur, next) {
			p.shrinks.Add(1)
			p.streak(topic).Store(0)
			return true
		}
	}
}

func (p *producer) streak(topic string) *atomic.Int64 {
	s, _ := p.streaks.LoadOrStore(topic, new(atomic.Int64))
	return s.(*atomic.Int64)
}

// took counts a request topic took; after enough in a row at a lowered limit, the limit
// doubles, back to maxBytes at most.
func (p *producer) took(topic string) {
	l, ok := p.limits.Load(topic)
	if !ok {
		return
	}
	every := p.growEvery
	if every <= 0 {
		every = growAfter
	}
	if p.streak(topic).Add(1) < every {
		return
	}
	p.streak(topic).Store(0)
	lim := l.(*atomic.Int64)
	cur := lim.Load()
	if cur <= 0 {
		return
	}
	if next := 2 * cur; next < p.maxBytes {
		lim.CompareAndSwap(cur, next)
		return
	}
	p.resetLimit(topic)
}

// resetLimit forgets topic's smaller limit, after a message went through that the
// topic had refused: its max.message.bytes was raised.
func (p *producer) resetLimit(topic string) { p.limits.Delete(topic) }

func (p *producer) writePartition(ctx context.Context, pb *partitionBatch) error {
	alone := false // the next request carries one message
	for pb.sent < len(pb.msgs) {
		if err, ok := pb.bad[pb.sent]; ok {
			pb.refused = append(pb.refused, refusal{idx: pb.idx[pb.sent], err: err})
			pb.sent++
			continue
		}
		budget := p.limit(pb.topic) - batchHeader
		end, size := pb.sent, int64(0)
		for end < len(pb.msgs) && (end == pb.sent || !alone && size+pb.sizes[end] <= budget && pb.bad[end] == nil) {
			size += pb.sizes[end]
			end++
		}
		err := p.produce(ctx, pb, end)
		if quickRetry(err) && backoff.Sleep(ctx, temporaryRetry) {
			err = p.produce(ctx, pb, end)
		}
		named := pb.named(err, end)
		switch {
		case err == nil:
			p.took(pb.topic)
		case tooLarge(err) && end-pb.sent > 1:
			// The topic takes less than a request of ours: send smaller ones, down to one
			// message, which either goes through or is refused for good.
			alone = !p.shrink(pb.topic, size)
			continue
		case tooLarge(err):
			pb.refused = append(pb.refused, refusal{idx: pb.idx[pb.sent], err: err})
		case named != nil:
			// Nothing of the request was written: send it again without those records.
			if pb.bad == nil {
				pb.bad = map[int]error{}
			}
			maps.Copy(pb.bad, named)
			continue
		default:
			return fmt.Errorf("%s/%d: %w", pb.topic, pb.partition, err)
		}
		alone = false
		pb.sent = end
	}
	return nil
}

// produce sends pb's messages from sent to end in one request.
func (p *producer) produce(ctx context.Context, pb *partitionBatch, end int) error {
	res, err := p.client.Produce(ctx, &kafka.ProduceRequest{
		Topic: pb.topic, Partition: pb.partition, RequiredAcks: kafka.RequireAll, Compression: p.comp,
		Records: &records{msgs: pb.msgs[pb.sent:end]},
	})
	if err != nil {
		return err
	}
	if res.Error != nil {
		if len(res.RecordErrors) > 0 {
			return &refusedRecords{err: res.Error, records: res.RecordErrors}
		}
		return res.Error
	}
	for _, e := range res.RecordErrors {
		return e
	}
	return nil
}

// summarize joins the partitions' errors, naming at most three distinct ones.
func summarize(errs []error, partitions int) error {
	var failed []error
	distinct := map[string]bool{}
	var list []string
	for _, e := range errs {
		if e == nil {
			continue
		}
		failed = append(failed, e)
		if !distinct[e.Error()] && len(list) < 3 {
			distinct[e.Error()] = true
			list = append(list, e.Error())
		}
	}
	if len(failed) == 0 {
		return nil
	}
	// The joined errors stay reachable for errors.Is and errors.As.
	return &produceError{msg: fmt.Sprintf("%d of %d partitions failed: %s", len(failed), partitions, strings.Join(list, "; ")), errs: failed}
}

type produceError struct {
	msg  string
	errs []error
}

func (e *produceError) Error() string   { return e.msg }
func (e *produceError) Unwrap() []error { return e.errs }
