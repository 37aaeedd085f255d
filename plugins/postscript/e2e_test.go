package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/server/servertest"
)

// TestEndToEnd runs the built plugin under a real clickgate: a tap on a link that
// carries the Postscript subscriber ID as its customer ID reaches Postscript as a
// custom event, and a purchase posted with the click ID and the buyer's email and phone
// reaches it as an attributed conversion.
func TestEndToEnd(t *testing.T) {
	bin := pluginBinary(t)
	api := newPostscriptAPI(t, nil)
	// The key comes from clickgate's environment through ${VAR}, as in production.
	t.Setenv("POSTSCRIPT_TEST_API_KEY", apiKey)
	plugins, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
		"name": "postscript", "path": bin, "linger": "10ms",
		"config": map[string]any{"api_key": "${POSTSCRIPT_TEST_API_KEY}", "base_url": api.URL, "customer_id_is_subscriber_id": true},
	}}})
	dir := t.TempDir()
	pf := filepath.Join(dir, "plugins.json")
	if err := os.WriteFile(pf, plugins, 0o600); err != nil {
		t.Fatal(err)
	}
	const ingest = "ingest-token-0123456789abcdef"
	g := servertest.Start(t, filepath.Join(dir, "data"), "CLICKGATE_PLUGINS_FILE="+pf, "CLICKGATE_INGEST_TOKENS="+ingest)
	g.MustCreate(map[string]any{"slug": "bf26", "destination": "https://shop.example.com/sale",
		"utm": map[string]any{"medium": "promotional", "campaign": "black_friday"}, "identity_params": map[string]any{"sid": "customer_id"}})

	resp := g.Tap("GET", "/bf26?sid=s_8f3k2m9q", nil) // an iPhone: a person, not a bot
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("tap: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	clickID := loc.Query().Get("cgid")
	if clickID == "" {
		t.Fatalf("no cgid in %s", loc)
	}

	body, _ := json.Marshal(map[string]any{"event_id": "ord-9001", "type": "purchase", "value": 129.5, "currency": "USD",
		"click_id": clickID, "user": map[string]any{"email": " Jane@Example.com", "phone": "+1 415 555 0100"}})
	req, _ := http.NewRequest("POST", g.Pub+"/v1/conversions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ingest)
	req.Header.Set("Content-Type", "application/json")
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	if cresp.StatusCode/100 != 2 || !bytes.Contains(answer, []byte(clickID)) {
		t.Fatalf("conversion: %d %s, want it attributed to %s", cresp.StatusCode, answer, clickID)
	}

	deadline := time.Now().Add(20 * time.Second)
	var got map[string]apiEvent
	for {
		got = api.byID()
		if _, ok := got["ord-9001"]; ok && len(got) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postscript received %d events: %+v", len(got), got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c, ok := got[clickID]
	if !ok {
		t.Fatalf("no click event with external_id %s: %+v", clickID, got)
	}
	if c.Type != "sms_link_clicked" || c.SubscriberID != "s_8f3k2m9q" || c.Phone != "" || c.Email != "" ||
		c.Properties["click_id"] != clickID || c.Properties["utm_campaign"] != "black_friday" || c.Properties["utm_source"] != "sms" {
		t.Errorf("click event %+v", c)
	}

	o := got["ord-9001"]
	if o.Type != "sms_conversion" || o.Properties["value"] != 129.5 || o.Properties["currency"] != "USD" || o.Properties["conversion_type"] != "purchase" {
		t.Errorf("conversion event %+v", o)
	}
	if o.Email != "jane@example.com" || o.Phone != "+14155550100" {
		t.Errorf("conversion identifiers %q %q, want the sender's user, normalised", o.Email, o.Phone)
	}
	if o.Properties["click_id"] != clickID || o.Properties["campaign"] != "black_friday" || o.Properties["attributed"] != true || o.Properties["order_id"] != "ord-9001" {
		t.Errorf("conversion properties %v, want its attribution", o.Properties)
	}
}
