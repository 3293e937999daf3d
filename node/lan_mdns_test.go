//go:build linux

package node_test

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/certchat/certchat/node"
	"github.com/miekg/dns"
)

// TestLAN's own mDNS on the test LAN: a sniffer of every packet on the
// switch and an injector of the test's own responses.

var lanMDNSGroup = &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}

const lanService = node.MDNSService + ".local."

// ---- the sniffer: every mDNS packet seen on the switch ----

type lanAnnouncement struct {
	from     string
	instance string
	txt      []string
	a        []net.IP
}

type lanSniffer struct {
	mu      sync.Mutex
	packets map[string][2]int // source IP: queries, responses
	seen    []lanAnnouncement
}

func lanStartSniffer(t *testing.T, ns string) *lanSniffer {
	s := &lanSniffer{packets: map[string][2]int{}}
	var conn *net.UDPConn
	err := lanInNetns(ns, func() error {
		ifi, err := net.InterfaceByName("br0")
		if err != nil {
			return err
		}
		conn, err = net.ListenMulticastUDP("udp4", ifi, lanMDNSGroup)
		return err
	})
	if err != nil {
		t.Fatalf("mDNS sniffer: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			var m dns.Msg
			if m.Unpack(buf[:n]) != nil {
				continue
			}
			src := from.IP.String()
			s.mu.Lock()
			c := s.packets[src]
			if m.Response {
				c[1]++
			} else {
				c[0]++
			}
			s.packets[src] = c
			rrs := append(append(slices.Clone(m.Answer), m.Ns...), m.Extra...)
			var a []net.IP
			for _, rr := range rrs {
				if r, ok := rr.(*dns.A); ok {
					a = append(a, r.A)
				}
			}
			for _, rr := range rrs {
				if r, ok := rr.(*dns.TXT); ok && m.Response && strings.HasSuffix(r.Hdr.Name, "."+lanService) {
					s.seen = append(s.seen, lanAnnouncement{from: src, instance: strings.TrimSuffix(r.Hdr.Name, "."+lanService), txt: r.Txt, a: a})
				}
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// announcement returns the last announcement from ip that names peer id.
func (s *lanSniffer) announcement(id, ip string) (lanAnnouncement, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.seen) - 1; i >= 0; i-- {
		a := s.seen[i]
		if a.from == ip && slices.ContainsFunc(a.txt, func(t string) bool { return strings.HasSuffix(t, "/p2p/"+id) }) {
			return a, true
		}
	}
	return lanAnnouncement{}, false
}

func (s *lanSniffer) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	b.WriteString("mDNS packets seen on the switch (source: queries/responses):")
	srcs := make([]string, 0, len(s.packets))
	for src := range s.packets {
		srcs = append(srcs, src)
	}
	slices.Sort(srcs)
	for _, src := range srcs {
		fmt.Fprintf(&b, " %s: %d/%d;", src, s.packets[src][0], s.packets[src][1])
	}
	fmt.Fprintf(&b, " %d announcements with TXT records", len(s.seen))
	return b.String()
}

// ---- the injector: the test's own mDNS responses on the LAN ----

type lanInjector struct{ conn *net.UDPConn }

func lanNewInjector(t *testing.T, ns string) *lanInjector {
	var conn *net.UDPConn
	err := lanInNetns(ns, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(lanSwitchIP)})
		return err
	})
	if err != nil {
		t.Fatalf("mDNS injector: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &lanInjector{conn: conn}
}

// announce sends one unsolicited mDNS response for a certchat service
// instance with addrs (full multiaddrs with /p2p/) as dnsaddr TXT records,
// as go-libp2p's mDNS service does.
func (in *lanInjector) announce(t *testing.T, instance string, addrs []string, ip net.IP) {
	t.Helper()
	inst := instance + "." + lanService
	host := instance + ".local."
	hdr := func(name string, typ uint16) dns.RR_Header {
		return dns.RR_Header{Name: name, Rrtype: typ, Class: dns.ClassINET, Ttl: 120}
	}
	var txt []string
	for _, a := range addrs {
		txt = append(txt, "dnsaddr="+a)
	}
	m := new(dns.Msg)
	m.Response, m.Authoritative = true, true
	m.Answer = []dns.RR{
		&dns.PTR{Hdr: hdr(lanService, dns.TypePTR), Ptr: inst},
		&dns.SRV{Hdr: hdr(inst, dns.TypeSRV), Port: 4001, Target: host},
		&dns.TXT{Hdr: hdr(inst, dns.TypeTXT), Txt: txt},
		&dns.A{Hdr: hdr(host, dns.TypeA), A: ip},
	}
	buf, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.conn.WriteToUDP(buf, lanMDNSGroup); err != nil {
		t.Fatalf("mDNS injector: %v", err)
	}
}
