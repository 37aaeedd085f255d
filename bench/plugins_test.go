package bench

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk/sdktest"
)

// BenchmarkRedirectWithSlowPlugin compares redirect throughput with a plugin whose
// destination takes 200 ms per request against no plugin, in one run: plugins read the
// outbox on their own, so a slow one must not slow redirects.
//
//	go test -run '^$' -bench RedirectWithSlowPlugin -benchtime 1x ./bench/
func BenchmarkRedirectWithSlowPlugin(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "../plugins/webhook").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	slow := sdktest.NewRecorder(b, func(sdktest.Request) sdktest.Reply {
		time.Sleep(200 * time.Millisecond)
		return sdktest.Reply{Status: 200}
	})
	raw, _ := json.Marshal(map[string]any{"plugins": []any{map[string]any{
		"name": "slow", "path": bin, "config": map[string]any{"url": slow.URL, "secret": "0123456789abcdef"},
	}}})
	pf := filepath.Join(b.TempDir(), "plugins.json")
	os.WriteFile(pf, raw, 0o600)
	for b.Loop() {
		off := redirectSaturation(b, 5*time.Second)
		on := redirectSaturation(b, 5*time.Second, "CLICKGATE_PLUGINS_FILE="+pf)
		b.ReportMetric(off.rps, "redirects/s-no-plugin")
		b.ReportMetric(on.rps, "redirects/s-slow-plugin")
		b.ReportMetric(float64(on.p99)/float64(off.p99), "p99-with/without")
		b.Logf("without plugins %.0f redirects/s (p50 %s, p99 %s); with a plugin whose destination takes 200 ms %.0f/s (p50 %s, p99 %s)",
			off.rps, off.p50, off.p99, on.rps, on.p50, on.p99)
	}
}
