// Package relay streams the outbox to Kafka. It reads events at its own durable cursor,
// publishes them with acknowledgements from all in-sync replicas, and moves the cursor
// only past what the broker acknowledged. It is never on the redirect path: while Kafka
// is down, clicks pile up in the outbox and drain when it returns.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/clickgate/clickgate/proxy/backoff"
	"github.com/clickgate/clickgate/proxy/events"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

// Consumer is the relay's cursor name in the outbox.
const Consumer = "kafka"

// Config configures the relay. Zero values take the defaults noted.
type Config struct {
	Brokers []string
	// ClicksTopic defaults to clickgate.clicks; ConversionsTopic to clickgate.conversions.
	ClicksTopic      string
	ConversionsTopic string
	// Partitions and ReplicationFactor apply when the relay creates a missing topic.
	// ReplicationFactor -1 takes the broker's default.
	Partitions        int
	ReplicationFactor int
	// BatchSize bounds the events read and produced at once (default 5000), BatchBytes
	// one produce request to one partition (default 1 MiB, the broker's default
	// message.max.bytes), Linger how long the relay lets events gather before a batch
	// that was not full (default 5 ms).
	BatchSize  int
	BatchBytes int64
	Linger     time.Duration
	// Compression is none, gzip, snappy, lz4 or zstd.
	Compression string
	// MaxBacklog is the backlog, in events, past which the relay raises an alert
	// (metric and log line). Nothing is ever dropped.
	MaxBacklog uint64
	// Transport carries TLS and SASL settings; nil is plaintext.
	Transport *kafka.Transport
	// Users says which events carry plain identifiers.
	Users events.Users
}

func (c *Config) defaults() {
	if c.ClicksTopic == "" {
		c.ClicksTopic = "clickgate.clicks"
	}
	if c.ConversionsTopic == "" {
		c.ConversionsTopic = "clickgate.conversions"
	}
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = 1 << 20
	}
	if c.Linger <= 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.MaxBacklog == 0 {
		c.MaxBacklog = 10_000_000
	}
	if c.Transport == nil {
		c.Transport = &kafka.Transport{DialTimeout: 5 * time.Second}
	}
}

// ParseCompression maps a configuration word to a kafka-go codec.
func ParseCompression(s string) (kafka.Compression, error) {
	switch s {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "lz4":
		return kafka.Lz4, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("compression %q is not none, gzip, snappy, lz4 or zstd", s)
}

// Relay publishes outbox events to Kafka.
type Relay struct {
	db  *storage.DB
	cfg Config
	log *slog.Logger
	p   *producer

	// replaying is held by the dead-letter replay running, one at a time; a channel
	// rather than a mutex, so a replay waiting its turn gives up when its request ends.
	replaying chan struct{}

	mu        sync.Mutex
	state     string
	lastError string
	lastOK    time.Time
	cursor    uint64
}

// New prepares a relay; Run starts it.
func New(db *storage.DB, cfg Config, log *slog.Logger) (*Relay, error) {
	cfg.defaults()
	comp, err := ParseCompression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	db.Register(Consumer)
	r := &Relay{db: db, cfg: cfg, log: log.With("component", "kafka-relay"), state: "connecting", replaying: make(chan struct{}, 1)}
	// Retries are the relay's: it keeps the events in the outbox and tries again with
	// back-off, forever.
	r.p = &producer{
		client:   &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: cfg.Transport, Timeout: 10 * time.Second},
		comp:     comp,
		maxBytes: cfg.BatchBytes,
	}
	return r, nil
}

// Status reports the relay's state for /readyz: "connecting", "ok" or "down", with the
// last error.
func (r *Relay) Status() (state, lastError string, lastOK time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state, r.lastError, r.lastOK
}

func (r *Relay) setState(state string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state = state
	if err != nil {
		r.lastError = err.Error()
	}
	if state == "ok" {
		r.lastOK = time.Now()
	}
}

