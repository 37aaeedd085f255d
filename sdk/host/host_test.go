package host

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// Plugin log lines (hclog JSON, or plain stderr text) become slog records with their
// level and fields, under the logger the host gave (which names the plugin).
func TestPluginLogsReachSlog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("plugin", "hook")
	w := &logWriter{log: log}
	w.Write([]byte(`{"@level":"warn","@message":"destination slow","@module":"plugin.webhook","latency_ms":812}` + "\n" + "plain stderr line\n"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d records: %s", len(lines), buf.String())
	}
	var rec map[string]any
	json.Unmarshal([]byte(lines[0]), &rec)
	if rec["level"] != "WARN" || rec["msg"] != "destination slow" || rec["plugin"] != "hook" || rec["latency_ms"] != 812.0 {
		t.Fatalf("record %v", rec)
	}
	json.Unmarshal([]byte(lines[1]), &rec)
	if rec["msg"] != "plain stderr line" || rec["plugin"] != "hook" {
		t.Fatalf("record %v", rec)
	}
}

func TestVerify(t *testing.T) {
	if err := verify("/nonexistent", ""); err == nil {
		t.Fatal("missing binary accepted")
	}
	if err := verify(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "not an executable") {
		t.Fatalf("directory: %v", err)
	}
}
