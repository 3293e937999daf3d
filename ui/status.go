package ui

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/certchat/certchat/node"
)

// statusLine is the window's part that knows how the node is reachable,
// for the status bar (statusRows, bars.go): its addresses, relay
// reservations (refreshRelays, events.go) and LAN discovery. It belongs
// to the event loop.
type statusLine struct {
	*UI

	addrs  []string
	relays []node.RelayInfo
	lan    *node.LANStatus // from the node's lan events; nil: none yet
}

// listenText says where the node listens: the most useful address to
// give a peer (a LAN or public IPv4 TCP address before loopback), and how
// many more there are.
func listenText(addrs []string) string {
	best, bestRank := "", -1
	n := 0
	for _, a := range addrs {
		hp, rank, ok := hostPort(a)
		if !ok {
			continue
		}
		n++
		if rank > bestRank {
			best, bestRank = hp, rank
		}
	}
	switch {
	case n == 0 && len(addrs) > 0:
		return "reachable via relay"
	case n == 0:
		return "not listening"
	case n == 1:
		return "listening on " + best
	}
	return fmt.Sprintf("listening on %s (+%d)", best, n-1)
}

// hostPort reads "/ip4/1.2.3.4/tcp/4001/..." as "1.2.3.4:4001" with a
// rank: direct before relayed, TCP before QUIC, IPv4 before IPv6, other
// addresses before loopback.
func hostPort(maddr string) (string, int, bool) {
	parts := strings.Split(maddr, "/")
	if len(parts) < 5 || strings.Contains(maddr, "/p2p-circuit") {
		return "", 0, false
	}
	ip, err := netip.ParseAddr(parts[2])
	if err != nil || (parts[1] != "ip4" && parts[1] != "ip6") {
		return "", 0, false
	}
	hp := netip.AddrPortFrom(ip, 0).Addr().String()
	if ip.Is6() {
		hp = "[" + hp + "]"
	}
	hp += ":" + parts[4]
	rank := 0
	if !ip.IsLoopback() {
		rank += 4
	}
	if ip.Is4() {
		rank += 2
	}
	if parts[3] == "tcp" {
		rank++
	} else {
		hp += " quic"
	}
	return hp, rank, true
}

// relayText sums up the relay reservations for the status bar.
func relayText(rs []node.RelayInfo) string {
	if len(rs) == 0 {
		return "no relay"
	}
	ok := 0
	for _, r := range rs {
		if r.Reserved {
			ok++
		}
	}
	switch {
	case ok == len(rs) && ok == 1:
		return "relay reserved"
	case ok == len(rs):
		return fmt.Sprintf("%d relays reserved", ok)
	}
	return fmt.Sprintf("relay: %d of %d reserved", ok, len(rs))
}

// lanText is the status bar's word on LAN discovery: on, or off with the
// reason in the long form.
func (u *statusLine) lanText(long bool) string {
	switch {
	case !u.opts.LAN:
		return "LAN off"
	case u.lan == nil || u.lan.On:
		return "LAN on"
	case long && u.lan.Reason != "":
		return "LAN off: " + u.lan.Reason
	}
	return "LAN off"
}

// onLAN follows LAN discovery going off and on, with a notice.
func (u *statusLine) onLAN(st node.LANStatus) {
	was := u.lan
	u.lan = &st
	switch {
	case !st.On && (was == nil || was.On):
		u.notes.inform("LAN discovery is off: " + st.Reason + ". It comes on when a LAN address appears.")
	case st.On && was != nil && !was.On:
		u.notes.inform("LAN discovery is on.")
	}
}
