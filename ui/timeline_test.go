package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
)

// changeLog is the log of a group, "launch", bob made at testNow-5h with
// members, and then changes, each by its author at its time.
func changeLog(t *testing.T, bob *testPeer, members []peer.ID, changes ...func(l *group.Log) *group.Change) *group.Log {
	t.Helper()
	c, err := group.Create(bob.id.Signer(), "launch", members, nil, testNow.Add(-5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	l, err := group.New(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range changes {
		if err := l.Add(change(l)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// changeBy is a change by who at a time, for changeLog.
func changeBy(t *testing.T, who *testPeer, at time.Time, op group.Op, p peer.ID, name string) func(l *group.Log) *group.Change {
	return func(l *group.Log) *group.Change {
		c, err := l.Propose(who.id.Signer(), op, p, name, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// A group's chat shows who changed its membership among its messages,
// by time, in words, with names as the roster has them ("you" for the
// user): the creation, an add, an admin made, a leave, a rename, and a
// removal that arrives live while the chat is open. A member's name
// holds tview tags, an escape and a bell: the tags are drawn as text,
// the escape and the bell not at all.
func TestGroupChatShowsMembershipChanges(t *testing.T) {
	t.Parallel()
	alice, bob, carol, mallory := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0), newPeer(t, "mallory", 0)
	alice.pin(bob.peerID(), "bob", identity.StateVerified)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	l := changeLog(t, bob, []peer.ID{alice.peerID(), carol.peerID()},
		changeBy(t, bob, testNow.Add(-3*time.Hour), group.OpAdd, mallory.peerID(), ""),
		changeBy(t, bob, testNow.Add(-90*time.Minute), group.OpAdmin, alice.peerID(), ""),
		changeBy(t, mallory, testNow.Add(-80*time.Minute), group.OpLeave, "", ""),
		changeBy(t, bob, testNow.Add(-70*time.Minute), group.OpRename, "", "crew"),
	)
	alice.fillLog(l,
		groupMsg{from: bob, at: testNow.Add(-4 * time.Hour), body: "Kick-off at 10."},
		groupMsg{from: carol, at: testNow.Add(-2 * time.Hour), body: "Welcome aboard."},
		groupMsg{at: testNow.Add(-time.Hour), body: "See you there.", to: map[peer.ID]bool{bob.peerID(): true, carol.peerID(): true}},
	)
	bob.fillLog(l)
	alice.start()
	bob.start()
	introduce(bob, alice)
	w := openWindow(t, alice.n, 100, 30, Options{})
	// Mallory's name as the node would report it from a certificate
	// (a contact's label cannot hold an escape).
	w.do(func() {
		w.u.roster.setInfo(node.PeerInfo{ID: mallory.peerID(), Name: "[red]mal[::b]lory[-]\x1b[31m\x07", Trust: identity.StateUnknown})
		w.u.app.ForceDraw()
	})
	const shown = "[red]mal[::b]lory[-][31m"
	w.tabUntil(" crew  3 members")
	order := []string{
		`04:30 bob created the group "launch" with carol and you.`,
		"bob: Kick-off at 10.",
		"06:30 bob added " + shown + ".",
		"carol: Welcome aboard.",
		"08:00 bob made you an admin.",
		"08:10 " + shown + " left.",
		`08:20 bob renamed the group to "crew".`,
		"me: See you there.",
	}
	s := w.waitText(order...)
	inOrder(t, s, order)
	assertClean(t, s)
	x, y, _ := w.find("bob made you an admin.")
	if _, _, attr := w.styleAt(x, y).Decompose(); attr&tcell.AttrItalic == 0 {
		t.Errorf("a membership change is not drawn as a system line (italic): %v", attr)
	}

	if _, err := bob.n.Groups().Remove(l.ID(), carol.peerID()); err != nil {
		t.Fatal(err)
	}
	order = append(order, "09:30 bob removed carol.")
	s = w.waitText(order[len(order)-1])
	inOrder(t, s, order)
	if !strings.Contains(s, " crew  2 members") {
		t.Errorf("the title does not follow the removal:\n%s", s)
	}
}

// inOrder fails unless each of texts is on the screen below the one
// before.
func inOrder(t *testing.T, screen string, texts []string) {
	t.Helper()
	at := 0
	for _, text := range texts {
		i := strings.Index(screen[at:], text)
		if i < 0 {
			t.Fatalf("%q is not below the texts before it:\n%s", text, screen)
		}
		at += i + len(text)
	}
}
