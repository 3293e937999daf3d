package node_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
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
// libp2p and the kernel on this machine, side by side with certchat's.
// Besides GroupSend's figures it reports sender-vcsw/msg and
// members-vcsw/msg, the voluntary context switches a message (getrusage:
// a thread that slept, on a futex or in epoll, and was woken):
//
//	go test -run '^$' -bench 'GroupSend/members=100$|GroupFloor/members=100/' -benchtime 60x ./node/
//
// The forwarded shape (fwd=K) is the floor of a fan-out through K of the
// members: members 0..K-1 forward, each other member i is assigned to
// forwarder i mod K, and each forwarder holds a plain stream to each of
// its members (opened before the timed loop). Per message the sender
// writes each forwarder one bundle in one Write: the forwarder's own copy
// and one copy per assigned member, each behind a 4-byte target; the
// forwarder writes each copy onward on its member's stream. With
// acks=direct every member acks its copy straight to the sender (on a
// stream the sender opened to it; a forwarder on its bundle stream), N
// acks a message; with acks=agg members ack to their forwarder, which
// sends the sender one ack per bundle once its own copy and all its
// members' are acked, K acks a message; with acks=none nobody acks (the
// bundles' cost alone, as acks=0 of the direct floor). Latency is still
// to the last member's arrival, and members-cpu-ms/msg includes the
// forwarders' work:
//
//	go test -run '^$' -bench 'GroupFloor/members=100/(acks=1|fwd=)' -benchtime 60x ./node/
//	go test -run '^$' -bench 'GroupFloor/members=250/fwd=' -benchtime 30x ./node/
//	go test -race -run '^$' -bench 'GroupFloor/members=10/' -benchtime 3x ./node/
func BenchmarkGroupFloor(b *testing.B) {
	fwds := map[int][]int{10: {3}, 100: {5, 10, 20}, 250: {16}}
	for _, n := range []int{10, 100, 250} {
		for _, acks := range []bool{true, false} {
			b.Run(fmt.Sprintf("members=%d/acks=%d", n, map[bool]int{true: 1, false: 0}[acks]), func(b *testing.B) { benchFloor(b, n, acks) })
		}
		for _, k := range fwds[n] {
			for _, acks := range []fwdAcks{fwdDirect, fwdAgg, fwdNone} {
				b.Run(fmt.Sprintf("members=%d/fwd=%d/acks=%s", n, k, acks), func(b *testing.B) { benchFloorFwd(b, n, k, acks) })
			}
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

	// The forwarded shape's protocols: the sender's bundles to a
	// forwarder (and the forwarder's acks back), a forwarder's copies to
	// its members (and, with acks=agg, their acks back), and a member's
	// acks straight to the sender (acks=direct).
	floorFwdProto = protocol.ID("/certchat-bench/floor-fwd/1")
	floorHopProto = protocol.ID("/certchat-bench/floor-hop/1")
	floorAckProto = protocol.ID("/certchat-bench/floor-ack/1")
	// fwdEntrySize is a copy in a bundle: its 4-byte target and the copy.
	fwdEntrySize = 4 + floorCopySize
	// floorHelloSize is the hello that opens a stream of the forwarded
	// shape, and its answer.
	floorHelloSize = 8
)

// fwdAcks is how the members of a forwarded floor run ack their copies.
type fwdAcks string

const (
	fwdDirect fwdAcks = "direct" // each to the sender
	fwdAgg    fwdAcks = "agg"    // to its forwarder; the forwarder one a bundle
	fwdNone   fwdAcks = "none"   // not at all
)

// fwdBundleSize is the size of a bundle to a forwarder with assigned
// members: a 4-byte count, then its own copy and theirs.
func fwdBundleSize(assigned int) int { return 4 + (1+assigned)*fwdEntrySize }

// fwdAssign assigns the members of a forwarded run: forwarder f (member
// f, f < k) gets members f+k, f+2k, ... in that order.
func fwdAssign(members, k int) [][]int {
	a := make([][]int, k)
	for i := k; i < members; i++ {
		a[i%k] = append(a[i%k], i)
	}
	return a
}

// floorHello opens a stream of the forwarded shape: a hello, then the
// member's answer, within floorSetupTimeout.
func floorHello(s network.Stream) error {
	if err := s.SetDeadline(time.Now().Add(floorSetupTimeout)); err != nil {
		return err
	}
	buf := make([]byte, floorHelloSize)
	if _, err := s.Write(buf); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if _, err := io.ReadFull(s, buf); err != nil {
		return fmt.Errorf("hello answer: %w", err)
	}
	return s.SetDeadline(time.Time{})
}

// floorGreeted is the member's side of floorHello: it reads the hello,
// runs ready (the handler's taking the stream) and answers.
func floorGreeted(s network.Stream, ready func()) error {
	if err := s.SetDeadline(time.Now().Add(floorSetupTimeout)); err != nil {
		return err
	}
	buf := make([]byte, floorHelloSize)
	if _, err := io.ReadFull(s, buf); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	ready()
	if _, err := s.Write(buf); err != nil {
		return fmt.Errorf("hello answer: %w", err)
	}
	return s.SetDeadline(time.Time{})
}

const floorSetupTimeout = 30 * time.Second

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
	for _, tn := range floorMembers(b, sender, members) {
		floorMember(tn, acks, arrived)
		ids = append(ids, tn.ID().String())
	}
	sender.do("ok", ids...)
	runFloor(b, sender, members, arrived, nil)
}

// floorMembers starts the members of a floor run, each knowing the
// sender and known to it.
func floorMembers(b *testing.B, sender *groupSender, members int) []*testNode {
	nodes := make([]*testNode, members)
	for i := range nodes {
		tn := startNode(b, newHome(b, fmt.Sprintf("m%d", i)), "/ip4/127.0.0.1/tcp/0")
		if err := tn.Contacts().Trust(sender.id, false); err != nil {
			b.Fatal(err)
		}
		tn.Host().Peerstore().AddAddrs(sender.id, sender.addrs, time.Hour)
		sender.do("ok", "member", tn.ID().String(), tn.tcpAddr())
		nodes[i] = tn
	}
	return nodes
}

// runFloor runs the timed loop of a floor run whose streams are set up:
// per message the sender writes copy SEQ (fsend) and the loop waits until
// every member reported SEQ on arrived, or failed is done (its fail's
// error then fails the run; nil if nothing can fail apart from arrivals).
func runFloor(b *testing.B, sender *groupSender, members int, arrived <-chan uint64, failed *floorFailure) {
	var failedC <-chan struct{}
	if failed != nil {
		failedC = failed.done
	}
	waitAll := func(seq uint64) time.Time {
		var last time.Time
		timeout := time.After(time.Minute)
		for got := 0; got < members; {
			select {
			case s := <-arrived:
				if s == seq {
					got++
					last = time.Now()
				}
			case <-failedC:
				b.Fatalf("copy %d reached %d of %d members: %v", seq, got, members, failed.err)
			case <-timeout:
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
	sw0 := sender.switches()
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
	sw1 := sender.switches()
	u1 := sender.usage()
	reportGroupRun(b, lat, u0, u1, ru0, ru1)
	b.ReportMetric(float64(sw1-sw0)/float64(b.N), "sender-vcsw/msg")
	b.ReportMetric(float64(ru1.Nvcsw-ru0.Nvcsw)/float64(b.N), "members-vcsw/msg")
}

// switches is the child's voluntary context switches so far (all its
// threads': each a thread that slept, on a futex or in epoll, and was
// woken).
func (gs *groupSender) switches() int64 {
	f := gs.do("switches", "fswitches")
	if len(f) != 1 {
		gs.b.Fatalf("group sender switches: %q", f)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		gs.b.Fatalf("group sender switches: %v", err)
	}
	return n
}

// floorFailure is the first error of a floor run's members: done closes
// when it is set.
type floorFailure struct {
	once sync.Once
	done chan struct{}
	err  error
}

func (f *floorFailure) fail(err error) {
	f.once.Do(func() { f.err = err; close(f.done) })
}

// fwdRun is what the members of a forwarded floor run share.
type fwdRun struct {
	acks    fwdAcks
	arrived chan<- uint64
	stop    chan struct{} // closed at the run's end
	failure floorFailure
}

// fail reports err unless the run is over (streams then close under the
// members' goroutines).
func (r *fwdRun) fail(err error) {
	select {
	case <-r.stop:
	default:
		r.failure.fail(err)
	}
}

// arrive reports copy seq arrived at a member.
func (r *fwdRun) arrive(seq uint64) {
	select {
	case r.arrived <- seq:
	case <-r.stop:
	}
}

// fwdMember is one member of a forwarded floor run.
type fwdMember struct {
	run *fwdRun
	tn  *testNode
	// a forwarder's streams to its assigned members, in their order
	hops []network.Stream
	// a forwarder's acks to aggregate (acks=agg): its own copies' and
	// its members'
	acks chan uint64
	// a member's stream to the sender for its acks (acks=direct)
	toSender atomic.Pointer[network.Stream]
}

func benchFloorFwd(b *testing.B, members, k int, acks fwdAcks) {
	sender := startGroupSender(b)
	arrived := make(chan uint64, members*4)
	nodes := floorMembers(b, sender, members)
	run := &fwdRun{acks: acks, arrived: arrived, stop: make(chan struct{}), failure: floorFailure{done: make(chan struct{})}}
	b.Cleanup(func() { close(run.stop) }) // before the nodes close
	ms := make([]*fwdMember, members)
	ids := []string{"ffwd", strconv.Itoa(k), string(acks)}
	for i, tn := range nodes {
		ms[i] = &fwdMember{run: run, tn: tn}
		if i < k {
			tn.Host().SetStreamHandler(floorFwdProto, ms[i].serveBundles)
		} else {
			tn.Host().SetStreamHandler(floorHopProto, ms[i].serveHop)
			tn.Host().SetStreamHandler(floorAckProto, ms[i].serveAckStream)
		}
		ids = append(ids, tn.ID().String())
	}
	for f, assigned := range fwdAssign(members, k) {
		if err := ms[f].openHops(ms, assigned); err != nil {
			b.Fatal(err)
		}
	}
	sender.do("ok", ids...)
	runFloor(b, sender, members, arrived, &run.failure)
}

// openHops opens forwarder m's streams to its assigned members.
func (m *fwdMember) openHops(ms []*fwdMember, assigned []int) error {
	m.acks = make(chan uint64, 4*(1+len(assigned)))
	for _, i := range assigned {
		to := ms[i].tn
		m.tn.Host().Peerstore().AddAddrs(to.ID(), to.Host().Addrs(), time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), floorSetupTimeout)
		s, err := m.tn.Host().NewStream(ctx, to.ID(), floorHopProto)
		cancel()
		if err != nil {
			return fmt.Errorf("forwarder %s to member %d: %w", m.tn.ID(), i, err)
		}
		if err := floorHello(s); err != nil {
			s.Reset()
			return fmt.Errorf("forwarder %s to member %d: %w", m.tn.ID(), i, err)
		}
		m.hops = append(m.hops, s)
		if m.run.acks == fwdAgg {
			go m.readHopAcks(s)
		}
	}
	return nil
}

// serveBundles is a forwarder's side of the sender's stream: each bundle
// read, its members' copies are written onward, in one pass, and its own
// copy is acked (acks=direct), counted with its members' acks (agg) or
// not acked (none).
func (m *fwdMember) serveBundles(s network.Stream) {
	defer s.Close()
	if err := floorGreeted(s, func() {}); err != nil {
		m.run.fail(fmt.Errorf("forwarder: %w", err))
		return
	}
	if m.run.acks == fwdAgg {
		go m.aggregate(s)
	}
	want := 1 + len(m.hops)
	bundle := make([]byte, fwdBundleSize(len(m.hops)))
	ack := make([]byte, floorAckSize)
	for {
		if _, err := io.ReadFull(s, bundle); err != nil {
			if !errors.Is(err, io.EOF) {
				m.run.fail(fmt.Errorf("forwarder: bundle: %w", err))
			}
			return
		}
		if n := binary.BigEndian.Uint32(bundle); n != uint32(want) {
			m.run.fail(fmt.Errorf("forwarder: a bundle of %d copies, want %d", n, want))
			return
		}
		seq, err := m.forward(bundle[4:])
		if err != nil {
			m.run.fail(err)
			return
		}
		switch m.run.acks {
		case fwdAgg:
			m.countAck(seq)
			continue
		case fwdNone:
			continue
		}
		binary.BigEndian.PutUint64(ack, seq)
		if _, err := s.Write(ack); err != nil {
			m.run.fail(fmt.Errorf("forwarder: ack: %w", err))
			return
		}
	}
}

// forward writes each member's copy of a bundle's entries onward and
// reports the forwarder's own (target 0) arrived first; it returns that
// copy's number.
func (m *fwdMember) forward(entries []byte) (uint64, error) {
	own := -1
	for j := 0; j < len(entries); j += fwdEntrySize {
		if binary.BigEndian.Uint32(entries[j:]) == 0 {
			own = j
			break
		}
	}
	if own < 0 {
		return 0, errors.New("forwarder: a bundle without its own copy")
	}
	seq := binary.BigEndian.Uint64(entries[own+4:])
	m.run.arrive(seq)
	for j := 0; j < len(entries); j += fwdEntrySize {
		t := binary.BigEndian.Uint32(entries[j:])
		if t == 0 {
			continue
		}
		if int(t) > len(m.hops) {
			return 0, fmt.Errorf("forwarder: a copy for member %d of %d", t, len(m.hops))
		}
		if _, err := m.hops[t-1].Write(entries[j+4 : j+fwdEntrySize]); err != nil {
			return 0, fmt.Errorf("forwarder: copy to member %d: %w", t, err)
		}
	}
	return seq, nil
}

// countAck hands one ack of copy seq (the forwarder's own or a member's)
// to aggregate.
func (m *fwdMember) countAck(seq uint64) {
	select {
	case m.acks <- seq:
	case <-m.run.stop:
	}
}

// readHopAcks reads a member's acks on the forwarder's stream to it
// (acks=agg).
func (m *fwdMember) readHopAcks(s network.Stream) {
	ack := make([]byte, floorAckSize)
	for {
		if _, err := io.ReadFull(s, ack); err != nil {
			if !errors.Is(err, io.EOF) {
				m.run.fail(fmt.Errorf("forwarder: member ack: %w", err))
			}
			return
		}
		m.countAck(binary.BigEndian.Uint64(ack))
	}
}

// aggregate writes the sender one ack per bundle (on s, the bundles'
// stream) once the forwarder's copy and all its members' are acked.
func (m *fwdMember) aggregate(s network.Stream) {
	want := 1 + len(m.hops)
	got := make(map[uint64]int)
	ack := make([]byte, floorAckSize)
	for {
		var seq uint64
		select {
		case seq = <-m.acks:
		case <-m.run.stop:
			return
		}
		if got[seq]++; got[seq] < want {
			continue
		}
		delete(got, seq)
		binary.BigEndian.PutUint64(ack, seq)
		if _, err := s.Write(ack); err != nil {
			m.run.fail(fmt.Errorf("forwarder: bundle ack: %w", err))
			return
		}
	}
}

// serveHop is a member's side of its forwarder's stream: each copy read
// is reported and acked, to the forwarder (acks=agg) or to the sender
// (direct), or not acked (none).
func (m *fwdMember) serveHop(s network.Stream) {
	defer s.Close()
	if err := floorGreeted(s, func() {}); err != nil {
		m.run.fail(fmt.Errorf("member: %w", err))
		return
	}
	buf := make([]byte, floorCopySize)
	ack := make([]byte, floorAckSize)
	for {
		if _, err := io.ReadFull(s, buf); err != nil {
			if !errors.Is(err, io.EOF) {
				m.run.fail(fmt.Errorf("member: copy: %w", err))
			}
			return
		}
		seq := binary.BigEndian.Uint64(buf)
		m.run.arrive(seq)
		if err := m.ackHop(s, ack, seq); err != nil {
			m.run.fail(err)
			return
		}
	}
}

// ackHop acks copy seq, read on the forwarder's stream s, as the run
// asks: on s (acks=agg), on the sender's stream (direct) or not (none).
func (m *fwdMember) ackHop(s network.Stream, ack []byte, seq uint64) error {
	switch m.run.acks {
	case fwdNone:
		return nil
	case fwdDirect:
		p := m.toSender.Load()
		if p == nil {
			return errors.New("member: a copy before the sender's ack stream")
		}
		s = *p
	}
	binary.BigEndian.PutUint64(ack, seq)
	if _, err := s.Write(ack); err != nil {
		return fmt.Errorf("member: ack: %w", err)
	}
	return nil
}

// serveAckStream takes the sender's stream for a member's acks
// (acks=direct) and holds it until the sender closes it.
func (m *fwdMember) serveAckStream(s network.Stream) {
	defer s.Close()
	if err := floorGreeted(s, func() { m.toSender.Store(&s) }); err != nil {
		m.run.fail(fmt.Errorf("member: ack stream: %w", err))
		return
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		m.run.fail(fmt.Errorf("member: ack stream: %w", err))
	}
}

// floorSender is the child's side of BenchmarkGroupFloor: the streams it
// writes each message on (a copy, or a forwarder's bundle, each), and the
// acks read from its streams.
type floorSender struct {
	out     []network.Stream
	payload [][]byte      // what each of out carries a message
	seqAt   [][]byte      // where each copy holds its message's number
	acksPer []uint64      // the acks each payload of out is answered by
	want    atomic.Uint64 // acks due for what was written
	acked   atomic.Uint64 // acks read
	failed  atomic.Pointer[error]
}

// floorCommand runs the child's floor commands (f[0] is the command):
//
//	floor ACKS ID...     open a stream to each member        → ok
//	ffwd K ACKS ID...    the forwarded shape: a stream to    → ok
//	                     each of the K forwarders (the first
//	                     K IDs) and, with ACKS direct, one
//	                     to each other member for its acks
//	fsend SEQ            write copy SEQ on every stream       → sent SEQ 0
//	                     (ffwd: each forwarder's bundle)
//	fquiet               wait until every ack due is read     → quiet
//	fswitches            voluntary context switches so far    → switches N
func floorCommand(nd *node.Node, fs **floorSender, f []string) (string, error) {
	switch f[0] {
	case "floor":
		if len(f) < 2 {
			return "", errors.New("floor: no acks")
		}
		s, err := openFloor(nd, f[1] == "true", f[2:])
		*fs = s
		return "ok", err
	case "ffwd":
		if len(f) < 3 {
			return "", errors.New("ffwd: no forwarder count or acks")
		}
		k, err := strconv.Atoi(f[1])
		if err != nil {
			return "", fmt.Errorf("ffwd: forwarder count: %w", err)
		}
		s, err := openFloorFwd(nd, k, fwdAcks(f[2]), f[3:])
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
	case "fswitches":
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return "", err
		}
		return "switches " + strconv.FormatInt(ru.Nvcsw, 10), nil
	}
	return "", errors.New("unknown command " + f[0])
}

func openFloor(nd *node.Node, acks bool, ids []string) (*floorSender, error) {
	fs := &floorSender{}
	buf := make([]byte, floorCopySize)
	fs.seqAt = [][]byte{buf[:8]}
	for _, s := range ids {
		st, err := floorStream(nd, s, floorProto, false)
		if err != nil {
			return nil, err
		}
		fs.out = append(fs.out, st)
		fs.payload = append(fs.payload, buf)
		fs.acksPer = append(fs.acksPer, map[bool]uint64{true: 1, false: 0}[acks])
		if acks {
			go fs.readAcks(st)
		}
	}
	return fs, nil
}

// floorStream opens a stream with protocol proto to the member with ID s;
// with greet, it says hello and waits for the member's answer (so that
// the member's handler has the stream before the timed loop starts).
func floorStream(nd *node.Node, s string, proto protocol.ID, greet bool) (network.Stream, error) {
	p, err := peer.Decode(s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := nd.Host().NewStream(network.WithAllowLimitedConn(ctx, "bench"), p, proto)
	if err != nil {
		return nil, fmt.Errorf("floor stream to %s: %w", p, err)
	}
	if greet {
		if err := floorHello(st); err != nil {
			st.Reset()
			return nil, fmt.Errorf("floor stream to %s: %w", p, err)
		}
	}
	return st, nil
}

// openFloorFwd opens the sender's streams of the forwarded shape: one to
// each forwarder, for its bundles and its acks, and (acks=direct) one to
// each other member for its acks.
func openFloorFwd(nd *node.Node, k int, acks fwdAcks, ids []string) (*floorSender, error) {
	if k < 1 || k > len(ids) {
		return nil, fmt.Errorf("ffwd: %d forwarders for %d members", k, len(ids))
	}
	if acks != fwdDirect && acks != fwdAgg && acks != fwdNone {
		return nil, fmt.Errorf("ffwd: acks %q", acks)
	}
	fs := &floorSender{}
	for f, assigned := range fwdAssign(len(ids), k) {
		st, err := floorStream(nd, ids[f], floorFwdProto, true)
		if err != nil {
			return nil, err
		}
		fs.out = append(fs.out, st)
		fs.payload = append(fs.payload, fs.bundle(len(assigned)))
		switch acks {
		case fwdDirect: // the forwarder's and each member's
			fs.acksPer = append(fs.acksPer, uint64(1+len(assigned)))
		case fwdAgg: // the forwarder's, for the bundle
			fs.acksPer = append(fs.acksPer, 1)
		case fwdNone:
			fs.acksPer = append(fs.acksPer, 0)
			continue
		}
		go fs.readAcks(st)
		if acks == fwdAgg {
			continue
		}
		for _, m := range assigned {
			st, err := floorStream(nd, ids[m], floorAckProto, true)
			if err != nil {
				return nil, err
			}
			go fs.readAcks(st)
		}
	}
	return fs, nil
}

// bundle makes the bundle to a forwarder with assigned members: its
// own copy (target 0) and one per member (target j+1 for its j-th), each
// behind its 4-byte target, after a 4-byte count; the copies' numbers
// go to fs.seqAt.
func (fs *floorSender) bundle(assigned int) []byte {
	b := make([]byte, fwdBundleSize(assigned))
	binary.BigEndian.PutUint32(b, uint32(1+assigned))
	for j := range 1 + assigned {
		c := b[4+j*fwdEntrySize:]
		binary.BigEndian.PutUint32(c, uint32(j))
		fs.seqAt = append(fs.seqAt, c[4:12])
	}
	return b
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

// send writes message seq, a copy or a bundle on each stream, from this
// one goroutine.
func (fs *floorSender) send(seq uint64) error {
	for _, at := range fs.seqAt {
		binary.BigEndian.PutUint64(at, seq)
	}
	for i, s := range fs.out {
		if _, err := s.Write(fs.payload[i]); err != nil {
			return err
		}
		fs.want.Add(fs.acksPer[i])
	}
	return nil
}

func (fs *floorSender) quiet() error {
	deadline := time.Now().Add(time.Minute)
	for fs.acked.Load() < fs.want.Load() {
		if e := fs.failed.Load(); e != nil {
			return *e
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d acks read", fs.acked.Load(), fs.want.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