// batch is a run of outbox events encoded and ready to produce; next is the cursor once
// it is acknowledged. parts is msgs split by partition, made at the first attempt to
// produce them and kept across retries.
type batch struct {
	msgs  []kafka.Message
	seqs  []uint64 // each message's outbox sequence
	parts []*partitionBatch
	next  uint64
	total int // messages in the batch as read
	// refused are the messages the broker will never take, to be dead-lettered before the
	// cursor passes them.
	refused []refused
}

type refused struct {
	seq uint64
	msg kafka.Message
	err error
}

// collectRefused moves the partitions' refusals into the batch: a re-split drops the
// partitions, and the refused messages with them, since they count as sent.
func (b *batch) collectRefused() {
	for _, pb := range b.parts {
		for _, f := range pb.refused {
			b.refused = append(b.refused, refused{seq: b.seqs[f.idx], msg: b.msgs[f.idx], err: f.err})
		}
		pb.refused = nil
	}
}

// resplit keeps, in outbox order, only the messages the broker has not acknowledged, to
// be split by partition again.
func (b *batch) resplit() {
	acked := map[*kafka.Message]bool{}
	for _, pb := range b.parts {
		for _, m := range pb.msgs[:pb.sent] {
			acked[m] = true
		}
	}
	var rest []kafka.Message
	var seqs []uint64
	for i := range b.msgs {
		if !acked[&b.msgs[i]] {
			rest = append(rest, b.msgs[i])
			seqs = append(seqs, b.seqs[i])
		}
	}
	b.msgs, b.seqs, b.parts = rest, seqs, nil
}

// topicGone reports whether err says a topic, or a partition the batch was split over,
// is not there: from the broker, or from the client's cached metadata.
func topicGone(err error) bool {
	return errors.Is(err, kafka.UnknownTopicOrPartition) || errors.Is(err, protocol.ErrNoTopic) || errors.Is(err, protocol.ErrNoPartition)
}

// Run relays until ctx ends. One goroutine reads and encodes the next batch while the
// current one is in flight; a single writer produces batches one at a time and retries
// a failed batch until it succeeds, so per-partition order is kept.
//
// It returns only after its helper goroutines, which read the store, have: the server
// closes the store after Run returns.
func (r *Relay) Run(ctx context.Context) {
	defer r.cfg.Transport.CloseIdleConnections()
	var helpers sync.WaitGroup
	defer helpers.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before the Wait: the helpers stop on it
	helpers.Go(func() { r.watch(ctx) })
	cursor, err := r.db.Cursor(Consumer)
	for err != nil {
		r.log.Error("cannot read the relay cursor", "err", err)
		if !backoff.Sleep(ctx, time.Second) {
			return
		}
		cursor, err = r.db.Cursor(Consumer)
	}
	r.setCursor(cursor)
	ready := make(chan batch, 1)
	helpers.Go(func() { r.prepare(ctx, cursor, ready) })
	topicsReady := false
	retry := &backoff.Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}
	for {
		var b batch
		select {
		case <-ctx.Done():
			return
		case b = <-ready:
		}
		for {
			if !topicsReady {
				if err := r.ensureTopics(ctx); err != nil {
					r.fail(err, "kafka unreachable or topics missing; clicks wait in the outbox")
					if !backoff.Sleep(ctx, retry.Next()) {
						return
					}
					continue
				}
				topicsReady = true
			}
			start := time.Now()
			shrinks := r.p.shrinks.Load()
			err := r.produce(ctx, &b)
			produceSeconds.Observe(time.Since(start).Seconds())
			b.collectRefused()
			if r.p.shrinks.Load() != shrinks {
				r.log.Warn("kafka refused a request as too large; sending smaller ones (raise the topic's max.message.bytes)",
					"clicks_request_bytes", r.p.limit(r.cfg.ClicksTopic), "conversions_request_bytes", r.p.limit(r.cfg.ConversionsTopic))
			}
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			errorsTotal.Inc()
			if topicGone(err) {
				// Created again, perhaps with other partitions: split afresh what the
				// broker has not acknowledged.
				topicsReady = false
				b.resplit()
			}
			r.fail(err, "kafka write failed; retrying the same events")
			if !backoff.Sleep(ctx, retry.Next()) {
				return
			}
		}
		retry.Reset()
		// The cursor moves only now that every message of the batch was acknowledged, or
		// refused for good and kept as a dead letter.
		if !r.deadLetter(ctx, b.refused) {
			return
		}
		for {
			err := r.db.SetCursor(Consumer, b.next)
			if err == nil {
				break
			}
			r.log.Error("cannot store the relay cursor", "err", err)
			if !backoff.Sleep(ctx, time.Second) {
				return
			}
		}
		r.setCursor(b.next)
		batches.Inc()
		messagesTotal.Add(float64(b.total - len(b.refused)))
		lastSuccess.SetToCurrentTime()
		if st, _, _ := r.Status(); st != "ok" {
			r.log.Info("kafka writes succeed", "cursor", b.next)
		}
		r.setState("ok", nil)
	}
}

