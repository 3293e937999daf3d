package node_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// BenchmarkGroupFloor is the floor under BenchmarkGroupSend: the same
// fan-out with none of certchat's layers. The sender (a node alone in a
// child process, as in BenchmarkGroupSend) writes floorCopySize bytes on
// a plain libp2p stream to each member, one after the other from one
// goroutine, over the same hosts and connections (TCP, libp2p's TLS,
// yamux); each member reads its copy and writes floorAckSize bytes back,
// which the sender reads. No e2e TLS, no ratchet, no store, no fsync, no
// outbox workers, no receipt batching (acks=1 answers every copy; acks=0
// answers none). Its sender CPU is what one message to N members costs
// libp2p and the kernel on this machine, side by side with certchat's:
//
//	go test -run '^$' -bench 'GroupSend/members=100$|GroupFloor/members=100/' -benchtime 60x ./node/
func BenchmarkGroupFloor(b *testing.B) {
	for _, n := range []int{10, 100, 250} {
		for _, acks := range []bool{true, false} {
			b.Run(fmt.Sprintf("members=%d/acks=%d", n, map[bool]int{true: 1, false: 0}[acks]), func(b *testing.B) { benchFloor(b, n, acks) })
		}
	}
}

const (
	floorProto = protocol.ID("/certchat-bench/floor/1")
	// floorCopySize is about a group copy's size on an e2e session (a
	// 100-byte text: its group plaintext sealed in a ratchet envelope,
	// in an e2e frame and TLS record).
	floorCopySize = 400
	// floorAckSize is about one receipt frame in its TLS record.
	floorAckSize = 64
)

// floorMember answers the floor protocol on tn's host: each copy read is
// reported on arrived (its number) and, with acks, answered.
func floorMember(tn *testNode, acks bool, arrived chan<- uint64) {
	tn.Host().SetStreamHandler(floorProto, func(s network.Stream) {
		defer s.Close()
		buf := make([]byte, floorCopySize)
		ack := make([]byte, floorAckSize)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			arrived <- binary.BigEndian.Uint64(buf)
			if acks {
				copy(ack, buf[:8])
				if _, err := s.Write(ack); err != nil {
					return
				}
			}
		}
	})
}

func benchFloor(b *testing.B, members int, acks bool) {
	sender := startGroupSender(b)
	arrived := make(chan uint64, members*4)
	ids := make([]string, 0, members+2)
	ids = append(ids, "floor", strconv.FormatBool(acks))
	for i := range members {
		tn := startNode(b, newHome(b, fmt.Sprintf("m%d", i)), "/ip4/127.0.0.1/tcp/0")
		if err := tn.Contacts().Trust(sender.id, false); err != nil {
			b.Fatal(err)
		}
		floorMember(tn, acks, arrived)
		tn.Host().Peerstore().AddAddrs(sender.id, sender.addrs, time.Hour)
		sender.do("ok", "member", tn.ID().String(), tn.tcpAddr())
		ids = append(ids, tn.ID().String())
	}
	sender.do("ok", ids...)
	waitAll := func(seq uint64) time.Time {
		var last time.Time
		for got := 0; got < members; {
			select {
			case s := <-arrived:
				if s == seq {
					got++
					last = time.Now()
				}
			case <-time.After(time.Minute):
				b.Fatalf("copy %d reached %d of %d members", seq, got, members)
			}
		}
		return last
	}
	seq := uint64(0)
	send := func() time.Duration {
		seq++
		t0 := time.Now()
		sender.do("sent", "fsend", strconv.FormatUint(seq, 10))
		return waitAll(seq).Sub(t0)
	}
	for range 3 {
		send()
	}
	sender.do("quiet", "fquiet")
	u0 := sender.usage()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, send())
	}
	sender.do("quiet", "fquiet")
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	u1 := sender.usage()
	reportGroupRun(b, lat, u0, u1, ru0, ru1)
}

// floorSender is the child's side of BenchmarkGroupFloor: a plain stream
// to each member, and the acks read from them.
type floorSender struct {
	acks    bool
	streams []network.Stream
	sent    atomic.Uint64 // copies written
	acked   atomic.Uint64 // acks read
	failed  atomic.Pointer[error]
	buf     []byte
}

// floorCommand runs the child's floor commands (f[0] is the command):
//
//	floor ACKS ID...  open a stream to each member      → ok
//	fsend SEQ         write copy SEQ on every stream     → sent SEQ 0
//	fquiet            wait until every copy is acked     → quiet
func floorCommand(nd *node.Node, fs **floorSender, f []string) (string, error) {
	switch f[0] {
	case "floor":
		if len(f) < 2 {
			return "", errors.New("floor: no acks")
		}
		s, err := openFloor(nd, f[1] == "true", f[2:])
		*fs = s
		return "ok", err
	case "fsend":
		if *fs == nil || len(f) != 2 {
			return "", errors.New("fsend: no floor streams or no number")
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return "", err
		}
		return "sent " + f[1] + " 0", (*fs).send(seq)
	case "fquiet":
		if *fs == nil {
			return "", errors.New("fquiet: no floor streams")
		}
		return "quiet", (*fs).quiet()
	}
	return "", errors.New("unknown command " + f[0])
}

func openFloor(nd *node.Node, acks bool, ids []string) (*floorSender, error) {
	fs := &floorSender{acks: acks, buf: make([]byte, floorCopySize)}
	for _, s := range ids {
		p, err := peer.Decode(s)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := nd.Host().NewStream(network.WithAllowLimitedConn(ctx, "bench"), p, floorProto)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("floor stream to %s: %w", p, err)
		}
		fs.streams = append(fs.streams, st)
		if acks {
			go fs.readAcks(st)
		}
	}
	return fs, nil
}

func (fs *floorSender) readAcks(s network.Stream) {
	ack := make([]byte, floorAckSize)
	for {
		if _, err := io.ReadFull(s, ack); err != nil {
			if !errors.Is(err, io.EOF) {
				fs.failed.CompareAndSwap(nil, &err)
			}
			return
		}
		fs.acked.Add(1)
	}
}

// send writes copy seq to every member from this one goroutine.
func (fs *floorSender) send(seq uint64) error {
	binary.BigEndian.PutUint64(fs.buf, seq)
	for _, s := range fs.streams {
		if _, err := s.Write(fs.buf); err != nil {
			return err
		}
		fs.sent.Add(1)
	}
	return nil
}

func (fs *floorSender) quiet() error {
	if !fs.acks {
		return nil
	}
	deadline := time.Now().Add(time.Minute)
	for fs.acked.Load() < fs.sent.Load() {
		if e := fs.failed.Load(); e != nil {
			return *e
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d copies acked", fs.acked.Load(), fs.sent.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
