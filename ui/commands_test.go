package ui

import (
	"strings"
	"testing"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
)

// /add with a full multiaddr pins the key, connects and opens the chat;
// the two windows then talk both ways.
func TestAddByMultiaddrAndTalk(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.start()
	bob.start()
	wa := openWindow(t, alice.n, 80, 24, Options{})
	wb := openWindow(t, bob.n, 80, 24, Options{})
	wb.enter("/add " + alice.peerID().String())
	wb.waitText("is in your contacts. No address is")
	wa.enter("/add " + bob.n.Addrs()[0])
	wa.waitText("Connected to bob (unverified: trusted on first use).", " bob  unverified: trusted on first use")
	wa.enter("hello bob")
	wa.waitText("me: hello bob  ✓ seen") // bob's window opened the chat
	wb.tabUntil(" alice  unverified")
	wb.waitText("alice: hello bob")
	wb.enter("hello alice")
	wb.waitText("me: hello alice  ✓ seen")
	wa.waitText("bob: hello alice")
}

// /whois shows the certificate and the live session's TLS parameters.
func TestWhois(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	bob.pin(alice.peerID(), "alice", identity.StateTOFU)
	alice.start()
	bob.start()
	w := openWindow(t, alice.n, 90, 30, Options{})
	if _, err := connect(t, alice, bob); err != nil {
		t.Fatal(err)
	}
	w.tabUntil(" bob  ")
	w.enter("/whois")
	sess, ok := alice.n.Session(bob.peerID())
	if !ok {
		t.Fatal("no live session")
	}
	w.waitText("Who is bob", "Subject:    CN=bob", "Issuer:     self-signed", "Valid:      14 Mar 2025 to 14 Mar 2026",
		bob.id.Fingerprint().String(), "TLS:        TLS 1.3", "Suite:      "+sess.Info.SuiteName(),
		"Key group:  "+sess.Info.GroupName(), "Resumed:    no", "Session ID: "+sess.Info.SessionID)
	// Two nodes always agree on the hybrid group: nothing is flagged.
	if !sess.PostQuantum || !alice.n.PeerInfo(bob.peerID()).PostQuantum || sess.Info.GroupName() != "X25519MLKEM768" {
		t.Errorf("a session between two nodes is not reported post-quantum: group %s", sess.Info.GroupName())
	}
	if strings.Contains(w.text(), "not post-quantum") {
		t.Errorf("a post-quantum session is flagged:\n%s", w.text())
	}
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Who is bob")
}

// /relay says when no relay is configured; /help lists commands and
// keys; /id shows the addresses to share; unknown commands and bad
// arguments are sentences, not log noise.
func TestCommandsAndErrors(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	n := alice.start()
	w := openWindow(t, n, 100, 70, Options{}) // tall: /help lists every command and key
	w.enter("/relay")
	w.waitText("No relay configured.")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("No relay configured.")
	w.enter("/relay /ip4/127.0.0.1/tcp/4001")
	w.waitText("/relay only shows the relays.", "--relay MULTIADDR (it is remembered")
	w.enter("/help")
	w.waitText("/add INVITATION", "add a contact by invitation, address or peer ID", "/search TEXT", "Alt+A", "PgUp / PgDn")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("/search TEXT")
	w.enter("/id")
	w.waitText("Your invitation", "CERTCHAT:", alice.id.Fingerprint().String())
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Your invitation")
	w.enter("/frobnicate")
	w.waitText("Unknown command /frobnicate: /help lists the commands.")
	w.enter("/add /ip4/127.0.0.1/tcp/1")
	w.waitText("Cannot add /ip4/127.0.0.1/tcp/1: the address must end with /p2p/")
	w.enter("/add nonsense")
	w.waitText("Cannot add nonsense: that is neither an invitation (CERTCHAT:…), a")
	w.enter("/add /ip4/127.0.0.1/tcp/notaport/p2p/" + alice.peerID().String())
	w.waitText("Cannot add /ip4/127.0.0.1/tcp/notaport/p2p/", "address; it looks like /ip4/192.168.1.5/tcp/4001/p2p/12D3KooW")
	w.enter("/add " + alice.peerID().String())
	w.waitText("That is your own peer ID.")
	w.enter("/verify")
	w.waitText("/verify works on the open chat: open one first (Tab).")
	w.enter("hello")
	w.waitText("No chat is open: pick one with Tab, or start one with /add")
}

