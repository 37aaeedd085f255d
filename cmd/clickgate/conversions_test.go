package main

import (
	"encoding/json"
	"fmt"
	"net/http"
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
