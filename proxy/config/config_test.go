package config

import (
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := LoadFrom(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.AdminListen != "127.0.0.1:8081" || c.DataDir != "./data" ||
		c.ClickParam != "cgid" || c.PublicURL != "http://localhost:8080" || c.NodeID == "" || len(c.KafkaBrokers) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

// The attribution windows and the dedupe horizon reach the configuration, defaults and
// set.
func TestAttributionAndDedupeSettings(t *testing.T) {
	c, err := LoadFrom(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Windows.Default != 7*24*time.Hour || len(c.Windows.Rules) != 0 || c.Horizon != 30*24*time.Hour {
		t.Fatalf("defaults: window %s %v, horizon %s", c.Windows.Default, c.Windows.Rules, c.Horizon)
	}
	c, err = LoadFrom([]string{"CLICKGATE_ATTRIBUTION_WINDOW=3d", "CLICKGATE_ATTRIBUTION_WINDOWS=purchase=48h,promo/*=14d", "CLICKGATE_DEDUPE_HORIZON=90d"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Windows.Default != 72*time.Hour || c.Windows.For("promo", "lead") != 14*24*time.Hour || c.Windows.For("x", "purchase") != 48*time.Hour || c.Horizon != 90*24*time.Hour {
		t.Fatalf("set: window %s %v, horizon %s", c.Windows.Default, c.Windows.Rules, c.Horizon)
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	cases := []struct{ env, want string }{
		{"CLICKGATE_LISTEN=8080", "CLICKGATE_LISTEN:"},
		{"CLICKGATE_ADMIN_LISTEN=:8080", "CLICKGATE_ADMIN_LISTEN:"},
		{"CLICKGATE_ADMIN_TOKEN=short", "CLICKGATE_ADMIN_TOKEN:"},
		{"CLICKGATE_INGEST_TOKENS=ok-ok-ok-ok-ok-ok-ok,x", "CLICKGATE_INGEST_TOKENS:"},
		{"CLICKGATE_KAFKA_BROKERS=localhost", "CLICKGATE_KAFKA_BROKERS:"},
		{"CLICKGATE_CLICK_PARAM=a b", "CLICKGATE_CLICK_PARAM:"},
		{"CLICKGATE_CLICK_PARAM=utm_x", "CLICKGATE_CLICK_PARAM:"},
		{"CLICKGATE_COOKIE_DOMAIN=/x", "CLICKGATE_COOKIE_DOMAIN:"},
		{"CLICKGATE_EVENT_USER_DATA=plain", "CLICKGATE_EVENT_USER_DATA:"},
		{"CLICKGATE_NODE_ID=a b", "CLICKGATE_NODE_ID:"},
		{"CLICKGATE_PUBLIC_URL=ftp://x", "CLICKGATE_PUBLIC_URL:"},
		{"CLICKGATE_DEFAULT_REGION=ZZ", "CLICKGATE_DEFAULT_REGION:"},
		{"CLICKGATE_MAX_HEADER_BYTES=12", "CLICKGATE_MAX_HEADER_BYTES:"},
		{"CLICKGATE_MAX_HEADER_BYTES=lots", "CLICKGATE_MAX_HEADER_BYTES:"},
		{"CLICKGATE_SHUTDOWN_TIMEOUT=soon", "CLICKGATE_SHUTDOWN_TIMEOUT:"},
		{"CLICKGATE_UTM_STRICT=maybe", "CLICKGATE_UTM_STRICT:"},
		{"CLICKGATE_LOG_LEVEL=loud", "CLICKGATE_LOG_LEVEL:"},
		{"CLICKGATE_LOG_FORMAT=xml", "CLICKGATE_LOG_FORMAT:"},
		{"CLICKGATE_ATTRIBUTION_WINDOW=week", "CLICKGATE_ATTRIBUTION_WINDOW:"},
		{"CLICKGATE_ATTRIBUTION_WINDOW=-1d", "CLICKGATE_ATTRIBUTION_WINDOW:"},
		{"CLICKGATE_ATTRIBUTION_WINDOWS=purchase", "CLICKGATE_ATTRIBUTION_WINDOWS:"},
		{"CLICKGATE_ATTRIBUTION_WINDOWS=purchase=1h30d", "CLICKGATE_ATTRIBUTION_WINDOWS:"},
		{"CLICKGATE_DEDUPE_HORIZON=30m", "CLICKGATE_DEDUPE_HORIZON:"},
		{"CLICKGATE_DEDUPE_HORIZON=forever", "CLICKGATE_DEDUPE_HORIZON:"},
	}
	for _, c := range cases {
		_, err := LoadFrom([]string{c.env})
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line starting %q", c.env, err, c.want)
		}
	}
}
