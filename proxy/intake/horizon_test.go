package intake

import (
	"fmt"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/ids"
)

// Past the dedupe horizon an event ID is forgotten, not its conversion: a refund that
// comes later still changes the purchase it names (no second conversion), while the
// same purchase sent again then counts as new, as the horizon says.
func TestRefundAfterTheDedupeHorizon(t *testing.T) {
	db, _ := runningStore(t)
	in := intakeOn(db)
	in.Horizon = time.Second
	post := func(status string) map[string]any {
		t.Helper()
		st, out := postConversions(t, in, fmt.Sprintf(`{"event_id":"order-9","type":"purchase","value":40,"currency":"USD","status":%q}`, status))
		if st != 200 {
			t.Fatalf("%s: %d %v", status, st, out)
		}
		return out
	}
	first := post("approved")
	time.Sleep(2100 * time.Millisecond) // the dedupe key, kept one second, expires
	refund := post("refunded")
	if refund["conversion_id"] != first["conversion_id"] || refund["status_changed"] != true || refund["status"] != "refunded" {
		t.Fatalf("a refund past the horizon: %v, want the purchase %v changed", refund, first["conversion_id"])
	}
	id, err := ids.ParseClickID(first["conversion_id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := db.GetConversion(id); err != nil || c.Status != "refunded" || c.Revision != 1 {
		t.Fatalf("the purchase after the refund: %+v, %v", c, err)
	}
	// The refund put the event back in the dedupe filter: sent again, it is a duplicate.
	if again := post("refunded"); again["duplicate"] != true || again["conversion_id"] != first["conversion_id"] {
		t.Fatalf("the refund sent again: %v", again)
	}
	time.Sleep(2100 * time.Millisecond)
	if again := post("approved"); again["duplicate"] != false || again["conversion_id"] == first["conversion_id"] {
		t.Fatalf("the purchase sent again past the horizon: %v, want a new conversion", again)
	}
}
