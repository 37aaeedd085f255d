// Command oldproto is a test plugin that speaks another protocol version.
package main

import (
	"github.com/hashicorp/go-plugin"
)

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  99,
			MagicCookieKey:   "CLICKGATE_PLUGIN",
			MagicCookieValue: "forwarder-7f3c2a91e4b8",
		},
		Plugins:    plugin.PluginSet{},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
