package pluginhost_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/clickgate/clickgate/proxy/pluginhost"
	"github.com/clickgate/clickgate/proxy/server/servertest"
	"github.com/clickgate/clickgate/sdk/sdktest"
	"github.com/clickgate/clickgate/storage"
)

// Real plugin binaries, built once: the webhook forwarder and two misbehaving ones.
var bins = map[string]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clickgate-plugins")
	if err != nil {
		panic(err)
	}
	for name, pkg := range map[string]string{
		"webhook": "../../plugins/webhook", "hang": "./testdata/hang", "oldproto": "./testdata/oldproto",
	} {
		bins[name] = filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	notPlugin := filepath.Join(dir, "notplugin")
	os.WriteFile(notPlugin, []byte("#!/bin/sh\necho 'hello, I am not a plugin'\nsleep 1\n"), 0o755)
	bins["notplugin"] = notPlugin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gateWith runs clickgate with the given plugins file entries.
func gateWith(t *testing.T, plugins ...map[string]any) *servertest.Gate {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"plugins": plugins})
	path := filepath.Join(t.TempDir(), "plugins.json")
	os.WriteFile(path, raw, 0o600)
	g := servertest.Start(t, t.TempDir(), "CLICKGATE_PLUGINS_FILE="+path)
	g.MustCreate(map[string]any{"slug": "p", "destination": "https://shop.example.com/p",
		"utm": map[string]any{"medium": "promotional", "campaign": "plugins"}})
	return g
}

