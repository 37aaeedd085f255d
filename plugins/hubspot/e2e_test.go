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

// Through the real host: a tap on a per-recipient link and an attributed conversion
// with an email and a phone reach HubSpot as occurrences, after the contact's upsert.
func TestEndToEnd(t *testing.T) {
	bin := buildPlugin(t)
	api := newHubSpotAPI(t, nil)
	api.matching = "customer_id"
	t.Setenv("CLICKGATE_TEST_HUBSPOT_TOKEN", token)
	const ingest = "ingest-token-0123456789abcdef"
	dir := t.TempDir()
	plugins, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
		"name": "hubspot", "path": bin, "linger": "10ms",
		"config": map[string]any{
			"access_token": "${CLICKGATE_TEST_HUBSPOT_TOKEN}", "base_url": api.URL,
			"click_event": clickEvent, "conversion_event": conversionEvent,
			"click_properties":   map[string]string{"customer_id": "user.customer_id", "click_id": "click_id", "utm_campaign": "utm.campaign"},
			"matching_property":  "customer_id",
			"upsert_contacts":    true,
			"contact_properties": map[string]string{"phone": "user.phone", "last_sms_campaign": "attribution.campaign"},
		},
	}}})
	pf := filepath.Join(dir, "plugins.json")
	if err := os.WriteFile(pf, plugins, 0o600); err != nil {
		t.Fatal(err)
	}
	g := servertest.Start(t, filepath.Join(dir, "data"), "CLICKGATE_PLUGINS_FILE="+pf, "CLICKGATE_INGEST_TOKENS="+ingest)
	g.MustCreate(map[string]any{"slug": "hs", "destination": "https://shop.example.com/spring",
		"utm": map[string]any{"medium": "promotional", "campaign": "spring_sale"}, "identity_params": map[string]any{"rid": "customer_id"}})

	resp := g.Tap("GET", "/hs?rid=cust-77", nil) // an iPhone's User-Agent: a person, not a bot
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("cgid") == "" {
		t.Fatalf("tap: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	clickID := loc.Query().Get("cgid")

	body, _ := json.Marshal(map[string]any{"event_id": "order-e2e-1", "type": "purchase", "value": 49.9, "currency": "EUR",
		"click_id": clickID, "user": map[string]any{"email": " Jane.Doe@Example.com ", "phone": "+1 (415) 555-0123"}})
	req, _ := http.NewRequest("POST", g.Pub+"/v1/conversions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ingest)
	req.Header.Set("Content-Type", "application/json")
	cresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(cresp.Body)
	cresp.Body.Close()
	var out struct {
		Attribution *struct {
			ClickID string `json:"click_id"`
		} `json:"attribution"`
	}
	if json.Unmarshal(answer, &out) != nil || out.Attribution == nil || out.Attribution.ClickID != clickID {
		t.Fatalf("conversion: %d %s", cresp.StatusCode, answer)
	}

	var clickOcc, convOcc *apiEvent
	var contact *apiContact
	for deadline := time.Now().Add(20 * time.Second); clickOcc == nil || convOcc == nil || contact == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("HubSpot got %+v", api.Requests(""))
		}
		for _, e := range api.Events() {
			switch e.EventName {
			case clickEvent:
				clickOcc = &e
			case conversionEvent:
				convOcc = &e
			}
		}
		for _, r := range api.Requests("contacts") {
			contact = &r.Contacts[0]
		}
	}
	if clickOcc.Email != "" || clickOcc.Properties["customer_id"] != "cust-77" || clickOcc.Properties["click_id"] != clickID ||
		clickOcc.Properties["utm_campaign"] != "spring_sale" || clickOcc.UUID != eventUUID(clickID) {
		t.Errorf("click occurrence %+v", clickOcc)
	}
	if convOcc.Email != "jane.doe@example.com" || convOcc.Properties["click_id"] != clickID || convOcc.Properties["value"] != "49.9" ||
		convOcc.Properties["sms_campaign"] != "spring_sale" || convOcc.UUID != eventUUID("order-e2e-1") {
		t.Errorf("conversion occurrence %+v", convOcc)
	}
	if contact.ID != "jane.doe@example.com" || contact.Properties["phone"] != "+14155550123" || contact.Properties["last_sms_campaign"] != "spring_sale" {
		t.Errorf("contact upsert %+v", contact)
	}
}
