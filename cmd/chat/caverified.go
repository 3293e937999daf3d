package main

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// caVerified tells which trusted-on-first-use contacts a CA the user
// trusts vouches for now: their last certificate, as the node stored it,
// verifies to one of the trusted roots. The chat window says
// "ca-verified" for them, and so does `chat contacts list`. With no CA
// trusted there are none, and nothing is read; otherwise the running
// daemon is asked, or the message database read (which needs the key).
// With a chat window holding the database it cannot be read: the stored
// states are shown, and a note says so.
func (c *ctx) caVerified(t *identity.TrustStore, cs []identity.Contact) map[peer.ID]bool {
	roots, err := t.Roots()
	if err != nil || len(roots) == 0 {
		return nil
	}
	h, err := c.home()
	if err != nil {
		return nil
	}
	if conn, err := dialControl(h); err == nil {
		defer conn.Close()
		return caVerifiedVia(conn)
	}
	if homeInUse(h) {
		fmt.Fprintln(c.io.err, "A chat window has this home open: contacts a CA vouches for show as tofu here; the window shows them as CA-verified.")
		return nil
	}
	id, _, err := c.loadIdentity()
	if err != nil {
		return nil
	}
	db, err := store.OpenIdentity(h.Path(store.FileName), id)
	if err != nil {
		return nil
	}
	defer db.Close()
	out := map[peer.ID]bool{}
	for _, ct := range cs {
		if ct.State != identity.StateTOFU {
			continue
		}
		rec, ok, err := db.Peer(ct.PeerID)
		if err != nil || !ok || rec.CertDER == nil {
			continue
		}
		var chain []*x509.Certificate
		for _, der := range append([][]byte{rec.CertDER}, rec.Intermediates...) {
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				chain = nil
				break
			}
			chain = append(chain, cert)
		}
		if len(chain) == 0 {
			continue
		}
		if v, err := t.Evaluate(chain, ct.PeerID, c.now()); err == nil && v.State == identity.StateCAVerified {
			out[ct.PeerID] = true
		}
	}
	return out
}

// caVerifiedVia asks the running daemon: its peers answer says
// ca-verified where the chat window would.
func caVerifiedVia(conn io.ReadWriter) map[peer.ID]bool {
	req, _ := json.Marshal(request{Cmd: "peers", Ref: "cli-peers"})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return nil
	}
	out := map[peer.ID]bool{}
	dec := json.NewDecoder(conn)
	for {
		var ev evPeer
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return out
		}
		if json.Unmarshal(raw, &ev) != nil || ev.Ref != "cli-peers" {
			continue
		}
		if ev.Event != "peer" {
			return out // ok or error: the end of the answer
		}
		if p, err := peer.Decode(ev.PeerID); err == nil && ev.Trust == string(identity.StateCAVerified) {
			out[p] = true
		}
	}
}
