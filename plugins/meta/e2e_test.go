package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/clickgate/clickgate/proxy/server/servertest"
)

// Through the real host: a proxy with a plugins file runs the built binary, a phone
// taps a link, the merchant posts the attributed purchase with the buyer's email and
// phone, and both reach the Conversions API in its documented shape.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and runs a proxy")
	}
	bin := buildPlugin(t)
	api := newGraphAPI(t, time.Time{}, nil)
	// The token reaches the plugin only through the host's ${VAR} expansion.
	t.Setenv("CLICKGATE_TEST_META_TOKEN", accessToken)
	plugins, _ := json.Marshal(map[string]any{"plugins": []map[string]any{{
		"name": "meta", "path": bin, "linger": "10ms",
		"config": map[string]any{"pixel_id": pixelID, "access_token": "${CLICKGATE_TEST_META_TOKEN}", "base_url": api.URL},
	}}})
	pf := filepath.Join(t.TempDir(), "plugins.json")
	if err := os.WriteFile(pf, plugins, 0o600); err != nil {
		t.Fatal(err)
	}
	const ingest = "ingest-token-meta-0123456789"
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_PLUGINS_FILE="+pf, "CLICKGATE_INGEST_TOKENS="+ingest)
	g.MustCreate(map[string]any{"slug": "spring", "destination": "https://shop.example.com/spring",
		"utm": map[string]any{"medium": "promotional", "campaign": "spring_sale"}})

	resp := g.Tap("GET", "/spring", map[string]string{"User-Agent": servertest.Android})
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("tap: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	clickID := loc.Query().Get("cgid")
	order := fmt.Sprintf("order-%d", time.Now().UnixNano())
	body, _ := json.Marshal(map[string]any{"event_id": order, "type": "purchase", "value": 49.9, "currency": "USD", "click_id": clickID,
		"user": map[string]any{"email": " Jane.Doe@Gmail.com ", "phone": "+1 (415) 555-0123"}})
	req, _ := http.NewRequest("POST", g.Pub+"/v1/conversions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ingest)
	req.Header.Set("Content-Type", "application/json")
	cresp, err := http.DefaultClient.Do(req)
	if err != nil || cresp.StatusCode != http.StatusOK {
		t.Fatalf("conversion: %v %v", err, cresp)
	}
	cresp.Body.Close()

	var gotClick, gotPurchase bool
	deadline := time.Now().Add(20 * time.Second)
	for !(gotClick && gotPurchase) {
		if time.Now().After(deadline) {
			t.Fatalf("click %v, purchase %v reached Meta; requests: %+v", gotClick, gotPurchase, api.Requests())
		}
		time.Sleep(50 * time.Millisecond)
		for _, r := range api.Requests() {
			for _, e := range r.Data {
				switch {
				case e.EventName == "SMSLinkClick" && e.EventID == clickID:
					gotClick = e.ActionSource == "website" && e.UserData.UserAgent == servertest.Android && e.UserData.IP != "" &&
						len(e.UserData.ExternalID) == 1 && e.CustomData["utm_campaign"] == "spring_sale"
					if !gotClick {
						t.Fatalf("the click arrived without its user agent, IP, visitor or campaign: %+v", e)
					}
				case e.EventName == "Purchase" && e.CustomData["order_id"] == order:
					gotPurchase = e.EventID == order && e.CustomData["click_id"] == clickID && e.CustomData["value"] == 49.9 &&
						e.CustomData["currency"] == "USD" && e.ActionSource == "other" &&
						reflect.DeepEqual(e.UserData.Email, []string{hashJane}) && reflect.DeepEqual(e.UserData.Phone, []string{hashPhone})
					if !gotPurchase {
						t.Fatalf("the purchase arrived without its attribution or hashed identifiers: %+v", e)
					}
				}
			}
		}
	}
}
