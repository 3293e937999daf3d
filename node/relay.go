package node

import (
	"time"

	"github.com/libp2p/go-libp2p"
)

// RelayInfo is the state of one configured relay.
type RelayInfo struct {
	Addr     string    // the relay's multiaddr, as configured
	Reserved bool      // a reservation is active
	Expires  time.Time // when the reservation ends unless refreshed
	Err      string    // the last failure, if any
}

// Relays reports the configured relays and their reservations.
func (n *Node) Relays() []RelayInfo { return nil }

// relayOptions are the libp2p options for relay use.
func (n *Node) relayOptions() []libp2p.Option { return nil }

// startRelays reserves slots on the configured relays.
func (n *Node) startRelays() error { return nil }
