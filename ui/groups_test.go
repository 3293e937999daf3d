package ui

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestGroupSummary(t *testing.T) {
	v := node.PeerInfo{Trust: identity.StateVerified}
	ca := node.PeerInfo{Trust: identity.StateCAVerified}
	tofu := node.PeerInfo{Trust: identity.StateTOFU}
	changed := node.PeerInfo{Trust: identity.StateChanged}
	blocked := node.PeerInfo{Trust: identity.StateUntrusted}
	expired := node.PeerInfo{Trust: identity.StateExpired}
	stranger := node.PeerInfo{Trust: identity.StateUnknown}
	for _, tc := range []struct {
		in   []node.PeerInfo
		want string
		tone tone
	}{
		{[]node.PeerInfo{v, ca, v, v, v, tofu}, "6 members: 5 verified, 1 unverified", toneWarn},
		{[]node.PeerInfo{v}, "1 member: 1 verified", toneGood},
		{[]node.PeerInfo{v, changed}, "2 members: 1 verified, 1 KEY CHANGED (sending blocked until you decide)", toneBad},
		{[]node.PeerInfo{v, expired}, "2 members: 1 verified, 1 expired", toneWarn},
		{[]node.PeerInfo{tofu, blocked}, "2 members: 1 unverified, 1 blocked (sending blocked until you decide)", toneBad},
		// A member who is not a contact is unknown, as /members says, not
		// unverified: messages wait for it until it is accepted.
		{[]node.PeerInfo{tofu, stranger}, "2 members: 1 unverified, 1 unknown", toneWarn},
		{[]node.PeerInfo{v, stranger}, "2 members: 1 verified, 1 unknown", toneWarn},
	} {
		got, tn := groupSummary(tc.in)
		if got != tc.want || tn != tc.tone {
			t.Errorf("groupSummary: %q %v, want %q %v", got, tn, tc.want, tc.tone)
		}
	}
}

// /group create, /groups, /members and a refused /invite by a non-admin,
// in real windows on real nodes.
func TestGroupCommands(t *testing.T) {
	t.Parallel()
	alice, bob, wa, wb := talkingBoth(t)
	_ = bob
	wa.enter("/group create team bob")
	wa.waitText("Group team made with 2 members")
	wa.enter("/members bob")
	wa.waitText("/members: no such group")
	wb.waitFor("the group at bob", func(string) bool {
		_, err := bob.n.Groups().Find("team")
		return err == nil
	})
	wa.enter("/members team")
	wa.waitText("Members of team", "2 members: you, 1 unverified", "you (admin, creator)", "bob — unverified: trusted on first use")
	wa.key(27, 0, 0) // Esc
	wa.waitGone("Members of team")
	wa.enter("/groups")
	wa.waitText("team  2 members")
	wa.key(27, 0, 0)
	wb.enter("/invite team " + alice.peerID().String())
	wb.waitText("/invite: only an admin of the group can do that")
	// One name with no group open: said what to do.
	wb.enter("/invite " + alice.peerID().String())
	wb.waitText("/invite works on the open group")
}

// threeTalking starts alice, bob and carol, each a contact of the others
// (trusted on first use) and told where the others listen, with a
// window each.
func threeTalking(t *testing.T) (ps []*testPeer, ws []*window) {
	t.Helper()
	ps = []*testPeer{newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)}
	for _, p := range ps {
		for _, q := range ps {
			if p != q {
				p.pin(q.peerID(), q.id.Name(), identity.StateTOFU)
			}
		}
	}
	for _, p := range ps {
		p.start()
	}
	for _, p := range ps {
		for _, q := range ps {
			if p != q {
				introduce(p, q)
			}
		}
	}
	for _, p := range ps {
		ws = append(ws, openWindow(t, p.n, 80, 24, Options{}))
	}
	return ps, ws
}

