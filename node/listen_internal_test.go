package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/sys/unix"
)

// The default listen addresses remember their ports; addresses the user
// chose do not.
func TestDefaultListenRemembersPorts(t *testing.T) {
	var def Config
	def.defaults()
	if !def.RememberPorts || len(def.Listen) != len(DefaultListen) {
		t.Fatalf("defaults: RememberPorts %v, Listen %v", def.RememberPorts, def.Listen)
	}
	def.Listen[0] = "changed"
	if DefaultListen[0] == "changed" {
		t.Fatal("the config shares DefaultListen's array")
	}
	chosen := Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}}
	chosen.defaults()
	if chosen.RememberPorts {
		t.Fatal("addresses the user chose are remembered")
	}
}

// listenTestNode starts a node on home with the default-style addresses
// on 127.0.0.1 (port 0), remembering ports or not.
func listenTestNode(t *testing.T, h identity.Home, remember bool) (*Node, *offLog) {
	t.Helper()
	id, err := h.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := h.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	logs := &offLog{}
	n, err := New(Config{Home: h, Identity: id, Trust: ts, Logger: slog.New(logs), RememberPorts: remember,
		Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, logs
}

// listenPortsOf are the node's TCP and QUIC ports, and checks that the
// addresses it gives out (Addrs) carry them.
func listenPortsOf(t *testing.T, n *Node) (tcp, quic int) {
	t.Helper()
	for _, a := range n.host.Network().ListenAddresses() {
		if len(a) < 2 {
			continue // the relay transport's /p2p-circuit
		}
		port, err := strconv.Atoi(a[1].Value())
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case a[1].Code() == ma.P_TCP:
			tcp = port
		case len(a) > 2 && a[2].Code() == ma.P_QUIC_V1:
			quic = port
		}
	}
	if tcp == 0 || quic == 0 {
		t.Fatalf("listening on %v: no TCP or no QUIC port", n.host.Network().ListenAddresses())
	}
	want := map[string]bool{
		"/ip4/127.0.0.1/tcp/" + strconv.Itoa(tcp) + "/p2p/" + n.ID().String():          false,
		"/ip4/127.0.0.1/udp/" + strconv.Itoa(quic) + "/quic-v1/p2p/" + n.ID().String(): false,
	}
	for _, a := range n.Addrs() {
		if _, ok := want[a]; ok {
			want[a] = true
		}
	}
	for a, found := range want {
		if !found {
			t.Fatalf("%s is not among the addresses given out: %v", a, n.Addrs())
		}
	}
	return tcp, quic
}

const portTakenLog = "the remembered listen port is not available; listening on a new port (addresses shared before will not work)"

// A restart listens on the ports of the previous run; a port another
// process took falls back to a new one, says so, and the new one is kept.
func TestListenPortsSurviveRestart(t *testing.T) {
	h := identity.Home{Dir: t.TempDir()}
	if _, err := h.Init("alice", nil, identity.DefaultKDF, time.Now()); err != nil {
		t.Fatal(err)
	}
	// run starts a node remembering ports, notes its ports and stops it.
	run := func() (tcp, quic int, logs *offLog) {
		n, logs := listenTestNode(t, h, true)
		tcp, quic = listenPortsOf(t, n)
		n.Close()
		return tcp, quic, logs
	}
	tcp1, quic1, _ := run()

	tcp2, quic2, logs := run()
	if tcp2 != tcp1 || quic2 != quic1 {
		t.Fatalf("after a restart: TCP %d, QUIC %d; before: TCP %d, QUIC %d", tcp2, quic2, tcp1, quic1)
	}
	if logs.count(portTakenLog) != 0 {
		t.Fatal("a free remembered port was reported taken")
	}

	// Another process takes the TCP port (a plain listener: no SO_REUSEPORT).
	other, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(tcp1))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tcp3, quic3, logs := run()
	if tcp3 == tcp1 || quic3 != quic1 {
		t.Fatalf("with TCP port %d taken: TCP %d, QUIC %d (QUIC was %d)", tcp1, tcp3, quic3, quic1)
	}
	if logs.count(portTakenLog) != 1 {
		t.Fatalf("the taken port was not reported once at info level: %q", logs.msgs)
	}
	other.Close()

	// The new port is the one remembered now.
	tcp4, quic4, _ := run()
	if tcp4 != tcp3 || quic4 != quic1 {
		t.Fatalf("after the fallback: TCP %d, QUIC %d; want %d, %d", tcp4, quic4, tcp3, quic1)
	}

	// A process that holds the port with SO_REUSEPORT, as libp2p's TCP
	// listeners do (another certchat home), would share it with us and
	// take some of our connections: that port is taken too.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	sharing, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(tcp3))
	if err != nil {
		t.Fatal(err)
	}
	defer sharing.Close()
	tcp5, _, logs := run()
	sharing.Close()
	if tcp5 == tcp3 || logs.count(portTakenLog) != 1 {
		t.Fatalf("with TCP port %d held with SO_REUSEPORT: listening on %d, reported %d times", tcp3, tcp5, logs.count(portTakenLog))
	}

	// Addresses the user chose are used as given and not remembered.
	chosen, _ := listenTestNode(t, h, false)
	listenPortsOf(t, chosen)
	saved, err := chosen.store.ListenPorts()
	chosen.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != 2 || saved["/ip4/127.0.0.1/tcp/0"] != tcp5 || saved["/ip4/127.0.0.1/udp/0/quic-v1"] != quic1 {
		t.Fatalf("remembered after a run with chosen addresses: %v; want TCP %d, QUIC %d", saved, tcp5, quic1)
	}
}

// A fixed port another process holds is refused with ErrPortInUse before
// libp2p shares it (SO_REUSEPORT); port 0 and free ports are fine.
func TestPortsFree(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"/ip4/127.0.0.1/tcp/0", true},
		{"/ip4/127.0.0.1/udp/0/quic-v1", true},
		{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", taken), false},
		{fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", taken), true}, // UDP: another socket
		{"/ip4/127.0.0.1/tcp/notaport", true},                       // libp2p reports it
	} {
		err := portsFree([]string{tc.addr})
		if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrPortInUse) {
			t.Errorf("%s: %v", tc.addr, err)
		}
	}
}
