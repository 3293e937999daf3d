// The mailbox's bundle requests: publish registers a mailbox and stores
// its prekeys, fetchBundle hands out a bundle with one-time prekeys.

package relay

import (
	"fmt"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// publish registers the requester's mailbox and stores its prekeys. Every
// bundle must verify against the key the requester's peer ID embeds.
func (m *mailboxServer) publish(from peer.ID, src source, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParsePublish(p)
	if err != nil {
		return 0, nil, malformed("publish")
	}
	key, err := identity.KeyFromPeerID(from)
	if err != nil {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeBadBundle, Message: "only Ed25519 peers can have a mailbox"}
	}
	// Before the signatures are checked: each request may carry 129.
	if wait, ok := m.publishes.allow(string(from), m.now()); !ok {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many publishes"}
	}
	if err := checkBundle(req.Bundle, key, from, 0); err != nil {
		return 0, nil, err
	}
	for _, b := range req.OneTimeEC {
		if err := checkBundle(b, key, from, 1); err != nil {
			return 0, nil, err
		}
	}
	for _, b := range req.OneTimeKEM {
		if err := checkBundle(b, key, from, 2); err != nil {
			return 0, nil, err
		}
	}
	var ok mailbox.OK
	err = m.db.Update(func(tx *bolt.Tx) error {
		bundles := tx.Bucket(bktBundles)
		if bundles.Get([]byte(from)) == nil {
			if countKeys(bundles) >= m.lim.MaxMailbox {
				return &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: "this relay holds no more mailboxes"}
			}
			if err := m.registerFrom(tx, from, src); err != nil {
				return err
			}
		}
		if err := bundles.Put([]byte(from), req.Bundle); err != nil {
			return err
		}
		var err error
		if ok.PrekeysEC, err = m.addPrekeys(tx, bktOTEC, from, req.OneTimeEC); err != nil {
			return err
		}
		ok.PrekeysKEM, err = m.addPrekeys(tx, bktOTKEM, from, req.OneTimeKEM)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return mailbox.TypeOK, ok.Marshal(), nil
}

// registerFrom counts a new mailbox against its source's caps, or refuses
// it: one address or prefix cannot take the relay's mailboxes.
func (m *mailboxServer) registerFrom(tx *bolt.Tx, from peer.ID, src source) error {
	if src.known() {
		if n, _ := srcCount(tx, regKey(src.ip)); n >= m.lim.MaxMailboxPerIP {
			return &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: fmt.Sprintf("this relay holds no more mailboxes for your address (%d)", n)}
		}
		if n, _ := srcCount(tx, regKey(src.prefix)); n >= m.lim.MaxMailboxPerPrefix {
			return &mailbox.Error{Code: mailbox.CodeQuotaFull, Message: fmt.Sprintf("this relay holds no more mailboxes for your network (%d)", n)}
		}
	}
	return registered(tx, from, src)
}

// checkBundle verifies a published bundle: kind 0 is a base bundle with no
// one-time prekey, 1 carries exactly one X25519 one-time prekey, 2 exactly
// one ML-KEM one-time prekey.
func checkBundle(data []byte, key []byte, from peer.ID, kind int) error {
	bad := func(why string) error { return &mailbox.Error{Code: mailbox.CodeBadBundle, Message: why} }
	b, err := ratchet.ParseBundle(data)
	if err != nil {
		return bad("bundle does not parse")
	}
	if err := ratchet.VerifyBundle(b, key, []byte(from)); err != nil {
		return bad("bundle signature does not verify for this peer")
	}
	hasEC, hasKEM := b.OneTimePrekey != nil, b.OneTimeKEM != nil
	switch {
	case kind == 0 && (hasEC || hasKEM):
		return bad("base bundle carries one-time prekeys")
	case kind == 1 && (!hasEC || hasKEM):
		return bad("one-time X25519 prekey entry is not one X25519 prekey")
	case kind == 2 && (hasEC || !hasKEM):
		return bad("one-time ML-KEM prekey entry is not one ML-KEM prekey")
	}
	return nil
}

// addPrekeys appends one-time prekey entries, keeping the newest MaxPrekeys.
func (m *mailboxServer) addPrekeys(tx *bolt.Tx, kind []byte, p peer.ID, entries [][]byte) (uint32, error) {
	b, err := tx.Bucket(kind).CreateBucketIfNotExists([]byte(p))
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		seq, _ := b.NextSequence()
		if err := b.Put(u64(seq), e); err != nil {
			return 0, err
		}
	}
	n := countKeys(b)
	for ; n > m.lim.MaxPrekeys; n-- {
		k, _ := b.Cursor().First()
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return uint32(n), nil
}

// fetchBundle hands out a peer's bundle with one one-time prekey of each
// kind, deleting them: each is used once.
//
// Sybils cannot drain the pool: requests are rate-limited per requester,
// per address and per prefix, and one-time prekeys go out only within the
// grants (MailboxLimits.OneTimePerIP, PrekeyFloor); past them the bundle
// has none, and the last-resort prekeys start the session.
func (m *mailboxServer) fetchBundle(from peer.ID, src source, p []byte) (e2e.FrameType, []byte, error) {
	req, err := mailbox.ParseFetchBundle(p)
	if err != nil {
		return 0, nil, malformed("bundle request")
	}
	now := m.now()
	if wait, ok := m.bundle.allow(string(from), now); !ok {
		return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many bundle requests"}
	}
	if src.known() {
		if wait, ok := m.bundleIP.allow(src.ip, now); !ok {
			return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many bundle requests from your address"}
		}
		if wait, ok := m.bundleNet.allow(src.prefix, now); !ok {
			return 0, nil, &mailbox.Error{Code: mailbox.CodeRateLimited, RetryAfter: wait, Message: "too many bundle requests from your network"}
		}
	}
	var out []byte
	err = m.db.Update(func(tx *bolt.Tx) error {
		base := tx.Bucket(bktBundles).Get([]byte(req.Peer))
		if base == nil {
			return &mailbox.Error{Code: mailbox.CodeNoBundle, Message: "that peer has no mailbox here"}
		}
		b, err := ratchet.ParseBundle(base)
		if err != nil {
			return err
		}
		left := min(poolSize(tx, bktOTEC, req.Peer), poolSize(tx, bktOTKEM, req.Peer))
		if left == 0 || !m.grants.take(m.lim, from, src, req.Peer, left, now) {
			left = 0 // none, or not for this requester
		}
		if left > 0 {
			if e := popPrekey(tx, bktOTEC, req.Peer); e != nil {
				b.OneTimePrekey = e.OneTimePrekey
			}
			if e := popPrekey(tx, bktOTKEM, req.Peer); e != nil {
				b.OneTimeKEM = e.OneTimeKEM
			}
		}
		out, err = b.MarshalBinary()
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	return mailbox.TypeBundle, mailbox.BundleAnswer{Bundle: out}.Marshal(), nil
}

// poolSize is how many one-time prekeys of a kind p has here.
func poolSize(tx *bolt.Tx, kind []byte, p peer.ID) int {
	if b := tx.Bucket(kind).Bucket([]byte(p)); b != nil {
		return countKeys(b)
	}
	return 0
}

func popPrekey(tx *bolt.Tx, kind []byte, p peer.ID) *ratchet.Bundle {
	b := tx.Bucket(kind).Bucket([]byte(p))
	if b == nil {
		return nil
	}
	k, v := b.Cursor().First()
	if k == nil {
		return nil
	}
	entry, err := ratchet.ParseBundle(v)
	b.Delete(k)
	if err != nil {
		return nil
	}
	return entry
}
