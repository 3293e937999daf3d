package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
)

// handCreate has key's peer make a group with members and hands its
// create to n as a frame from `from` (the receive path a session's read
// loop calls); it returns the group's log as its maker holds it.
func handCreate(t *testing.T, n *offNode, key ed25519.PrivateKey, from peer.ID, name string, members ...peer.ID) *group.Log {
	t.Helper()
	c, err := group.Create(key, name, members, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, err := group.New(c)
	if err != nil {
		t.Fatal(err)
	}
	n.groups.receive(from, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: store.GroupID(l.ID()), Changes: l.Changes()})
	return l
}

// strangerCreate is handCreate's group ID.
func strangerCreate(t *testing.T, n *offNode, key ed25519.PrivateKey, from peer.ID, name string, members ...peer.ID) group.ID {
	t.Helper()
	return handCreate(t, n, key, from, name, members...).ID()
}

// holds says whether n keeps group id.
func (on *offNode) holds(id group.ID) bool {
	_, ok := on.Groups().state(id)
	return ok
}

// refusedStranger waits for n's refusal of a stranger's group, and
// checks that it says what to do.
func (on *offNode) refusedStranger(what string, want string) {
	on.t.Helper()
	e := on.offWait(what, func(e Event) bool { return e.Kind == EventError && strings.Contains(e.Err, ErrStrangerGroups.Error()) })
	if !strings.Contains(e.Err, want) || !strings.Contains(e.Err, "accept") || !strings.Contains(e.Err, "leave") {
		on.t.Fatalf("%s: %q, want it to say %q and how to make room", what, e.Err, want)
	}
}

// TestGroupsFromStrangersBounded: a stranger (no contact of bob's) puts
// bob in groups over the wire, then keys made for the purpose do. Bob
// keeps at most perCreator groups of one stranger and total of all,
// refuses the rest with the reason, and makes room when he leaves one or
// accepts its maker. Without the bound every group is kept.
func TestGroupsFromStrangersBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	alice := offNewNode(t, "alice", nil, true)
	offLink(t, alice, bob)
	bob.groups.strangers.perCreator, bob.groups.strangers.total = 2, 3

	// Mallory knows bob's address and trusts him; bob never accepted her.
	mallory.host.Peerstore().AddAddrs(bob.ID(), bob.host.Addrs(), time.Hour)
	if err := mallory.Contacts().Trust(bob.ID(), false); err != nil {
		t.Fatal(err)
	}
	var made []group.ID
	for _, name := range []string{"spam 1", "spam 2", "spam 3"} {
		gi, err := mallory.Groups().Create(name, []peer.ID{bob.ID()})
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, gi.ID)
	}
	bob.refusedStranger("the third group from mallory refused", "has put you in as many groups as are kept (2)")
	kept := 0
	for _, id := range made {
		if bob.holds(id) {
			kept++
		}
	}
	if kept != 2 {
		t.Fatalf("bob keeps %d of mallory's 3 groups, want 2", kept)
	}

	// A contact's groups are not bounded.
	for _, name := range []string{"work 1", "work 2", "work 3"} {
		offNamedGroup(t, name, alice, bob)
	}

	// Sybils: one more stranger group fits in the total (2 of mallory's
	// and this one), the next does not.
	key1, sybil1 := testKey(t)
	if id := strangerCreate(t, bob, key1, sybil1, "sybil 1", bob.ID()); !bob.holds(id) {
		t.Fatal("the first sybil's group was refused with room for it")
	}
	key2, sybil2 := testKey(t)
	refused := strangerCreate(t, bob, key2, sybil2, "sybil 2", bob.ID())
	bob.refusedStranger("the second sybil's group refused", "you are in as many groups made by peers who are not your contacts as are kept (3)")
	if bob.holds(refused) {
		t.Fatal("bob keeps a stranger's group past the total")
	}

	// Leaving one of them makes room.
	var left group.ID
	for _, id := range made {
		if bob.holds(id) {
			left = id
			break
		}
	}
	if _, err := bob.Groups().Leave(left); err != nil {
		t.Fatal(err)
	}
	if id := strangerCreate(t, bob, key2, sybil2, "sybil 2 again", bob.ID()); !bob.holds(id) {
		t.Fatal("a stranger's group refused after bob left one of the three")
	}

	// Accepting mallory lifts her bound and frees her places.
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	offNamedGroup(t, "now a contact", mallory, bob)
	key3, sybil3 := testKey(t)
	if id := strangerCreate(t, bob, key3, sybil3, "sybil 3", bob.ID()); !bob.holds(id) {
		t.Fatal("a stranger's group refused although mallory's no longer count")
	}
}

