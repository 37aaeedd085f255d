// Package glue is the go-plugin wiring shared by both ends of protocol v1: the
// handshake, the plugin set, and the gRPC plugin type. Neither plugin authors nor the
// host's callers see it.
package glue

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"

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

// Codec is gRPC's proto codec with a buffer pool of its own, for both ends. gRPC's
// codec takes its buffers from the default pool, whose tiers jump from 32 KiB to 1 MiB
// and which zeroes a reused buffer whole: a Forward batch of a hundred click events
// (60 KB) cleared a megabyte when marshalled and again when received, about half a µs per
// event on each side. Here a tier sits at every power of two, so a buffer is at most
// twice its message.
func Codec() encoding.CodecV2 {
	exps := make([]uint8, 0, 17)
	for e := uint8(8); e <= 24; e++ {
		exps = append(exps, e)
	}
	pool, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		panic(err) // the exponents are constants, valid on any word size
	}
	return codec{pool: pool}
}

type codec struct{ pool mem.BufferPool }

// Name is the content subtype: "proto", so the other end's codec need not be this one.
func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	m := messageOf(v)
	if m == nil {
		return nil, fmt.Errorf("marshal: %T is not a proto message", v)
	}
	// Size first, then marshal with the cached size: the message is not changed meanwhile.
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf)}, nil
	}
	buf := c.pool.Get(size)
	if _, err := opts.MarshalAppend((*buf)[:0], m); err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m := messageOf(v)
	if m == nil {
		return fmt.Errorf("unmarshal: %T is not a proto message", v)
	}
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m) // copies what it keeps
}

// messageOf accepts the older generated messages too: go-plugin's own services share
// the connection.
func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	case proto.Message:
		return v
	}
	return nil
}
