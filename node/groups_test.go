package node_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Groups on real nodes over loopback (PROTOCOL §14.5).

// waitGroup waits for a group event about id that satisfies ok.
func (tn *testNode) waitGroup(id group.ID, what string, ok func(node.GroupInfo) bool) node.GroupInfo {
	tn.t.Helper()
	e := tn.waitFor(what, func(e node.Event) bool {
		return e.Kind == node.EventGroup && e.Group.ID == id && ok(*e.Group)
	})
	return *e.Group
}

// waitGroupMessage waits for the group message with ID id.
func (tn *testNode) waitGroupMessage(id e2e.MessageID) store.Message {
	tn.t.Helper()
	e := tn.waitFor("group message "+id.String(), func(e node.Event) bool {
		return e.Kind == node.EventMessage && e.Message.ID == id
	})
	return *e.Message
}

// waitGroupDelivered waits until every member has m.
func (tn *testNode) waitGroupDelivered(m store.GroupMessage) store.GroupMessage {
	tn.t.Helper()
	var got store.GroupMessage
	eventually(tn.t.(*testing.T), "delivery of "+m.Body, func() bool {
		var err error
		got, err = tn.Groups().Delivery(m.ID)
		return err == nil && got.Delivered() == len(got.Members)
	})
	return got
}

func (tn *testNode) groupSend(id group.ID, text string) store.GroupMessage {
	tn.t.Helper()
	m, err := tn.Groups().Send(id, text)
	if err != nil {
		tn.t.Fatalf("group send %q: %v", text, err)
	}
	return m
}