// TestGroupsFromSybilsBounded, at the bounds a node starts with: one
// key's ninth group is refused, and so is the group past the total, made
// by keys that each made one.
func TestGroupsFromSybilsBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	key, sybil := testKey(t)
	for i := range maxGroupsPerStranger {
		if id := strangerCreate(t, bob, key, sybil, fmt.Sprint("spam ", i), bob.ID()); !bob.holds(id) {
			t.Fatalf("group %d of one stranger refused", i)
		}
	}
	if id := strangerCreate(t, bob, key, sybil, "one too many", bob.ID()); bob.holds(id) {
		t.Fatalf("bob keeps %d groups of one stranger", maxGroupsPerStranger+1)
	}
	bob.refusedStranger("the ninth group refused", fmt.Sprintf("has put you in as many groups as are kept (%d)", maxGroupsPerStranger))
	for i := maxGroupsPerStranger; i < maxStrangerGroups; i++ {
		key, sybil := testKey(t)
		if id := strangerCreate(t, bob, key, sybil, fmt.Sprint("sybil ", i), bob.ID()); !bob.holds(id) {
			t.Fatalf("stranger group %d refused", i)
		}
	}
	key, sybil = testKey(t)
	if id := strangerCreate(t, bob, key, sybil, "past the total", bob.ID()); bob.holds(id) {
		t.Fatalf("bob keeps %d groups of strangers", maxStrangerGroups+1)
	}
	bob.refusedStranger("the group past the total refused", fmt.Sprintf("as are kept (%d)", maxStrangerGroups))
	if gs := bob.Groups().List(); len(gs) != maxStrangerGroups {
		t.Fatalf("bob lists %d groups, want %d", len(gs), maxStrangerGroups)
	}
}

// strangerLink has from reach to live, trusting it, while to has not
// accepted from.
func strangerLink(t *testing.T, from, to *offNode) {
	t.Helper()
	from.host.Peerstore().AddAddrs(to.ID(), to.host.Addrs(), time.Hour)
	if err := from.Contacts().Trust(to.ID(), false); err != nil {
		t.Fatal(err)
	}
}

// refusedFull waits for on's refusal of a message from p past a bound on
// strangers, and checks that it says what to do.
func (on *offNode) refusedFull(what string, p peer.ID, want string) {
	on.t.Helper()
	e := on.offWait(what, func(e Event) bool {
		return e.Kind == EventError && e.PeerID == p && strings.Contains(e.Err, ErrStrangerFull.Error())
	})
	if !strings.Contains(e.Err, want) || !strings.Contains(e.Err, "accept") {
		on.t.Fatalf("%s: %q, want it to say %q and how to receive more", what, e.Err, want)
	}
	var full *StrangerFullError
	if !errors.As(e.Cause, &full) || full.Bound == 0 {
		on.t.Fatalf("%s: the event's cause is %#v, want a *StrangerFullError naming its bound (the window words it)", what, e.Cause)
	}
}

