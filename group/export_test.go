package group

import (
	"crypto/ed25519"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// SignForTest signs a change that Propose would refuse: what an attacker
// with a key can always do.
func SignForTest(key ed25519.PrivateKey, g ID, parents []Hash, op Op, p peer.ID, name string, now time.Time) (*Change, error) {
	author, err := identity.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	c := &Change{Group: g, Parents: parents, Op: op, Author: author, Time: now, Peer: p, Name: name}
	return c, c.sign(key)
}

// Changes0 returns the log's changes as values, in order.
func (l *Log) Changes0() []*Change {
	out := make([]*Change, len(l.order))
	for i, e := range l.order {
		out[i] = e.c
	}
	return out
}