func groupBodies(t *testing.T, tn *testNode, id group.ID) []string {
	t.Helper()
	h, err := tn.Groups().History(id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range h {
		out = append(out, m.Body)
	}
	return out
}

// Create, talk, remove, a removed member who keeps sending, an impostor,
// a non-admin who tries to add, add later, leave.
func TestGroupLifecycle(t *testing.T) {
	alice := startNodeWith(t, newHome(t, "alice"), func(c *node.Config) { c.GroupHoldTTL = time.Second })
	bob := startNode(t, newHome(t, "bob"))
	carol := startNode(t, newHome(t, "carol"))
	dave := startNode(t, newHome(t, "dave"))
	trustEachOther(t, alice, bob, carol, dave)

	gi, err := alice.Groups().Create("team", []peer.ID{bob.ID(), carol.ID()})
	if err != nil {
		t.Fatal(err)
	}
	id := gi.ID
	for _, tn := range []*testNode{bob, carol} {
		got := tn.waitGroup(id, "the new group", func(g node.GroupInfo) bool { return g.Member })
		if got.Name != "team" || len(got.Members) != 3 || got.Admins[0] != alice.ID() || got.Version != 1 {
			t.Fatalf("%s sees %+v", tn.ID(), got)
		}
	}

	// Talk: every member gets each message once, with the group's ID; the
	// sender sees it delivered to 2 of 2.
	m1 := alice.groupSend(id, "hello team")
	for _, tn := range []*testNode{bob, carol} {
		got := tn.waitGroupMessage(m1.ID)
		if got.Group != store.GroupID(id) || got.Peer != alice.ID() || got.Body != "hello team" || got.Number != 1 {
			t.Fatalf("%s got %+v", tn.ID(), got)
		}
	}
	if d := alice.waitGroupDelivered(m1); d.Delivered() != 2 || len(d.Waiting()) != 0 {
		t.Fatalf("delivery: %+v", d)
	}
	// The group's newest message time orders it among the chats.
	if gi, _ := alice.Groups().Get(id); !gi.Last.Equal(m1.StoredAt.Truncate(time.Millisecond)) || gi.Messages != 1 {
		t.Fatalf("alice's group after a message: last %v messages %d, want %v and 1", gi.Last, gi.Messages, m1.StoredAt)
	}
	m2 := bob.groupSend(id, "hi from bob")
	alice.waitGroupMessage(m2.ID)
	carol.waitGroupMessage(m2.ID)

	// A non-admin cannot add.
	// It says so with bob's names for the peers: "you", dave's label.
	if err := bob.Contacts().Rename(dave.ID(), "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Groups().Add(id, dave.ID()); !errors.Is(err, group.ErrNotAdmin) ||
		err.Error() != `add dave in group "team": only an admin can change the group: add of you is not an admin` {
		t.Fatalf("bob adds dave: %v, want ErrNotAdmin said with names", err)
	}

	// An impostor (not a member) sends a group message: held for the
	// change that would add it, then refused, not stored.
	dave.waitDelivered(dave.send(alice.ID(), "hi alice")) // a pairwise session first
	fake := store.Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now(), Body: "I am in the team", Group: store.GroupID(id)}
	if err := dave.WriteTextForTest(fake); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("the impostor refused", func(e node.Event) bool {
		return e.Kind == node.EventError && e.PeerID == dave.ID() && strings.Contains(e.Err, "not a member")
	})

	// Alice removes carol: carol learns it, and gets nothing after.
	if _, err := alice.Groups().Remove(id, carol.ID()); err != nil {
		t.Fatal(err)
	}
	carol.waitGroup(id, "her removal", func(g node.GroupInfo) bool { return !g.Member })
	bob.waitGroup(id, "carol's removal", func(g node.GroupInfo) bool { return len(g.Members) == 2 })
	m3 := alice.groupSend(id, "after carol left")
	if d := alice.waitGroupDelivered(m3); len(d.Members) != 1 || d.Members[0].Peer != bob.ID() {
		t.Fatalf("sent after the removal to %+v", d.Members)
	}
	bob.waitGroupMessage(m3.ID)
	// Carol's own node refuses to send; forced, the members refuse it.
	if _, err := carol.Groups().Send(id, "still here"); !errors.Is(err, node.ErrNotGroupMember) {
		t.Fatalf("removed carol sends: %v", err)
	}
	forced := store.Message{ID: e2e.NewMessageID(), Peer: bob.ID(), SentAt: time.Now(), Body: "still here", Group: store.GroupID(id)}
	if err := carol.WriteTextForTest(forced); err != nil {
		t.Fatal(err)
	}
	bob.waitFor("the removed member refused", func(e node.Event) bool {
		return e.Kind == node.EventError && e.PeerID == carol.ID() && strings.Contains(e.Err, "not a member")
	})

	// Dave, added later, gets nothing from before.
	if _, err := alice.Groups().Add(id, dave.ID()); err != nil {
		t.Fatal(err)
	}
	dave.waitGroup(id, "being added", func(g node.GroupInfo) bool { return g.Member })
	m4 := alice.groupSend(id, "welcome dave")
	dave.waitGroupMessage(m4.ID)

	// Bob leaves.
	if _, err := bob.Groups().Leave(id); err != nil {
		t.Fatal(err)
	}
	alice.waitGroup(id, "bob's leave", func(g node.GroupInfo) bool { return !slices.Contains(g.Members, bob.ID()) })
	dave.waitGroup(id, "bob's leave", func(g node.GroupInfo) bool { return !slices.Contains(g.Members, bob.ID()) })

	// A member whose key is blocked (or changed) blocks sending to the group.
	if err := alice.Contacts().Block(dave.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Groups().Send(id, "not while dave is blocked"); !errors.Is(err, node.ErrGroupBlocked) {
		t.Fatalf("send with a blocked member: %v", err)
	}

	if got := groupBodies(t, carol, id); !slices.Equal(got, []string{"hello team", "hi from bob"}) {
		t.Fatalf("carol's history: %q (nothing after her removal)", got)
	}
	if got := groupBodies(t, dave, id); !slices.Equal(got, []string{"welcome dave"}) {
		t.Fatalf("dave's history: %q (nothing from before he joined)", got)
	}
	if got := groupBodies(t, alice, id); !slices.Equal(got, []string{"hello team", "hi from bob", "after carol left", "welcome dave"}) {
		t.Fatalf("alice's history: %q (the impostor's message must not be there)", got)
	}
}

// issueFrom gives home a certificate from ca.
func issueFrom(t *testing.T, home identity.Home, ca *identity.CA, name string) {
	t.Helper()
	id, err := home.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := identity.NewCSR(id.Signer(), name)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.ParseCSR(pem)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(csr, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := home.TrustStore()
	if _, err := home.ImportCertificate([]*x509.Certificate{cert}, ts, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// A group bound to a CA: a member with a certificate from it is added, a
// peer without one is refused; a member is flagged once the CA is no
// longer trusted.
func TestGroupBoundToCA(t *testing.T) {
	aliceHome, bobHome, ca := caHomes(t)
	issueFrom(t, aliceHome, ca, "alice")
	alice := startNode(t, aliceHome)
	bob := startNode(t, bobHome)
	carol := startNode(t, newHome(t, "carol"))
	trustEachOther(t, alice, bob, carol)
	for _, p := range []*testNode{bob, carol} {
		if _, err := connect(t, alice, p); err != nil {
			t.Fatal(err)
		}
	}
	hash := node.CAHash(ca.Cert)
	if _, err := alice.Groups().CreateCA("acme", []peer.ID{bob.ID(), carol.ID()}, hash); !errors.Is(err, node.ErrNotFromGroupCA) || !strings.Contains(err.Error(), "carol cannot join") {
		t.Fatalf("a group bound to a CA with a member it did not issue: %v", err)
	}
	g, err := alice.Groups().CreateCA("acme", []peer.ID{bob.ID()}, hash)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Groups().Add(g.ID, carol.ID()); !errors.Is(err, node.ErrNotFromGroupCA) {
		t.Fatalf("adding carol to a CA-bound group: %v", err)
	}
	if f := alice.Groups().Flags(g.ID); len(f) != 0 {
		t.Fatalf("flags while all is well: %v", f)
	}
	if err := alice.Trust().RemoveRoot(ca.Cert); err != nil {
		t.Fatal(err)
	}
	if f := alice.Groups().Flags(g.ID); !errors.Is(f[bob.ID()], node.ErrGroupCAUntrusted) {
		t.Fatalf("bob not flagged after the CA was removed: %v", f)
	}
	// The group names its CA while it is trusted (the daemon's ca_name).
	if g.CAName != identity.DisplayName(ca.Cert) {
		t.Fatalf("the group's CA name while trusted: %q", g.CAName)
	}
	if now, _ := alice.Groups().Get(g.ID); now.CAName != "" || !bytes.Equal(now.CA, hash) {
		t.Fatalf("after the CA was removed: CA name %q, CA %x", now.CAName, now.CA)
	}
}

// A burst of group messages from two goroutines at once, with private
// messages between them: every member gets every message once and in
// the order numbered (none late), and the sender records every copy
// delivered. The outbox workers hand each other nothing but what they
// were given or read, so a copy they miss or reorder shows here.
func TestGroupBurst(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	members := []*testNode{startNode(t, newHome(t, "bob")), startNode(t, newHome(t, "carol")), startNode(t, newHome(t, "dave"))}
	trustEachOther(t, append([]*testNode{alice}, members...)...)
	var ids []peer.ID
	for _, tn := range members {
		ids = append(ids, tn.ID())
	}
	gi, err := alice.Groups().Create("burst", ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range members {
		tn.waitGroup(gi.ID, "the new group", func(g node.GroupInfo) bool { return g.Member })
	}
	const each = 15
	sent := make(chan store.GroupMessage, 2*each)
	errs := make(chan error, 2)
	for g := range 2 {
		go func() {
			for i := range each {
				m, err := alice.Groups().Send(gi.ID, strings.Repeat("x", g*each+i+1))
				if err != nil {
					errs <- err
					return
				}
				sent <- m
				if i%5 == 0 {
					if _, err := alice.Send(members[i%3].ID(), "aside"); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(sent)
	for _, tn := range members {
		got := map[e2e.MessageID]bool{}
		for len(got) < 2*each {
			e := tn.waitFor("the burst", func(e node.Event) bool {
				return e.Kind == node.EventMessage && e.Message.Group == store.GroupID(gi.ID)
			})
			if got[e.Message.ID] || e.Message.Late || e.Message.Missing != 0 {
				t.Fatalf("%s: %s again, late or after a gap: %+v", tn.ID(), e.Message.ID, e.Message)
			}
			got[e.Message.ID] = true
		}
	}
	for m := range sent {
		alice.waitGroupDelivered(m)
	}
}
