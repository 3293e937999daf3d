package ui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/uniseg"
)

// The tests run real nodes on 127.0.0.1 behind the Backend interface and
// read what the window drew on a tcell SimulationScreen. Nothing is
// mocked; the clock is fixed so that screens are reproducible.

// testNow is the tests' clock: nodes and windows agree on it.
var testNow = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

func testClock() time.Time { return testNow }

// waitLimit bounds every wait for the screen or the network.
const waitLimit = 20 * time.Second

// testPeer is an identity with a home folder, and its node once started.
type testPeer struct {
	t     testing.TB
	id    *identity.Identity
	home  identity.Home
	trust *identity.TrustStore
	n     *node.Node
}

// keyFor makes a key from a seed byte (0: random), so golden screens
// show the same fingerprints every run.
func keyFor(t testing.TB, seed byte) ed25519.PrivateKey {
	if seed == 0 {
		_, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// newPeer makes a self-signed identity valid for a year from testNow.
func newPeer(t testing.TB, name string, seed byte) *testPeer {
	return newPeerWithKey(t, name, keyFor(t, seed))
}

// newPeerWithKey is newPeer with the identity key given.
func newPeerWithKey(t testing.TB, name string, key ed25519.PrivateKey) *testPeer {
	cert, err := identity.NewSelfSigned(key, name, testNow, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return peerFrom(t, key, cert)
}

// newCAPeer makes an identity whose certificate ca issued.
func newCAPeer(t testing.TB, name string, seed byte, ca *identity.CA, validity time.Duration) *testPeer {
	key := keyFor(t, seed)
	pemCSR, err := identity.NewCSR(key, name)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := identity.ParseCSR(pemCSR)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(csr, testNow, validity)
	if err != nil {
		t.Fatal(err)
	}
	return peerFrom(t, key, cert)
}

func peerFrom(t testing.TB, key ed25519.PrivateKey, cert *x509.Certificate) *testPeer {
	id, err := identity.FromParts(key, []*x509.Certificate{cert})
	if err != nil {
		t.Fatal(err)
	}
	home := identity.Home{Dir: t.TempDir()}
	trust, err := home.TrustStore()
	if err != nil {
		t.Fatal(err)
	}
	return &testPeer{t: t, id: id, home: home, trust: trust}
}

func (p *testPeer) peerID() peer.ID { return p.id.PeerID() }

// pin makes q a contact of p: verified, tofu or untrusted, with a label.
func (p *testPeer) pin(q peer.ID, label string, state identity.State) {
	if err := p.trust.Pin(q, label, state, testNow); err != nil {
		p.t.Fatal(err)
	}
}

// start runs p's node on a loopback TCP port with quick retries.
func (p *testPeer) start() *node.Node {
	n, err := node.New(node.Config{
		Home: p.home, Identity: p.id, Trust: p.trust, Now: testClock,
		Listen:   []string{"/ip4/127.0.0.1/tcp/0"},
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		n.Close()
		p.t.Fatal(err)
	}
	p.n = n
	p.t.Cleanup(func() { n.Close() })
	return n
}

// introduce tells a's node where b listens.
func introduce(a, b *testPeer) {
	a.n.Host().Peerstore().AddAddrs(b.peerID(), b.n.Host().Addrs(), time.Hour)
}

// fill stores messages with p directly in the store of a node that is
// not running, one transaction for all.
func (p *testPeer) fill(ms ...*store.Message) {
	key, err := p.id.DeriveKey("storage")
	if err != nil {
		p.t.Fatal(err)
	}
	s, err := store.Open(p.home.Path("chat.db"), key)
	if err != nil {
		p.t.Fatal(err)
	}
	defer s.Close()
	for _, m := range ms {
		if m.ID == (e2e.MessageID{}) {
			m.ID = e2e.NewMessageID()
		}
		if m.SentAt.IsZero() {
			m.SentAt = m.StoredAt
		}
	}
	if err := s.Import(ms); err != nil {
		p.t.Fatal(err)
	}
}

// msg is a message to or from q at a time.
func msg(q peer.ID, dir store.Direction, at time.Time, body string, st store.Status) *store.Message {
	return &store.Message{Peer: q, Direction: dir, StoredAt: at, Body: body, Status: st}
}

// window is a chat window on a simulated screen.
type window struct {
	t    testing.TB
	u    *UI
	scr  tcell.SimulationScreen
	done chan error
}

// openWindow runs the window for b at w×h; it quits at cleanup.
func openWindow(t testing.TB, b Backend, w, h int, opts Options) *window {
	scr := tcell.NewSimulationScreen("UTF-8")
	opts.Screen = scr
	if opts.Now == nil {
		opts.Now = testClock
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.DialogDelay == 0 {
		opts.DialogDelay = -1 // keys act at once, unless a test is about the delay
	}
	u := New(b, opts)
	scr.SetSize(w, h)
	win := &window{t: t, u: u, scr: scr, done: make(chan error, 1)}
	go func() { win.done <- u.Run() }()
	t.Cleanup(win.close)
	select {
	case <-u.ready:
	case <-time.After(waitLimit):
		t.Fatal("the window never showed its first complete screen")
	}
	return win
}

// close quits the window and waits for Run to return.
func (w *window) close() {
	w.u.Quit()
	select {
	case err := <-w.done:
		if err != nil {
			w.t.Errorf("Run: %v", err)
		}
		w.done <- nil
	case <-time.After(waitLimit):
		w.t.Errorf("the window did not close")
	}
}

// do runs f on the event loop and waits for it.
func (w *window) do(f func()) {
	w.t.Helper()
	ran := make(chan struct{})
	go func() {
		w.u.app.QueueUpdate(f)
		close(ran)
	}()
	select {
	case <-ran:
	case <-time.After(waitLimit):
		w.t.Fatalf("the event loop did not answer")
	}
}

// text is the screen as text, one line per row, trailing spaces cut.
func (w *window) text() string {
	var out string
	w.do(func() { out = screenText(w.scr) })
	return out
}

// screenText reads a simulation screen's cells.
func screenText(scr tcell.SimulationScreen) string {
	cells, width, height := scr.GetContents()
	var b strings.Builder
	for y := 0; y < height; y++ {
		var row strings.Builder
		for x := 0; x < width; x++ {
			c := cells[y*width+x]
			if len(c.Runes) == 0 {
				row.WriteByte(' ')
				continue
			}
			s := string(c.Runes)
			row.WriteString(s)
			x += max(0, uniseg.StringWidth(s)-1)
		}
		b.WriteString(strings.TrimRight(row.String(), " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// waitFor polls the screen until ok accepts it, and returns it.
func (w *window) waitFor(what string, ok func(screen string) bool) string {
	w.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		s := w.text()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s; the screen shows:\n%s", what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitText waits until the screen shows every one of texts.
func (w *window) waitText(texts ...string) string {
	w.t.Helper()
	return w.waitFor(strings.Join(texts, ", "), func(s string) bool {
		for _, t := range texts {
			if !strings.Contains(s, t) {
				return false
			}
		}
		return true
	})
}

// waitGone waits until the screen no longer shows text.
func (w *window) waitGone(text string) string {
	w.t.Helper()
	return w.waitFor("no "+text, func(s string) bool { return !strings.Contains(s, text) })
}

// key sends one key press.
func (w *window) key(k tcell.Key, r rune, mod tcell.ModMask) {
	w.u.app.QueueEvent(tcell.NewEventKey(k, r, mod))
}

// typeText types text without Enter.
func (w *window) typeText(text string) {
	for _, r := range text {
		w.key(tcell.KeyRune, r, tcell.ModNone)
	}
}

// enter types a line and presses Enter.
func (w *window) enter(text string) {
	w.typeText(text)
	w.key(tcell.KeyEnter, 0, tcell.ModNone)
}

// find returns the position of text on the screen: its first occurrence.
func (w *window) find(text string) (x, y int, ok bool) { return findIn(w.text(), text, false) }

// findIn returns the position of text on a screen: its first occurrence,
// or with last its lowest.
func findIn(screen, text string, last bool) (x, y int, ok bool) {
	for i, row := range strings.Split(screen, "\n") {
		if k := strings.Index(row, text); k >= 0 {
			x, y, ok = uniseg.StringWidth(row[:k]), i, true
			if !last {
				break
			}
		}
	}
	return x, y, ok
}

// draft is the input line's text.
func (w *window) draft() string {
	var s string
	w.do(func() { s = w.u.in.GetText() })
	return s
}

// click clicks the middle of text on the screen, as a mouse would: its
// lowest occurrence (a dialog's buttons are below its text).
func (w *window) click(text string) {
	w.t.Helper()
	x, y, _ := findIn(w.waitText(text), text, true)
	x += textWidth(text) / 2
	w.scr.InjectMouse(x, y, tcell.Button1, tcell.ModNone)
	w.scr.InjectMouse(x, y, tcell.ButtonNone, tcell.ModNone)
}

// choose picks a dialog's button with the keyboard: Tab until it has the
// focus, then Enter.
func (w *window) choose(label string) {
	w.t.Helper()
	w.waitText(label)
	focused := func() string {
		var l string
		w.do(func() {
			if d := w.u.dlg.dialog; d != nil && d.form != nil {
				if _, b := d.form.GetFocusedItemIndex(); b >= 0 {
					l = d.form.GetButton(b).GetLabel()
				}
			}
		})
		return l
	}
	for range 8 {
		if focused() == label {
			w.key(tcell.KeyEnter, 0, tcell.ModNone)
			return
		}
		before := focused()
		w.key(tcell.KeyTab, 0, tcell.ModNone)
		w.waitFor("the focus to move", func(string) bool { return focused() != before })
	}
	w.t.Fatalf("Tab never reached the button %q", label)
}

// styleAt is the style of the cell at (x, y).
func (w *window) styleAt(x, y int) tcell.Style {
	var st tcell.Style
	w.do(func() {
		cells, width, _ := w.scr.GetContents()
		st = cells[y*width+x].Style
	})
	return st
}

// waitEvent reads a node's events until match, or fails.
func waitEvent(t testing.TB, sub *node.Subscription, what string, match func(node.Event) bool) node.Event {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				t.Fatalf("events closed while waiting for %s", what)
			}
			if match(e) {
				return e
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// connect dials b from a's node (both must run).
func connect(t testing.TB, a, b *testPeer) (node.PeerInfo, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	return a.n.Connect(ctx, b.n.Addrs()[0])
}

// titleRow is the first row of the screen.
func titleRow(screen string) string {
	row, _, _ := strings.Cut(screen, "\n")
	return row
}

// tabUntil presses Tab until the title bar shows text, waiting for each
// press to change the title.
func (w *window) tabUntil(text string) string {
	w.t.Helper()
	deadline := time.Now().Add(waitLimit)
	s := w.text()
	for {
		if strings.Contains(titleRow(s), text) {
			// A Tab pressed again below, because the first was slow to
			// show (a loaded machine), moves past it when it comes: the
			// title must hold.
			s = w.settle(300*time.Millisecond, func(s string) bool { return !strings.Contains(titleRow(s), text) })
			if strings.Contains(titleRow(s), text) {
				return s
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no chat has the title %q:\n%s", text, s)
		}
		// The chat list fills from events: a Tab pressed before the
		// chat arrives leaves the title as it was, so press it again.
		before := titleRow(s)
		w.key(tcell.KeyTab, 0, tcell.ModNone)
		s = w.settle(3*time.Second, func(s string) bool { return titleRow(s) != before })
	}
}

// settle polls the screen for at most d until ok holds, and returns the
// last screen either way.
func (w *window) settle(d time.Duration, ok func(screen string) bool) string {
	deadline := time.Now().Add(d)
	for {
		s := w.text()
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sleepTick is the polling interval of waits outside the screen.
func sleepTick() { time.Sleep(10 * time.Millisecond) }

// pageUpUntil presses PgUp until the screen shows text, and checks it.
func (w *window) pageUpUntil(text string) string {
	w.t.Helper()
	s := w.text()
	for i := 0; i < 500 && !strings.Contains(s, text); i++ {
		before := s
		w.key(tcell.KeyPgUp, 0, tcell.ModNone)
		s = w.waitFor("a page up", func(now string) bool { return now != before || strings.Contains(now, "start of your") })
		if strings.Contains(s, "start of your") && !strings.Contains(s, text) {
			break
		}
	}
	if !strings.Contains(s, text) {
		w.t.Fatalf("scrolling up never showed %q:\n%s", text, s)
	}
	return s
}

// wantRed fails the test unless text, on screen s, is drawn in red
// (what names it).
func (w *window) wantRed(s, text, what string) {
	w.t.Helper()
	x, y, _ := findIn(s, text, false)
	if fg, _, _ := w.styleAt(x, y).Decompose(); fg != tcell.ColorRed {
		w.t.Errorf("%s is drawn in %v", what, fg)
	}
}
