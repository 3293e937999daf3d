package node

import "github.com/libp2p/go-libp2p"

// relayOptions are the libp2p options for relay use.
func (n *Node) relayOptions() []libp2p.Option { return nil }

// startRelays reserves slots on the configured relays.
func (n *Node) startRelays() error { return nil }
