package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a process the suite started and must stop.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error
}

// pid is the process's ID. With pinning it is still the program's own PID: the pin
// trampoline execs it in place.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// launch starts argv on the given CPUs (when pinning) with env added to a copy of the
// environment from which every CLICKGATE_ variable was removed, so that what the
// caller's shell exports cannot change a scenario. Output goes to a log file.
func (s *Suite) launch(name string, cpus []int, env []string, argv ...string) (*proc, error) {
	if s.place.Pinned && len(cpus) > 0 {
		argv = append([]string{s.opt.Self, "pin", FormatCPUList(cpus), "--"}, argv...)
	}
	logPath := filepath.Join(s.work, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	s.log.Debug("started", "name", name, "pid", p.pid(), "argv", strings.Join(argv, " "))
	return p, nil
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLICKGATE_") {
			out = append(out, kv)
		}
	}
	return out
}

// stop sends SIGTERM, waits for a clean exit, then SIGKILL. It signals only the process
// it started, by PID.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// tail returns the last lines of the process's log, for error messages.
func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls ready until it succeeds, the process exits, or the timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = ready(); last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start (%v):\n%s", p.name, p.err, p.tail(15))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %v\n%s", p.name, timeout, last, p.tail(15))
}

func httpOK(url string) func() error {
	c := &http.Client{Timeout: time.Second}
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

func tcpOpen(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// freePort asks the kernel for a free loopback port. Another process could take it
// before the server binds it; the server would then fail to start, loudly.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// server is a process under test: the main process, the address it serves, and the
// processes whose CPU is reported beside it.
type server struct {
	*proc
	addr string
	// helpers are processes that work for the scenario but run on the generator's CPUs
	// (the webhook sink, the Kafka broker): their CPU is reported apart.
	helpers map[string]int
	// metrics scrapes the server's /metrics, or is nil (the baseline has none).
	metrics func(context.Context) (map[string]float64, error)
}

// gate is a running clickgate.
type gate struct {
	server
	adm  *adminClient
	data string
	keep bool // -keep: leave the data for inspection
}

// startGate starts bin/clickgate serve on a fresh data directory with extra settings.
func (s *Suite) startGate(ctx context.Context, name string, env ...string) (*gate, error) {
	pub, err := freePort()
	if err != nil {
		return nil, err
	}
	adm, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(s.work, name+"-data")
	if err := os.RemoveAll(data); err != nil {
		return nil, fmt.Errorf("fresh data dir: %w", err)
	}
	base := []string{
		fmt.Sprintf("CLICKGATE_LISTEN=127.0.0.1:%d", pub),
		fmt.Sprintf("CLICKGATE_ADMIN_LISTEN=127.0.0.1:%d", adm),
		"CLICKGATE_DATA_DIR=" + data,
		"CLICKGATE_ADMIN_TOKEN=" + adminToken,
		"CLICKGATE_INGEST_TOKENS=" + ingestToken,
		"CLICKGATE_NODE_ID=1",
		"CLICKGATE_LOG_LEVEL=warn",
	}
	p, err := s.launch("clickgate-"+name, s.place.Server, append(base, env...), filepath.Join(s.opt.BinDir, "clickgate"), "serve")
	if err != nil {
		return nil, err
	}
	g := &gate{server: server{proc: p, addr: fmt.Sprintf("127.0.0.1:%d", pub), helpers: map[string]int{}}, data: data,
		keep: s.opt.KeepWork, adm: newAdminClient(fmt.Sprintf("http://127.0.0.1:%d", adm), adminToken)}
	g.metrics = g.adm.metrics
	if err := p.waitReady(ctx, 60*time.Second, httpOK("http://"+g.addr+"/healthz")); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return g, nil
}

// stopGate stops clickgate and deletes its data (a million links take room) unless the
// work directory is kept.
func (g *gate) stopGate() {
	g.stop(30 * time.Second)
	if !g.keep {
		os.RemoveAll(g.data)
	}
}

// startBaseline starts nginx `return 302` or, without nginx, bin/baseline302.
func (s *Suite) startBaseline(ctx context.Context) (*server, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if s.baselineKind == "nginx" {
		dir := filepath.Join(s.work, "nginx")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, "", fmt.Errorf("nginx dir: %w", err)
		}
		workers := max(1, len(s.place.Server))
		conf := fmt.Sprintf(`worker_processes %d; daemon off; pid %s/nginx.pid; error_log %s/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 120s;
  server { listen %s; location / { return 302 '%s'; } } }
`, workers, dir, dir, addr, hotLocation)
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
			return nil, "", fmt.Errorf("nginx conf: %w", err)
		}
		p, err := s.launch("nginx", s.place.Server, nil, s.nginxPath, "-e", filepath.Join(dir, "error.log"), "-p", dir+"/", "-c", filepath.Join(dir, "nginx.conf"))
		if err != nil {
			return nil, "", err
		}
		if err := p.waitReady(ctx, 20*time.Second, tcpOpen(addr)); err != nil {
			p.stop(5 * time.Second)
			return nil, "", err
		}
		v, _ := exec.Command(s.nginxPath, "-v").CombinedOutput()
		ver := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(v)), "nginx version:"))
		return &server{proc: p, addr: addr}, fmt.Sprintf("%s `return 302` (%d worker)", ver, workers), nil
	}
	p, err := s.launch("baseline302", s.place.Server, nil, filepath.Join(s.opt.BinDir, "baseline302"), "-listen", addr, "-location", hotLocation)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(ctx, 20*time.Second, tcpOpen(addr)); err != nil {
		p.stop(5 * time.Second)
		return nil, "", err
	}
	return &server{proc: p, addr: addr}, "bare fasthttp handler writing a constant Location (bench/cmd/baseline302)", nil
}