// prepare reads and encodes batches ahead of the writer.
func (r *Relay) prepare(ctx context.Context, cursor uint64, out chan<- batch) {
	for ctx.Err() == nil {
		changed := r.db.OutboxChanged()
		evs, err := r.db.ReadEvents(cursor, r.cfg.BatchSize)
		if err != nil {
			r.log.Error("cannot read the outbox", "err", err)
			backoff.Sleep(ctx, time.Second)
			continue
		}
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				// Let a few more commits land so batches are not one click each.
				backoff.Sleep(ctx, r.cfg.Linger)
			case <-time.After(time.Second):
			}
			continue
		}
		msgs, seqs := r.messages(evs)
		cursor = evs[len(evs)-1].Seq + 1
		select {
		case out <- batch{msgs: msgs, seqs: seqs, next: cursor, total: len(msgs)}:
		case <-ctx.Done():
			return
		}
		if len(evs) < r.cfg.BatchSize {
			// Caught up: let a few more commits land, or each produce round trip would
			// carry the few clicks of the last one.
			backoff.Sleep(ctx, r.cfg.Linger)
		}
	}
}

// produce writes what of b the broker has not acknowledged yet.
func (r *Relay) produce(ctx context.Context, b *batch) error {
	if b.parts == nil {
		parts, err := r.p.assign(ctx, b.msgs)
		if err != nil {
			return err
		}
		b.parts = parts
	}
	return r.p.write(ctx, b.parts)
}

func (r *Relay) fail(err error, msg string) {
	st, last, _ := r.Status()
	if st != "down" || last != err.Error() {
		r.log.Warn(msg, "err", err, "brokers", r.cfg.Brokers)
	}
	r.setState("down", err)
}

func (r *Relay) setCursor(c uint64) {
	r.mu.Lock()
	r.cursor = c
	r.mu.Unlock()
}