// /search finds messages in every conversation; choosing a result opens
// its chat.
func TestSearchOpensConversation(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newPeer(t, "alice", 0), newPeer(t, "bob", 0), newPeer(t, "carol", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.pin(carol.peerID(), "carol", identity.StateTOFU)
	alice.fill(
		msg(bob.peerID(), store.Incoming, testNow.Add(-3e9), "lunch at noon?", ""),
		msg(carol.peerID(), store.Incoming, testNow.Add(-2e9), "the quarterly report is due", ""),
		msg(bob.peerID(), store.Outgoing, testNow.Add(-1e9), "sure, lunch works", store.StatusDelivered),
	)
	w := openWindow(t, alice.start(), 100, 30, Options{})
	w.waitText(" bob  ")
	w.enter("/search quarterly")
	w.waitText("1 message contains “quarterly”.", "carol: the quarterly report is due")
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
	w.waitText(" carol  unverified", "carol: the quarterly report is due")
	w.enter("/search LUNCH")
	w.waitText("me → bob: sure, lunch works", "bob: lunch at noon?")
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.enter("/search nothing-like-this")
	w.waitText("No message contains “nothing-like-this”.")
}

// Up and Down recall what was typed; the draft comes back at the end.
func TestInputHistory(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.enter("/first")
	w.waitText("Unknown command /first")
	w.enter("/second")
	w.waitText("Unknown command /second")
	w.typeText("draft")
	w.waitText("› draft")
	for _, step := range []struct {
		key  tcell.Key
		want string
	}{
		{tcell.KeyUp, "› /second"}, {tcell.KeyUp, "› /first"}, {tcell.KeyUp, "› /first"},
		{tcell.KeyDown, "› /second"}, {tcell.KeyDown, "› draft"},
	} {
		w.key(step.key, 0, tcell.ModNone)
		w.waitFor(step.want, func(s string) bool { return inputRow(s) == step.want })
	}
}

// inputRow is the input line: the row above the status bar.
func inputRow(s string) string {
	rows := strings.Split(strings.TrimRight(s, "\n"), "\n")
	row := rows[len(rows)-2]
	if i := strings.Index(row, "› "); i >= 0 {
		return strings.TrimSpace(row[i:])
	}
	return row
}

// Tab, Ctrl+N and Ctrl+P switch chats; a click on the list opens one.
func TestSwitchChatsKeysAndMouse(t *testing.T) {
	t.Parallel()
	alice := newPeer(t, "alice", 0)
	names := []string{"bob", "carol", "dave"}
	for _, name := range names {
		alice.pin(newPeer(t, name, 0).peerID(), name, identity.StateTOFU)
	}
	w := openWindow(t, alice.start(), 80, 24, Options{})
	w.waitText("dave")
	w.key(tcell.KeyTab, 0, tcell.ModNone)
	w.waitFor("bob open", func(s string) bool { return strings.HasPrefix(titleRow(s), " bob ") })
	w.key(tcell.KeyCtrlN, 0, tcell.ModNone)
	w.waitFor("carol open", func(s string) bool { return strings.HasPrefix(titleRow(s), " carol ") })
	w.key(tcell.KeyCtrlP, 0, tcell.ModNone)
	w.waitFor("bob open", func(s string) bool { return strings.HasPrefix(titleRow(s), " bob ") })
	w.click("dave")
	w.waitFor("dave open", func(s string) bool { return strings.HasPrefix(titleRow(s), " dave ") })
}

// A message over the protocol's limit is refused in the window, with the
// reason, and nothing is sent.
func TestTooLongMessage(t *testing.T) {
	t.Parallel()
	alice, bob := newPeer(t, "alice", 0), newPeer(t, "bob", 0)
	alice.pin(bob.peerID(), "bob", identity.StateTOFU)
	alice.start()
	w := openWindow(t, alice.n, 90, 30, Options{})
	w.tabUntil(" bob  ")
	var sent bool
	// The input handler draws after Enter; called directly, the test draws.
	w.do(func() {
		sent = w.u.sendText(strings.Repeat("x", e2e.MaxTextBytes+1))
		w.u.app.ForceDraw()
	})
	if sent {
		t.Fatal("a message over the limit was sent")
	}
	w.waitText("Not sent: a message holds at most 64 KiB")
	if h, _ := alice.n.History(bob.peerID(), 0, 10); len(h) != 0 {
		t.Fatalf("%d messages stored", len(h))
	}
}

// /whois names an issuer as real only when the chain verified to a CA
// the user trusts: a self-made CA named like the trusted one shows as a
// claim, however the peer is otherwise trusted.
func TestWhoisUntrustedIssuer(t *testing.T) {
	t.Parallel()
	real, err := identity.NewCA("Acme Root", testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	fake, err := identity.NewCA("Acme Root", testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	alice := newPeer(t, "alice", 0)
	if err := alice.trust.AddRoot(real.Cert); err != nil {
		t.Fatal(err)
	}
	mallory := newCAPeer(t, "mallory", 0, fake, 0)
	carol := newCAPeer(t, "carol", 0, real, 0)
	// Both fingerprints compared: the issuer line still says whose CA.
	alice.pin(mallory.peerID(), "mallory", identity.StateVerified)
	alice.pin(carol.peerID(), "carol", identity.StateVerified)
	for _, p := range []*testPeer{mallory, carol} {
		p.pin(alice.peerID(), "alice", identity.StateTOFU)
	}
	alice.start()
	mallory.start()
	carol.start()
	w := openWindow(t, alice.n, 100, 30, Options{})
	for _, p := range []*testPeer{mallory, carol} {
		if _, err := connect(t, p, alice); err != nil {
			t.Fatal(err)
		}
	}

	w.tabUntil(" mallory  ")
	w.enter("/whois")
	s := w.waitText("Who is mallory", "Subject:    CN=mallory", `Issuer:     "Acme Root" (not a CA you trust)`)
	if strings.Contains(s, "Issued by") {
		t.Errorf("a self-made Acme Root reads as the trusted one:\n%s", s)
	}
	w.key(tcell.KeyEscape, 0, tcell.ModNone)
	w.waitGone("Who is mallory")

	w.tabUntil(" carol  ")
	w.enter("/whois")
	w.waitText("Who is carol", "Subject:    CN=carol", "Issued by:  Acme Root (a CA you trust)")
}
