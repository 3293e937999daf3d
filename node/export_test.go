package node

import (
	"errors"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Test hooks for the external tests: what a correct node never does on
// its own (the same message twice, a receipt for any ID, a reused ID), to
// test how the receiving side copes. Each seals through the ratchet and
// writes on the live session with the peer, as the outbox does.

// WriteTextForTest seals m as a text and writes it to m.Peer.
func (n *Node) WriteTextForTest(m store.Message) error {
	cs, err := n.sessions.get(n.ctx, m.Peer)
	if err != nil {
		return err
	}
	env, err := n.rk.sealText(m)
	if err != nil {
		return err
	}
	return cs.s.Send(e2e.FrameEnvelope, env)
}

// WriteReceiptForTest seals a receipt for id and writes it to p. A node
// that has only received from p may not have a sending chain yet (its
// active session its own offer on a session that crossed p's, until p
// confirms it: PROTOCOL §12.8), and its real receipts then go live,
// unsealed, or are written again by p; so this waits, up to 10 s, for
// one, as a sealed receipt through the mailbox would (TestReceiptsIdempotent
// failed once in CI, "ratchet: no sending session").
func (n *Node) WriteReceiptForTest(p peer.ID, id e2e.MessageID) error {
	cs, err := n.sessions.get(n.ctx, p)
	if err != nil {
		return err
	}
	env, err := n.rk.sealReceipt(p, id)
	for deadline := time.Now().Add(10 * time.Second); errors.Is(err, ratchet.ErrNoSession) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		env, err = n.rk.sealReceipt(p, id)
	}
	if err != nil {
		return err
	}
	return cs.s.Send(e2e.FrameEnvelope, env)
}

// SentOnSessionForTest is how many message IDs the newest live session
// with p remembers as written.
func (n *Node) SentOnSessionForTest(p peer.ID) int {
	cs := n.sessions.newest(p)
	if cs == nil {
		return 0
	}
	return cs.sentCount()
}

// HeldForTest is how many group messages wait for their senders' adds.
func (n *Node) HeldForTest() int {
	n.groups.held.mu.Lock()
	defer n.groups.held.mu.Unlock()
	return n.groups.held.count
}

// ReceiptWritesForTest is how many writes of stored receipts the node
// made on live sessions: one per receipt written at once, one per batch
// of held receipts.
func (n *Node) ReceiptWritesForTest() int64 { return n.receiptWrites.Load() }

// HeldReceiptsForTest is how many receipts p's live sessions hold.
func (n *Node) HeldReceiptsForTest(p peer.ID) int {
	k := 0
	for _, cs := range n.sessions.ofPeer(p) {
		cs.held.mu.Lock()
		k += len(cs.held.ids)
		cs.held.mu.Unlock()
	}
	return k
}

// SetReceiptHoldForTest sets how long receipts are held from now on (0:
// receiptHoldFor).
func (n *Node) SetReceiptHoldForTest(d time.Duration) { n.sessions.held.holdFor.Store(int64(d)) }

// ForwardedForTest is how many group copies the node handed forwarders,
// and how many of those it took back and wrote directly.
func (n *Node) ForwardedForTest() (copies, taken uint64) {
	return n.out.fwd.copies.Load(), n.out.fwd.taken.Load()
}
