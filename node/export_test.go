package node

import (
	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Test hooks for the external tests: what a correct node never does on
// its own (the same message twice, a receipt for any ID, a reused ID), to
// test how the receiving side copes. Each seals through the ratchet and
// writes on the live session with the peer, as the outbox does.

// WriteTextForTest seals m as a text and writes it to m.Peer.
func (n *Node) WriteTextForTest(m Message) error {
	cs, err := n.session(n.ctx, m.Peer)
	if err != nil {
		return err
	}
	env, err := n.sealText(m)
	if err != nil {
		return err
	}
	return cs.s.Send(e2e.FrameEnvelope, env)
}

// WriteReceiptForTest seals a receipt for id and writes it to p.
func (n *Node) WriteReceiptForTest(p peer.ID, id e2e.MessageID) error {
	cs, err := n.session(n.ctx, p)
	if err != nil {
		return err
	}
	env, err := n.sealReceipt(p, id)
	if err != nil {
		return err
	}
	return cs.s.Send(e2e.FrameEnvelope, env)
}

// SentOnSessionForTest is how many message IDs the newest live session
// with p remembers as written.
func (n *Node) SentOnSessionForTest(p peer.ID) int {
	n.mu.Lock()
	ps := n.peers[p]
	var cs *chatSession
	if ps != nil && len(ps.sessions) > 0 {
		cs = ps.sessions[len(ps.sessions)-1]
	}
	n.mu.Unlock()
	if cs == nil {
		return 0
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.sent)
}
