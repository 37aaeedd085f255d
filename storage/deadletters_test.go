package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// A dead letter keeps its event byte for byte (no HTML escaping: a replay must send what
// was refused, no bigger), lists in sequence order per consumer, and deletes.
func TestDeadLetters(t *testing.T) {
	db := openTest(t, t.TempDir())
	event := json.RawMessage(`{"event_id":"e1","destination":"https://shop.example.com/p?a=1&b=<2>"}`)
	for _, d := range []*DeadLetter{
		{Consumer: "kafka", Seq: 9, EventID: "e1", Type: "click", Event: event, Reason: "too large", Attempts: 1, FailedAt: time.Unix(1, 0).UTC()},
		{Consumer: "kafka", Seq: 3, EventID: "e0", Type: "click", Event: json.RawMessage(`{}`), Attempts: 1},
		{Consumer: "plugin:hook", Seq: 5, EventID: "e2", Type: "click", Event: json.RawMessage(`{}`), Attempts: 2},
	} {
		if err := db.PutDeadLetter(d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.GetDeadLetter("kafka", 9)
	if err != nil || !bytes.Equal(got.Event, event) || got.Reason != "too large" {
		t.Fatalf("got %+v (%v), event %s", got, err, got.Event)
	}
	list, err := db.DeadLetters("kafka", 0, 10)
	if err != nil || len(list) != 2 || list[0].Seq != 3 || list[1].Seq != 9 {
		t.Fatalf("listed %v, %v", list, err)
	}
	if list, _ := db.DeadLetters("kafka", 3, 10); len(list) != 1 || list[0].Seq != 9 {
		t.Fatalf("after 3: %v", list)
	}
	if n, err := db.DeleteDeadLetters("kafka", []uint64{9}); n != 1 || err != nil {
		t.Fatalf("deleted %d, %v", n, err)
	}
	if _, err := db.GetDeadLetter("kafka", 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted letter read back: %v", err)
	}
	if list, _ := db.DeadLetters("plugin:hook", 0, 10); len(list) != 1 {
		t.Fatalf("another consumer's letters: %v", list)
	}
}
