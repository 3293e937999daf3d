package node

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/certchat/certchat/identity"
)

// Connection manager watermarks: chat peers are protected and never
// trimmed; others are trimmed above high down to low.
const (
	connLow   = 64
	connHigh  = 256
	connGrace = time.Minute
	// protectTag marks connections to peers with a chat session.
	protectTag = "certchat-chat"
)

// newHost builds the libp2p host from the identity key: TCP and QUIC
// (TCP dialed first: dialrank.go), libp2p's Noise/TLS security and yamux underneath, identify and ping, the
// connection manager, the resource manager with limits scaled to the
// machine and the circuit relay client. Hole punching is the node's own
// (holepunch.go).
func newHost(id *identity.Identity, listen []string, extra ...libp2p.Option) (host.Host, *connmgr.BasicConnMgr, error) {
	key, err := id.Libp2pKey()
	if err != nil {
		return nil, nil, err
	}
	cm, err := connmgr.NewConnManager(connLow, connHigh, connmgr.WithGracePeriod(connGrace))
	if err != nil {
		return nil, nil, err
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.DefaultLimits.AutoScale()))
	if err != nil {
		return nil, nil, fmt.Errorf("resource manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.Ping(true),
		libp2p.EnableRelay(),
		libp2p.SwarmOpts(swarm.WithDialRanker(tcpFirst)), // dialrank.go
	}
	h, err := libp2p.New(append(opts, extra...)...)
	if err != nil {
		rm.Close()
		return nil, nil, fmt.Errorf("start libp2p host: %w", err)
	}
	return h, cm, nil
}