// stored waits until on holds p's message id (it may come on any of the
// sender's tries, so its event may have gone by already).
func (on *offNode) stored(what string, p peer.ID, id e2e.MessageID) {
	on.t.Helper()
	for deadline := time.Now().Add(15 * time.Second); on.offCount(p, id) != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			on.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// sendAll has from send n messages to p and returns them.
func sendAll(t *testing.T, from *offNode, p peer.ID, n int, what string) []store.Message {
	t.Helper()
	var out []store.Message
	for i := range n {
		m, err := from.Send(p, fmt.Sprintf("%s %d", what, i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// TestStrangerMessagesBounded: a stranger writes bob more than he keeps
// from one peer not accepted; a second stranger writes while the first
// has messages waiting. Bob keeps what fits, refuses the rest without
// acknowledging it (told once, saying how to receive more), and gets the
// rest once he accepts the first (its client writes them again on a new
// session) or blocks it (the second's next message then fits). Without
// the bound every message is stored.
func TestStrangerMessagesBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	eve := offNewNode(t, "eve", nil, true)
	bob.strangers.perPeer, bob.strangers.conversations = 3, 1
	strangerLink(t, mallory, bob)
	strangerLink(t, eve, bob)

	// Two texts and a reaction fill her share: actions are records too.
	sent := sendAll(t, mallory, bob.ID(), 2, "hello")
	if _, _, err := mallory.Messages().React(sent[0].ID, "👍"); err != nil {
		t.Fatal(err)
	}
	sent = append(sent, sendAll(t, mallory, bob.ID(), 2, "more")...)
	bob.refusedFull("mallory's fourth message refused", mallory.ID(), "already has as many messages waiting for you as are kept (3)")
	for _, e := range bob.offEvents(300 * time.Millisecond) {
		if e.Kind == EventError && strings.Contains(e.Err, ErrStrangerFull.Error()) {
			t.Fatalf("the refusal told twice: %q", e.Err)
		}
	}
	if h := bob.offHistory(mallory.ID()); len(h) != 2 || len(h[0].Reactions) != 1 {
		t.Fatalf("bob keeps %d of mallory's texts (%v), want 2, the first with her reaction", len(h), h)
	}
	// A file offer is a message of the conversation too.
	offered := filepath.Join(t.TempDir(), "offer.txt")
	if err := os.WriteFile(offered, []byte("a file from a stranger"), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := mallory.Files().Send(bob.ID(), offered)
	if err != nil {
		t.Fatal(err)
	}
	mallory.offWait("the offer written", func(e Event) bool {
		return e.Kind == EventStatus && e.Message.ID == e2e.MessageID(fi.ID) && e.Message.Status == store.StatusSent
	})
	time.Sleep(200 * time.Millisecond) // read and refused meanwhile
	if _, err := bob.Files().Get(fi.ID); err == nil {
		t.Fatal("bob keeps a stranger's file offer past the bound")
	}
	for _, m := range sent[2:] {
		if got, err := mallory.store.Message(m.ID); err != nil || got.Status == store.StatusDelivered {
			t.Fatalf("mallory's refused message %d reads %v (%v): it is lost to her", m.Seq, got.Status, err)
		}
	}

	// A second stranger: no room while mallory's messages wait.
	first := sendAll(t, eve, bob.ID(), 1, "hi")
	bob.refusedFull("eve's message refused", eve.ID(), "as many peers who are not your contacts have messages waiting for you as are kept (1)")
	if h := bob.offHistory(eve.ID()); len(h) != 0 {
		t.Fatalf("bob keeps %d of eve's messages, want none", len(h))
	}

	// Bob blocks mallory: her messages are decided, and eve's fit.
	if err := bob.Contacts().Block(mallory.ID()); err != nil {
		t.Fatal(err)
	}
	next := sendAll(t, eve, bob.ID(), 1, "again")
	bob.offWait("eve's next message", offIsMessage(next[0].ID))

	// Bob accepts eve: her first message comes with her client's next try.
	if err := bob.Contacts().Trust(eve.ID(), false); err != nil {
		t.Fatal(err)
	}
	bob.sessions.closePeer(eve.ID(), "test: a new session")
	bob.stored("eve's first message, once she is accepted", eve.ID(), first[0].ID)
}

// TestStrangerGroupMessagesBounded: in a group a stranger made, bob
// keeps at most perGroup messages until he accepts its maker; the rest
// wait with their senders (told once), and come once he does. Without
// the bound every message is stored.
func TestStrangerGroupMessagesBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	bob.strangers.perGroup = 2
	strangerLink(t, mallory, bob)
	id := offNamedGroup(t, "spam", mallory, bob)
	var sent []store.GroupMessage
	for i := range 4 {
		m, err := mallory.Groups().Send(id, fmt.Sprint("buy now ", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	bob.refusedFull("mallory's third group message refused", mallory.ID(), `group "spam", made by`)
	if h, err := bob.Groups().History(id, 0, 100); err != nil || len(h) != 2 {
		t.Fatalf("bob keeps %d messages of mallory's group (%v), want 2", len(h), err)
	}
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	bob.sessions.closePeer(mallory.ID(), "test: a new session")
	bob.offWait("the last message, once mallory is accepted", offIsMessage(sent[3].ID))
}

// TestStrangerMailBounded: past the bound, a stranger's message fetched
// from a relay is dropped there (each fetch would bring it again) with
// nothing stored and the ratchet state unchanged, so the same envelope,
// written again by its sender, opens once the user accepts the peer.
func TestStrangerMailBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	mallory := offNewNode(t, "mallory", nil, false)
	offMeet(t, mallory, bob)
	bob.strangers.perPeer = int(bob.offConversation(mallory.ID()).LastSeq) + 1
	m, env := mallory.offText(bob.ID(), "one more")
	if !bob.offMail(mallory.ID(), env) || bob.offCount(mallory.ID(), m.ID) != 1 {
		t.Fatal("a message within the bound was not stored")
	}
	m, env = mallory.offText(bob.ID(), "past the bound")
	before, sets := bob.offRatchetRaw(), bob.offSets()
	if !bob.offMail(mallory.ID(), env) {
		t.Fatal("the refused mail is left at the relay: every fetch would bring it again")
	}
	bob.refusedFull("the refusal", mallory.ID(), "messages waiting for you as are kept")
	if bob.offCount(mallory.ID(), m.ID) != 0 {
		t.Fatal("a stranger's message past the bound was stored")
	}
	bob.offSameState("a refused message", before, sets)
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	if !bob.offMail(mallory.ID(), env) || bob.offCount(mallory.ID(), m.ID) != 1 {
		t.Fatal("the refused message, written again, was not stored once its sender was accepted")
	}
}

// TestStrangerSenderTold: a stranger's client whose messages bob does not
// keep is told, once its receipts are overdue, that bob may not have
// accepted it yet; once bob does, the messages arrive with its next try,
// without a new connection.
func TestStrangerSenderTold(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNodeWith(t, "mallory", func(c *Config) { c.ResendAfter = 300 * time.Millisecond })
	bob.strangers.perPeer = 1
	strangerLink(t, mallory, bob)
	sent := sendAll(t, mallory, bob.ID(), 2, "hello")
	bob.refusedFull("the second message refused", mallory.ID(), "as are kept (1)")
	mallory.offWait("the notice", func(e Event) bool {
		return e.Kind == EventError && e.PeerID == bob.ID() && strings.Contains(e.Err, "they have not accepted you yet") && errors.Is(e.Cause, ErrNoReceipt)
	})
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	bob.stored("the second message, once mallory is accepted", mallory.ID(), sent[1].ID)
}

// TestStrangerGroupHeldPastBound: the maker of a group, a stranger, has
// keys it makes for the purpose write in it before their adds reach bob
// (held, PROTOCOL §14.5), then adds them: what the adds release must
// count against the group's bound as any message does, else a stranger
// fills bob's store through the hold, 64 messages a group per round of
// new keys. Past the bound a held message is neither stored nor
// acknowledged (its sender keeps it), and the refusal is told.
func TestStrangerGroupHeldPastBound(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	bob.strangers.perGroup = 2
	acks := recordHoldAcks(bob)
	malloryKey, mallory := testKey(t)
	_, sybil := testKey(t)
	now := time.Now()
	l := handCreate(t, bob, malloryKey, mallory, "spam", bob.ID())
	id := l.ID()
	bob.offWait("the group", groupEv(id, func(g GroupInfo) bool { return g.Member }))

	var held []store.GroupMessage
	for i := range 4 {
		m := store.GroupMessage{Group: store.GroupID(id), ID: e2e.NewMessageID(), From: sybil, SentAt: now,
			Body: fmt.Sprint("buy now ", i), Stream: 1, Number: uint64(i + 1)}
		bob.groups.held.hold(sybil, m)
		held = append(held, m)
	}
	add, err := l.Propose(malloryKey, group.OpAdd, sybil, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(add); err != nil {
		t.Fatal(err)
	}
	bob.groups.receive(mallory, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: store.GroupID(id), Changes: l.Changes()})
	bob.refusedFull("the held message past the bound refused", sybil, `group "spam", made by`)
	if h, err := bob.Groups().History(id, 0, 100); err != nil || len(h) != 2 {
		t.Fatalf("bob keeps %d messages of a stranger's group released from the hold (%v), want 2", len(h), err)
	}
	acked := acks()
	for i, m := range held {
		if want := i < 2; acked[m.ID] != want {
			t.Fatalf("held message %d acknowledged: %v, want %v", i, acked[m.ID], want)
		}
	}
}

// strangerReaction is a reaction from on to p, on a message p never got
// (kept pending at p until it arrives), sealed for p's mailbox.
func (on *offNode) strangerReaction(p peer.ID) (store.Message, []byte) {
	on.t.Helper()
	m := store.Message{ID: e2e.NewMessageID(), Peer: p, SentAt: time.Now().Truncate(time.Millisecond),
		Kind: store.KindReact, Target: e2e.NewMessageID(), Emoji: "👍", Direction: store.Outgoing}
	env, err := on.rk.sealText(m)
	if err != nil {
		on.t.Fatal(err)
	}
	return m, env
}

// TestStrangerActionsOnlyTakeAConversationsRoom: keys made for the
// purpose each write bob only actions (reactions on messages he never
// got, kept pending with their records): a conversation that holds no
// text still holds a stranger's records, and must take one of the
// conversations' room, else any number of keys each leave perPeer
// records with bob. Without it the second key's reaction is stored.
func TestStrangerActionsOnlyTakeAConversationsRoom(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	bob.strangers.conversations = 1
	mallory := offNewNode(t, "mallory", nil, false)
	eve := offNewNode(t, "eve", nil, false)
	for _, s := range []*offNode{mallory, eve} {
		if err := s.rk.initiate(bob.ID(), bob.offBundle()); err != nil {
			t.Fatal(err)
		}
	}
	_, env := mallory.strangerReaction(bob.ID())
	if !bob.offMail(mallory.ID(), env) || bob.offConversation(mallory.ID()).LastSeq != 1 {
		t.Fatal("the first stranger's reaction, with room for it, was not kept")
	}
	_, env = eve.strangerReaction(bob.ID())
	if !bob.offMail(eve.ID(), env) {
		t.Fatal("the refused mail is left at the relay")
	}
	cs, err := bob.store.Conversations()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Peer == eve.ID() {
			t.Fatalf("bob keeps %d records of a second stranger while the first's wait (room for 1)", c.LastSeq)
		}
	}
	bob.refusedFull("the second stranger refused", eve.ID(), "as many peers who are not your contacts have messages waiting for you as are kept (1)")
}

// TestStrangerGroupActionsBounded: in a group a stranger made, its
// members' actions (a reaction, then another, as many as they like) are
// records of the group as its texts are, and count against its bound;
// else, since actions are not counted among the group's messages, a
// stranger's group takes any number of them. Past the bound an action
// waits with its sender (told), and comes once bob accepts the maker.
func TestStrangerGroupActionsBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	mallory := offNewNode(t, "mallory", nil, true)
	bob.strangers.perGroup = 2
	strangerLink(t, mallory, bob)
	id := offNamedGroup(t, "spam", mallory, bob)
	m, err := mallory.Groups().Send(id, "buy now")
	if err != nil {
		t.Fatal(err)
	}
	bob.offWait("the text", offIsMessage(m.ID))
	var last store.Message
	for _, emoji := range []string{"👍", "🎉", "🔥", "💰"} {
		if last, _, err = mallory.Messages().React(m.ID, emoji); err != nil {
			t.Fatal(err)
		}
	}
	bob.refusedFull("mallory's second reaction refused", mallory.ID(), `group "spam", made by`)
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	bob.sessions.closePeer(mallory.ID(), "test: a new session")
	bob.offWait("the last reaction, once mallory is accepted", offIsUpdate(m.ID, last.ID))
}

// mailedOffer has on offer the file at path to p, and seals for p's
// mailbox the offer and each chunk as mailFile does.
func (on *offNode) mailedOffer(p peer.ID, path string) (FileInfo, [][]byte) {
	on.t.Helper()
	fi, err := on.Files().Send(p, path)
	if err != nil {
		on.t.Fatal(err)
	}
	m, err := on.store.Message(e2e.MessageID(fi.ID))
	if err != nil {
		on.t.Fatal(err)
	}
	offer, err := on.rk.sealText(m)
	if err != nil {
		on.t.Fatal(err)
	}
	tr, err := on.store.Transfers().Transfer(m.ID)
	if err != nil {
		on.t.Fatal(err)
	}
	o, err := transfer.ParseOffer(tr.Offer)
	if err != nil {
		on.t.Fatal(err)
	}
	src, err := transfer.OpenSource(path, o)
	if err != nil {
		on.t.Fatal(err)
	}
	defer src.Close()
	var pts [][]byte
	for i := range o.Chunks() {
		sealed, err := src.Chunk(nil, i)
		if err != nil {
			on.t.Fatal(err)
		}
		pt, err := chunkPlaintext(o.ID, i, sealed)
		if err != nil {
			on.t.Fatal(err)
		}
		pts = append(pts, pt)
	}
	envs, err := on.rk.sealAll(p, pts)
	if err != nil {
		on.t.Fatal(err)
	}
	return fi, append([][]byte{offer}, envs...)
}

// diskUse is the bytes of the files under dir.
func diskUse(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

// TestStrangerMailedFileNotOnDisk: a stranger's small file left at a
// relay comes with its offer, chunk by chunk; written to the downloads
// folder before the user takes it, each offer a stranger may leave (as
// many as its messages) brings up to MailboxFileMax onto the disk, 16
// GiB from 64 keys. A chunk of an offer not accepted, from a peer we may
// not message, is not written: the file comes from its sender once the
// user accepts it. Without that the partial file holds the whole file.
func TestStrangerMailedFileNotOnDisk(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	mallory := offNewNode(t, "mallory", nil, false)
	if err := mallory.Contacts().Trust(bob.ID(), false); err != nil {
		t.Fatal(err)
	}
	if err := mallory.rk.initiate(bob.ID(), bob.offBundle()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "junk.bin")
	if err := os.WriteFile(path, make([]byte, 512<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	fi, envs := mallory.mailedOffer(bob.ID(), path)
	for _, env := range envs {
		if !bob.offMail(mallory.ID(), env) {
			t.Fatal("a stranger's mailed file was left at the relay")
		}
	}
	if f, err := bob.Files().Get(fi.ID); err != nil || f.State != store.TransferOffered {
		t.Fatalf("bob's offer from a stranger: %+v, %v; want it offered", f, err)
	}
	time.Sleep(100 * time.Millisecond) // chunks are written after the receive returns
	if n := diskUse(t, bob.files.downloads()); n > 64<<10 {
		t.Fatalf("%d bytes of a stranger's file not accepted on bob's disk", n)
	}
}

// TestStrangerReaddsToLeftGroups: bob leaves a stranger's groups to make
// room, as the refusal tells him; the stranger makes new ones, then adds
// him back to those he left. A group known to us skips the bound, so
// without counting a re-add as a new group the stranger has bob in as
// many of its groups as it cares to, perCreator at a time.
func TestStrangerReaddsToLeftGroups(t *testing.T) {
	bob := offNewNode(t, "bob", nil, true)
	bob.groups.strangers.perCreator, bob.groups.strangers.total = 1, 4
	key, mallory := testKey(t)
	now := time.Now()
	l := handCreate(t, bob, key, mallory, "spam 1", bob.ID())
	id := l.ID()
	if !bob.holds(id) {
		t.Fatal("the stranger's first group refused")
	}
	if _, err := bob.Groups().Leave(id); err != nil {
		t.Fatal(err)
	}
	if !bob.holds(strangerCreate(t, bob, key, mallory, "spam 2", bob.ID())) {
		t.Fatal("the stranger's second group refused after bob left the first")
	}
	// Mallory learns of bob's leave (he sent it to her) and adds him back.
	s, _ := bob.Groups().state(id)
	if s.IsMember(bob.ID()) {
		t.Fatal("bob still a member of the group he left")
	}
	var leave []byte
	bob.groups.mu.Lock()
	for _, c := range bob.groups.logs[id].Changes() {
		leave = c
	}
	bob.groups.mu.Unlock()
	lc, err := group.Parse(leave)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(lc); err != nil {
		t.Fatal(err)
	}
	add, err := l.Propose(key, group.OpAdd, bob.ID(), "", now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add(add); err != nil {
		t.Fatal(err)
	}
	// A change that does not parse, first, does not hide the re-add.
	changes := append([][]byte{[]byte("not a change")}, l.Changes()...)
	bob.groups.receive(mallory, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: store.GroupID(id), Changes: changes})
	if s, _ := bob.Groups().state(id); s.IsMember(bob.ID()) {
		t.Fatalf("a stranger has bob in 2 of its groups, past its bound of 1, by adding him back to one he left")
	}
	bob.refusedStranger("the re-add refused", "has put you in as many groups as are kept (1)")
	// Once bob accepts mallory, her next frame adds him back.
	if err := bob.Contacts().Trust(mallory, false); err != nil {
		t.Fatal(err)
	}
	bob.groups.receive(mallory, e2e.GroupChanges{ID: e2e.NewMessageID(), Group: store.GroupID(id), Changes: l.Changes()})
	if s, _ := bob.Groups().state(id); !s.IsMember(bob.ID()) {
		t.Fatal("the re-add refused once bob accepted the group's maker")
	}
}

// TestStrangerSybilSeedsBounded: keys made for the purpose each ask bob
// for a ratchet seed, as a TLS client asks its server (an empty
// ratchet-init frame: receiveRatchetInit, seedResponder), and confirm it
// with an empty envelope, or meet him by an empty first contact through
// his mailbox; some send a receipt; none writes anything that is kept. Bob writes none of
// their session sets to the store, and holds at most maxHeldSets of them
// in memory (and maxHeldSetBytes: a stranger's set grows with the keys
// it makes him skip), newest kept. Without the bound each key's set was
// written and kept in memory, for any number of keys. (The bound is 64
// here, not maxHeldSets: each key's ratchet keys cost 25 ms under -race.)
func TestStrangerSybilSeedsBounded(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	const bound = 64
	bob.rk.held.maxSets = bound
	const sybils = 2 * bound
	var last peer.ID
	for i := range sybils {
		s := seedSybil(t, bob)
		if i%8 == 0 { // a receipt for nothing keeps nothing either
			if _, err := bob.rk.open(s.p, s.receipt(t)); err != nil {
				t.Fatal(err)
			}
		}
		last = s.p
	}
	for range 4 {
		firstContactSybil(t, bob)
	}
	if ps, err := bob.store.Ratchets().RatchetPeers(); err != nil || len(ps) != 0 {
		t.Fatalf("bob stores the ratchet state of %d strangers who never wrote (%v)", len(ps), err)
	}
	bob.rk.mu.Lock()
	held, sets, newest := bob.rk.held.len(), len(bob.rk.sets), bob.rk.held.has(last)
	bob.rk.mu.Unlock()
	if held > bound || sets != 0 {
		t.Fatalf("bob keeps the sets of %d strangers in memory (%d more not held), want at most %d", held, sets, bound)
	}
	if !newest {
		t.Fatal("the newest stranger's seed was dropped: the oldest go first")
	}

	// Sets a stranger fills with skipped keys count by their size.
	bob.rk.mu.Lock()
	bob.rk.held.maxBytes = 60 << 10
	bob.rk.mu.Unlock()
	var stuffed []peer.ID
	for range 4 {
		s := seedSybil(t, bob)
		stuffed = append(stuffed, s.p)
		var env []byte
		for range 300 { // bob skips 299 message keys, 76 bytes each
			var err error
			if env, s.set, err = s.set.Seal(nil, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := bob.rk.open(s.p, env); err != nil {
			t.Fatal(err)
		}
	}
	bob.rk.mu.Lock()
	bytes, big := bob.rk.held.bytes, 0
	for _, p := range stuffed {
		if bob.rk.held.has(p) {
			big++
		}
	}
	bob.rk.mu.Unlock()
	if bytes > 60<<10 || big > 2 || big == 0 {
		t.Fatalf("bob holds %d of 4 sets of 23 KB, %d bytes in all, want at most 60 KiB (the newest kept)", big, bytes)
	}
}

// TestStrangerFloodPastBoundScansOnce: past its bound, a stranger's
// flood is refused without reading every conversation again under the
// ratchet keys' lock for each message (which every peer's messages wait
// on): one scan decides, the rest are a look-up. Still refused, and all
// of it kept by the sender.
func TestStrangerFloodPastBoundScansOnce(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	mallory := offNewNode(t, "mallory", nil, false)
	offMeet(t, mallory, bob)
	bob.strangers.perPeer = int(bob.offConversation(mallory.ID()).LastSeq)
	scans := func() int {
		bob.strangers.mu.Lock()
		defer bob.strangers.mu.Unlock()
		return bob.strangers.scans
	}
	before := scans()
	for i := range 20 {
		m, env := mallory.offText(bob.ID(), fmt.Sprint("flood ", i))
		if !bob.offMail(mallory.ID(), env) || bob.offCount(mallory.ID(), m.ID) != 0 {
			t.Fatalf("flood message %d: kept, or left at the relay", i)
		}
	}
	if n := scans() - before; n != 1 {
		t.Fatalf("%d scans of the conversations for 20 messages past the bound, want 1", n)
	}
	if err := bob.Contacts().Trust(mallory.ID(), false); err != nil {
		t.Fatal(err)
	}
	m, env := mallory.offText(bob.ID(), "once accepted")
	if !bob.offMail(mallory.ID(), env) || bob.offCount(mallory.ID(), m.ID) != 1 {
		t.Fatal("a message from mallory refused once she is accepted")
	}
}

// BenchmarkGroupFrameKnown: what a group-change frame whose changes bob
// holds already costs him (a member sends its whole log with each
// change, so most of every frame is known; a peer may also write the
// same frame again and again): a log of 256 changes, one frame per op.
func BenchmarkGroupFrameKnown(b *testing.B) {
	bob := offNewNode(b, "bob", nil, false)
	key, from := testKey(b)
	c, err := group.Create(key, "known", []peer.ID{bob.ID()}, nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	l, err := group.New(c)
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i < 256; i++ {
		r, err := l.Propose(key, group.OpRename, "", fmt.Sprint("name ", i), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Add(r); err != nil {
			b.Fatal(err)
		}
	}
	frame := e2e.GroupChanges{ID: e2e.NewMessageID(), Group: store.GroupID(l.ID()), Changes: l.Changes()}
	bob.groups.receive(from, frame)
	bob.groups.mu.Lock()
	held := len(bob.groups.logs[l.ID()].Changes())
	bob.groups.mu.Unlock()
	if held != 256 {
		b.Fatalf("bob holds %d changes, want 256", held)
	}
	b.ResetTimer()
	for range b.N {
		bob.groups.receive(from, frame)
	}
}
