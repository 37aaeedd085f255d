// Package host is the host's side of protocol v1: it verifies, launches and talks to a
// forwarder plugin. clickgate's plugin host uses it; plugin authors do not need it.
package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/clickgate/clickgate/sdk"
	pb "github.com/clickgate/clickgate/sdk/internal/forwarderv1"
	"github.com/clickgate/clickgate/sdk/internal/glue"
)

// Config says how to start a plugin.
type Config struct {
	// Path is the plugin binary.
	Path string
	// SHA256, when set, is the binary's expected hex digest, verified before exec.
	SHA256 string
	// Env is added to the plugin's environment (the host's own is not inherited).
	Env []string
	// Logger receives the plugin's log lines.
	Logger *slog.Logger
	// StartTimeout bounds the handshake, and then the plugin's description. Default 10 s.
	StartTimeout time.Duration
}

// MaxMessageBytes bounds one gRPC message between host and plugin (a Forward batch).
const MaxMessageBytes = 64 << 20

// Errors that tell an operator what is wrong with a plugin binary.
var (
	ErrChecksum  = errors.New("plugin binary does not match its sha256")
	ErrHandshake = errors.New("plugin handshake failed")
)

// Plugin is a running forwarder plugin.
type Plugin struct {
	client *plugin.Client
	rpc    pb.ForwarderClient
	cmd    *exec.Cmd
	ping   func() error
	Info   sdk.Info
}

// Launch verifies and starts a plugin, and completes the handshake (magic cookie,
// protocol version, gRPC with mTLS).
func Launch(ctx context.Context, cfg Config) (*Plugin, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if err := verify(cfg.Path, cfg.SHA256); err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.Path)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, cfg.Env...)
	// Its own process group, so a kill reaches any children the plugin started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logw := &logWriter{log: cfg.Logger}
	client := plugin.NewClient(&plugin.ClientConfig{
		// What the plugin writes to stdout and stderr after Serve arrives over gRPC.
		SyncStdout: &logWriter{log: cfg.Logger, plain: slog.LevelInfo},
		SyncStderr: &logWriter{log: cfg.Logger, plain: slog.LevelWarn},
		// Batches of thousands of events exceed gRPC's 4 MB default.
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes),
			grpc.ForceCodecV2(glue.Codec()))},
		HandshakeConfig:  glue.Handshake,
		Plugins:          glue.Set(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SkipHostEnv:      true,
		StartTimeout:     cfg.StartTimeout,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "plugin", Output: logw, JSONFormat: true, Level: hclog.Debug,
		}),
		Stderr: io.Discard,
	})
	cp, err := client.Client()
	if err != nil {
		client.Kill()
		killGroup(cmd)
		return nil, fmt.Errorf("%w: %s: %v", ErrHandshake, cfg.Path, explain(err))
	}
	raw, err := cp.Dispense(glue.Name)
	if err != nil {
		client.Kill()
		killGroup(cmd)
		return nil, fmt.Errorf("%w: %s: %v", ErrHandshake, cfg.Path, err)
	}
	p := &Plugin{client: client, rpc: raw.(pb.ForwarderClient), cmd: cmd, ping: cp.Ping}
	// A plugin that completed the handshake can still stall here, and the caller's ctx
	// lives as long as the server.
	dctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := p.describe(dctx); err != nil {
		p.Kill()
		return nil, err
	}
	return p, nil
}

// Connect wraps an already-connected go-plugin client (sdktest's in-process
// connection).
func Connect(ctx context.Context, cp plugin.ClientProtocol) (*Plugin, error) {
	raw, err := cp.Dispense(glue.Name)
	if err != nil {
		return nil, err
	}
	p := &Plugin{rpc: raw.(pb.ForwarderClient), ping: cp.Ping}
	return p, p.describe(ctx)
}

func (p *Plugin) describe(ctx context.Context) error {
	d, err := p.rpc.Describe(ctx, &pb.DescribeRequest{})
	if err != nil {
		return fmt.Errorf("describe: %w", err)
	}
	p.Info = sdk.Info{Name: d.Name, Version: d.Version, Description: d.Description}
	for _, c := range d.Config {
		f := sdk.ConfigField{Name: c.Name, Type: c.Type, Required: c.Required, Secret: c.Secret, Description: c.Description}
		if c.DefaultJson != "" {
			json.Unmarshal([]byte(c.DefaultJson), &f.Default)
		}
		p.Info.Config = append(p.Info.Config, f)
	}
	return nil
}

func verify(path, want string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("plugin binary: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("plugin binary %s is not an executable file", path)
	}
	if want == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("plugin binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("plugin binary: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: %s is %s, the plugins file expects %s", ErrChecksum, path, got, want)
	}
	return nil
}

