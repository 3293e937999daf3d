// Sybils at the relay (docs/SECURITY.md): fresh identities from one
// address against a real relay on loopback, through stock go-libp2p hosts
// and the node's mailbox client. Each client dials the relay over TCP from
// a loopback address of its own (127.0.0.1, 127.0.0.2, ::1), so the relay
// sees one IP per client address: 127.0.0.1 and 127.0.0.2 are two IPs in
// one /24, ::1 another network.

package relay

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	bolt "go.etcd.io/bbolt"
)

// syRelay starts a relay with a mailbox on 127.0.0.1 and ::1.
func syRelay(t *testing.T, lim MailboxLimits) *Server {
	t.Helper()
	srv, err := NewServer(Config{Home: identity.Home{Dir: t.TempDir()},
		Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"}, Mailbox: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// syClient is a fresh identity on a host that dials the relay from ip.
type syClient struct {
	mbPeer
	h host.Host
	c mailbox.Client
}

func syConnect(t *testing.T, srv *Server, ip string, p mbPeer) syClient {
	t.Helper()
	key, err := identity.Libp2pKey(p.priv)
	if err != nil {
		t.Fatal(err)
	}
	want := "/ip4/127.0.0.1/"
	if netip.MustParseAddr(ip).Is6() {
		want = "/ip6/::1/"
	}
	from := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport, tcp.WithDialerForAddr(func(ma.Multiaddr) (tcp.ContextDialer, error) { return from, nil })))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	var addrs []ma.Multiaddr
	for _, a := range srv.Host().Addrs() {
		if len(a.String()) >= len(want) && a.String()[:len(want)] == want {
			addrs = append(addrs, a)
		}
	}
	if err := h.Connect(context.Background(), peer.AddrInfo{ID: srv.ID(), Addrs: addrs}); err != nil {
		t.Fatal(err)
	}
	// The relay must see the client's own address, or the test proves nothing.
	conns := srv.Host().Network().ConnsToPeer(h.ID())
	if len(conns) == 0 {
		t.Fatal("the relay has no connection to the client")
	}
	if got, err := manet.ToIP(conns[0].RemoteMultiaddr()); err != nil || !got.Equal(netip.MustParseAddr(ip).AsSlice()) {
		t.Fatalf("the relay sees the client at %v, want %s", conns[0].RemoteMultiaddr(), ip)
	}
	return syClient{mbPeer: p, h: h, c: mailbox.Client{Host: h}}
}

func (c syClient) publish(t *testing.T, srv *Server) error {
	_, err := c.c.Publish(context.Background(), srv.ID(), c.mbPeer.publish(t))
	return err
}

// Registrations are capped per IP and per network prefix: fresh identities
// from one IP take MaxMailboxPerIP mailboxes and no more, and a new user
// on another IP still registers; one /24 takes MaxMailboxPerPrefix, and a
// user on another network still registers.
func TestMailboxSybilRegistrations(t *testing.T) {
	t.Run("per IP", func(t *testing.T) {
		srv := syRelay(t, MailboxLimits{}) // the defaults: 16 per IP, 64 per /24
		took := 0
		for i := 0; i < DefaultMailboxLimits.MaxMailboxPerIP+24; i++ {
			err := syConnect(t, srv, "127.0.0.1", mbNewPeer(t)).publish(t, srv)
			switch {
			case err == nil:
				took++
			case !errors.Is(err, mailbox.ErrQuotaFull):
				t.Fatalf("sybil %d: %v", i, err)
			}
		}
		if took != DefaultMailboxLimits.MaxMailboxPerIP {
			t.Fatalf("one IP registered %d mailboxes, want %d", took, DefaultMailboxLimits.MaxMailboxPerIP)
		}
		if err := syConnect(t, srv, "127.0.0.2", mbNewPeer(t)).publish(t, srv); err != nil {
			t.Fatalf("a new user on another IP, while the sybils are at their cap: %v", err)
		}
	})
	t.Run("per prefix", func(t *testing.T) {
		srv := syRelay(t, MailboxLimits{MaxMailboxPerIP: 2, MaxMailboxPerPrefix: 3})
		want := map[string]int{"127.0.0.1": 2, "127.0.0.2": 1}
		for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
			took := 0
			for i := 0; i < 4; i++ {
				if err := syConnect(t, srv, ip, mbNewPeer(t)).publish(t, srv); err == nil {
					took++
				} else if !errors.Is(err, mailbox.ErrQuotaFull) {
					t.Fatal(err)
				}
			}
			if took != want[ip] {
				t.Fatalf("%s registered %d mailboxes, want %d", ip, took, want[ip])
			}
		}
		if err := syConnect(t, srv, "::1", mbNewPeer(t)).publish(t, srv); err != nil {
			t.Fatalf("a new user on another network: %v", err)
		}
		// An idle sybil's mailbox is removed and gives its place back.
		var one peer.ID
		srv.mailbox.db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bktRegSrc).ForEach(func(k, v []byte) error {
				if decodeSource(v).prefix == "127.0.0.0/24" {
					one = peer.ID(k)
				}
				return nil
			})
		})
		if err := srv.mailbox.db.Update(func(tx *bolt.Tx) error { return removeMailbox(tx, one) }); err != nil {
			t.Fatal(err)
		}
		if err := syConnect(t, srv, "127.0.0.2", mbNewPeer(t)).publish(t, srv); err != nil {
			t.Fatalf("after one of the network's mailboxes went: %v", err)
		}
	})
}

