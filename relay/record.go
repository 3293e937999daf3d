package relay

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"context"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/libp2p/go-libp2p/core/peer"
)

// recordingHost hands the relay service streams that copy every byte read
// and written to files in a folder: an audit of exactly what the relay
// forwards (--record-dir). It wraps the relay protocol's streams only:
// the hop streams clients open to the relay and the stop streams the relay
// opens to the destination.
type recordingHost struct {
	host.Host
	dir string
	seq atomic.Uint64
}

func (h *recordingHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(h.wrap(s, "in")) })
}

func (h *recordingHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return h.wrap(s, "out"), nil
}

func (h *recordingHost) wrap(s network.Stream, dir string) network.Stream {
	name := fmt.Sprintf("%06d-%s-%s", h.seq.Add(1), dir, s.Conn().RemotePeer())
	f, err := os.OpenFile(filepath.Join(h.dir, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return s
	}
	return &recordingStream{Stream: s, f: f}
}

// recordingStream writes what it reads as "<" records and what it writes
// as ">" records: a direction byte, a 4-byte length, the bytes.
type recordingStream struct {
	network.Stream
	mu   sync.Mutex
	f    *os.File
	once sync.Once
}

func (s *recordingStream) record(dir byte, b []byte) {
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hdr := []byte{dir, byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}
	s.f.Write(hdr)
	s.f.Write(b)
}

func (s *recordingStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	s.record('<', b[:n])
	return n, err
}

func (s *recordingStream) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	s.record('>', b[:n])
	return n, err
}

func (s *recordingStream) closeFile() { s.once.Do(func() { s.f.Close() }) }

func (s *recordingStream) Close() error {
	defer s.closeFile()
	return s.Stream.Close()
}

func (s *recordingStream) Reset() error {
	defer s.closeFile()
	return s.Stream.Reset()
}