// explain turns go-plugin's handshake errors into what an operator can act on.
func explain(err error) string {
	s := err.Error()
	low := strings.ToLower(s)
	switch {
	case strings.Contains(low, "incompatible api version"), strings.Contains(low, "incompatible core api version"):
		return fmt.Sprintf("it speaks another protocol version than this host (%d): rebuild it against this SDK (%s)", glue.ProtocolVersion, s)
	case strings.Contains(low, "unrecognized remote plugin message"), strings.Contains(low, "plugin exited before we could connect"):
		return "it is not a clickgate forwarder plugin (no handshake on stdout): " + s
	case strings.Contains(low, "timeout"):
		return "it did not complete the handshake in time: " + s
	}
	return s
}

// Configure sends the plugin its configuration; a rejection is returned as an error.
func (p *Plugin) Configure(ctx context.Context, config json.RawMessage) error {
	if len(config) == 0 {
		config = json.RawMessage("{}")
	}
	r, err := p.rpc.Configure(ctx, &pb.ConfigureRequest{ConfigJson: config})
	if err != nil {
		return fmt.Errorf("configure: %w", err)
	}
	if r.Error != "" {
		return fmt.Errorf("configuration rejected: %s", r.Error)
	}
	return nil
}

// Forward sends a batch and returns one result per event.
func (p *Plugin) Forward(ctx context.Context, evs []sdk.Event) ([]sdk.Result, error) {
	req := &pb.ForwardRequest{Events: make([]*pb.Event, len(evs))}
	for i, e := range evs {
		req.Events[i] = &pb.Event{Id: e.ID, Type: e.Type, Json: e.JSON}
		if !e.Time.IsZero() {
			req.Events[i].TimeUnixNano = e.Time.UnixNano()
		}
	}
	resp, err := p.rpc.Forward(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(resp.Results) != len(evs) {
		return nil, fmt.Errorf("plugin answered %d results for %d events", len(resp.Results), len(evs))
	}
	out := make([]sdk.Result, len(evs))
	for i, r := range resp.Results {
		out[i] = sdk.Result{Status: sdk.Status(r.Status), RetryAfter: time.Duration(r.RetryAfterMs) * time.Millisecond, Reason: r.Reason}
		if out[i].Status < sdk.StatusDelivered || out[i].Status > sdk.StatusNotSent {
			out[i] = sdk.Retry(0, "plugin answered no status")
		}
	}
	return out, nil
}

// Ping checks the connection (go-plugin's health service), giving up when ctx ends.
// go-plugin's own ping has no deadline: a frozen process (stopped, or its cgroup
// frozen) would never answer it. The call left waiting then ends when the plugin is
// killed and its connection closes.
func (p *Plugin) Ping(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- p.ping() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer to the health check: %w", ctx.Err())
	}
}

// Exited reports whether the plugin process is gone.
func (p *Plugin) Exited() bool { return p.client != nil && p.client.Exited() }

// Close asks the plugin to close, lets go-plugin stop it gracefully, then kills what is
// left of its process group.
func (p *Plugin) Close(ctx context.Context) {
	p.rpc.Close(ctx, &pb.CloseRequest{})
	if p.client != nil {
		p.client.Kill()
		killGroup(p.cmd)
	}
}

// Kill stops the plugin and its process group at once.
func (p *Plugin) Kill() {
	if p.client == nil {
		return
	}
	killGroup(p.cmd)
	p.client.Kill()
}

// PID is the plugin's process ID (0 in-process).
func (p *Plugin) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func killGroup(cmd *exec.Cmd) {
	if cmd != nil && cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// logWriter turns the plugin's log lines into slog records: hclog or slog JSON keeps its
// level and fields; a plain line is logged at the writer's level.
type logWriter struct {
	log   *slog.Logger
	plain slog.Level
}

func (w *logWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			w.log.Log(context.Background(), w.plain, line)
			continue
		}
		msg, _ := rec["@message"].(string)
		level, _ := rec["@level"].(string)
		if msg == "" { // slog's JSON handler
			msg, _ = rec["msg"].(string)
			level, _ = rec["level"].(string)
		}
		lvl := slog.LevelInfo
		switch strings.ToLower(level) {
		case "trace", "debug":
			lvl = slog.LevelDebug
		case "warn", "warning":
			lvl = slog.LevelWarn
		case "error":
			lvl = slog.LevelError
		}
		var attrs []any
		for k, v := range rec {
			switch k {
			case "msg", "level", "time":
				continue
			}
			if !strings.HasPrefix(k, "@") {
				attrs = append(attrs, k, v)
			}
		}
		w.log.Log(context.Background(), lvl, msg, attrs...)
	}
	return len(p), nil
}
