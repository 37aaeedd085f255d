package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clickgate/clickgate/sdk"
	"github.com/clickgate/clickgate/sdk/host"
	"github.com/clickgate/clickgate/sdk/sdktest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A real plugin process: its stderr reaches the host's log under its name, and a batch
// far over gRPC's 4 MB default goes through in one call.
func TestLaunchLogsAndLargeBatches(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/webhook").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, nil)).With("plugin", "hook")
	rec := sdktest.NewRecorder(t, nil)
	ctx := context.Background()
	p, err := host.Launch(ctx, host.Config{Path: bin, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if err := p.Configure(ctx, json.RawMessage(fmt.Sprintf(`{"url":%q,"secret":"short","max_batch":1000}`, rec.URL))); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "shorter than 16 characters") {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's stderr warning never reached the host log:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"plugin":"hook"`) {
		t.Fatalf("plugin log lines lack the plugin's name:\n%s", logs.String())
	}
	pad := strings.Repeat("x", 1000)
	evs := make([]sdk.Event, 6000) // about 6 MB in one Forward
	for i := range evs {
		evs[i] = sdk.Event{ID: fmt.Sprint(i), Type: sdk.TypeClick, Time: time.Now(), JSON: json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":%q}`, i, pad))}
	}
	res, err := p.Forward(ctx, evs)
	if err != nil {
		t.Fatalf("large batch: %v", err)
	}
	for i, r := range res {
		if r.Status != sdk.StatusDelivered {
			t.Fatalf("event %d: %+v", i, r)
		}
	}
	if n := len(rec.Requests()); n != 6 {
		t.Fatalf("%d requests for 6000 events at max_batch 1000", n)
	}
}

type recordTimes struct{ got []time.Time }

func (r *recordTimes) Info() sdk.Info                                   { return sdk.Info{Name: "t"} }
func (r *recordTimes) Configure(context.Context, json.RawMessage) error { return nil }
func (r *recordTimes) Close(context.Context) error                      { return nil }
func (r *recordTimes) Forward(_ context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	for _, e := range evs {
		r.got = append(r.got, e.Time)
	}
	return sdk.All(len(evs), sdk.Delivered()), nil
}

func TestEventTimesSurviveTheWire(t *testing.T) {
	f := &recordTimes{}
	p := sdktest.Connect(t, f)
	at := time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC)
	if _, err := p.Forward(context.Background(), []sdk.Event{{ID: "a", Time: at}, {ID: "b"}}); err != nil {
		t.Fatal(err)
	}
	if !f.got[0].Equal(at) || !f.got[1].IsZero() {
		t.Fatalf("times %v", f.got)
	}
}

// buildHang builds the test plugin whose calls never return.
func buildHang(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hang")
	if out, err := exec.Command("go", "build", "-o", bin, "../../proxy/pluginhost/testdata/hang").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// within runs f and fails the test if it has not returned after d (the bug it guards
// against is a wait without end, which would otherwise hang the test binary).
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// A plugin that completes the handshake but never describes itself does not hold the
// launch for ever: StartTimeout bounds the description too.
func TestLaunchGivesUpOnAStalledDescribe(t *testing.T) {
	bin := buildHang(t)
	err := within(t, 20*time.Second, "Launch", func() error {
		p, err := host.Launch(context.Background(), host.Config{Path: bin, Env: []string{"HANG_DESCRIBE=1"}, StartTimeout: time.Second})
		if err == nil {
			p.Kill()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "describe") {
		t.Fatalf("Launch = %v, want a describe error", err)
	}
}

// A frozen plugin process never answers go-plugin's health check: Ping gives up when
// its context ends.
func TestPingGivesUpOnAFrozenPlugin(t *testing.T) {
	bin := buildHang(t)
	ctx := context.Background()
	p, err := host.Launch(ctx, host.Config{Path: bin})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	ping := func(d time.Duration) error {
		pctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return p.Ping(pctx)
	}
	if err := ping(5 * time.Second); err != nil {
		t.Fatalf("ping of a running plugin: %v", err)
	}
	pid := pidOf(t, bin)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	// The stop takes effect when the kernel next gets to every thread: a ping sent
	// before that could still be answered.
	for deadline := time.Now().Add(5 * time.Second); !stopped(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin %d not stopped 5 s after SIGSTOP", pid)
		}
	}
	err = within(t, 20*time.Second, "Ping", func() error { return ping(300 * time.Millisecond) })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ping of a stopped plugin = %v, want its deadline exceeded", err)
	}
}

// stopped reports whether every thread of process pid is stopped.
func stopped(pid int) bool {
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "stat"))
		if err != nil {
			return false
		}
		// pid (comm) state ...: the state follows the last ')'.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || i+2 >= len(stat) || stat[i+2] != 'T' && stat[i+2] != 't' {
			return false
		}
	}
	return true
}

// pidOf finds the process running the binary at path.
func pidOf(t *testing.T, path string) int {
	t.Helper()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe")); err == nil && exe == path {
			return pid
		}
	}
	t.Fatalf("no process runs %s", path)
	return 0
}
