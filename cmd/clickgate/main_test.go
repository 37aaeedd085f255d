package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
)

// These tests run the built binary as a separate process, so kill -9 is a real crash.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clickgate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "clickgate")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const token = "crash-test-admin-token-0123"

type proc struct {
	t        *testing.T
	cmd      *exec.Cmd
	pub, adm string
	log      *bytes.Buffer
	exited   chan error
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func start(t *testing.T, dir string, pub, adm string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "CLICKGATE_LISTEN="+pub, "CLICKGATE_ADMIN_LISTEN="+adm, "CLICKGATE_DATA_DIR="+dir,
		"CLICKGATE_ADMIN_TOKEN="+token, "CLICKGATE_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	p := &proc{t: t, cmd: cmd, pub: "http://" + pub, adm: "http://" + adm, log: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := http.Get(p.pub + "/healthz"); err == nil {
			r.Body.Close()
			return p
		}
		select {
		case err := <-p.exited:
			t.Fatalf("clickgate exited at start: %v\n%s", err, p.log)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("clickgate did not answer /healthz\n%s", p.log)
	return nil
}

func (p *proc) api(method, path, body string) (int, map[string]any) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.adm+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// load taps path from n keep-alive clients until stop closes, returning every click ID
// that was answered with a 302.
func load(t *testing.T, base string, n int, stop <-chan struct{}) func() []string {
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", base, nil)
				req.Header.Set("User-Agent", "Mozilla/5.0 (Linux; Android 14) Mobile")
				resp, err := c.Do(req)
				if err != nil {
					continue // the process died under us: unanswered, not counted
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 302 {
					continue
				}
				u, err := url.Parse(resp.Header.Get("Location"))
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				ids = append(ids, u.Query().Get("cgid"))
				mu.Unlock()
			}
		}()
	}
	return func() []string { wg.Wait(); return ids }
}

