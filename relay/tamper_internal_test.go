package relay

import (
	"context"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// NewTamperingServer starts a relay that flips a byte in every chunk it
// reads, relayed or deposited in its mailbox, while *on is true. For tests only (exported to relay_test
// through export_test.go).
func newTamperingServer(cfg Config, on *atomic.Bool) (*Server, error) {
	return newServer(cfg, func(h host.Host) host.Host { return &tamperHost{Host: h, on: on} })
}

type tamperHost struct {
	host.Host
	on *atomic.Bool
}

func (h *tamperHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(&tamperStream{Stream: s, on: h.on}) })
}

func (h *tamperHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return &tamperStream{Stream: s, on: h.on}, nil
}

// tamperStream flips the last byte of each chunk the relay reads while on.
type tamperStream struct {
	network.Stream
	on *atomic.Bool
}

func (s *tamperStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if n > 0 && s.on.Load() {
		b[n-1] ^= 0x20
	}
	return n, err
}
