package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk/sdktest"
)

// The plugin and dead-letter commands over a running proxy with the webhook forwarder.
func TestDeadLetterCommands(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/webhook").CombinedOutput(); err != nil {
		t.Fatalf("build webhook: %v\n%s", err, out)
	}
	var refuse atomic.Bool
	refuse.Store(true)
	rec := sdktest.NewRecorder(t, func(sdktest.Request) sdktest.Reply {
		if refuse.Load() {
			return sdktest.Reply{Status: 422, Body: `{"error":"unknown campaign"}`}
		}
		return sdktest.Reply{Status: 204}
	})
	dir := t.TempDir()
	pf := filepath.Join(dir, "plugins.yaml")
	os.WriteFile(pf, []byte("plugins:\n  - name: hook\n    path: "+bin+"\n    config:\n      url: "+rec.URL+"\n      secret: 0123456789abcdef\n"), 0o600)
	pub, adm := freePort(t), freePort(t)
	p := start(t, filepath.Join(dir, "data"), pub, adm, "CLICKGATE_PLUGINS_FILE="+pf)
	p.api("POST", "/api/v1/links", `{"slug":"dl","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"dl"}}`)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", p.pub+"/dl", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Android 14) Mobile") // a person: bots are not forwarded
	if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != 302 {
		t.Fatalf("tap: %v", err)
	}
	cli := func(args ...string) string {
		c := exec.Command(binary, args...)
		c.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL="+p.adm, "CLICKGATE_ADMIN_TOKEN="+token)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("clickgate %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var list struct {
		DeadLetters []struct {
			Seq    uint64 `json:"seq"`
			Reason string `json:"reason"`
		} `json:"dead_letters"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(list.DeadLetters) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter: %s\nplugins: %s\nrecorder got %d requests; log:\n%s", cli("deadletters", "list", "hook"), cli("plugins"), len(rec.Requests()), p.log)
		}
		time.Sleep(100 * time.Millisecond)
		json.Unmarshal([]byte(cli("deadletters", "list", "hook")), &list)
	}
	if !strings.Contains(list.DeadLetters[0].Reason, "422") {
		t.Fatalf("reason %q", list.DeadLetters[0].Reason)
	}
	if out := cli("deadletters", "show", "hook", jsonNum(list.DeadLetters[0].Seq)); !strings.Contains(out, `"event"`) {
		t.Fatalf("show: %s", out)
	}
	if out := cli("plugins"); !strings.Contains(out, `"state": "running"`) {
		t.Fatalf("plugins: %s", out)
	}
	// Two more letters, purged by their numbers (with one that is not there).
	for range 2 {
		if resp, err := noRedirect.Do(req); err != nil || resp.StatusCode != 302 {
			t.Fatalf("tap: %v", err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); len(list.DeadLetters) < 3; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters, want 3", len(list.DeadLetters))
		}
		json.Unmarshal([]byte(cli("deadletters", "list", "hook")), &list)
	}
	if out := cli("deadletters", "purge", "hook", jsonNum(list.DeadLetters[1].Seq), jsonNum(list.DeadLetters[2].Seq), "999999"); !strings.Contains(out, `"purged": 2`) {
		t.Fatalf("purge by numbers: %s", out)
	}
	refuse.Store(false)
	if out := cli("deadletters", "replay", "hook"); !strings.Contains(out, `"delivered": 1`) {
		t.Fatalf("replay: %s", out)
	}
	if out := cli("deadletters", "purge", "hook"); !strings.Contains(out, `"purged": 0`) {
		t.Fatalf("purge after replay: %s", out)
	}
}

func jsonNum(n uint64) string { b, _ := json.Marshal(n); return string(b) }
