package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/clickgate/clickgate/sdk/internal/forwarderv1"
	"github.com/clickgate/clickgate/sdk/internal/glue"
)

// maxMessageBytes matches the host's limit: batches of thousands of events exceed gRPC's
// 4 MB default.
const maxMessageBytes = 64 << 20

// ProtocolVersion is the host–plugin protocol this SDK speaks.
const ProtocolVersion = glue.ProtocolVersion

// Serve runs f as a plugin. With the single argument "describe" it prints the plugin's
// name, version, protocol version and configuration fields as JSON and exits, so a
// binary can be inspected without the host. After Serve starts, what the plugin writes
// to stderr (plain lines, or JSON from log/slog) reaches the host's log under the
// plugin's name; it must not write to stdout before Serve.
func Serve(f Forwarder) {
	if len(os.Args) == 2 && os.Args[1] == "describe" {
		info := f.Info()
		out := struct {
			Name            string        `json:"name"`
			Version         string        `json:"version"`
			ProtocolVersion int           `json:"protocol_version"`
			Description     string        `json:"description,omitempty"`
			Config          []ConfigField `json:"config"`
		}{info.Name, info.Version, ProtocolVersion, info.Description, info.Config}
		if out.Config == nil {
			out.Config = []ConfigField{}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
		return
	}
	if os.Getenv(glue.Handshake.MagicCookieKey) == "" {
		fmt.Fprintf(os.Stderr, "%s is a clickgate forwarder plugin: list it in CLICKGATE_PLUGINS_FILE, or run it with \"describe\"\n", os.Args[0])
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: glue.Handshake,
		Plugins:         glue.Set(NewServer(f)),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(maxMessageBytes), grpc.MaxSendMsgSize(maxMessageBytes),
				grpc.ForceServerCodecV2(glue.Codec()))...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: f.Info().Name, Output: os.Stderr, JSONFormat: true, Level: hclog.Info,
		}),
	})
}

// NewServer adapts f to the protocol's gRPC service. sdktest uses it; plugins call Serve.
func NewServer(f Forwarder) pb.ForwarderServer { return &server{f: f} }

type server struct {
	pb.UnimplementedForwarderServer
	f Forwarder
}

func (s *server) Describe(context.Context, *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	info := s.f.Info()
	resp := &pb.DescribeResponse{Name: info.Name, Version: info.Version, Description: info.Description}
	for _, c := range info.Config {
		d := ""
		if c.Default != nil {
			b, _ := json.Marshal(c.Default)
			d = string(b)
		}
		resp.Config = append(resp.Config, &pb.ConfigField{Name: c.Name, Type: c.Type, Required: c.Required, Secret: c.Secret, DefaultJson: d, Description: c.Description})
	}
	return resp, nil
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	if err := s.f.Configure(ctx, req.ConfigJson); err != nil {
		return &pb.ConfigureResponse{Error: err.Error()}, nil
	}
	return &pb.ConfigureResponse{}, nil
}

func (s *server) Forward(ctx context.Context, req *pb.ForwardRequest) (*pb.ForwardResponse, error) {
	evs := make([]Event, len(req.Events))
	for i, e := range req.Events {
		evs[i] = Event{ID: e.Id, Type: e.Type, JSON: e.Json}
		if e.TimeUnixNano != 0 {
			evs[i].Time = time.Unix(0, e.TimeUnixNano).UTC()
		}
	}
	rs, err := s.f.Forward(ctx, evs)
	if err != nil {
		// Always Unknown, which the host reads as the forwarder's own error (the batch is
		// retried by this process). gRPC would pass on the code of an error wrapping a
		// status, or send DeadlineExceeded for one wrapping context.DeadlineExceeded
		// (an HTTP client's timeout): codes the host reads as a hung or broken process,
		// and kills it.
		return nil, status.Error(codes.Unknown, err.Error())
	}
	if len(rs) != len(evs) {
		return nil, fmt.Errorf("forwarder returned %d results for %d events", len(rs), len(evs))
	}
	resp := &pb.ForwardResponse{Results: make([]*pb.Result, len(rs))}
	for i, r := range rs {
		resp.Results[i] = &pb.Result{Status: pb.Result_Status(r.Status), RetryAfterMs: r.RetryAfter.Milliseconds(), Reason: r.Reason}
	}
	return resp, nil
}

func (s *server) Close(ctx context.Context, _ *pb.CloseRequest) (*pb.CloseResponse, error) {
	return &pb.CloseResponse{}, s.f.Close(ctx)
}
