// A mischievous mailbox for the offline-delivery tests of relay_test, and
// the mailbox's usage figures they read, exported to them (test builds
// only).

package relay

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Mischief is what a mischievous mailbox does wrong. The zero value is an
// honest mailbox; fields may be changed while it runs (under Lock).
type Mischief struct {
	mu sync.Mutex
	m  *mailboxServer

	// BadBundleSignature flips a bit of the signed prekey's signature in
	// every bundle handed out.
	BadBundleSignature bool
	// FreezeBundles hands out, for each peer, the first bundle it handed
	// out (with the same one-time prekeys) to every later requester.
	FreezeBundles bool
	// DropDeposits answers deposits "ok" and stores nothing.
	DropDeposits bool
	// DuplicateDeposits stores every deposit twice (two items).
	DuplicateDeposits bool
	// ReverseFetch answers fetches with the items in reverse order.
	ReverseFetch bool
	// Hold hides the items it returns true for from fetches.
	Hold func(mailbox.Item) bool
	// ClaimSender answers items deposited by a key as deposited by its value.
	ClaimSender map[peer.ID]peer.ID
	// Readdress stores deposits for a key in the mailbox of its value.
	Readdress map[peer.ID]peer.ID

	frozen    map[peer.ID][]byte
	dropped   int
	deposits  int
	bundles   int
	fetches   int
	fakeIDSeq uint64
}

// Lock and Unlock guard changes to the fields while the mailbox runs.
func (x *Mischief) Lock()   { x.mu.Lock() }
func (x *Mischief) Unlock() { x.mu.Unlock() }

// Release stops holding items back and tells the recipient that mail waits.
func (x *Mischief) Release(to peer.ID) {
	x.mu.Lock()
	x.Hold = nil
	x.mu.Unlock()
	x.m.notify(to)
}

// Counts reports deposits answered, deposits dropped and bundles handed out.
func (x *Mischief) Counts() (deposits, dropped, bundles int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.deposits, x.dropped, x.bundles
}

// NewMischievousServer starts a relay whose mailbox misbehaves as x says.
func NewMischievousServer(cfg Config, x *Mischief) (*Server, error) {
	srv, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	if srv.mailbox == nil {
		srv.Close()
		return nil, errors.New("mischief needs a mailbox")
	}
	x.m = srv.mailbox
	srv.host.SetStreamHandler(mailbox.Protocol, x.handle)
	return srv, nil
}

// MailboxUsage reports what the relay holds for p: its usage counters and
// the items really stored.
func MailboxUsage(srv *Server, p peer.ID) (items int, size int64, stored int) {
	srv.mailbox.db.View(func(tx *bolt.Tx) error {
		items, size = usage(tx, p)
		if b := tx.Bucket(bktMail).Bucket([]byte(p)); b != nil {
			stored = countKeys(b)
		}
		return nil
	})
	return items, size, stored
}

// MailboxDiskUsage reports the size of the mailbox database and the bytes
// of the pages that hold the stored envelopes (allocated and in use).
func MailboxDiskUsage(srv *Server) (file, alloc, inuse int64) {
	srv.mailbox.db.View(func(tx *bolt.Tx) error {
		file = tx.Size()
		st := tx.Bucket(bktMail).Stats()
		alloc = int64(st.BranchAlloc + st.LeafAlloc)
		inuse = int64(st.BranchInuse + st.LeafInuse)
		return nil
	})
	return file, alloc, inuse
}

func (x *Mischief) handle(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	f, err := e2e.ReadFrame(s)
	if err != nil {
		s.Reset()
		return
	}
	t, answer := x.serve(s.Conn().RemotePeer(), streamSource(s), f)
	out, err := e2e.AppendFrame(nil, t, answer)
	if err != nil {
		s.Reset()
		return
	}
	s.Write(out)
}

func (x *Mischief) serve(from peer.ID, src source, f e2e.Frame) (e2e.FrameType, []byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch f.Type {
	case mailbox.TypeDeposit:
		req, err := mailbox.ParseDeposit(f.Payload)
		if err != nil {
			break
		}
		x.deposits++
		if x.DropDeposits {
			x.dropped++
			x.fakeIDSeq++
			return mailbox.TypeOK, mailbox.OK{ID: 1<<40 + x.fakeIDSeq}.Marshal()
		}
		if to, ok := x.Readdress[req.To]; ok {
			req.To = to
			f.Payload = req.Marshal()
		}
		if x.DuplicateDeposits {
			if t, out := x.m.serveFrom(from, src, f); t != mailbox.TypeOK {
				return t, out
			}
		}
		return x.m.serveFrom(from, src, f)
	case mailbox.TypeFetch:
		x.fetches++
		t, out := x.m.serveFrom(from, src, f)
		items, err := mailbox.ParseItems(out)
		if t != mailbox.TypeItems || err != nil {
			return t, out
		}
		if x.Hold != nil {
			items.Items = slices.DeleteFunc(items.Items, x.Hold)
		}
		if x.ReverseFetch {
			slices.Reverse(items.Items)
		}
		for i, it := range items.Items {
			if claimed, ok := x.ClaimSender[it.From]; ok {
				items.Items[i].From = claimed
			}
		}
		return t, items.Marshal()
	case mailbox.TypeFetchBundle:
		req, err := mailbox.ParseFetchBundle(f.Payload)
		if err != nil {
			break
		}
		var out []byte
		if b, ok := x.frozen[req.Peer]; ok && x.FreezeBundles {
			out = b
		} else {
			t, answer := x.m.serveFrom(from, src, f)
			if t != mailbox.TypeBundle {
				return t, answer
			}
			out = answer
			if x.FreezeBundles {
				if x.frozen == nil {
					x.frozen = map[peer.ID][]byte{}
				}
				x.frozen[req.Peer] = out
			}
		}
		x.bundles++
		if x.BadBundleSignature {
			a, err := mailbox.ParseBundleAnswer(out)
			if err != nil {
				break
			}
			b, err := ratchet.ParseBundle(a.Bundle)
			if err != nil {
				break
			}
			b.SignedPrekey.Signature = bytes.Clone(b.SignedPrekey.Signature)
			b.SignedPrekey.Signature[10] ^= 0x04
			enc, _ := b.MarshalBinary()
			out = mailbox.BundleAnswer{Bundle: enc}.Marshal()
		}
		return mailbox.TypeBundle, out
	}
	return x.m.serveFrom(from, src, f)
}
