package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/clickgate/clickgate/proxy/backoff"
	"github.com/clickgate/clickgate/proxy/events"
	"github.com/clickgate/clickgate/storage"
)

// deadLetter keeps the messages the broker refused for good, under the relay's consumer
// name, so the cursor can pass them and an operator can replay them once the topic takes
// them (max.message.bytes raised, a timestamp window widened). It returns false only when ctx ends first: a dead
// letter that cannot be stored is retried, never dropped.
func (r *Relay) deadLetter(ctx context.Context, refused []refused) bool {
	if len(refused) == 0 {
		return true
	}
	for _, f := range refused {
		d := &storage.DeadLetter{
			Consumer: Consumer, Seq: f.seq, Time: f.msg.Time.UTC(), Event: json.RawMessage(f.msg.Value),
			Reason:   fmt.Sprintf("kafka refused the %d-byte event for good: %v (%s)", len(f.msg.Value), f.err, remedy(f.err)),
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
	}
	// One line a batch: a topic that refuses every event would otherwise log each.
	f := refused[0]
	r.log.Error("kafka refused events for good; kept as dead letters (clickgate deadletters list kafka)",
		"events", len(refused), "first_seq", f.seq, "topic", f.msg.Topic, "bytes", len(f.msg.Value), "err", f.err)
	return true
}

// remedy says what lets a topic take an event it refused for good.
func remedy(err error) string {
	switch {
	case tooLarge(err):
		return "raise the topic's max.message.bytes, then replay"
	case errors.Is(err, kafka.InvalidTimestamp):
		return "the event's time is outside the topic's message.timestamp.before.max.ms or message.timestamp.after.max.ms, or this host's clock is off: widen them, then replay"
	}
	return "change the topic's settings so that it takes the event, then replay"
}

// Replay publishes dead letters again (all of them when seqs is empty), keyed and
// headed as the relay first sent them; those the broker acknowledges are removed, the
// others stay with the new reason. A replayed event lands after events published since
// it was refused. Replays run one at a time, so a second one started while the first
// runs does not publish the same letters again; one whose ctx ends, while it runs or
// while it waits its turn, stops there and answers what it did, with the context's
// error.
func (r *Relay) Replay(ctx context.Context, seqs []uint64) (storage.ReplayResult, error) {
	var res storage.ReplayResult
	select {
	case r.replaying <- struct{}{}:
		defer func() { <-r.replaying }()
	case <-ctx.Done():
		return res, ctx.Err()
	}
	if len(seqs) > 0 {
		dls, err := r.db.GetDeadLetters(Consumer, seqs)
		if err != nil {
			return res, err
		}
		return res, r.replay(ctx, dls, &res)
	}
	return res, r.db.EachDeadLetters(ctx, Consumer, func(dls []*storage.DeadLetter) error {
		return r.replay(ctx, dls, &res)
	})
}

func (r *Relay) replay(ctx context.Context, dls []*storage.DeadLetter, res *storage.ReplayResult) error {
	for _, d := range dls {
		if err := ctx.Err(); err != nil {
			return err // what was done is in res; the rest keep their reasons
		}
		res.Replayed++
		msg, err := r.replayMessage(d)
		if err == nil {
			err = r.publish(ctx, msg)
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				res.Replayed--
				return cerr
			}
			res.Failed++
			d.Reason, d.Attempts, d.FailedAt = "replay: "+err.Error(), d.Attempts+1, time.Now().UTC()
			if _, err := r.db.RewriteDeadLetter(d); err != nil {
				return err
			}
			continue
		}
		// The topic took what it had refused: its limit was raised.
		r.p.resetLimit(msg.Topic)
		if _, err := r.db.DeleteDeadLetters(Consumer, []uint64{d.Seq}); err != nil {
			return err
		}
		res.Delivered++
		messagesTotal.Inc()
	}
	return nil
}

// replayMessage rebuilds the message a dead letter was, as messages made it, with the
// schema version the event carries.
func (r *Relay) replayMessage(d *storage.DeadLetter) (kafka.Message, error) {
	var doc struct {
		VisitorID     string `json:"visitor_id"`
		ConversionID  string `json:"conversion_id"`
		SchemaVersion int    `json:"schema_version"`
	}
	if err := json.Unmarshal(d.Event, &doc); err != nil {
		return kafka.Message{}, fmt.Errorf("the stored event is not JSON: %w", err)
	}
	if d.Type != events.TypeClick && d.Type != events.TypeConversion {
		return kafka.Message{}, fmt.Errorf("event type %q has no topic", d.Type)
	}
	m := r.message(d.Type, eventKey(doc.VisitorID, doc.ConversionID), d.Time, []byte(strconv.Itoa(doc.SchemaVersion)))
	m.Value = d.Event
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

// ErrNotRunning names what to set when the relay's dead letters are asked for and Kafka
// is not configured.
var ErrNotRunning = errors.New("the Kafka relay is not configured (CLICKGATE_KAFKA_BROKERS)")
