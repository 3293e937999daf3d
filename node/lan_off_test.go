package node_test

import (
	"net"
	"testing"

	"github.com/certchat/certchat/node"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A node told to listen on loopback only starts with LAN discovery off,
// says why, and turns it on when it listens on a LAN address.
func TestLANOffWithoutLANAddress(t *testing.T) {
	n := startNodeWith(t, newHome(t, "alice"), func(c *node.Config) { c.MDNS = true }, "/ip4/127.0.0.1/tcp/0")
	e := n.waitFor("LAN off", func(e node.Event) bool { return e.Kind == node.EventLAN })
	if e.LAN.On || e.LAN.Reason != "no LAN address in use" {
		t.Fatalf("LAN event %+v", *e.LAN)
	}
	if st := n.LAN(); st.On {
		t.Fatalf("LAN() = %+v", st)
	}
	lanIP := firstLANIP(t)
	if lanIP == nil {
		t.Skip("this machine has no LAN address to listen on")
	}
	a, err := manet.FromNetAddr(&net.TCPAddr{IP: lanIP})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Host().Network().Listen(a); err != nil {
		t.Fatal(err)
	}
	e = n.waitFor("LAN on", func(e node.Event) bool { return e.Kind == node.EventLAN })
	if !e.LAN.On {
		t.Fatalf("LAN event %+v after listening on %s", *e.LAN, a)
	}
	// A late subscriber hears the status at once.
	sub := n.Subscribe()
	defer sub.Close()
	for e := range sub.C {
		if e.Kind == node.EventLAN {
			if !e.LAN.On {
				t.Fatalf("late subscriber: %+v", *e.LAN)
			}
			break
		}
	}
}

// firstLANIP is an IPv4 address of this machine that is neither loopback
// nor link-local, or nil.
func firstLANIP(t *testing.T) net.IP {
	addrs, err := manet.InterfaceMultiaddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ip, err := manet.ToIP(a); err == nil && ip.To4() != nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() {
			return ip
		}
	}
	return nil
}
