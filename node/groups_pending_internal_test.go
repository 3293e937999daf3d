package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A group action that arrives before the message it acts on (PROTOCOL
// §14.5): each member's copy of a message travels on its own path, so
// carol's reaction to bob's message can reach alice live while bob's copy
// still waits in alice's relay mailbox. The reaction is kept, pending,
// and applied when the message arrives; so are the author's edit and
// deletion deposited before their message. Kept, an action still obeys
// the rules once its message arrives: carol's edit of bob's message is
// refused, and an action naming a message that turns out to be of
// another group or of a private chat never applies.
func TestGroupActionBeforeItsMessage(t *testing.T) {
	relayAddr, relayID := offRelay(t)
	relays := []string{relayAddr}
	homes := map[string]identity.Home{}
	ids := map[string]*identity.Identity{}
	for _, name := range []string{"alice", "bob"} {
		h := identity.Home{Dir: t.TempDir()}
		id, err := h.Init(name, nil, identity.DefaultKDF, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		homes[name], ids[name] = h, id
	}
	alice := offNodeAt(t, homes["alice"], ids["alice"], relays, true)
	bob := offNodeAt(t, homes["bob"], ids["bob"], relays, true)
	carol := offNewNode(t, "carol", relays, true)
	for _, n := range []*offNode{alice, bob, carol} {
		n.offRegistered()
	}
	offLink(t, alice, bob)
	offLink(t, alice, carol)
	offLink(t, bob, carol)
	gid := offGroup(t, alice, bob, carol)

	// Alice is away: bob's message waits for her at the relay; carol
	// gets it live.
	alice.Close()
	m, err := bob.Groups().Send(gid, "lunch at noon?")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("alice's copy at the relay", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.ID == m.ID && e.Message.Peer == alice.ID() && e.Message.Status == store.StatusQueued
	})
	carol.offWait("carol's copy, live", offIsMessage(m.ID))
	bob.Close()

	// Alice is back but has not fetched her mailbox yet (no relay this
	// time); carol's reaction reaches her live, before bob's message.
	alice = offNodeAt(t, homes["alice"], ids["alice"], nil, true)
	alice.host.Peerstore().AddAddrs(carol.ID(), carol.host.Addrs(), time.Hour)
	carol.host.Peerstore().AddAddrs(alice.ID(), alice.host.Addrs(), time.Hour)
	react, _, err := carol.Messages().React(m.ID, "👍")
	if err != nil {
		t.Fatal(err)
	}
	offDeliveredTo(t, carol, react.ID, alice.ID())
	if _, err := alice.store.Groups().GroupMessageByID(m.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("alice has bob's message before fetching her mailbox: %v", err)
	}

	// Alice fetches: bob's message arrives with carol's reaction on it.
	alice.Close()
	alice = offNodeAt(t, homes["alice"], ids["alice"], relays, true)
	got := alice.offWait("bob's message from the mailbox", offIsMessage(m.ID)).Message
	if len(got.Reactions) != 1 || got.Reactions[0].From != carol.ID() || got.Reactions[0].Emoji != "👍" {
		t.Fatalf("bob's message arrived with the reactions %+v, want carol's 👍", got.Reactions)
	}
	alice.offWait("the update of the reaction applied", offIsUpdate(m.ID, react.ID))
	if h := groupMessageOf(t, alice, m.ID); len(h.Reactions) != 1 || h.Reactions[0].From != carol.ID() {
		t.Fatalf("alice's history shows bob's message with the reactions %+v", h.Reactions)
	}
	alice.offMailboxEmpty(relayID)

	// Bob's edit and deletion, each deposited before its message.
	bob = offNodeAt(t, homes["bob"], ids["bob"], relays, true)
	bob.offRegistered()
	ws := &wireStream{group: store.GroupID(gid), stream: 77}
	typo := ws.text(alice.ID(), gid, "tpyo")
	fix := ws.action(typo, store.KindEdit, "typo")
	haste := ws.text(alice.ID(), gid, "sent in haste")
	del := ws.action(haste, store.KindDelete, "")
	offDeposit(t, bob, relayID, fix, typo, del, haste)
	got = alice.offWait("the message its edit waited for", offIsMessage(typo.ID)).Message
	if got.Body != "typo" || got.Edited.IsZero() {
		t.Fatalf("bob's edited message arrived as %+v", got)
	}
	alice.offWait("the update of the edit applied", offIsUpdate(typo.ID, fix.ID))
	got = alice.offWait("the message its deletion waited for", offIsMessage(haste.ID)).Message
	if !got.Deleted || got.Body != "" {
		t.Fatalf("bob's deleted message arrived as %+v", got)
	}
	alice.offWait("the update of the deletion applied", offIsUpdate(haste.ID, del.ID))
	if h := groupMessageOf(t, alice, typo.ID); h.Body != "typo" {
		t.Fatalf("alice's history shows the edited message as %q", h.Body)
	}
	if h := groupMessageOf(t, alice, haste.ID); !h.Deleted || h.Body != "" {
		t.Fatalf("alice's history shows the deleted message as %+v", h)
	}

	// Kept, an action still obeys the rules. Carol edits bob's message
	// before it arrives: refused when it does.
	cs := &wireStream{group: store.GroupID(gid), stream: 78}
	mine := ws.text(alice.ID(), gid, "bob's words")
	forged := cs.action(mine, store.KindEdit, "carol's words")
	offDeposit(t, carol, relayID, forged)
	offDeposit(t, bob, relayID, mine)
	alice.offWait("carol's edit of bob's message refused", func(e Event) bool {
		return e.Kind == EventError && strings.Contains(e.Err, store.ErrNotYours.Error())
	})
	if h := groupMessageOf(t, alice, mine.ID); h.Body != "bob's words" || !h.Edited.IsZero() {
		t.Fatalf("bob's message after carol's edit: %+v", h)
	}

	// An action naming a message that then arrives in a private chat, or
	// in another group, never applies; nor does a private action naming a
	// message that arrives in the group.
	other := offGroup(t, alice, bob)
	private := store.Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now(), Body: "just for you", Direction: store.Outgoing}
	if err := bob.store.Number(&private); err != nil {
		t.Fatal(err)
	}
	elsewhere := ws.text(alice.ID(), other, "in the other group")
	inGroup := ws.text(alice.ID(), gid, "in the group")
	privateEdit := store.Message{ID: e2e.NewMessageID(), Peer: alice.ID(), SentAt: time.Now().Add(time.Second),
		Kind: store.KindEdit, Target: inGroup.ID, Body: "edited in private"}
	offDeposit(t, bob, relayID,
		ws.action(private, store.KindEdit, "edited in the group"),
		ws.action(elsewhere, store.KindReact, "🎉"),
		privateEdit,
		private, elsewhere, inGroup)
	alice.offWait("the private message", offIsMessage(private.ID))
	alice.offWait("the other group's message", offIsMessage(elsewhere.ID))
	alice.offWait("the group's message", offIsMessage(inGroup.ID))
	if p, err := alice.store.Message(private.ID); err != nil || p.Body != "just for you" || !p.Edited.IsZero() {
		t.Fatalf("the private message after a group's edit of it: %+v, %v", p, err)
	}
	if h := groupMessageOf(t, alice, elsewhere.ID); len(h.Reactions) != 0 {
		t.Fatalf("the other group's message has the reactions %+v", h.Reactions)
	}
	if h := groupMessageOf(t, alice, inGroup.ID); h.Body != "in the group" || !h.Edited.IsZero() {
		t.Fatalf("the group's message after a private edit of it: %+v", h)
	}
	alice.offMailboxEmpty(relayID)
}

