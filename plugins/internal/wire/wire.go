// Package wire is what both ends of the plugin connection must agree on: the
// go-plugin handshake and the glue between go-plugin and the generated gRPC
// code. The host (package plugins) and the SDK both import it, so a plugin
// binary does not pull in the host's SSH and config code.
package wire

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/stagecoach/stagecoach/plugins/proto"
)

// Handshake makes a plugin refuse to run unless started by Stagecoach, and
// both sides refuse a peer speaking another protocol version. Bump
// ProtocolVersion on any incompatible change to stagecoach.proto.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "STAGECOACH_PLUGIN",
	MagicCookieValue: "c5b1e0b4-stage-7d3a",
}

// StageName is the name under which a plugin binary serves its Stage.
const StageName = "stage"

// Client is what the host gets when it dispenses a plugin's Stage: the gRPC
// client and the broker through which it serves the Host service.
type Client struct {
	Stage  proto.StageClient
	Broker *plugin.GRPCBroker
}

// StagePlugin adapts a Stage implementation to go-plugin. The plugin side
// sets NewServer; the host side leaves it nil and only uses GRPCClient.
type StagePlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// NewServer builds the gRPC server of the Stage service; the broker lets
	// it dial the Host service the host offers for each Run.
	NewServer func(*plugin.GRPCBroker) proto.StageServer
}

// GRPCServer registers the Stage service in the plugin process.
func (p *StagePlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterStageServer(s, p.NewServer(b))
	return nil
}

// GRPCClient returns a *Client in the host process.
func (p *StagePlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{Stage: proto.NewStageClient(c), Broker: b}, nil
}