// assertAllStored checks that every answered click is stored and counted once: the
// link's count is at least the answered clicks, and at most those plus what the clients
// had in flight when the process stopped (one request each, and one retry of it).
func assertAllStored(t *testing.T, p *proc, ids []string, clients int) {
	t.Helper()
	missing := 0
	for _, id := range ids {
		if st, _ := p.api("GET", "/api/v1/clicks/"+id, ""); st != 200 {
			missing++
			if missing <= 5 {
				t.Errorf("answered click %s missing after restart (status %d)", id, st)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d answered clicks lost", missing, len(ids))
	}
	_, l := p.api("GET", "/api/v1/links/crash", "")
	c := l["clicks"].(map[string]any)
	if got := int(c["human"].(float64)); got < len(ids) || got > len(ids)+2*clients {
		t.Fatalf("link counts %d human clicks, %d were answered by %d clients", got, len(ids), clients)
	}
}

// kill -9 under concurrent load: every click whose redirect was answered is stored.
func TestKill9LosesNoAnsweredClick(t *testing.T) {
	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	p := start(t, dir, pub, adm)
	if st, out := p.api("POST", "/api/v1/links", `{"slug":"crash","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"crash"}}`); st != 201 {
		t.Fatalf("create: %d %v", st, out)
	}
	stop := make(chan struct{})
	wait := load(t, p.pub+"/crash", 32, stop)
	time.Sleep(1500 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	close(stop)
	ids := wait()
	if len(ids) < 500 {
		t.Fatalf("only %d redirects answered before the kill", len(ids))
	}
	p = start(t, dir, pub, adm)
	assertAllStored(t, p, ids, 32)
	t.Logf("%d answered clicks, all present after kill -9", len(ids))
}

// SIGTERM under load: in-flight redirects finish, the process exits 0, nothing is lost.
func TestSIGTERMDrainsAndStops(t *testing.T) {
	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	p := start(t, dir, pub, adm)
	p.api("POST", "/api/v1/links", `{"slug":"crash","destination":"https://x.example/","utm":{"medium":"promotional","campaign":"crash"}}`)
	stop := make(chan struct{})
	wait := load(t, p.pub+"/crash", 16, stop)
	time.Sleep(700 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20 s of SIGTERM")
	}
	close(stop)
	ids := wait()
	p = start(t, dir, pub, adm)
	assertAllStored(t, p, ids, 16)
}

func TestBadConfigStopsWithOneLine(t *testing.T) {
	for _, kv := range []string{"CLICKGATE_LISTEN=nonsense", "CLICKGATE_CLICK_PARAM=a&b", "CLICKGATE_UTM_MEDIUMS=,", "CLICKGATE_MAX_HEADER_BYTES=x"} {
		cmd := exec.Command(binary, "serve")
		cmd.Env = append(os.Environ(), "CLICKGATE_DATA_DIR="+t.TempDir(), kv)
		out, err := cmd.CombinedOutput()
		ee, ok := err.(*exec.ExitError)
		name := strings.SplitN(kv, "=", 2)[0]
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if !ok || ee.ExitCode() != 2 || len(lines) != 1 || !strings.Contains(lines[0], name) {
			t.Errorf("%s: exit %v, output %q", kv, err, out)
		}
	}
}

// The demo configuration serves links, the first start prints the admin token once, and
// the CLI works against the running process.
func TestDemoLinksTokenAndCLI(t *testing.T) {
	dir := t.TempDir()
	pub, adm := freePort(t), freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "CLICKGATE_LISTEN="+pub, "CLICKGATE_ADMIN_LISTEN="+adm, "CLICKGATE_DATA_DIR="+dir,
		"CLICKGATE_SEED_LINKS=../../configs/demo-links.json", "CLICKGATE_ADMIN_TOKEN=")
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var resp *http.Response
	for i := 0; i < 200; i++ {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		var err error
		if resp, err = c.Get("http://" + pub + "/spring"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp == nil || resp.StatusCode != 302 || !strings.Contains(resp.Header.Get("Location"), "utm_campaign=spring_sale_2026") {
		t.Fatalf("demo link: %v\n%s", resp, log.String())
	}
	tok, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil || !strings.Contains(log.String(), strings.TrimSpace(string(tok))) {
		t.Fatalf("admin token not generated and printed: %v\n%s", err, log.String())
	}
	cli := func(args ...string) (string, error) {
		c := exec.Command(binary, args...)
		c.Env = append(os.Environ(), "CLICKGATE_ADMIN_URL=http://"+adm, "CLICKGATE_DATA_DIR="+dir, "CLICKGATE_ADMIN_TOKEN=")
		out, err := c.CombinedOutput()
		return string(out), err
	}
	out, err := cli("links", "create", "-slug", "cli", "-destination", "http://"+pub+"/healthz", "-medium", "Promo", "-campaign", "CLI Test")
	if err != nil || !strings.Contains(out, "utm_campaign=cli_test") || !strings.Contains(out, "warning:") {
		t.Fatalf("links create: %v\n%s", err, out)
	}
	out, err = cli("links", "check", "-base", "http://"+pub, "cli")
	if err != nil || !strings.Contains(out, "preflight passed") {
		t.Fatalf("links check: %v\n%s", err, out)
	}
	out, err = cli("links", "get", "cli")
	if err != nil || !strings.Contains(out, `"test": 1`) || !strings.Contains(out, `"human": 0`) {
		t.Fatalf("links get after preflight: %v\n%s", err, out)
	}
	if out, err := cli("links", "get", "nope"); err == nil || !strings.Contains(out, "not_found") {
		t.Fatalf("links get of a missing link: %v %s", err, out)
	}
	bulk := filepath.Join(t.TempDir(), "bulk.json")
	os.WriteFile(bulk, []byte(`{"links":[{"destination":"https://x.example/1","utm":{"medium":"promotional","campaign":"b"}},{"destination":"ftp://bad","utm":{"medium":"promotional","campaign":"b"}}]}`), 0o600)
	if out, err := cli("links", "bulk", bulk); err != nil || !strings.Contains(out, `"created": 1`) || !strings.Contains(out, `"failed": 1`) {
		t.Fatalf("links bulk: %v\n%s", err, out)
	}
	if out, err := cli("links", "bulk", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatalf("links bulk of a missing file succeeded: %s", out)
	}
	list, err := cli("links", "list", "-limit", "2")
	if err != nil || !strings.Contains(list, "next_cursor") {
		t.Fatalf("links list: %v\n%s", err, list)
	}
}

func TestMinProcs(t *testing.T) {
	for _, tc := range []struct {
		env         string
		procs, want int
	}{
		{"", 1, 2},
		{"", 2, 2},
		{"", 8, 8},
		{"1", 1, 1}, // the operator's choice stands
		{"3", 3, 3},
	} {
		if got := minProcs(tc.env, tc.procs); got != tc.want {
			t.Errorf("minProcs(%q, %d) = %d, want %d", tc.env, tc.procs, got, tc.want)
		}
	}
}