// Edits, reactions, replies and deletions in a group, in the windows of
// three real nodes: alice edits and reacts, and bob's and carol's panes
// show the edit and the reaction; bob may react to and reply to alice's
// message but not edit it; alice deletes it for every member.
func TestGroupEditReplyReactDelete(t *testing.T) {
	t.Parallel()
	_, ws := threeTalking(t)
	wa, wb, wc := ws[0], ws[1], ws[2]
	wa.enter("/group create team bob carol")
	wa.waitText("Group team made with 3 members", " # team ")
	wb.waitText("# team")
	wb.tabUntil(" team  3 members")
	wa.enter("helo team")
	wa.waitText("me: helo team  ✓ delivered to all 2")
	wb.waitText("alice: helo team")
	wc.waitText("alice: helo team") // carol had no chat open: it opens the group

	// Alice selects her message, e puts its text in the input, Enter
	// saves: every member's pane shows the edit.
	wa.alt(tcell.KeyUp)
	wa.waitText("Selected: e edit")
	wa.typeText("e")
	wa.waitFor("the text to edit in the input", func(string) bool { return wa.draft() == "helo team" })
	wa.waitText("Editing your message")
	wa.do(func() { wa.u.in.SetText("hello team") })
	wa.key(tcell.KeyEnter, 0, tcell.ModNone)
	wa.waitText("me: hello team  (edited)")
	wb.waitText("alice: hello team  (edited)")
	wc.waitText("alice: hello team  (edited)")

	// Alice reacts to it: + opens the picker.
	wa.alt(tcell.KeyUp)
	wa.typeText("+")
	wa.waitText("React: Enter picks")
	wa.key(tcell.KeyEnter, 0, tcell.ModNone)
	wa.waitText("👍 1")
	wb.waitText("👍 1")
	wc.waitText("👍 1")

	// Any member reacts: bob's /react on the last message.
	wb.enter("/react 🎉")
	wa.waitText("🎉 1", "👍 1")
	wc.waitText("🎉 1", "👍 1")

	// Only the author edits or deletes: said to bob, nothing sent.
	wb.alt(tcell.KeyUp)
	wb.typeText("e")
	wb.waitText("only the member who wrote a message can")
	wb.key(tcell.KeyEscape, 0, tcell.ModNone)
	wb.enter("/delete")
	wb.waitText("/delete: there is no message of yours in this chat")

	// Bob replies: the quote shows above his reply for everyone, and his
	// own copy says how many members have it.
	wb.enter("/reply agreed")
	wb.waitText("↪ alice: hello team", "me: agreed  ✓ delivered to all 2")
	wc.waitText("↪ alice: hello team", "bob: agreed")
	wa.waitText("↪ me: hello team", "bob: agreed")

	// Alice deletes her message for every member, asked first.
	wa.enter("/delete")
	wa.waitText("Delete for every member?")
	wa.choose("Delete")
	wa.waitText("me: message deleted")
	wb.waitText("alice: message deleted", "↪ alice: message deleted")
	wc.waitText("alice: message deleted", "↪ alice: message deleted")
	wc.waitGone("👍 1")
}

// A group in the window, on three real nodes: /group create opens it;
// the others see it in their chat list and open it; messages show with
// their sender's name, own ones with how many members have them; unread
// counts; the commands act on the open group.
func TestGroupChat(t *testing.T) {
	t.Parallel()
	ps, ws := threeTalking(t)
	alice, carol := ps[0], ps[2]
	wa, wb, wc := ws[0], ws[1], ws[2]

	wa.enter("/group create team bob carol")
	wa.waitText("Group team made with 3 members", " # team ")
	if title := titleRow(wa.text()); !strings.Contains(title, " team  3 members: you, 2 unverified  you: admin") {
		t.Fatalf("alice's title: %q", title)
	}
	// Bob's list shows the group: Tab opens it.
	wb.waitText("# team", "3 members")
	wb.tabUntil(" team  3 members: you, 2 unverified")

	wa.enter("hello team")
	wa.waitText("me: hello team  ✓ delivered to all 2")
	wb.waitText("alice: hello team")
	// Carol had no chat open: the message opens the group.
	wc.waitText("alice: hello team")
	if title := titleRow(wc.text()); !strings.Contains(title, " team  3 members") {
		t.Fatalf("carol's title: %q", title)
	}

	wb.enter("hi from bob")
	wa.waitText("bob: hi from bob")
	wc.waitText("bob: hi from bob")
	wb.waitText("me: hi from bob  ✓ delivered to all 2")

	// Carol opens alice's chat: the group's next message is unread there.
	wc.tabUntil(" alice  ")
	wa.enter("second")
	wc.waitText(" 1 ", "1 unread")
	wc.tabUntil(" team  ")
	wc.waitText("alice: second")
	wc.waitGone("1 unread")
	wc.waitFor("carol's node to count the group read", func(string) bool {
		g, err := carol.n.Groups().Find("team")
		return err == nil && g.Unread == 0
	})

	// /members with no name: the open group's.
	wa.enter("/members")
	wa.waitText("Members of team", "3 members: you, 2 unverified", "you (admin, creator)", "bob — unverified: trusted on first use")
	wa.key(tcell.KeyEscape, 0, 0)
	wa.waitGone("Members of team")

	// /rename in the group renames it for every member.
	wa.enter("/rename crew")
	wa.waitText("Renamed the group team to crew for every member.")
	wb.waitText("# crew")
	wa.enter("/rename team")
	wb.waitText("# team")

	// A member offline: "delivered to 1 of 2" and who is missing.
	carol.n.Close()
	wa.enter("are you there?")
	wa.waitText("me: are you there?", "delivered to 1 of 2; waiting for carol")

	// Tab completes a member's name after /kick (people, not groups).
	wa.typeText("/kick bo")
	wa.key(tcell.KeyTab, 0, tcell.ModNone)
	wa.waitFor("/kick bob in the input", func(string) bool { return wa.draft() == "/kick bob" })
	wa.do(func() { wa.u.in.SetText("") })

	// /kick with one name acts on the open group; the kicked member is
	// told, and cannot send any more.
	wa.enter("/kick bob")
	wa.waitText("bob is no longer a member of team")
	// Bob did not leave: his chat list says he is out (left or removed:
	// the window does not know which), not that he left.
	if s := wb.waitText("not a member of team any more", "2 members · you're out"); strings.Contains(s, "· you left") {
		t.Errorf("bob, removed, is told he left:\n%s", s)
	}
	wb.enter("still here?")
	wb.waitText("Not sent: you are not a member of team any more.")
	if wb.draft() != "still here?" {
		t.Errorf("the refused text left the input: %q", wb.draft())
	}
	wb.do(func() { wb.u.in.SetText("") })
	wb.enter("/react 👍")
	wb.waitText("No reaction: you are not a member of team any more.")

	// Alice blocks carol's key: the group says so, and waits.
	if err := alice.n.Contacts().Block(carol.peerID()); err != nil {
		t.Fatal(err)
	}
	wa.waitText("✗ member blocked")
	if title := titleRow(wa.text()); !strings.Contains(title, " team  2 members: you, 1 blocked") {
		t.Fatalf("alice's title with carol blocked: %q", title)
	}
	wa.enter("anyone?")
	wa.waitText("Not sent: sending to the group is blocked: you", "Sending to the group is blocked: you rejected the")
}