// startSink starts the webhook sink (clickbench sink) on the generator's CPUs and
// returns it with its URL.
func (s *Suite) startSink(ctx context.Context) (*proc, string, error) {
	if s.opt.Self == "" {
		return nil, "", errors.New("the webhook sink needs the clickbench binary (Options.Self)")
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := s.launch("sink", s.place.Generator, nil, s.opt.Self, "sink", "-listen", addr)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitReady(ctx, 20*time.Second, httpOK("http://"+addr+"/stats")); err != nil {
		p.stop(5 * time.Second)
		return nil, "", err
	}
	return p, "http://" + addr, nil
}

// broker is a Kafka broker started through configs/kafka/kafka.sh on its own ports and
// runtime directory.
type broker struct {
	addr string
	env  []string
	pid  int
}

func (s *Suite) kafkaScript() string {
	return filepath.Join(s.opt.RepoDir, "configs", "kafka", "kafka.sh")
}

// startKafka runs `kafka.sh up` on the generator's CPUs (the broker's JVM inherits them)
// and waits for it to return, which it does once the broker answers metadata requests.
func (s *Suite) startKafka(ctx context.Context) (*broker, error) {
	if _, err := exec.LookPath("java"); err != nil {
		return nil, errors.New("java not on PATH: the Kafka scenarios need Java 17+ (apt-get install openjdk-17-jre-headless) and Maven for the first fetch of the broker jars (apt-get install maven)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ctl, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &broker{addr: fmt.Sprintf("127.0.0.1:%d", port), env: []string{
		fmt.Sprintf("CLICKGATE_KAFKA_PORT=%d", port),
		fmt.Sprintf("CLICKGATE_KAFKA_CONTROLLER_PORT=%d", ctl),
		"CLICKGATE_KAFKA_RUN=" + filepath.Join(s.work, "kafka"),
	}}
	p, err := s.launch("kafka", s.place.Generator, b.env, s.kafkaScript(), "up")
	if err != nil {
		return nil, err
	}
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.stop(5 * time.Second)
		return nil, ctx.Err()
	}
	if p.err != nil {
		s.stopKafka(b)
		return nil, fmt.Errorf("kafka.sh up: %v\n%s", p.err, p.tail(15))
	}
	pidText, err := os.ReadFile(filepath.Join(s.work, "kafka", "kafka.pid"))
	if err != nil {
		return nil, fmt.Errorf("kafka pid: %w", err)
	}
	fmt.Sscan(string(bytes.TrimSpace(pidText)), &b.pid)
	return b, nil
}

// stopKafka runs `kafka.sh down`: it stops this broker (by the PID it recorded) and
// deletes its data.
func (s *Suite) stopKafka(b *broker) {
	if b == nil {
		return
	}
	cmd := exec.Command(s.kafkaScript(), "down")
	cmd.Env = append(cleanEnv(), b.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		s.log.Warn("kafka.sh down", "err", err, "output", string(out))
	}
}
