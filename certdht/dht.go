package certdht

import (
	"fmt"

	"github.com/ipfs/go-cid"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multihash"
)

// ProtocolPrefix keeps the certchat DHT apart from the public IPFS one:
// its protocol is /certchat/kad/1.0.0, which IPFS nodes do not speak.
const ProtocolPrefix protocol.ID = "/certchat"

// ProtocolID is the DHT's stream protocol, for resource limits.
const ProtocolID = ProtocolPrefix + "/kad/1.0.0"

// Mode is the part a host takes in the DHT.
type Mode int

const (
	// Client: the host asks, answers nothing and is in no routing table.
	// Nodes run in this mode unless they are publicly reachable.
	Client Mode = iota
	// Auto: a client that becomes a server while libp2p finds it publicly
	// reachable (AutoNAT). For nodes, never for always-on servers: a DHT
	// whose nodes all wait to be found reachable stays empty.
	Auto
	// Server: the host answers queries and stores records. Relays.
	Server
)

// New starts the DHT on h. bootstrap says which relays to join through
// (it connects to them when its routing table runs low); it is asked
// each time, so it may change.
func New(h host.Host, mode Mode, bootstrap func() []peer.AddrInfo, v Validator) (*kaddht.IpfsDHT, error) {
	m := kaddht.ModeClient
	switch mode {
	case Auto:
		m = kaddht.ModeAuto
	case Server:
		m = kaddht.ModeServer
	}
	d, err := kaddht.New(h,
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Mode(m),
		kaddht.Validator(record.NamespacedValidator{PeerRecordNamespace: v}),
		kaddht.BootstrapPeersFunc(bootstrap),
	)
	if err != nil {
		return nil, fmt.Errorf("start the certchat DHT: %w", err)
	}
	return d, nil
}

// RelayKey is the key relays provide under, and clients look up to find
// relays: the same for every relay and every day (relays are public
// services, there is nothing to hide by rotating it).
var RelayKey = func() cid.Cid {
	mh, err := multihash.Sum([]byte("certchat relay v1"), multihash.SHA2_256, -1)
	if err != nil {
		panic(err) // a fixed input to a built-in hash
	}
	return cid.NewCidV1(cid.Raw, mh)
}()
