package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// What the node tells its subscribers, and what it keeps to itself: no
// peer events for relays, no repeated listening events, and no error about
// an offline peer that the user can do nothing about.

// noticeRelay runs a circuit relay v2 (go-libp2p's, as `chat relay` does,
// without the mailbox) in a host on 127.0.0.1.
func noticeRelay(t *testing.T) (host.Host, string) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay(), libp2p.ForceReachabilityPublic())
	if err != nil {
		t.Fatal(err)
	}
	r, err := circuit.New(h)
	if err != nil {
		h.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); h.Close() })
	return h, fmt.Sprintf("%s/p2p/%s", h.Addrs()[0], h.ID())
}

// noticePeerID is the peer ID of a new key.
func noticePeerID(t testing.TB) peer.ID {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.PeerIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// noticeUntil returns the events up to and including the first that
// matches, failing after 15 s.
func (on *offNode) noticeUntil(what string, match func(Event) bool) []Event {
	on.t.Helper()
	var out []Event
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e, ok := <-on.sub.C:
			if !ok {
				on.t.Fatalf("events closed while waiting for %s", what)
			}
			out = append(out, e)
			if match(e) {
				return out
			}
		case <-timeout:
			on.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// noticeFlush returns the events published so far: it emits a marker and
// reads up to it.
func (on *offNode) noticeFlush() []Event {
	on.t.Helper()
	marker := "marker " + noticePeerID(on.t).String()
	on.emit(Event{Kind: EventError, Err: marker})
	evs := on.noticeUntil("the marker", func(e Event) bool { return e.Kind == EventError && e.Err == marker })
	return evs[:len(evs)-1]
}

// noticeFlushPeers returns the events published so far, once every peer
// event already queued (peerChanged) is out: a peer event for a marker
// peer, then another, published after the first one's batch.
func (on *offNode) noticeFlushPeers() []Event {
	on.t.Helper()
	var out []Event
	for range 2 {
		m := noticePeerID(on.t)
		on.peerEv.changed(m)
		out = append(out, on.noticeUntil("a peer event for the marker", func(e Event) bool {
			return e.Kind == EventPeer && e.Peer.ID == m
		})...)
	}
	return out
}

// noticeRestart closes on and starts a node on its home again.
func (on *offNode) noticeRestart() *offNode {
	on.t.Helper()
	on.Close()
	cfg := on.cfg
	logs := &offLog{}
	cfg.Logger = slog.New(logs)
	id, err := cfg.Home.Load(nil)
	if err != nil {
		on.t.Fatal(err)
	}
	if cfg.Trust, err = cfg.Home.TrustStore(); err != nil {
		on.t.Fatal(err)
	}
	cfg.Identity = id
	n, err := New(cfg)
	if err != nil {
		on.t.Fatal(err)
	}
	next := &offNode{Node: n, t: on.t, sub: n.Subscribe(), logs: logs}
	if err := n.Start(); err != nil {
		n.Close()
		on.t.Fatal(err)
	}
	on.t.Cleanup(func() { n.Close() })
	return next
}

func (on *offNode) reserved() bool {
	r := on.Relays()
	return len(r) == 1 && r[0].Reserved
}

func hasCircuit(addrs []string) bool {
	return slices.ContainsFunc(addrs, func(a string) bool { return strings.Contains(a, "/p2p-circuit") })
}

// A configured relay is infrastructure: connecting to it, reserving,
// losing the connection and reserving again make no peer event, and it is
// not listed among the peers.
func TestRelayIsNoPeer(t *testing.T) {
	rh, addr := noticeRelay(t)
	alice := offNewNode(t, "alice", []string{addr}, true)
	alice.noticeUntil("a listening event through the relay", func(e Event) bool {
		return e.Kind == EventListening && hasCircuit(e.Addrs)
	})
	if !alice.reserved() {
		t.Fatalf("relays: %+v", alice.Relays())
	}
	evs := alice.noticeFlushPeers()

	// The relay restarts (drops the connection); alice reserves again.
	rh.Network().ClosePeer(alice.ID())
	evs = append(evs, alice.noticeUntil("the reservation lost", func(e Event) bool {
		return e.Kind == EventListening && !hasCircuit(e.Addrs)
	})...)
	evs = append(evs, alice.noticeUntil("the reservation made again", func(e Event) bool {
		return e.Kind == EventListening && hasCircuit(e.Addrs)
	})...)
	evs = append(evs, alice.noticeFlushPeers()...)
	for _, e := range evs {
		if e.Kind == EventPeer && e.Peer.ID == rh.ID() {
			t.Fatalf("a peer event for the relay: %+v", *e.Peer)
		}
	}
	for _, p := range alice.Peers() {
		if p.ID == rh.ID() {
			t.Fatalf("the relay is listed as a peer: %+v", p)
		}
	}
}

// A subscriber hears of the addresses when they change, not again when
// they did not: whoever announces them (the first event, start, libp2p's
// updates, a reservation).
func TestSubscriptionSkipsUnchangedListening(t *testing.T) {
	b := newBroker()
	s := b.subscribe(Event{Kind: EventListening, Addrs: []string{"/a"}})
	defer s.Close()
	for _, addrs := range [][]string{{"/a"}, {"/a", "/b"}, {"/b", "/a"}, {"/a"}, {"/a"}} {
		b.publish(Event{Kind: EventListening, Addrs: addrs})
	}
	b.publish(Event{Kind: EventError, Err: "end"})
	var got []string
	for e := range s.C {
		if e.Kind == EventError {
			break
		}
		got = append(got, strings.Join(e.Addrs, " "))
	}
	if want := []string{"/a", "/a /b", "/a"}; !slices.Equal(got, want) {
		t.Fatalf("listening events %q, want %q", got, want)
	}
}

// noticeNoRepeat fails if two listening events in a row carry the same
// addresses.
func noticeNoRepeat(t *testing.T, what string, evs []Event) {
	t.Helper()
	var last []string
	seen := false
	for _, e := range evs {
		if e.Kind != EventListening {
			continue
		}
		if seen && slices.Equal(last, e.Addrs) {
			t.Fatalf("%s: the listening event %v twice in a row", what, e.Addrs)
		}
		last, seen = e.Addrs, true
	}
	if !seen {
		t.Fatalf("%s: no listening event", what)
	}
}

// A node announces its addresses once at start, and once per change when
// a relay reservation adds its circuit addresses.
func TestListeningOnlyOnChange(t *testing.T) {
	// Subscribed before Start, as a UI does: the subscription's first event
	// and start's have the same addresses.
	plain := offNewNode(t, "plain", nil, true)
	evs := plain.noticeFlush()
	n := 0
	for _, e := range evs {
		if e.Kind == EventListening {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d listening events at start, want 1: %+v", n, evs)
	}

	_, addr := noticeRelay(t)
	alice := offNewNode(t, "alice", []string{addr}, true)
	evs = alice.noticeUntil("a listening event through the relay", func(e Event) bool {
		return e.Kind == EventListening && hasCircuit(e.Addrs)
	})
	// libp2p announces the new addresses too, a moment later.
	evs = append(evs, alice.offEvents(time.Second)...)
	evs = append(evs, alice.noticeFlush()...)
	noticeNoRepeat(t, "with a relay", evs)
}

// noticeNoError waits until the outbox worker has tried to reach bob a
// few times, and fails if an error event was published meanwhile.
func noticeNoError(t *testing.T, what string, on *offNode, bob peer.ID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for on.logs.count("peer not reachable; will retry") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: the outbox did not try to reach bob three times", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, e := range on.noticeFlush() {
		if e.Kind == EventError {
			t.Fatalf("%s: error event %q", what, e.Err)
		}
	}
	if on.logs.count("message not left at a relay; it waits in the outbox") == 0 {
		t.Fatalf("%s: no deposit was tried", what)
	}
}

// A message to a peer who is offline and has no mailbox at any relay we
// know, or whose relay cannot be reached, waits in the outbox without an
// error: the user can do nothing about it, and it would come back at every
// start (and, with texts that differ, at every retry).
func TestOfflineWithoutMailboxIsNoError(t *testing.T) {
	cases := []struct {
		name  string
		relay func(t testing.TB) string
	}{
		{"relay not reachable", offUnreachableRelay},
		{"no mailbox at the relay", func(t testing.TB) string {
			addr, _ := offRelay(t)
			return addr
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			alice := offNewNode(t, "alice", []string{c.relay(t)}, true)
			bob := noticePeerID(t) // never online, never registered
			if err := alice.Contacts().Trust(bob, false); err != nil {
				t.Fatal(err)
			}
			m, err := alice.Send(bob, "when you are back")
			if err != nil {
				t.Fatal(err)
			}
			noticeNoError(t, "first run", alice, bob)
			alice = alice.noticeRestart()
			noticeNoError(t, "after a restart", alice, bob)
			if got, _ := alice.store.Message(m.ID); got.Status != store.StatusSending {
				t.Fatalf("status %s, want sending (in the outbox)", got.Status)
			}
		})
	}
}

// Which failures to leave a message at a relay the user hears of.
func TestOfflineNotice(t *testing.T) {
	unreachable := mailboxErr(fmt.Errorf("mailbox at relay: %w", context.DeadlineExceeded))
	cases := []struct {
		err  error
		tell bool
	}{
		{errNoMailbox, false},
		{&mailbox.Error{Code: mailbox.CodeNotRegistered, Message: "that peer has no mailbox here"}, false},
		{&mailbox.Error{Code: mailbox.CodeNoBundle, Message: "no bundle"}, false},
		{&mailbox.Error{Code: mailbox.CodeRateLimited, Message: "too many bundle requests", RetryAfter: 3 * time.Second}, false},
		{unreachable, false},
		{ErrClosed, false},
		{&mailbox.Error{Code: mailbox.CodeQuotaFull, Message: "mailbox full"}, true},
		{mailboxErr(&mailbox.Error{Code: mailbox.CodeQuotaFull, Message: "mailbox full"}), true},
		{mailboxErr(fmt.Errorf("mailbox at relay: %w", mailbox.ErrMalformed)), true},
		{fmt.Errorf("bundle of bob from relay r: %w", ratchet.ErrBadSignature), true},
		{&mailbox.Error{Code: mailbox.CodeInternal, Message: "database"}, true},
	}
	for _, c := range cases {
		if got := offlineNotice(c.err); got != c.tell {
			t.Errorf("%v: told %v, want %v", c.err, got, c.tell)
		}
	}
	if !errors.Is(unreachable, errRelayUnreachable) || !strings.Contains(unreachable.Error(), "deadline exceeded") {
		t.Errorf("an unanswered request: %v", unreachable)
	}
}

// A failure worth telling is told once per peer per run, whatever comes
// after it; each peer's once.
func TestOfflineNoticeOncePerRun(t *testing.T) {
	alice := offNewNode(t, "alice", nil, true)
	bob, carol := noticePeerID(t), noticePeerID(t)
	full := &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: "mailbox full"}
	tell := func(on *offNode) []Event {
		on.out.notQueued(bob, full)
		on.out.notQueued(bob, fmt.Errorf("bundle of bob from relay r: %w", ratchet.ErrBadSignature))
		on.out.notQueued(bob, full)
		on.out.notQueued(carol, errNoMailbox)
		on.out.notQueued(carol, full)
		var errs []Event
		for _, e := range on.noticeFlush() {
			if e.Kind == EventError {
				errs = append(errs, e)
			}
		}
		return errs
	}
	for run := 1; run <= 2; run++ {
		if run == 2 {
			alice = alice.noticeRestart()
		}
		errs := tell(alice)
		if len(errs) != 2 || errs[0].PeerID != bob || errs[1].PeerID != carol ||
			!strings.Contains(errs[0].Err, "mailbox full") || !strings.Contains(errs[0].Err, "is offline and the message could not be left at a relay") {
			t.Fatalf("run %d: error events %+v; want one for bob (mailbox full), one for carol", run, errs)
		}
	}
}
