package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/libp2p/go-libp2p"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Remembered listen ports (Config.RememberPorts).
//
// A listen address with port 0 gets a port the system picks, a new one at
// every start, so an address given to a friend would stop working after a
// restart. With RememberPorts the node saves the port each such address
// got (the store's meta "listen-ports") and asks for it first next time.
// It checks that the port is free before: libp2p's TCP listeners set
// SO_REUSEPORT, so another process of the same user holding the port with
// it too (another certchat home) would share the port, and receive some
// of our connections, instead of refusing it. A port that is taken falls
// back to port 0, which is logged and remembered in turn.

// listenAddrs are the addresses to ask libp2p for: listen, with the
// remembered port of each address with port 0 where that port is free.
// It also returns the remembered ports, for rememberPorts (empty if they
// cannot be read).
func (c *core) listenAddrs(listen []string) ([]string, map[string]int) {
	if !c.cfg.RememberPorts || len(listen) == 0 {
		return listen, nil
	}
	saved, err := c.store.ListenPorts()
	if err != nil {
		c.log.Warn("cannot read the remembered listen ports; listening on new ones", "err", err)
		saved = map[string]int{} // unreadable: replaced by what we get now
	}
	out := slices.Clone(listen)
	for i, s := range listen {
		port, ok := saved[s]
		tmpl, anyPort := portZero(s)
		if !ok || !anyPort || port <= 0 || port > 65535 {
			continue
		}
		want := withPort(tmpl, port)
		if err := portFree(want); err != nil {
			c.log.Info("the remembered listen port is not available; listening on a new port (addresses shared before will not work)",
				"addr", want, "err", err)
			continue
		}
		out[i] = want.String()
	}
	return out, saved
}

// rememberPorts runs once the host listens: an address whose remembered
// port could not be had after all (taken since the check) listens on a
// new port, and the port each address with port 0 got is saved (saved is
// what listenAddrs read).
func (c *core) rememberPorts(listen, asked []string, saved map[string]int) {
	if !c.cfg.RememberPorts || len(listen) == 0 {
		return
	}
	nw := c.host.Network()
	for i, s := range listen {
		if asked[i] == s || listensOn(nw.ListenAddresses(), s) {
			continue
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		if err := nw.Listen(a); err != nil {
			c.log.Info("cannot listen", "addr", s, "err", err)
			continue
		}
		c.log.Info("the remembered listen port is not available; listening on a new port (addresses shared before will not work)", "addr", asked[i])
	}
	changed := false
	for _, s := range listen {
		if _, ok := portZero(s); !ok {
			continue
		}
		for _, got := range nw.ListenAddresses() {
			if port, ok := portFor(got, s); ok {
				if saved[s] != port {
					saved[s], changed = port, true
				}
				break
			}
		}
	}
	if changed {
		if err := c.store.PutListenPorts(saved); err != nil {
			c.log.Warn("cannot remember the listen ports; the next start may listen on others", "err", err)
		}
	}
}

// portZero parses an IP address with a TCP or UDP port 0 (the rest, such
// as /quic-v1, may follow).
func portZero(s string) (ma.Multiaddr, bool) {
	a, err := ma.NewMultiaddr(s)
	if err != nil || len(a) < 2 {
		return nil, false
	}
	ip, port := a[0].Code(), a[1].Code()
	if ip != ma.P_IP4 && ip != ma.P_IP6 || port != ma.P_TCP && port != ma.P_UDP || a[1].Value() != "0" {
		return nil, false
	}
	return a, true
}

// withPort is a (from portZero) with another port.
func withPort(a ma.Multiaddr, port int) ma.Multiaddr {
	c, err := ma.NewComponent(a[1].Protocol().Name, strconv.Itoa(port))
	if err != nil {
		return a
	}
	out := slices.Clone(a)
	out[1] = *c
	return out
}

// portFor reports the port of got, a listener's address, if it listens
// for the configured address s (port 0).
func portFor(got ma.Multiaddr, s string) (int, bool) {
	tmpl, ok := portZero(s)
	if !ok || len(got) != len(tmpl) || len(got) < 2 || got[1].Code() != tmpl[1].Code() {
		return 0, false
	}
	port, err := strconv.Atoi(got[1].Value())
	if err != nil || !withPort(got, 0).Equal(tmpl) {
		return 0, false
	}
	return port, true
}

// listensOn reports whether one of the listeners' addresses is for s.
func listensOn(addrs []ma.Multiaddr, s string) bool {
	for _, a := range addrs {
		if _, ok := portFor(a, s); ok {
			return true
		}
	}
	return false
}

// portFree checks that a's port can be had, by binding it (without
// SO_REUSEPORT, so a socket that has it counts as taken) and letting go.
func portFree(a ma.Multiaddr) error {
	network, addr, err := manet.DialArgs(a[:2])
	if err != nil {
		return err
	}
	switch network {
	case "tcp4", "tcp6":
		l, err := net.Listen(network, addr)
		if err != nil {
			return err
		}
		return l.Close()
	case "udp4", "udp6":
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	return nil
}

// ErrPortInUse means a listen address's port is taken.
var ErrPortInUse = errors.New("the port is in use by another program (or another certchat home); choose another with --listen, or port 0 for any")

// portsFree checks each listen address with a fixed port before libp2p
// listens: with SO_REUSEPORT, libp2p's TCP listener would share a port
// another process holds, and half the connections meant for us would
// reach it.
func portsFree(listen []string) error {
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil || len(a) < 2 || a[1].Value() == "0" {
			continue // bad addresses are libp2p's to report
		}
		if c := a[1].Code(); c != ma.P_TCP && c != ma.P_UDP {
			continue
		}
		if err := portFree(a); err != nil {
			return fmt.Errorf("listen on %s: %w", s, ErrPortInUse)
		}
	}
	return nil
}

// startHost starts the libp2p host on the configured addresses ("none":
// no listener), with the remembered ports where they are free.
func (c *core) startHost(extra []libp2p.Option) error {
	listen := c.cfg.Listen
	if len(listen) == 1 && listen[0] == "none" {
		listen = nil
	}
	if err := portsFree(listen); err != nil {
		return err
	}
	asked, saved := c.listenAddrs(listen)
	var err error
	if c.host, c.cm, err = newHost(c.id, asked, extra...); err != nil {
		return err
	}
	if c.hp, err = newHolePuncher(c.host); err != nil {
		c.host.Close()
		return err
	}
	c.rememberPorts(listen, asked, saved)
	return nil
}
