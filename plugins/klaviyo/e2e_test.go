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
// captures a customer ID reaches Klaviyo as a click, and a conversion posted with the
// click ID and the buyer's email and phone reaches it as an attributed Placed Order.
func TestEndToEnd(t *testing.T) {
	bin := pluginBinary(t)
	api := newKlaviyoAPI(t, nil)
	// The key comes from clickgate's environment through ${VAR}, as in production.
	t.Setenv("KLAVIYO_TEST_API_KEY", apiKey)
	plugins, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
		"name": "klaviyo", "path": bin, "linger": "10ms",
		"config": map[string]any{"api_key": "${KLAVIYO_TEST_API_KEY}", "base_url": api.URL},
	}}})
	dir := t.TempDir()
	pf := filepath.Join(dir, "plugins.json")
	if err := os.WriteFile(pf, plugins, 0o600); err != nil {
		t.Fatal(err)
	}
	const ingest = "ingest-token-0123456789abcdef"
	g := servertest.Start(t, filepath.Join(dir, "data"), "CLICKGATE_PLUGINS_FILE="+pf, "CLICKGATE_INGEST_TOKENS="+ingest)
	g.MustCreate(map[string]any{"slug": "bf26", "destination": "https://shop.example.com/sale",
		"utm": map[string]any{"medium": "promotional", "campaign": "black_friday"}, "identity_params": map[string]any{"rid": "customer_id"}})

	resp := g.Tap("GET", "/bf26?rid=cust-4411", nil) // an iPhone: a person, not a bot
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
			t.Fatalf("Klaviyo received %d events: %+v", len(got), got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	c, ok := got[clickID]
	if !ok {
		t.Fatalf("no click event with unique_id %s: %+v", clickID, got)
	}
	ca := c.Data.Attributes
	if c.metric() != "SMS Link Clicked" || ca.Profile.Data.Attributes.ExternalID != "cust-4411" ||
		ca.Properties["click_id"] != clickID || ca.Properties["utm_campaign"] != "black_friday" || ca.Properties["utm_source"] != "sms" {
		t.Errorf("click event %+v", ca)
	}

	o := got["ord-9001"].Data.Attributes
	p := o.Profile.Data.Attributes
	if got["ord-9001"].metric() != "Placed Order" || o.Value == nil || *o.Value != 129.5 || *o.ValueCurrency != "USD" {
		t.Errorf("conversion event %+v", o)
	}
	if p.Email != "jane@example.com" || p.PhoneNumber != "+14155550100" {
		t.Errorf("conversion profile %+v, want the sender's user, normalised", p)
	}
	if o.Properties["click_id"] != clickID || o.Properties["campaign"] != "black_friday" || o.Properties["attributed"] != true || o.Properties["order_id"] != "ord-9001" {
		t.Errorf("conversion properties %v, want its attribution", o.Properties)
	}
}

// With the operator's opt-in (CLICKGATE_EVENT_USER_DATA=all), a click that captured an
// email reaches Klaviyo under that email's profile.
func TestEndToEndClickUser(t *testing.T) {
	bin := pluginBinary(t)
	api := newKlaviyoAPI(t, nil)
	plugins, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
		"name": "klaviyo", "path": bin, "linger": "10ms", "events": []string{"click"},
		"config": map[string]any{"api_key": apiKey, "base_url": api.URL},
	}}})
	dir := t.TempDir()
	pf := filepath.Join(dir, "plugins.json")
	if err := os.WriteFile(pf, plugins, 0o600); err != nil {
		t.Fatal(err)
	}
	g := servertest.Start(t, filepath.Join(dir, "data"), "CLICKGATE_PLUGINS_FILE="+pf, "CLICKGATE_EVENT_USER_DATA=all")
	g.MustCreate(map[string]any{"slug": "vip", "destination": "https://shop.example.com/vip",
		"utm": map[string]any{"medium": "promotional", "campaign": "vip"}, "identity_params": map[string]any{"em": "email"}})
	resp := g.Tap("GET", "/vip?em=Ann.Lee@Example.com", nil)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	clickID := loc.Query().Get("cgid")
	if resp.StatusCode != http.StatusFound || clickID == "" || loc.Query().Get("em") != "" {
		t.Fatalf("tap: %d %q (the identity parameter must be stripped)", resp.StatusCode, resp.Header.Get("Location"))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, ok := api.byID()[clickID]; ok {
			if p := c.Data.Attributes.Profile.Data.Attributes; p.Email != "ann.lee@example.com" {
				t.Fatalf("click profile %+v, want the captured email", p)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the click never reached Klaviyo: %+v", api.byID())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
