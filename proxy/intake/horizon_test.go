package intake

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/attribution"
	"github.com/clickgate/clickgate/proxy/identity"
	"github.com/clickgate/clickgate/proxy/ids"
	"github.com/clickgate/clickgate/storage"
)

// Past the dedupe horizon an event ID is forgotten, not its conversion: a refund that
// comes later still changes the purchase it names (no second conversion), while the
// same purchase sent again then counts as new, as the horizon says.
func TestRefundAfterTheDedupeHorizon(t *testing.T) {
	db, err := storage.Open(storage.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { db.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; db.Close() }()
	in := New([]string{fuzzToken})
	in.DB, in.Windows, in.IDs, in.Horizon = db, attribution.Windows{Default: 7 * 24 * time.Hour}, ids.NewClickIDs(1), time.Second
	in.Hasher, in.Region, in.Log = identity.NewHasher([]byte("test-secret")), "US", slog.New(slog.NewTextHandler(io.Discard, nil))
	post := func(status string) map[string]any {
		t.Helper()
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI("/v1/conversions")
		req.Header.Set("Authorization", "Bearer "+fuzzToken)
		req.SetBodyString(fmt.Sprintf(`{"event_id":"order-9","type":"purchase","value":40,"currency":"USD","status":%q}`, status))
		var rc fasthttp.RequestCtx
		rc.Init(&req, nil, nil)
		in.Conversions(&rc)
		var out map[string]any
		if err := json.Unmarshal(rc.Response.Body(), &out); err != nil || rc.Response.StatusCode() != 200 {
			t.Fatalf("%s: %d %s", status, rc.Response.StatusCode(), rc.Response.Body())
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