// wireStream numbers group messages and actions of one sender, made
// without storing them at the sender: what the test deposits in an order
// the sender's outbox would not.
type wireStream struct {
	group          store.GroupID // of its actions
	stream, number uint64
}

func (w *wireStream) next(m store.Message) store.Message {
	w.number++
	m.Stream, m.Number = w.stream, w.number
	return m
}

// text is a group text to p in group gid.
func (w *wireStream) text(p peer.ID, gid group.ID, body string) store.Message {
	return w.next(store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: time.Now(), Body: body, Group: store.GroupID(gid)})
}

// action is an edit, deletion or reaction (emoji: body) of target, sent
// in w's group.
func (w *wireStream) action(target store.Message, kind store.Kind, body string) store.Message {
	a := store.Message{ID: e2e.NewMessageID(), Peer: target.Peer, SentAt: target.SentAt.Add(time.Second), Kind: kind,
		Target: target.ID, Group: w.group}
	if kind == store.KindReact {
		a.Emoji = body
	} else {
		a.Body = body
	}
	return w.next(a)
}

// offDeposit seals each message from `from` and leaves it, in this
// order, in the recipient's mailbox at relay.
func offDeposit(t *testing.T, from *offNode, relay peer.ID, msgs ...store.Message) {
	t.Helper()
	for _, m := range msgs {
		env, err := from.rk.sealText(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := from.mail.client().Deposit(context.Background(), relay, m.Peer, env); err != nil {
			t.Fatal(err)
		}
	}
}

// offDeliveredTo waits until on's group message id is delivered to p.
func offDeliveredTo(t *testing.T, on *offNode, id e2e.MessageID, p peer.ID) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d, err := on.Groups().Delivery(id)
		if err == nil {
			for _, md := range d.Members {
				if md.Peer == p && md.Status == store.StatusDelivered {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not delivered to %s: %+v, %v", id, identity.ShortID(p), d, err)
		}
	}
}

// offIsUpdate matches the update of target that action made.
func offIsUpdate(target, action e2e.MessageID) func(Event) bool {
	return func(e Event) bool {
		return e.Kind == EventUpdate && e.Message.ID == target && e.Action != nil && e.Action.ID == action
	}
}

func groupMessageOf(t *testing.T, on *offNode, id e2e.MessageID) store.GroupMessage {
	t.Helper()
	m, err := on.store.Groups().GroupMessageByID(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
