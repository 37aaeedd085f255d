package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/clickgate/clickgate/proxy/backoff"
	"github.com/clickgate/clickgate/proxy/events"
	"github.com/clickgate/clickgate/storage"
)

// deadLetter keeps the messages the broker refused for good, under the relay's consumer
// name, so the cursor can pass them and an operator can replay them once the topic takes
// them (max.message.bytes raised). It returns false only when ctx ends first: a dead
// letter that cannot be stored is retried, never dropped.
func (r *Relay) deadLetter(ctx context.Context, refused []refused) bool {
	for _, f := range refused {
		d := &storage.DeadLetter{
			Consumer: Consumer, Seq: f.seq, Time: f.msg.Time.UTC(), Event: json.RawMessage(f.msg.Value),
			Reason:   fmt.Sprintf("kafka refused the %d-byte event for good: %v (raise the topic's max.message.bytes, then replay)", len(f.msg.Value), f.err),
			Attempts: 1, FailedAt: time.Now().UTC(),
		}
		var doc struct {
			EventID string `json:"event_id"`
			Type    string `json:"event_type"`
		}
		if json.Unmarshal(f.msg.Value, &doc) == nil {
			d.EventID, d.Type = doc.EventID, doc.Type
		}
		for {
			err := r.db.PutDeadLetter(d)
			if err == nil {
				break
			}
			r.log.Error("cannot store a dead letter; retrying", "seq", f.seq, "err", err)
			if !backoff.Sleep(ctx, time.Second) {
				return false
			}
		}
		deadLettered.Inc()
		r.log.Error("kafka refused an event for good; kept as a dead letter", "seq", f.seq, "event_id", d.EventID,
			"topic", f.msg.Topic, "bytes", len(f.msg.Value), "err", f.err)
	}
	return true
}

// ReplayResult counts what a replay did.
type ReplayResult struct {
	Replayed  int `json:"replayed"`
	Delivered int `json:"delivered"`
	Failed    int `json:"failed"`
}

// maxReplay bounds the dead letters one replay reads.
const maxReplay = 10_000

// Replay publishes dead letters again (all of them when seqs is empty), keyed and
// headed as the relay first sent them; those the broker acknowledges are removed, the
// others stay with the new reason. A replayed event lands after events published since
// it was refused.
func (r *Relay) Replay(ctx context.Context, seqs []uint64) (ReplayResult, error) {
	var dls []*storage.DeadLetter
	if len(seqs) == 0 {
		var err error
		if dls, err = r.db.DeadLetters(Consumer, 0, maxReplay); err != nil {
			return ReplayResult{}, err
		}
	}
	for _, seq := range seqs {
		d, err := r.db.GetDeadLetter(Consumer, seq)
		if err != nil {
			return ReplayResult{}, fmt.Errorf("dead letter %d: %w", seq, err)
		}
		dls = append(dls, d)
	}
	res := ReplayResult{Replayed: len(dls)}
	version := []byte(fmt.Sprint(events.SchemaVersion))
	for _, d := range dls {
		msg, err := r.replayMessage(d, version)
		if err == nil {
			err = r.publish(ctx, msg)
		}
		if err != nil {
			res.Failed++
			d.Reason, d.Attempts, d.FailedAt = "replay: "+err.Error(), d.Attempts+1, time.Now().UTC()
			if err := r.db.PutDeadLetter(d); err != nil {
				return res, err
			}
			continue
		}
		if _, err := r.db.DeleteDeadLetters(Consumer, []uint64{d.Seq}); err != nil {
			return res, err
		}
		res.Delivered++
		messagesTotal.Inc()
	}
	return res, nil
}

// replayMessage rebuilds the message a dead letter was: the topic by its type, the key
// its visitor (or, for a conversion without one, the conversion).
func (r *Relay) replayMessage(d *storage.DeadLetter, version []byte) (kafka.Message, error) {
	var doc struct {
		VisitorID    string `json:"visitor_id"`
		ConversionID string `json:"conversion_id"`
	}
	if err := json.Unmarshal(d.Event, &doc); err != nil {
		return kafka.Message{}, fmt.Errorf("the stored event is not JSON: %w", err)
	}
	m := kafka.Message{Value: d.Event, Time: d.Time, Key: []byte(doc.VisitorID)}
	switch d.Type {
	case events.TypeClick:
		m.Topic = r.cfg.ClicksTopic
	case events.TypeConversion:
		m.Topic = r.cfg.ConversionsTopic
		if doc.VisitorID == "" {
			m.Key = []byte(doc.ConversionID)
		}
	default:
		return kafka.Message{}, fmt.Errorf("event type %q has no topic", d.Type)
	}
	m.Headers = []kafka.Header{{Key: "event_type", Value: []byte(d.Type)}, {Key: "schema_version", Value: version}}
	return m, nil
}

// publish produces one message, acknowledged by every in-sync replica.
func (r *Relay) publish(ctx context.Context, m kafka.Message) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	parts, err := r.p.assign(ctx, []kafka.Message{m})
	if err != nil {
		return err
	}
	if err := r.p.write(ctx, parts); err != nil {
		return err
	}
	for _, pb := range parts {
		for _, f := range pb.refused {
			return f.err
		}
	}
	return nil
}

// ErrNotRunning is returned by a replay when no relay is configured.
var ErrNotRunning = errors.New("the Kafka relay is not configured (CLICKGATE_KAFKA_BROKERS)")
