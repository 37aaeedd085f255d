// Package glue is the go-plugin wiring shared by both ends of protocol v1: the
// handshake, the plugin set, and the gRPC plugin type. Neither plugin authors nor the
// host's callers see it.
package glue

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/clickgate/clickgate/sdk/internal/forwarderv1"
)

// ProtocolVersion is the plugin protocol this SDK speaks.
const ProtocolVersion = 1

// Handshake must match on both ends; the cookie only tells a user who runs a plugin by
// hand that it is not a command.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "CLICKGATE_PLUGIN",
	MagicCookieValue: "forwarder-7f3c2a91e4b8",
}

// Name is the plugin's name in the plugin set.
const Name = "forwarder"

// Plugin is the go-plugin gRPC plugin: the plugin process serves Impl, the host gets a
// client.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl pb.ForwarderServer
}

// GRPCServer registers the forwarder service in the plugin process.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterForwarderServer(s, p.Impl)
	return nil
}

// GRPCClient returns the client the host calls.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pb.NewForwarderClient(c), nil
}

// Set is the plugin set for both ends.
func Set(impl pb.ForwarderServer) plugin.PluginSet {
	return plugin.PluginSet{Name: &Plugin{Impl: impl}}
}
