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

// Through the real host: a tap and an attributed conversion with an email and a phone
// become records, upserted on their event ID, after the plugin got an access token with
// the client credentials flow.
func TestEndToEnd(t *testing.T) {
	bin := buildPlugin(t)
	api := newSalesforceAPI(t, "Event_ID__c")
	api.expire() // no token yet: the plugin asks the token endpoint
	t.Setenv("CLICKGATE_TEST_SF_CLIENT_ID", clientID)
	t.Setenv("CLICKGATE_TEST_SF_CLIENT_SECRET", clientSecret)
	const ingest = "ingest-token-0123456789abcdef"
	dir := t.TempDir()
	plugins, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
		"name": "salesforce", "path": bin, "linger": "10ms",
		"config": map[string]any{
			"instance_url": api.URL, "object": "SMS_Conversion__c", "external_id_field": "Event_ID__c",
			"client_id": "${CLICKGATE_TEST_SF_CLIENT_ID}", "client_secret": "${CLICKGATE_TEST_SF_CLIENT_SECRET}",
			"click_fields": map[string]string{"Event_ID__c": "event_id", "Click_ID__c": "click_id", "Campaign__c": "campaign", "Occurred_At__c": "time"},
			"conversion_fields": map[string]string{"Event_ID__c": "event_id", "Click_ID__c": "attribution.click_id", "Campaign__c": "attribution.campaign",
				"Amount__c": "value", "Currency__c": "currency", "Email__c": "user.email", "Phone__c": "user.phone", "Occurred_At__c": "occurred_at"},
		},
	}}})
	pf := filepath.Join(dir, "plugins.json")
	if err := os.WriteFile(pf, plugins, 0o600); err != nil {
		t.Fatal(err)
	}
	g := servertest.Start(t, filepath.Join(dir, "data"), "CLICKGATE_PLUGINS_FILE="+pf, "CLICKGATE_INGEST_TOKENS="+ingest)
	g.MustCreate(map[string]any{"slug": "sf", "destination": "https://shop.example.com/spring",
		"utm": map[string]any{"medium": "promotional", "campaign": "spring_sale"}})

	resp := g.Tap("GET", "/sf", nil) // an iPhone's User-Agent: a person, not a bot
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("cgid") == "" {
		t.Fatalf("tap: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	clickID := loc.Query().Get("cgid")

	body, _ := json.Marshal(map[string]any{"event_id": "order-e2e-1", "type": "purchase", "value": 1249.5, "currency": "EUR",
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

	var clickRec, convRec map[string]any
	for deadline := time.Now().Add(20 * time.Second); clickRec == nil || convRec == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Salesforce got %+v", api.Writes())
		}
		stored := api.Stored()
		clickRec, convRec = stored[clickID], stored["order-e2e-1"]
	}
	if clickRec["Click_ID__c"] != clickID || clickRec["Campaign__c"] != "spring_sale" || clickRec["Occurred_At__c"] == nil {
		t.Errorf("click record %v", clickRec)
	}
	if convRec["Click_ID__c"] != clickID || convRec["Amount__c"] != json.Number("1249.5") || convRec["Currency__c"] != "EUR" ||
		convRec["Email__c"] != "jane.doe@example.com" || convRec["Phone__c"] != "+14155550123" || convRec["Campaign__c"] != "spring_sale" {
		t.Errorf("conversion record %v", convRec)
	}
	if grants := api.Grants(); len(grants) == 0 || grants[0].Get("grant_type") != "client_credentials" {
		t.Errorf("token requests %v", grants)
	}
}