// syPool is how many one-time prekeys of each kind p has at the relay.
func syPool(srv *Server, p peer.ID) (ec, kem int) {
	srv.mailbox.db.View(func(tx *bolt.Tx) error {
		ec, kem = poolSize(tx, bktOTEC, p), poolSize(tx, bktOTKEM, p)
		return nil
	})
	return ec, kem
}

// Ten identities on one IP fetch a victim's bundle as fast as the relay
// lets them: the victim's one-time prekeys are not drained (the IP gets
// OneTimePerIP of them), the bundles the sybils get without one still
// start a session, and a first contact from another IP gets a one-time
// prekey.
func TestMailboxSybilsCannotDrainPrekeys(t *testing.T) {
	srv := syRelay(t, MailboxLimits{})
	victim := mbNewPeer(t)
	var err error
	if victim.keys, err = victim.keys.GenerateOneTimePrekeys(36, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := syConnect(t, srv, "::1", victim).publish(t, srv); err != nil {
		t.Fatal(err)
	}
	const pool = 40
	if ec, kem := syPool(srv, victim.id); ec != pool || kem != pool {
		t.Fatalf("pool %d/%d after the publish, want %d", ec, kem, pool)
	}
	var sybils []syClient
	for range 10 {
		sybils = append(sybils, syConnect(t, srv, "127.0.0.1", mbNewPeer(t)))
	}
	ctx := context.Background()
	fetched, limited, withOTK := 0, 0, 0
	var without []byte
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range sybils {
			b, err := s.c.FetchBundle(ctx, srv.ID(), victim.id)
			if errors.Is(err, mailbox.ErrRateLimited) {
				limited++
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			fetched++
			pb, err := ratchet.ParseBundle(b)
			if err != nil {
				t.Fatal(err)
			}
			if pb.OneTimePrekey != nil {
				withOTK++
			} else {
				without = b
			}
		}
	}
	ec, kem := syPool(srv, victim.id)
	t.Logf("10 sybils on one IP: %d bundles (%d with a one-time prekey), %d rate-limited; pool %d/%d of %d",
		fetched, withOTK, limited, ec, kem, pool)
	if withOTK > DefaultMailboxLimits.OneTimePerIP || ec < pool-DefaultMailboxLimits.OneTimePerIP || ec < DefaultMailboxLimits.PrekeyFloor {
		t.Fatalf("one IP drained %d one-time prekeys; %d/%d left", withOTK, ec, kem)
	}
	if without == nil {
		t.Fatal("no sybil got a bundle without a one-time prekey")
	}
	// A bundle without a one-time prekey still starts a session: the
	// victim opens a first contact made from it (last-resort prekeys).
	sybil := sybils[0]
	set, err := ratchet.NewSessionSet(sybil.keys, []byte(victim.id), victim.keys.Identity())
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := ratchet.ParseBundle(without)
	if set, err = set.InitiateFromBundle(sybil.keys, pb, time.Now()); err != nil {
		t.Fatal(err)
	}
	env, _, err := set.Seal([]byte("hi"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	vset, err := ratchet.NewSessionSet(victim.keys, []byte(sybil.id), sybil.keys.Identity())
	if err != nil {
		t.Fatal(err)
	}
	if o, err := vset.Open(victim.keys, env, time.Now()); err != nil || string(o.Plaintext) != "hi" {
		t.Fatalf("a first contact from a bundle without one-time prekeys: %v", err)
	}

	legit := syConnect(t, srv, "127.0.0.2", mbNewPeer(t))
	b, err := legit.c.FetchBundle(ctx, srv.ID(), victim.id)
	if err != nil {
		t.Fatalf("a first contact from another IP: %v", err)
	}
	if pb, err := ratchet.ParseBundle(b); err != nil || pb.OneTimePrekey == nil || pb.OneTimeKEM == nil {
		t.Fatalf("a first contact from another IP got no one-time prekey (%v)", err)
	}
}

// Five identities on one IP try to fill a victim's mailbox (1000 items,
// 200 per sender): their IP gets MaxPerIP, and a sender on another IP
// still deposits.
func TestMailboxSybilsCannotFillMailbox(t *testing.T) {
	srv := syRelay(t, MailboxLimits{DepositRate: 10000})
	victim := mbNewPeer(t)
	if err := syConnect(t, srv, "::1", victim).publish(t, srv); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stored := 0
	for range 5 {
		s := syConnect(t, srv, "127.0.0.1", mbNewPeer(t))
		for range DefaultMailboxLimits.MaxPerPeer {
			_, err := s.c.Deposit(ctx, srv.ID(), victim.id, mbEnvelope(100))
			if err == nil {
				stored++
			} else if !errors.Is(err, mailbox.ErrQuotaFull) {
				t.Fatal(err)
			}
		}
	}
	items, _, _ := MailboxUsage(srv, victim.id)
	t.Logf("5 sybils on one IP stored %d items of %d", items, DefaultMailboxLimits.MaxItems)
	if stored > DefaultMailboxLimits.MaxPerIP || items != stored {
		t.Fatalf("one IP stored %d items (usage %d), want at most %d", stored, items, DefaultMailboxLimits.MaxPerIP)
	}
	legit := syConnect(t, srv, "127.0.0.2", mbNewPeer(t))
	if _, err := legit.c.Deposit(ctx, srv.ID(), victim.id, mbEnvelope(100)); err != nil {
		t.Fatalf("a sender on another IP: %v", err)
	}
}

// The per-source counts follow acks and expiry, and go with the mailbox.
func TestMailboxSourceShareFollowsAcks(t *testing.T) {
	clock := &mbClock{t: time.Now()}
	m := mbOpen(t, filepath.Join(t.TempDir(), "mailbox.db"), MailboxLimits{MaxItems: 10, MaxPerPeer: 10, MaxPerIP: 2, MaxPerPrefix: 3, DepositRate: 1000}, clock)
	defer m.close()
	bob := mbNewPeer(t)
	if _, e := mbPublish(t, m, bob.id, bob.publish(t)); e != nil {
		t.Fatal(e)
	}
	src1 := sourceOf(netip.MustParseAddr("192.0.2.1"))
	src2 := sourceOf(netip.MustParseAddr("192.0.2.2"))
	dep := func(src source) *mailbox.Error {
		_, out := m.serveFrom(mbNewPeer(t).id, src, e2e.Frame{Type: mailbox.TypeDeposit, Payload: mailbox.Deposit{To: bob.id, Envelope: mbEnvelope(10)}.Marshal()})
		e, _ := mailbox.ParseError(out)
		return e
	}
	for i := 0; i < 2; i++ {
		if e := dep(src1); e != nil {
			t.Fatal(e)
		}
	}
	mbWantCode(t, "a third from one IP", dep(src1), mailbox.CodeQuotaFull)
	if e := dep(src2); e != nil {
		t.Fatal(e)
	}
	mbWantCode(t, "a fourth from one /24", dep(src2), mailbox.CodeQuotaFull)
	items := mbFetch(t, m, bob.id, 64)
	mbAck(t, m, bob.id, items.Items[0].ID)
	if e := dep(src1); e != nil {
		t.Fatalf("after an ack: %v", e)
	}
	clock.add(DefaultMailboxLimits.TTL + time.Hour)
	m.sweepMail()
	for i := 0; i < 2; i++ {
		if e := dep(src1); e != nil {
			t.Fatalf("after expiry: %v", e)
		}
	}
	m.db.Update(func(tx *bolt.Tx) error { return removeMailbox(tx, bob.id) })
	m.db.View(func(tx *bolt.Tx) error {
		if n := countKeys(tx.Bucket(bktSrcCount)); n != 0 {
			t.Errorf("%d source counts left after the mailbox went", n)
		}
		return nil
	})
}