func webhook(url string, extra map[string]any) map[string]any {
	p := map[string]any{"name": "hook", "path": bins["webhook"], "batch_size": 200, "linger": "10ms",
		"config": map[string]any{"url": url, "secret": "0123456789abcdef0123", "max_batch": 100}}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// received collects the click IDs a recorder got, with how often each arrived.
func received(rec *sdktest.Recorder) map[string]int {
	seen := map[string]int{}
	for _, r := range rec.Requests() {
		var body struct {
			Events []struct {
				ClickID string `json:"click_id"`
			} `json:"events"`
		}
		json.Unmarshal(r.Body, &body)
		for _, e := range body.Events {
			seen[e.ClickID]++
		}
	}
	return seen
}

func tapMany(t *testing.T, g *servertest.Gate, n, workers int) []string {
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	c := &fasthttp.Client{MaxConnsPerHost: workers}
	per := n / workers
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(g.Pub + "/p")
			req.Header.SetUserAgent(servertest.Android)
			for i := 0; i < per; i++ {
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 302 {
					t.Errorf("tap: %v %d", err, resp.StatusCode())
					return
				}
				u, _ := url.Parse(string(resp.Header.Peek("Location")))
				mu.Lock()
				ids = append(ids, u.Query().Get("cgid"))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ids
}

func waitAll(t *testing.T, rec *sdktest.Recorder, ids []string, within time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		seen := received(rec)
		missing := 0
		for _, id := range ids {
			if seen[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clicks never reached the plugin's destination", missing, len(ids))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestPluginReceivesEveryClick(t *testing.T) {
	rec := sdktest.NewRecorder(t, nil)
	g := gateWith(t, webhook(rec.URL, nil))
	ids := tapMany(t, g, 10000, 25)
	seen := waitAll(t, rec, ids, time.Minute)
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d clicks, all delivered through a plugin subprocess; %d duplicates", len(ids), dups)
	// Bots are not sent unless asked for.
	g.Tap("GET", "/p", map[string]string{"User-Agent": "WhatsApp/2.23"})
	time.Sleep(300 * time.Millisecond)
	if n := len(received(rec)); n != len(ids) {
		t.Fatalf("a bot click reached a plugin without include_bots: %d events", n)
	}
}

func pluginStatus(t *testing.T, g *servertest.Gate) map[string]any {
	_, out := g.API("GET", "/api/v1/plugins", nil)
	ps := out["plugins"].([]any)
	return ps[0].(map[string]any)
}

// kill -9 of the plugin mid-stream: it is relaunched and every event arrives.
func TestPluginKilledMidStream(t *testing.T) {
	rec := sdktest.NewRecorder(t, func(sdktest.Request) sdktest.Reply {
		time.Sleep(5 * time.Millisecond) // a destination slow enough to kill mid-batch
		return sdktest.Reply{Status: 200}
	})
	g := gateWith(t, webhook(rec.URL, nil))
	done := make(chan []string)
	go func() { done <- tapMany(t, g, 4000, 16) }()
	var killed int
	for killed == 0 {
		st := pluginStatus(t, g)
		if pid, _ := st["pid"].(float64); pid > 0 && len(rec.Requests()) > 3 {
			syscall.Kill(int(pid), syscall.SIGKILL)
			killed = int(pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ids := <-done
	waitAll(t, rec, ids, time.Minute)
	if pid, _ := pluginStatus(t, g)["pid"].(float64); int(pid) == killed || pid == 0 {
		t.Fatalf("plugin not relaunched: pid %v (killed %d)", pid, killed)
	}
}

// 500, then 429 with Retry-After, then 400: retried, delayed, dead-lettered; a replay
// after the receiver recovers delivers it once.
func TestRetryDelayDeadLetterAndReplay(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	answers := []sdktest.Reply{{Status: 500, Body: "oops"}, {Status: 429, Header: map[string][]string{"Retry-After": {"1"}}}, {Status: 400, Body: `{"error":"bad event"}`}}
	rec := sdktest.NewRecorder(t, func(sdktest.Request) sdktest.Reply {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) <= len(answers) {
			return answers[len(times)-1]
		}
		return sdktest.Reply{Status: 200}
	})
	g := gateWith(t, webhook(rec.URL, nil))
	loc := g.Tap("GET", "/p", nil).Header.Get("Location")
	u, _ := url.Parse(loc)
	id := u.Query().Get("cgid")
	var dls []any
	deadline := time.Now().Add(30 * time.Second)
	for len(dls) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the event was never dead-lettered")
		}
		time.Sleep(100 * time.Millisecond)
		_, out := g.API("GET", "/api/v1/deadletters?plugin=hook", nil)
		dls, _ = out["dead_letters"].([]any)
	}
	d := dls[0].(map[string]any)
	if d["event_id"] != id || !strings.Contains(d["reason"].(string), "400") || d["attempts"].(float64) != 3 {
		t.Fatalf("dead letter %v", d)
	}
	mu.Lock()
	if len(times) != 3 || times[2].Sub(times[1]) < time.Second {
		t.Fatalf("requests at %v: Retry-After not honoured", times)
	}
	mu.Unlock()
	st, res := g.API("POST", "/api/v1/deadletters/hook/replay", nil)
	if st != 200 || res["delivered"].(float64) != 1 {
		t.Fatalf("replay: %d %v", st, res)
	}
	// Three refused attempts, then the replay, which the recovered receiver accepts.
	if n := received(rec)[id]; n != 4 {
		t.Fatalf("event sent %d times, want 3 refused + 1 replayed", n)
	}
	_, out := g.API("GET", "/api/v1/deadletters?plugin=hook", nil)
	if left := out["dead_letters"].([]any); len(left) != 0 {
		t.Fatalf("dead letters after a successful replay: %v", left)
	}
	if st, _ := g.API("GET", "/api/v1/deadletters?plugin=nope", nil); st != 404 {
		t.Errorf("unknown plugin: %d", st)
	}
}

// Broken plugins are reported clearly and never stop redirects.
func TestBrokenPluginsReportedProxyServes(t *testing.T) {
	rec := sdktest.NewRecorder(t, nil)
	cases := []struct {
		name string
		spec map[string]any
		want string
	}{
		{"not a plugin", map[string]any{"name": "x", "path": bins["notplugin"]}, "not a clickgate forwarder plugin"},
		{"wrong checksum", map[string]any{"name": "x", "path": bins["webhook"], "sha256": strings.Repeat("0", 64),
			"config": map[string]any{"url": rec.URL, "secret": "0123456789abcdef"}}, "does not match its sha256"},
		{"wrong protocol", map[string]any{"name": "x", "path": bins["oldproto"]}, "protocol version"},
		{"missing binary", map[string]any{"name": "x", "path": "/nonexistent/plugin"}, "no such file"},
		{"bad config", map[string]any{"name": "x", "path": bins["webhook"], "config": map[string]any{"url": "ftp://x"}}, "config.url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := gateWith(t, c.spec)
			deadline := time.Now().Add(20 * time.Second)
			for {
				st := pluginStatus(t, g)
				if st["state"] == "failed" && strings.Contains(fmt.Sprint(st["error"]), c.want) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("status %v, want failed with %q", st, c.want)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if r := g.Tap("GET", "/p", nil); r.StatusCode != 302 {
				t.Fatalf("redirect with a broken plugin: %d", r.StatusCode)
			}
		})
	}
}

// A hung plugin is killed at its call deadline and relaunched; after max_attempts the
// events are dead-lettered, and redirects never wait.
func TestHungPluginKilledAndDeadLettered(t *testing.T) {
	g := gateWith(t, map[string]any{"name": "x", "path": bins["hang"], "timeout": "300ms", "max_attempts": 2})
	start := time.Now()
	if r := g.Tap("GET", "/p", nil); r.StatusCode != 302 || time.Since(start) > 2*time.Second {
		t.Fatalf("redirect with a hung plugin: %d in %s", r.StatusCode, time.Since(start))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, out := g.API("GET", "/api/v1/deadletters?plugin=x", nil)
		if dls, _ := out["dead_letters"].([]any); len(dls) == 1 {
			if !strings.Contains(dls[0].(map[string]any)["reason"].(string), "hung") {
				t.Fatalf("dead letter %v", dls[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hung plugin's event never dead-lettered; status %v", pluginStatus(t, g))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// putLetters stores n dead letters of plugin x, seq 1 to n with event IDs from id, and
// returns a count of the letters left.
func putLetters(t *testing.T, g *servertest.Gate, n int, id func(seq uint64) string) (left func() int) {
	t.Helper()
	for seq := uint64(1); seq <= uint64(n); seq++ {
		e := id(seq)
		if err := g.S.DB.PutDeadLetter(&storage.DeadLetter{Consumer: pluginhost.Consumer("x"), Seq: seq, EventID: e, Type: "click",
			Time: time.Now().UTC(), Event: json.RawMessage(`{"event_id":"` + e + `"}`), Reason: "down", Attempts: 3}); err != nil {
			t.Fatal(err)
		}
	}
	return func() int {
		dls, err := g.S.DB.DeadLetters(pluginhost.Consumer("x"), 0, n)
		if err != nil {
			t.Fatal(err)
		}
		return len(dls)
	}
}

// A replay of every dead letter that fails midway answers 503 with what it did before
// (the letters it delivered are gone), and a second replay delivers the rest, some two
// thousand letters. (That a replay reads them a page at a time is storage's test.)
func TestReplayReportsHowFarItGot(t *testing.T) {
	g := gateWith(t, map[string]any{"name": "x", "path": bins["hang"], "timeout": "500ms", "batch_size": 100,
		"config": map[string]any{"hang_on": "stuck-"}})
	const n = 3400
	left := putLetters(t, g, n, func(seq uint64) string {
		if seq == 1500 {
			return "stuck-1500"
		}
		return fmt.Sprint("ok-", seq)
	})
	// Batches of 100: the fifteenth (1401–1500) hangs, after 1,400 delivered.
	st, out := g.API("POST", "/api/v1/deadletters/x/replay", nil)
	msg, _ := out["error"].(map[string]any)["message"].(string)
	if st != 503 || out["replayed"] != 1400.0 || out["delivered"] != 1400.0 || out["failed"] != 0.0 ||
		!strings.Contains(msg, "1400 replayed, 1400 delivered") {
		t.Fatalf("replay through a hung call: %d %v", st, out)
	}
	if l := left(); l != n-1400 {
		t.Fatalf("%d letters left, want %d", l, n-1400)
	}
	if st, _ := g.API("DELETE", "/api/v1/deadletters/x/1500", nil); st != 200 {
		t.Fatalf("purge: %d", st)
	}
	// The plugin was relaunched after the hung call; replays wait for it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, out = g.API("POST", "/api/v1/deadletters/x/replay", nil)
		if st == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if want := float64(n - 1400 - 1); st != 200 || out["replayed"] != want || out["delivered"] != want {
		t.Fatalf("second replay: %d %v, want %v delivered", st, out, want)
	}
	if l := left(); l != 0 {
		t.Fatalf("%d letters left after every one was delivered", l)
	}
}

// A dead letter the plugin does not try in a replay is left as it was, its reason and
// attempts kept, and is not counted as replayed.
func TestReplayLeavesWhatWasNotSent(t *testing.T) {
	g := gateWith(t, map[string]any{"name": "x", "path": bins["hang"], "config": map[string]any{"not_sent_on": "later-"}})
	left := putLetters(t, g, 15, func(seq uint64) string {
		if seq > 10 {
			return fmt.Sprint("later-", seq)
		}
		return fmt.Sprint("ok-", seq)
	})
	st, out := g.API("POST", "/api/v1/deadletters/x/replay", nil)
	if st != 200 || out["replayed"] != 10.0 || out["delivered"] != 10.0 || out["failed"] != 0.0 {
		t.Fatalf("replay: %d %v", st, out)
	}
	if l := left(); l != 5 {
		t.Fatalf("%d letters left, want the 5 not sent", l)
	}
	dls, err := g.S.DB.DeadLetters(pluginhost.Consumer("x"), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dls {
		if d.Reason != "down" || d.Attempts != 3 {
			t.Fatalf("letter %d after a replay that did not send it: %q, %d attempts", d.Seq, d.Reason, d.Attempts)
		}
	}
}

// A replay whose request ends stops after the call in flight: the letters it delivered
// are gone, the rest stay, and the plugin is free for the next replay.
func TestReplayStopsWhenItsRequestEnds(t *testing.T) {
	g := gateWith(t, map[string]any{"name": "x", "path": bins["hang"], "batch_size": 100,
		"config": map[string]any{"hang_on": "stuck-", "delay": "100ms"}})
	const n = 3000 // 30 calls of 100 ms: 3 s for all
	left := putLetters(t, g, n, func(seq uint64) string { return fmt.Sprint("ok-", seq) })
	// The replay must be taken before the client gives up: the plugin is up first.
	for deadline := time.Now().Add(20 * time.Second); pluginStatus(t, g)["state"] != "running"; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin not running: %v", pluginStatus(t, g))
		}
	}
	req, _ := http.NewRequest("POST", g.Adm+"/api/v1/deadletters/x/replay", nil)
	req.Header.Set("Authorization", "Bearer "+servertest.Token)
	if _, err := (&http.Client{Timeout: 500 * time.Millisecond}).Do(req); err == nil {
		t.Fatal("the replay answered before the client gave up")
	}
	// The call in flight ends within 100 ms; give it ten times that, then nothing moves.
	time.Sleep(time.Second)
	stopped := left()
	if stopped == 0 || stopped == n {
		t.Fatalf("%d of %d letters left after the request ended, want some delivered and some not", stopped, n)
	}
	time.Sleep(time.Second)
	if l := left(); l != stopped {
		t.Fatalf("the replay went on after its request ended: %d letters left, then %d", stopped, l)
	}
	st, out := g.API("POST", "/api/v1/deadletters/x/replay", nil)
	if st != 200 || out["delivered"] != float64(stopped) || left() != 0 {
		t.Fatalf("replay of the rest: %d %v, %d left", st, out, left())
	}
}

// An event that kills the plugin does not take its batch with it: the batch is split
// until the event is alone, and only it is dead-lettered, once; the events around it
// are delivered and the cursor passes them all, the poison last in its batch or not.
func TestPoisonEventDeadLetteredAlone(t *testing.T) {
	for _, after := range []int{3, 0} {
		t.Run(fmt.Sprintf("%d events after it", after), func(t *testing.T) {
			g := gateWith(t, map[string]any{"name": "x", "path": bins["hang"], "timeout": "300ms", "max_attempts": 2,
				"batch_size": 16, "linger": "500ms", "config": map[string]any{"hang_on_json": `"slug":"poison"`}})
			g.MustCreate(map[string]any{"slug": "poison", "destination": "https://shop.example.com/q",
				"utm": map[string]any{"medium": "promotional", "campaign": "plugins"}})
			for deadline := time.Now().Add(20 * time.Second); pluginStatus(t, g)["state"] != "running"; time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("plugin not running: %v", pluginStatus(t, g))
				}
			}
			tap := func(slug string) string {
				u, _ := url.Parse(g.Tap("GET", "/"+slug, nil).Header.Get("Location"))
				return u.Query().Get("cgid")
			}
			// Inside one linger, so the events are one batch.
			for range 3 {
				tap("p")
			}
			poison := tap("poison")
			for range after {
				tap("p")
			}
			var dls []any
			deadline := time.Now().Add(60 * time.Second)
			for {
				_, out := g.API("GET", "/api/v1/deadletters?plugin=x", nil)
				dls, _ = out["dead_letters"].([]any)
				st := pluginStatus(t, g)
				if lag, _ := st["lag"].(float64); lag == 0 && len(dls) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("status %v, dead letters %v", st, dls)
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(time.Second) // anything sent again would be dead-lettered again by now
			_, out := g.API("GET", "/api/v1/deadletters?plugin=x", nil)
			dls, _ = out["dead_letters"].([]any)
			if len(dls) != 1 || dls[0].(map[string]any)["event_id"] != poison {
				t.Fatalf("dead letters %v, want the poison event %s alone", dls, poison)
			}
		})
	}
}

// A full page of dead letters says where the next begins; the last page does not.
func TestDeadLetterPages(t *testing.T) {
	g := gateWith(t, map[string]any{"name": "x", "path": bins["hang"], "config": map[string]any{"hang_on": "never-"}})
	putLetters(t, g, 3, func(seq uint64) string { return fmt.Sprint("ok-", seq) })
	st, out := g.API("GET", "/api/v1/deadletters?plugin=x&limit=2", nil)
	if st != 200 || len(out["dead_letters"].([]any)) != 2 || out["next_after"] != 2.0 {
		t.Fatalf("first page: %d %v", st, out)
	}
	st, out = g.API("GET", "/api/v1/deadletters?plugin=x&limit=2&after=2", nil)
	if _, more := out["next_after"]; st != 200 || len(out["dead_letters"].([]any)) != 1 || more {
		t.Fatalf("last page: %d %v", st, out)
	}
}
