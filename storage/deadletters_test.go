package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// A walk over every dead letter sees each once, in order, a page at a time, while the
// caller deletes and rewrites the letters it is given; it stops at the caller's error or
// when its context ends.
func TestEachDeadLettersPages(t *testing.T) {
	db := openTest(t, t.TempDir())
	const n = 2*deadLetterPage + 345
	for seq := uint64(1); seq <= n; seq++ {
		for _, c := range []string{"plugin:hook", "plugin:other"} {
			if err := db.PutDeadLetter(&DeadLetter{Consumer: c, Seq: seq, EventID: fmt.Sprint("e", seq), Type: "click", Event: json.RawMessage(`{}`), Attempts: 1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var seen []uint64
	pages := 0
	err := db.EachDeadLetters(context.Background(), "plugin:hook", func(dls []*DeadLetter) error {
		pages++
		if len(dls) > deadLetterPage {
			t.Fatalf("a page of %d letters", len(dls))
		}
		for _, d := range dls {
			seen = append(seen, d.Seq)
			// The letters at a page's end (1000, 2000) are rewritten, not deleted: a walk
			// that read one again would see it twice.
			if d.Seq%2 == 1 {
				if _, err := db.DeleteDeadLetters("plugin:hook", []uint64{d.Seq}); err != nil {
					return err
				}
				continue
			}
			d.Reason, d.Attempts = "again", d.Attempts+1
			if err := db.PutDeadLetter(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || pages != 3 || len(seen) != n {
		t.Fatalf("%d letters in %d pages (%v), want %d in 3", len(seen), pages, err, n)
	}
	for i, seq := range seen {
		if seq != uint64(i+1) {
			t.Fatalf("letter %d of the walk is seq %d", i, seq)
		}
	}
	left, _ := db.DeadLetters("plugin:hook", 0, n)
	if len(left) != n/2 || left[0].Seq != 2 || left[0].Reason != "again" || left[0].Attempts != 2 {
		t.Fatalf("%d left (first %+v), want the %d even ones rewritten", len(left), left[0], n/2)
	}
	if other, _ := db.DeadLetters("plugin:other", 0, n); len(other) != n {
		t.Fatalf("another consumer's letters: %d of %d", len(other), n)
	}

	boom := errors.New("boom")
	calls := 0
	if err := db.EachDeadLetters(context.Background(), "plugin:other", func([]*DeadLetter) error { calls++; return boom }); !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("after a failing page: %v, %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	if err := db.EachDeadLetters(ctx, "plugin:other", func([]*DeadLetter) error { calls++; cancel(); return nil }); !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("after its context ended: %v, %d calls", err, calls)
	}
}

// A replay's rewrite of a letter that failed again does not bring back one purged
// meanwhile.
func TestRewriteDeadLetterKeepsPurgesPurged(t *testing.T) {
	db := openTest(t, t.TempDir())
	d := &DeadLetter{Consumer: "plugin:hook", Seq: 7, EventID: "e7", Type: "click", Event: json.RawMessage(`{}`), Attempts: 1}
	if err := db.PutDeadLetter(d); err != nil {
		t.Fatal(err)
	}
	d.Reason, d.Attempts = "again", 2
	if ok, err := db.RewriteDeadLetter(d); !ok || err != nil {
		t.Fatalf("rewrite of a letter still there: %v, %v", ok, err)
	}
	if got, _ := db.GetDeadLetter("plugin:hook", 7); got == nil || got.Reason != "again" || got.Attempts != 2 {
		t.Fatalf("rewritten letter reads %+v", got)
	}
	if n, err := db.DeleteDeadLetters("plugin:hook", nil); n != 1 || err != nil {
		t.Fatalf("purge: %d, %v", n, err)
	}
	if ok, err := db.RewriteDeadLetter(d); ok || err != nil {
		t.Fatalf("rewrite of a purged letter: %v, %v", ok, err)
	}
	if _, err := db.GetDeadLetter("plugin:hook", 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a purged letter came back: %v", err)
	}
}
