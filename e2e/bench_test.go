package e2e_test

// Benchmarks, measured side by side over real libp2p streams on loopback
// (docs/BENCHMARKS.md has the commands, the figures and the targets):
//
//	BenchmarkHandshake/certchat  our full handshake (both sides, checks included)
//	BenchmarkHandshake/tls       bare crypto/tls 1.3, mutual Ed25519, same groups
//	BenchmarkHandshake/resumed   our resumed handshake
//	BenchmarkHandshake/stream    opening the libp2p stream alone (in all three)
//	BenchmarkThroughput/certchat bulk frames through a Session
//	BenchmarkThroughput/raw      the same bytes on a raw libp2p stream
//	BenchmarkRoundTrip/certchat  a 1 KiB frame echoed on a Session (p50, p99)
//	BenchmarkRoundTrip/raw       the same bytes echoed on a raw stream
//
// Besides time, each reports cpu-µs/op: the CPU time the whole process
// (both ends, libp2p included) spent per operation, which a busy shared
// machine disturbs less than wall time.

import (
	"context"
	"crypto/tls"
	"io"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// benchPair is alice and bob, knowing each other, for benchmarks.
func benchPair(b *testing.B, aOpts ...partyOpt) (*party, *party) {
	w := hosts(b)
	a := newParty(b, w.alice, aOpts...)
	bp := newParty(b, w.bob)
	a.pin(b, w.bob.h.ID(), "", identity.StateTOFU)
	bp.pin(b, w.alice.h.ID(), "", identity.StateTOFU)
	return a, bp
}

// handle serves proto on n for the duration of the benchmark.
func handle(b *testing.B, n *node, h network.StreamHandler) protocol.ID {
	proto := newProto()
	n.h.SetStreamHandler(proto, h)
	b.Cleanup(func() { n.h.RemoveStreamHandler(proto) })
	return proto
}

func openStream(b *testing.B, from, to *node, proto protocol.ID) network.Stream {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	s, err := from.h.NewStream(ctx, to.h.ID(), proto)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// dialSession opens a stream from a's node to proto on to and runs a's
// handshake on it.
func dialSession(b *testing.B, a *party, to *node, proto protocol.ID) (*e2e.Session, network.Stream) {
	s := openStream(b, a.n, to, proto)
	sess, err := a.ep.Client(context.Background(), s, to.h.ID(), to.h.ID())
	if err != nil {
		b.Fatal(err)
	}
	return sess, s
}

func BenchmarkHandshake(b *testing.B) {
	w := hosts(b)
	// ours runs handshakes between a and bp until b.N; the server side
	// reports when its handshake is done, and each op waits for both.
	ours := func(b *testing.B, a, bp *party, wantResumed bool) {
		done := make(chan error, 1)
		proto := handle(b, w.bob, func(s network.Stream) {
			sess, err := bp.ep.Server(context.Background(), s, s.Conn().RemotePeer())
			done <- err
			if err == nil {
				sess.Close()
			}
			s.Close()
		})
		cpu := startCPU(b)
		for range b.N {
			sess, s := dialSession(b, a, w.bob, proto)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			if sess.Info().Resumed != wantResumed {
				b.Fatalf("resumed = %v", sess.Info().Resumed)
			}
			sess.Close()
			s.Close()
		}
		cpu.stop(b)
	}
	b.Run("certchat", func(b *testing.B) {
		a, bp := benchPair(b, withTicketAge(-1))
		ours(b, a, bp, false)
	})
	b.Run("resumed", func(b *testing.B) {
		a, bp := benchPair(b)
		// One session that reads, so that alice holds a ticket.
		c, s := run{client: a, server: bp}.do(b)
		if c.failure() != nil || s.failure() != nil {
			b.Fatal(c, s)
		}
		ours(b, a, bp, true)
	})
	b.Run("tls", func(b *testing.B) {
		// crypto/tls as it comes: TLS 1.3, the same groups, Ed25519
		// certificates both ways (not verified beyond the signature,
		// as ours are not by crypto/tls), the same ALPN.
		srv := bareConfig(w.bob.id.TLSCertificate(), nil)
		cli := bareConfig(w.alice.id.TLSCertificate(), nil)
		done := make(chan error, 1)
		proto := handle(b, w.bob, func(s network.Stream) {
			tc := tls.Server(streamConn{s}, srv)
			err := tc.Handshake()
			done <- err
			tc.Close()
		})
		cpu := startCPU(b)
		for range b.N {
			s := openStream(b, w.alice, w.bob, proto)
			tc := tls.Client(streamConn{s}, cli)
			if err := tc.Handshake(); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			tc.Close()
		}
		cpu.stop(b)
	})
	b.Run("stream", func(b *testing.B) {
		// What the three above spend on the libp2p stream: open, one
		// byte each way, close.
		proto := handle(b, w.bob, func(s network.Stream) {
			var one [1]byte
			io.ReadFull(s, one[:])
			s.Write(one[:])
			s.Close()
		})
		cpu := startCPU(b)
		for range b.N {
			s := openStream(b, w.alice, w.bob, proto)
			s.Write([]byte{1})
			var one [1]byte
			if _, err := io.ReadFull(s, one[:]); err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
		cpu.stop(b)
	})
}

// chunk is the payload of one bulk frame / write.
const chunk = 64 << 10

func BenchmarkThroughput(b *testing.B) {
	w := hosts(b)
	payload := make([]byte, chunk)
	b.Run("certchat", func(b *testing.B) {
		a, bp := benchPair(b)
		got := make(chan int64, 1)
		proto := handle(b, w.bob, func(s network.Stream) {
			sess, err := bp.ep.Server(context.Background(), s, s.Conn().RemotePeer())
			if err != nil {
				got <- -1
				return
			}
			var n int64
			for {
				f, err := sess.Receive()
				if err != nil {
					break
				}
				n += int64(len(f.Payload))
			}
			sess.Close()
			got <- n
		})
		sess, _ := dialSession(b, a, w.bob, proto)
		b.SetBytes(chunk)
		cpu := startCPU(b)
		for range b.N {
			if err := sess.Send(e2e.FrameEnvelope, payload); err != nil {
				b.Fatal(err)
			}
		}
		sess.Close()
		n := <-got
		cpu.stop(b)
		if n != int64(b.N)*chunk {
			b.Fatalf("received %d bytes, sent %d", n, int64(b.N)*chunk)
		}
	})
	b.Run("raw", func(b *testing.B) {
		got := make(chan int64, 1)
		proto := handle(b, w.bob, func(s network.Stream) {
			n, _ := io.Copy(io.Discard, s)
			s.Close()
			got <- n
		})
		s := openStream(b, w.alice, w.bob, proto)
		// The same bytes as a frame: header and payload.
		frame, _ := e2e.AppendFrame(nil, e2e.FrameEnvelope, payload)
		b.SetBytes(chunk)
		cpu := startCPU(b)
		for range b.N {
			if _, err := s.Write(frame); err != nil {
				b.Fatal(err)
			}
		}
		s.CloseWrite()
		n := <-got
		cpu.stop(b)
		if n != int64(b.N)*int64(len(frame)) {
			b.Fatalf("received %d bytes", n)
		}
		s.Close()
	})
}

// msgSize is the round trip's message.
const msgSize = 1 << 10

func BenchmarkRoundTrip(b *testing.B) {
	w := hosts(b)
	payload := make([]byte, msgSize)
	b.Run("certchat", func(b *testing.B) {
		a, bp := benchPair(b)
		proto := handle(b, w.bob, func(s network.Stream) {
			sess, err := bp.ep.Server(context.Background(), s, s.Conn().RemotePeer())
			if err != nil {
				return
			}
			for {
				f, err := sess.Receive()
				if err != nil {
					break
				}
				if err := sess.Send(f.Type, f.Payload); err != nil {
					break
				}
			}
			sess.Close()
		})
		sess, _ := dialSession(b, a, w.bob, proto)
		lat := make([]time.Duration, 0, b.N)
		cpu := startCPU(b)
		for range b.N {
			start := time.Now()
			if err := sess.Send(e2e.FrameEnvelope, payload); err != nil {
				b.Fatal(err)
			}
			if f, err := sess.Receive(); err != nil || len(f.Payload) != msgSize {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		cpu.stop(b)
		reportLatency(b, lat)
		sess.Close()
	})
	b.Run("raw", func(b *testing.B) {
		proto := handle(b, w.bob, func(s network.Stream) {
			io.Copy(s, s)
			s.Close()
		})
		s := openStream(b, w.alice, w.bob, proto)
		frame, _ := e2e.AppendFrame(nil, e2e.FrameEnvelope, payload)
		back := make([]byte, len(frame))
		lat := make([]time.Duration, 0, b.N)
		cpu := startCPU(b)
		for range b.N {
			start := time.Now()
			if _, err := s.Write(frame); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(s, back); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		cpu.stop(b)
		reportLatency(b, lat)
		s.Close()
	})
}

// cpuMeter measures the process's CPU time (user and system) while a
// benchmark's timer runs.
type cpuMeter struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuMeter {
	b.ReportAllocs()
	b.ResetTimer()
	return &cpuMeter{start: cpuTime()}
}

func (m *cpuMeter) stop(b *testing.B) {
	used := cpuTime() - m.start
	b.StopTimer()
	b.ReportMetric(float64(used.Nanoseconds())/1e3/float64(b.N), "cpu-µs/op")
}

// reportLatency reports the median and 99th percentile in µs.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
