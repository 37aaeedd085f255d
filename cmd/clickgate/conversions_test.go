package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const ingestToken = "ingest-token-crash-0123456789"

// kill -9 while conversions arrive: every conversion that was answered is there after
// a restart (sending it again answers duplicate: true).
func TestKill9KeepsAnsweredConversions(t *testing.T) {
	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	p := start(t, dir, pub, adm, "CLICKGATE_INGEST_TOKENS="+ingestToken)
	post := func(base, eventID string) (map[string]any, error) {
		body := fmt.Sprintf(`{"event_id":%q,"type":"purchase","value":10,"currency":"USD"}`, eventID)
		req, _ := http.NewRequest("POST", base+"/v1/conversions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ingestToken)
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		var out map[string]any
		return out, json.NewDecoder(resp.Body).Decode(&out)
	}
	var mu sync.Mutex
	var answered []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				if out, err := post(p.pub, id); err == nil && out["duplicate"] == false {
					mu.Lock()
					answered = append(answered, id)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	close(stop)
	wg.Wait()
	if len(answered) < 100 {
		t.Fatalf("only %d conversions answered before the kill", len(answered))
	}
	p = start(t, dir, pub, adm, "CLICKGATE_INGEST_TOKENS="+ingestToken)
	lost := 0
	for _, id := range answered {
		out, err := post(p.pub, id)
		if err != nil {
			t.Fatal(err)
		}
		if out["duplicate"] != true {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d answered conversions lost across kill -9", lost, len(answered))
	}
	t.Logf("%d answered conversions, all present after kill -9", len(answered))
}

// The report and campaigns commands over a running proxy.
func TestReportCommand(t *testing.T) {
	pub, adm := freePort(t), freePort(t)
	p := start(t, t.TempDir(), pub, adm, "CLICKGATE_INGEST_TOKENS="+ingestToken)
	p.api("POST", "/api/v1/links", `{"slug":"r","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"winter_sale"}}`)
	req, _ := http.NewRequest("GET", p.pub+"/r", nil)
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone) Mobile")
	req.Header.Set("Cookie", "cg_vid=0"+strings.Repeat("4", 25))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if resp, err := noFollow.Do(req); err != nil || resp.StatusCode != 302 {
		t.Fatalf("tap: %v", err)
	}
	creq, _ := http.NewRequest("POST", p.pub+"/v1/conversions", strings.NewReader(`{"event_id":"r1","type":"purchase","value":80,"currency":"USD","visitor_id":"0`+strings.Repeat("4", 25)+`"}`))
	creq.Header.Set("Authorization", "Bearer "+ingestToken)
	if resp, err := http.DefaultClient.Do(creq); err != nil || resp.StatusCode != 200 {
		t.Fatalf("conversion: %v", err)
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
	if out := cli("campaigns", "set", "winter_sale", `{"messages_sent": 400, "cost": 20, "currency": "USD"}`); !strings.Contains(out, `"messages_sent": 400`) {
		t.Fatalf("campaigns set: %s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := cli("report")
		if strings.Contains(out, "winter_sale") && strings.Contains(out, "80.00 USD") && strings.Contains(out, "0.2 USD") {
			// The figures (by type, first click, messages sent), then their change.
			for _, want := range []string{"purchase 1", "400", "FIRST CLICK", "change against", "USD -"} {
				if !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("report: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out := cli("report", "-format", "csv", "-group-by", "link"); !strings.HasPrefix(out, "link,human_clicks") {
		t.Fatalf("csv report: %s", out)
	}
}
