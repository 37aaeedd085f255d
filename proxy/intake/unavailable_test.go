package intake

import (
	"fmt"
	"strings"
	"testing"
)

// A conversion the store cannot take is answered 503, alone or in a batch: a sender
// that retries only on an error status must not read a 2xx as stored. A store whose
// committer has stopped (as it does when the server shuts down) refuses every commit
// while it still answers reads.
func TestUnavailableStoreIsNeverA2xx(t *testing.T) {
	db, stop := runningStore(t)
	stop()
	in := intakeOn(db)
	post := func(body string) (int, map[string]any) { return postConversions(t, in, body) }
	conv := func(id string) string {
		return fmt.Sprintf(`{"event_id":%q,"type":"purchase","value":5,"currency":"USD"}`, id)
	}
	if st, out := post(conv("u1")); st != 503 {
		t.Errorf("one conversion: %d %v", st, out)
	}
	// Items refused as invalid are the sender's to fix, not a reason to send again: a
	// batch of them alone stays a 200.
	st, out := post(`{"conversions":[` + conv("u2") + `,{"event_id":"u3","type":"purchase","value":-1,"currency":"USD"}]}`)
	res, _ := out["results"].([]any)
	if st != 503 || len(res) != 2 || !strings.Contains(fmt.Sprint(res[0]), codeUnavailable) || !strings.Contains(fmt.Sprint(res[1]), "invalid_field") {
		t.Errorf("a batch with an item not stored: %d %v", st, out)
	}
	if st, out := post(`{"conversions":[{"event_id":"u4","type":"purchase","value":-1,"currency":"USD"}]}`); st != 200 {
		t.Errorf("a batch of an invalid item only: %d %v", st, out)
	}
	if got := db.OutboxHead(); got != 1 {
		t.Errorf("outbox head %d: a refused conversion was stored", got)
	}
}