// messages encodes events as Kafka messages: JSON value, key = visitor ID so one
// visitor's events stay in order on one partition, headers naming type and version.
// All values share one buffer per batch.
func (r *Relay) messages(evs []storage.Event) ([]kafka.Message, []uint64) {
	msgs := make([]kafka.Message, 0, len(evs))
	seqs := make([]uint64, 0, len(evs))
	version := []byte(fmt.Sprint(events.SchemaVersion))
	buf := make([]byte, 0, len(evs)*700)
	var ends []int
	for _, e := range evs {
		if e.Record == nil {
			r.log.Error("outbox event without its record; skipped", "seq", e.Seq)
			continue
		}
		switch e.Kind {
		case storage.EventClick:
			c, err := storage.DecodeClick(e.Record)
			if err != nil {
				r.log.Error("undecodable click; skipped", "seq", e.Seq, "err", err)
				continue
			}
			u, err := r.cfg.Users.Click(r.db, c)
			if err != nil {
				r.log.Warn("click published without its identifiers", "seq", e.Seq, "err", err)
			}
			buf = events.AppendClickJSON(buf, c, u)
			ends = append(ends, len(buf))
			seqs = append(seqs, e.Seq)
			msgs = append(msgs, r.message(events.TypeClick, c.VisitorID, c.Time, version))
		case storage.EventConversion:
			c, err := storage.DecodeConversion(e.Record)
			if err != nil {
				r.log.Error("undecodable conversion; skipped", "seq", e.Seq, "err", err)
				continue
			}
			ev := events.FromConversion(c)
			if ev.User, err = r.cfg.Users.Conversion(e); err != nil {
				r.log.Warn("conversion published without its identifiers", "seq", e.Seq, "err", err)
			}
			v, err := json.Marshal(ev)
			if err != nil {
				r.log.Error("unencodable conversion; skipped", "seq", e.Seq, "err", err)
				continue
			}
			buf = append(buf, v...)
			ends = append(ends, len(buf))
			seqs = append(seqs, e.Seq)
			// A status change is its own event, stamped when it happened: the purchase's
			// time, weeks before a refund, would fall outside a topic's timestamp window.
			at := c.ReceivedAt
			if !c.StatusChangedAt.IsZero() {
				at = c.StatusChangedAt
			}
			msgs = append(msgs, r.message(events.TypeConversion, eventKey(c.VisitorID, c.ID), at, version))
		}
	}
	start := 0
	for i := range msgs {
		msgs[i].Value = buf[start:ends[i]:ends[i]]
		start = ends[i]
	}
	return msgs, seqs
}

// message is an event's message without its value: the topic of its type (click or
// conversion), its key, and headers naming the type and schema version.
func (r *Relay) message(typ, key string, t time.Time, version []byte) kafka.Message {
	topic := r.cfg.ClicksTopic
	if typ == events.TypeConversion {
		topic = r.cfg.ConversionsTopic
	}
	return kafka.Message{Topic: topic, Key: []byte(key), Time: t, Headers: []kafka.Header{
		{Key: "event_type", Value: []byte(typ)},
		{Key: "schema_version", Value: version},
	}}
}

// eventKey is an event's message key: its visitor, so one visitor's events stay in order
// on one partition, or for a conversion without one, the conversion.
func eventKey(visitor, conversion string) string {
	if visitor == "" {
		return conversion
	}
	return visitor
}

// ensureTopics creates the topics when they are missing.
func (r *Relay) ensureTopics(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(r.cfg.Brokers...), Transport: r.cfg.Transport, Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{r.cfg.ClicksTopic, r.cfg.ConversionsTopic}})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	var missing []kafka.TopicConfig
	for _, t := range md.Topics {
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			missing = append(missing, kafka.TopicConfig{Topic: t.Name, NumPartitions: r.cfg.Partitions, ReplicationFactor: r.cfg.ReplicationFactor})
		} else if t.Error != nil {
			return fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: missing})
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, e := range res.Errors {
		if e != nil && !errors.Is(e, kafka.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", name, e)
		}
		r.log.Info("created topic", "topic", name, "partitions", r.cfg.Partitions)
	}
	return nil
}

// watch keeps the backlog metrics current and raises the backlog alert.
func (r *Relay) watch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	alerted := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		cursor := r.cursor
		r.mu.Unlock()
		head := r.db.OutboxHead()
		backlog := uint64(0)
		if head > cursor {
			backlog = head - cursor
		}
		backlogEvents.Set(float64(backlog))
		age := 0.0
		if backlog > 0 {
			r.db.ScanOutbox(cursor, func(e storage.OutboxEntry) bool {
				age = time.Since(ids.ClickID(e.Ref).Time()).Seconds()
				return false
			})
		}
		oldestSeconds.Set(age)
		over := backlog > r.cfg.MaxBacklog
		if over {
			backlogOver.Set(1)
			if !alerted {
				r.log.Error("outbox backlog over its ceiling; nothing is dropped, but Kafka is not keeping up", "backlog", backlog, "ceiling", r.cfg.MaxBacklog)
			}
		} else {
			backlogOver.Set(0)
		}
		alerted = over
	}
}