// A member whose key changed: the group's title says KEY CHANGED in red,
// the banner says what to do, and a message is refused with that sentence
// and stays in the input.
func TestGroupKeyChanged(t *testing.T) {
	t.Parallel()
	alice, oldBob, newBob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(oldBob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	carol.pin(alice.peerID(), "alice", identity.StateTOFU)
	carol.pin(newBob.peerID(), "bob", identity.StateTOFU)
	newBob.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	carol.start()
	newBob.start()
	introduce(carol, alice)
	introduce(alice, carol)
	w := openWindow(t, alice.n, 80, 24, Options{})
	connect(t, newBob, alice) // refused: alice sees the key claim bob's name
	w.waitText("! KEY CHANGED")
	gi, err := carol.n.Groups().Create("team", []peer.ID{alice.peerID(), newBob.peerID()})
	if err != nil {
		t.Fatal(err)
	}
	w.waitText("# team")
	s := w.tabUntil(" team  3 members: you, 1 unverified, 1 KEY CHANGED")
	w.wantRed(s, "1 KEY CHANGED", "KEY CHANGED in the title")
	w.waitText("KEY CHANGED for bob, a member: sending to the group", "is blocked until you decide. Open the chat marked")
	w.enter("hello")
	w.waitText("Not sent: KEY CHANGED for bob, a member")
	if w.draft() != "hello" {
		t.Errorf("the refused text left the input: %q", w.draft())
	}
	// The member list shows bob in red.
	w.do(func() { w.u.in.SetText("") })
	w.enter("/members")
	s = w.waitText("Members of team", "bob — KEY CHANGED: claims to be bob")
	w.wantRed(s, "bob — KEY CHANGED", "the changed member")
	w.key(tcell.KeyEscape, 0, 0)
	w.waitGone("Members of team")

	// Reactions and replies go to every member: refused as a text is,
	// with the same sentence.
	if _, err := carol.n.Groups().Send(gi.ID, "hi all"); err != nil {
		t.Fatal(err)
	}
	w.waitText("carol: hi all")
	w.enter("/react 👍")
	w.waitText("No reaction: KEY CHANGED for bob, a member")
	w.alt(tcell.KeyUp)
	w.typeText("r")
	w.waitText("Reply not sent: KEY CHANGED for bob, a member")
	if m, err := alice.n.Groups().History(gi.ID, 0, 10); err != nil || len(m) != 1 {
		t.Errorf("alice's group history: %d messages, %v; want carol's only", len(m), err)
	}
}

// A group's message calls for attention like a chat's (the bell, a
// notification naming the sender in the group, the unread count); /mute
// in the group silences it; /send in the group offers the file to each
// member.
func TestGroupNotifyMuteSend(t *testing.T) {
	t.Parallel()
	out := &termLog{}
	clk := &clock{t: testNow}
	opts := Options{Terminal: out, Now: clk.now, Notify: NotifyOptions{
		Desktop: DesktopOSC777, Env: envOf(nil), ChatInterval: time.Minute, Interval: 10 * time.Second,
	}}
	alice, bob, w := talking(t, 80, 24, opts)
	g, err := bob.n.Groups().Create("team", []peer.ID{alice.peerID()})
	if err != nil {
		t.Fatal(err)
	}
	w.waitText("# team")
	out.take()
	if _, err := bob.n.Groups().Send(g.ID, "secret plan"); err != nil {
		t.Fatal(err)
	}
	got := w.waitOut(out, "\x1b]2;(1) certchat\x1b\\")
	if want := "\a\x1b]777;notify;certchat: bob in team;New message\x1b\\"; !strings.Contains(got, want) {
		t.Fatalf("the terminal got %q, want the bell and %q", got, want)
	}
	// Bob's chat is open: the group's message is not in it.
	if s := w.waitText(" 1 ", "1 unread"); strings.Contains(s, "secret plan") {
		t.Fatalf("the group's message shows in bob's chat:\n%s", s)
	}

	// Muted: the next message is counted, silently.
	w.tabUntil(" team  ")
	w.waitText("bob: secret plan")
	w.enter("/mute")
	w.waitText("Muted team")
	w.tabUntil(" bob  ")
	clk.add(2 * time.Minute)
	out.take()
	if _, err := bob.n.Groups().Send(g.ID, "muted"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("the group's message counted", func(string) bool {
		var n int
		w.do(func() { n = w.u.roster.get(groupKey(g.ID)).unread })
		return n == 1
	})
	if got := out.take(); got != "" {
		t.Fatalf("a muted group wrote %q", got)
	}

	// /send in the group: bob is offered the file.
	w.tabUntil(" team  ")
	path := filepath.Join(t.TempDir(), "plan.txt")
	if err := os.WriteFile(path, []byte("the plan"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.enter("/send " + path)
	w.waitText("Offered plan.txt (8 B) to 1 member of team")
	w.waitFor("bob's offer", func(string) bool {
		fs, err := bob.n.Files().List()
		return err == nil && len(fs) == 1 && fs[0].Name == "plan.txt" && fs[0].Peer == alice.peerID()
	})
}

// An own group message's delivery in words: how many members have it,
// who waits (and whose copy waits at their relay), who failed.
func TestGroupDeliveryText(t *testing.T) {
	names := map[peer.ID]string{"a": "ann", "b": "bob", "c": "cat", "d": "dan", "e": "eve"}
	name := func(p peer.ID) string { return names[p] }
	d := func(p peer.ID, st store.Status) store.MemberDelivery {
		return store.MemberDelivery{Peer: p, Status: st}
	}
	for _, tc := range []struct {
		in   []store.MemberDelivery
		want string
		tone tone
	}{
		{nil, "sending…", toneNone},
		{[]store.MemberDelivery{d("a", store.StatusDelivered)}, "✓ delivered", toneGood},
		{[]store.MemberDelivery{d("a", store.StatusDelivered), d("b", store.StatusDelivered)}, "✓ delivered to all 2", toneGood},
		{[]store.MemberDelivery{d("a", store.StatusDelivered), d("b", store.StatusSent), d("c", store.StatusQueued)},
			"delivered to 1 of 3; waiting for bob, cat (at their relay)", toneNone},
		{[]store.MemberDelivery{d("a", store.StatusSending), d("b", store.StatusSending), d("c", store.StatusSending), d("d", store.StatusSending), d("e", store.StatusFailed)},
			"delivered to 0 of 5; waiting for ann, bob, cat and 1 more; ✗ failed for eve", toneBad},
	} {
		if got, tn := groupDeliveryText(tc.in, name, nil); got != tc.want || tn != tc.tone {
			t.Errorf("groupDeliveryText: %q %v, want %q %v", got, tn, tc.want, tc.tone)
		}
	}
	// A member who waits because it is not a contact says so, and how
	// the wait ends; the others do not.
	why := func(p peer.ID) string {
		if p == "c" {
			return " (not a contact: /trust cat)"
		}
		return ""
	}
	in := []store.MemberDelivery{d("a", store.StatusDelivered), d("b", store.StatusSent), d("c", store.StatusSending)}
	if got, _ := groupDeliveryText(in, name, why); got != "delivered to 1 of 3; waiting for bob, cat (not a contact: /trust cat)" {
		t.Errorf("groupDeliveryText with a stranger: %q", got)
	}
}

// caWithPath makes a CA certificate with crypto/x509 (self-signed when
// parent is nil) allowing pathLen CAs below it.
func caWithPath(t *testing.T, name string, pathLen int, parent *identity.CA) *identity.CA {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(int64(len(name)) + 1000), Subject: pkix.Name{CommonName: name},
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
		MaxPathLen: pathLen, MaxPathLenZero: pathLen == 0,
	}
	issuer, signer := tmpl, key
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.CA{Cert: cert, Key: key}
}

// /members of a group bound to a root names the root ("group CA") for a
// member whose certificate an intermediate CA (trusted explicitly) issued.
func TestGroupMembersIssuedThroughIntermediate(t *testing.T) {
	t.Parallel()
	root := caWithPath(t, "Acme Root", 1, nil)
	team := caWithPath(t, "Acme Team CA", 0, root)
	alice := newCAPeer(t, "alice", 0, root, 300*24*time.Hour)
	dave := newCAPeer(t, "dave", 0, team, 300*24*time.Hour)
	if err := alice.trust.AddRoot(root.Cert); err != nil {
		t.Fatal(err)
	}
	if err := alice.trust.AddIntermediate(team.Cert); err != nil {
		t.Fatal(err)
	}
	alice.pin(dave.peerID(), "dave", identity.StateTOFU)
	dave.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	dave.start()
	w := openWindow(t, alice.n, 160, 24, Options{})
	if _, err := connect(t, dave, alice); err != nil {
		t.Fatal(err)
	}
	w.waitText("dave")
	if _, err := alice.n.Groups().CreateCA("acme", []peer.ID{dave.peerID()}, node.CAHash(root.Cert)); err != nil {
		t.Fatal(err)
	}
	w.enter("/members acme")
	w.waitText("Members of acme", "dave — verified: issued by Acme Team CA — group CA: Acme Root (through Acme")
}

// An own group message older than a day is no longer edited nor
// deleted: the node refuses, and the window says why.
func TestGroupEditTooOld(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 1), newPeer(t, "bob", 2)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.fillGroup(alice, "team", []peer.ID{bob.peerID()},
		groupMsg{at: testNow.Add(-25 * time.Hour), body: "from yesterday"},
	)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.tabUntil(" team  2 members")
	w.waitText("me: from yesterday")
	w.enter("/edit from today")
	w.waitText("Not edited: a message can be edited or deleted only", "within 24 hours of sending it.")
	w.enter("/delete")
	w.choose("Delete")
	w.waitText("Not deleted: a message can be edited or deleted only", "within 24 hours of sending it.")
	w.waitText("me: from yesterday")
}

// What a new user trips over with groups: /group create with a name and
// no member is refused as its usage says (it made a group of one, and a
// second /group create then made two groups of that name); a name two
// groups share is refused with their IDs, which /groups shows and the
// commands take.
func TestGroupCreateNeedsMembersAndSharedNames(t *testing.T) {
	t.Parallel()
	alice, _, wa, _ := talkingBoth(t)
	wa.enter("/group create team")
	wa.waitText("MEMBER...: a name and at least")
	if gs := alice.n.Groups().List(); len(gs) != 0 {
		t.Fatalf("/group create without members made %d groups", len(gs))
	}
	wa.enter("/group create team bob")
	wa.waitText("Group team made with 2 members")
	wa.key(27, 0, 0) // Esc clears the notice, so that the second one shows
	wa.waitGone("Group team made with 2 members")
	wa.enter("/group create team bob")
	// The window opens the second group when its /group create returns:
	// /members typed before that had its answer wiped by the opening (a
	// flake, on main too).
	wa.waitText("Group team made with 2 members")
	wa.waitFor("two groups", func(string) bool { return len(alice.n.Groups().List()) == 2 })
	gs := alice.n.Groups().List()
	id0, id1 := gs[0].ID.Short(), gs[1].ID.Short()
	wa.enter("/members team")
	wa.waitText("2 groups are called", id0, id1)
	wa.enter("/groups")
	wa.waitText("team  2 members  ID "+id0, "team  2 members  ID "+id1)
	wa.key(27, 0, 0) // Esc
	wa.waitGone("ID " + id0)
	wa.enter("/members " + id1)
	wa.waitText("Members of team", "you (admin, creator)")
}

// The empty input's hint ends with /help at 80 columns, in a group too:
// it said "(Enter sends; /members, /" there, cut in the middle.
func TestInputHintFits(t *testing.T) {
	t.Parallel()
	alice, bob, wa, _ := talkingBoth(t)
	inputRow := func(screen string) string {
		for _, l := range strings.Split(screen, "\n") {
			if strings.Contains(l, "›") {
				return l
			}
		}
		return ""
	}
	if row := inputRow(wa.text()); !strings.HasSuffix(row, "/help)") {
		t.Errorf("1:1 chat input row %q does not end with /help)", row)
	}
	if _, err := alice.n.Groups().Create("launchpad", []peer.ID{bob.peerID()}); err != nil {
		t.Fatal(err)
	}
	wa.tabUntil(" launchpad  2 members")
	screen := wa.waitFor("the group's hint", func(s string) bool { return strings.Contains(inputRow(s), "launchpad") })
	if row := inputRow(screen); !strings.HasSuffix(row, "/help)") {
		t.Errorf("group input row %q does not end with /help)\n%s", row, screen)
	}
	for _, w := range []int{60, 40} {
		screen := wa.resize(w, 24)
		if row := inputRow(screen); !strings.Contains(row, "launchpad") || strings.HasSuffix(row, "/") {
			t.Errorf("at %d columns the input row is %q", w, row)
		}
	}
}

// A group you left is not yours to change: /leave, /invite, /kick, /admin
// and /rename on it say so, rather than "only an admin of the group can
// do that" or the node's "not a member of the group: 12D3Ko…xv7Uha
// cannot leave". The chat list counts its one member as "1 member" (it
// said "1 members").
func TestGroupCommandsAfterLeaving(t *testing.T) {
	t.Parallel()
	_, bob, wa, _ := talkingBoth(t)
	wa.enter("/group create crew bob")
	wa.waitText("Group crew made with 2 members")
	wa.enter("/leave")
	wa.waitText("You are no longer a member of crew", "1 member · you're out")
	for _, cmd := range []string{"/leave", "/leave crew", "/invite bob", "/kick crew " + bob.peerID().String(), "/admin bob", "/rename crewmates"} {
		wa.enter(cmd)
		name, _, _ := strings.Cut(strings.TrimPrefix(cmd, "/"), " ")
		screen := wa.waitText("/" + name + ": you are not a member of crew any")
		if strings.Contains(screen, "only an admin") || strings.Contains(screen, "cannot leave") {
			t.Errorf("%s:\n%s", cmd, screen)
		}
		wa.key(27, 0, 0) // Esc clears the notice
		wa.waitGone("you are not a member of crew any")
	}
}

// A member who is not a contact shows in /members by its ID only; an
// admin names it in /kick and /admin by that ID as shown, or by its end.
// Erin's end, "16i23e", also decodes as a peer ID (an identity multihash
// of two bytes, embedding no key), as about one peer ID's end in 2,250
// does: /admin took it for that peer, and the node said it was "not a
// member of the group".
func TestGroupMemberNamedByID(t *testing.T) {
	t.Parallel()
	seed := make([]byte, ed25519.SeedSize)
	binary.LittleEndian.PutUint64(seed, 9695)
	alice, carol, dave, erin := newPeer(t, "alice", 0), newPeer(t, "carol", 0), newPeer(t, "dave", 0), newPeerWithKey(t, "erin", ed25519.NewKeyFromSeed(seed))
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	for _, p := range []*testPeer{alice, dave, erin} {
		carol.pin(p.peerID(), p.id.Name(), identity.StateTOFU)
	}
	alice.start()
	carol.start()
	introduce(carol, alice)
	w := openWindow(t, alice.n, 100, 30, Options{})
	gi, err := carol.n.Groups().Create("team", []peer.ID{alice.peerID(), dave.peerID(), erin.peerID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.Groups().Admin(gi.ID, alice.peerID()); err != nil {
		t.Fatal(err)
	}
	w.waitFor("alice an admin", func(string) bool {
		g, ok := alice.n.Groups().Get(gi.ID)
		return ok && isAdmin(g, alice.peerID())
	})
	short, end := identity.ShortID(dave.peerID()), erin.peerID().String()[len(erin.peerID().String())-6:]
	if _, err := peer.Decode(end); err != nil {
		t.Fatalf("erin's end %q no longer decodes as a peer ID: %v", end, err)
	}
	w.enter("/members team")
	w.waitText(short+" — ", "named by it in /kick and /admin")
	w.key(tcell.KeyEscape, 0, 0)
	w.waitGone("Members of team")

	w.enter("/kick team " + short)
	w.waitText(short + " is no longer a member of team")
	w.enter("/admin team " + end)
	w.waitText(" is now an admin of team")
	g, _ := alice.n.Groups().Get(gi.ID)
	if slices.Contains(g.Members, dave.peerID()) || !isAdmin(g, erin.peerID()) {
		t.Fatalf("members %v, admins %v: want dave out and erin an admin", g.Members, g.Admins)
	}
	w.enter("/kick team 12D3")
	w.waitText("/kick: 3 members of team have a peer ID like \"12D3\"")
	// Carol, the creator, was an admin before alice: alice cannot remove
	// her, and is told why.
	w.enter("/kick team carol")
	w.waitText("/kick: they were an admin before you")
	if g, _ := alice.n.Groups().Get(gi.ID); !slices.Contains(g.Members, carol.peerID()) {
		t.Fatalf("members %v: carol removed by a junior admin", g.Members)
	}
}

// idMatches: what /members shows of a peer ID names it; too little, or a
// piece from its middle, does not.
func TestIDMatches(t *testing.T) {
	const id = "12D3KooWQ9rJbAZyYzv3t8ZkbjdK4vHQLZ5S1dGf1argnA"
	for _, c := range []struct {
		frag string
		want bool
	}{
		{"12D3Ko…1argnA", true},
		{"12D3Ko...1argnA", true},
		{"1argnA", true},
		{"12D3KooWQ9", true},
		{"argnA", true},
		{"gnA", false},
		{"12D3Ko…1argnB", false},
		{"12D3Ko…", true},
		{"…", false},
		{"1…A", false},
		{"KooWQ9rJ", false},
		{"12D3KooWQ9rJbAZyYzv3t8ZkbjdK4vHQLZ5S1dGf1argnA…1argnA", false},
	} {
		if got := idMatches(id, c.frag); got != c.want {
			t.Errorf("idMatches(%q) = %v, want %v", c.frag, got, c.want)
		}
	}
}

// groupReason: a refused group change in words; a log that is full
// says what to do, a group full of members does not pass for one.
func TestGroupReason(t *testing.T) {
	logFull := fmt.Errorf("propose: %w", fmt.Errorf("%w (%d)", group.ErrLogFull, group.MaxChanges))
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", group.ErrNotAdmin), "only an admin of the group can do that"},
		{fmt.Errorf("x: %w", group.ErrJuniorAdmin), "they were an admin before you"},
		{logFull, "the group has had 4096 changes to its members, admins and name, the most a group keeps, so nobody can change it any more (messages still go); to go on changing it, make it anew with /group create NAME MEMBER..."},
		{fmt.Errorf("%w: 256 members", group.ErrFull), "group is full: 256 members"},
	} {
		if got := groupReason(c.err); !strings.HasPrefix(got, c.want) {
			t.Errorf("groupReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// A group made by a stranger: its title counts the stranger as unknown
// (as /members does), not unverified, and a message to it says why it
// waits for the stranger and what ends the wait; accepting the stranger
// delivers it.
func TestGroupFromStrangerSaysWhyItWaits(t *testing.T) {
	t.Parallel()
	alice, carol := newPeer(t, "alice", 0), newPeer(t, "carol", 0)
	carol.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	carol.start()
	introduce(carol, alice)
	w := openWindow(t, alice.n, 80, 24, Options{})
	gi, err := carol.n.Groups().Create("team", []peer.ID{alice.peerID()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.n.Groups().Send(gi.ID, "hello from carol"); err != nil {
		t.Fatal(err)
	}
	s := w.waitText("carol: hello from carol", "Made by carol, who is not in your contacts:")
	if title := titleRow(s); !strings.Contains(title, " team  2 members: you, 1 unknown") {
		t.Fatalf("alice's title: %q", title)
	}
	w.enter("hi carol")
	w.waitText("waiting for carol", "(not a contact: /trust carol)")
	w.enter("/trust carol")
	w.waitText("First contact: carol")
	w.key(tcell.KeyLeft, 0, 0)
	w.key(tcell.KeyLeft, 0, 0)
	w.key(tcell.KeyEnter, 0, 0)
	w.waitText("me: hi carol  ✓ delivered")
	w.waitGone("Made by carol")
}

// A group bound to a CA is made from the window: /group create … --ca
// names a CA the user trusts (by name, any case, or fingerprint). A
// member without a certificate from it is refused by name, as is a CA
// the user does not trust; a bare --ca says how it is used. Before,
// only the node's API could make such a group: neither the window nor
// the daemon could.
func TestGroupCreateBoundToCA(t *testing.T) {
	t.Parallel()
	root := caWithPath(t, "Acme Root", 0, nil)
	alice := newCAPeer(t, "alice", 0, root, 300*24*time.Hour)
	bob := newCAPeer(t, "bob", 1, root, 300*24*time.Hour)
	carol := newPeer(t, "carol", 2) // self-signed
	if err := alice.trust.AddRoot(root.Cert); err != nil {
		t.Fatal(err)
	}
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	carol.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	bob.start()
	carol.start()
	w := openWindow(t, alice.n, 160, 24, Options{})
	for _, p := range []*testPeer{bob, carol} {
		if _, err := connect(t, p, alice); err != nil {
			t.Fatal(err)
		}
	}
	w.waitText("bob", "carol")

	w.enter("/group create acme bob --ca")
	w.waitText("add --ca CA (a CA you trust, by name or fingerprint)")
	w.enter("/group create acme bob --ca Other Root")
	w.waitText(`no CA you trust is called "Other Root"`)
	w.enter("/group create acme bob carol --ca Acme Root")
	w.waitText("carol cannot join a group bound to a CA", "has no certificate from the group's CA", "certificate is self-signed")
	if gs := alice.n.Groups().List(); len(gs) != 0 {
		t.Fatalf("a refused /group create made %d groups", len(gs))
	}
	w.enter("/group create acme bob --ca acme root")
	w.waitText("Group acme made with 2 members, bound to acme root (every member needs a certificate it issued)")
	gs := alice.n.Groups().List()
	if len(gs) != 1 || !bytes.Equal(gs[0].CA, node.CAHash(root.Cert)) {
		t.Fatalf("groups after /group create --ca: %+v", gs)
	}
	w.enter("/members acme")
	w.waitText("Members of acme", "bob — verified: issued by Acme Root — group CA: Acme Root")
}

// TestGroupRemovalUndoneWaitsForDecision: in alice's log, bob (an admin)
// removed carol and left, and bob's key then signed a second leave on
// the version before the removal, which undid it (SECURITY.md finding
// 7). The chat list and the banner say so, nothing is sent to the group
// (the text stays in the input), /members marks carol, and /keep carol
// lets alice write again.
func TestGroupRemovalUndoneWaitsForDecision(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	at := testNow.Add(-time.Hour)
	create, err := group.Create(alice.id.Signer(), "team", []peer.ID{bob.peerID(), carol.peerID()}, nil, at)
	if err != nil {
		t.Fatal(err)
	}
	l, err := group.New(create)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(who *testPeer, op group.Op, p peer.ID, parents []group.Hash) group.Hash {
		t.Helper()
		c, err := group.Sign(who.id.Signer(), l.ID(), parents, op, p, "", at)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Add(c); err != nil && !errors.Is(err, group.ErrNotMember) {
			t.Fatal(err)
		}
		return c.Hash()
	}
	admin := sign(alice, group.OpAdmin, bob.peerID(), l.Heads())
	removal := sign(bob, group.OpRemove, carol.peerID(), []group.Hash{admin})
	sign(bob, group.OpLeave, "", []group.Hash{removal})
	sign(bob, group.OpLeave, "", []group.Hash{admin}) // the second leave, before the removal
	if u := group.UndoneRemovals(l); len(u) != 1 {
		t.Fatalf("the log's undone removals: %v", u)
	}
	// The log's changes alone, as a node that never noted the doubt
	// stored them (the removal is among them, kept out of the log): the
	// node notes it as it restores the log.
	alice.fillLog(l)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("! REMOVAL UNDONE")
	s := w.tabUntil(" team  2 members: you, 1 unverified; 1 REMOVAL UNDONE")
	w.wantRed(s, "1 REMOVAL UNDONE", "REMOVAL UNDONE in the title")
	w.waitText("Bob's removal of carol was undone by a leave bob's", "(/kick carol); /keep carol writes to them.")
	w.waitText("bob removed carol; undone by a leave bob's key", "signed beside it.")
	w.enter("hello")
	w.waitText("Not sent: bob's removal of carol was undone")
	if w.draft() != "hello" {
		t.Errorf("the refused text left the input: %q", w.draft())
	}
	w.do(func() { w.u.in.SetText("") })
	w.enter("/members")
	s = w.waitText("Members of team", "2 members: you, 1 unverified; 1 REMOVAL UNDONE", "carol — unverified: trusted on first use — REMOVAL UNDONE by bob's key")
	w.wantRed(s, "REMOVAL UNDONE by bob's", "the undone removal")
	w.key(tcell.KeyEscape, 0, 0)
	w.waitGone("Members of team")
	w.enter("/keep carol")
	w.waitText("You write to carol in team again")
	w.waitGone("! REMOVAL UNDONE")
	w.enter("hello")
	w.waitText("me: hello", "waiting for carol")
}
