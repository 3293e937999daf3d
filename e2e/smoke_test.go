package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestSmoke(t *testing.T) {
	now := time.Now()
	mk := func(name string) (*identity.Identity, *identity.TrustStore, host.Host) {
		id, err := identity.Generate(name, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := identity.OpenTrustStore(t.TempDir() + "/trust.json")
		if err != nil {
			t.Fatal(err)
		}
		k, _ := id.Libp2pKey()
		h, err := libp2p.New(libp2p.Identity(k), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return id, ts, h
	}
	aid, ats, ah := mk("alice")
	bid, bts, bh := mk("bob")
	ats.Pin(bid.PeerID(), "", identity.StateTOFU, now)
	bts.Pin(aid.PeerID(), "", identity.StateTOFU, now)
	aep, _ := e2e.NewEndpoint(e2e.Config{Identity: aid, Trust: ats})
	bep, _ := e2e.NewEndpoint(e2e.Config{Identity: bid, Trust: bts})
	got := make(chan string, 1)
	bh.SetStreamHandler(e2e.ProtocolChat, func(s network.Stream) {
		sess, err := bep.Server(context.Background(), s, s.Conn().RemotePeer())
		if err != nil {
			got <- "server: " + err.Error()
			return
		}
		f, err := sess.Receive()
		if err != nil {
			got <- "recv: " + err.Error()
			return
		}
		txt, _ := e2e.ParseText(f.Payload)
		got <- txt.Body
	})
	ah.Connect(context.Background(), peer.AddrInfo{ID: bh.ID(), Addrs: bh.Addrs()})
	for i := 0; i < 2; i++ {
		s, err := ah.NewStream(context.Background(), bh.ID(), e2e.ProtocolChat)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := aep.Client(context.Background(), s, s.Conn().RemotePeer(), bh.ID())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v %s %s %s verdict=%s", sess.Info(), sess.Info().VersionName(), sess.Info().SuiteName(), sess.Info().GroupName(), sess.Peer().State)
		if err := sess.SendText(e2e.Text{ID: e2e.NewMessageID(), SentAt: now, Body: "hello"}); err != nil {
			t.Fatal(err)
		}
		if g := <-got; g != "hello" {
			t.Fatal(g)
		}
		sess.Close()
	}
}
