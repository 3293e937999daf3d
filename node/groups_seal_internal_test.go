package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// sealMember is a group member as the sealing tests see it: its ratchet
// keys and its session set with the sender.
type sealMember struct {
	id    peer.ID
	local *ratchet.LocalKeys
	set   *ratchet.SessionSet
}

// sealFixture is a sender's ratchet keys on a store of its own, without a
// host, and a group of n members, each with a live (seeded) session with
// the sender on which the sender can seal.
type sealFixture struct {
	rk      *ratchetKeys
	st      *store.Store
	group   store.GroupID
	ids     []peer.ID
	members []*sealMember
}

func newSealFixture(tb testing.TB, n int) *sealFixture {
	tb.Helper()
	now := time.Now()
	id, err := identity.Generate("sender", now, 24*time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	st, err := store.Open(filepath.Join(tb.TempDir(), store.FileName), key)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	rk, err := loadRatchetKeys(st, slog.New(slog.DiscardHandler), id, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	f := &sealFixture{rk: rk, st: st}
	senderKey := id.Signer().Public().(ed25519.PublicKey)
	for i := range n {
		_, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			tb.Fatal(err)
		}
		p, err := identity.PeerIDFromKey(priv.Public().(ed25519.PublicKey))
		if err != nil {
			tb.Fatal(err)
		}
		m := &sealMember{id: p}
		if m.local, err = ratchet.NewLocalKeys(priv, []byte(p), now); err != nil {
			tb.Fatal(err)
		}
		if m.set, err = ratchet.NewSessionSet(m.local, []byte(id.PeerID()), senderKey); err != nil {
			tb.Fatal(err)
		}
		secret := bytes.Repeat([]byte{byte(i)}, 32) // the TLS exporter secret both would derive
		offer, set, err := m.set.SeedResponder(secret, now)
		if err != nil {
			tb.Fatal(err)
		}
		m.set = set
		if _, err := rk.seedInitiator(p, secret, offer); err != nil {
			tb.Fatal(err)
		}
		f.ids, f.members = append(f.ids, p), append(f.members, m)
	}
	c, err := group.Create(id.Signer(), "sealing", f.ids, nil, now)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := group.New(c)
	if err != nil {
		tb.Fatal(err)
	}
	f.group = store.GroupID(l.ID())
	if err := st.Groups().PutGroupChanges(f.group, l.Changes()); err != nil {
		tb.Fatal(err)
	}
	return f
}

// send stores and seals one text for every member, as Groups.post does.
func (f *sealFixture) send(tb testing.TB, body string) store.GroupMessage {
	tb.Helper()
	now := time.Now()
	m := store.GroupMessage{Group: f.group, ID: e2e.NewMessageID(), SentAt: now, StoredAt: now, Body: body}
	if err := f.rk.storeGroupSealed(&m, f.ids); err != nil {
		tb.Fatal(err)
	}
	return m
}

// Sealing a group message writes each member's new ratchet state (the
// one the sender holds in memory, which the copy's envelope came from)
// in the message's transaction, and erases the buffer each state was
// encoded in: it held every secret of the state. The list of copies it
// keeps for the next message holds none of them.
func TestGroupSealedStatesStoredAndErased(t *testing.T) {
	f := newSealFixture(t, 5)
	for i := range 3 {
		body := fmt.Sprintf("hello %d", i)
		m := f.send(t, body)
		if cap(f.rk.stateBuf) == 0 {
			t.Fatal("no state was encoded in the buffer")
		}
		if b := f.rk.stateBuf[:cap(f.rk.stateBuf)]; !bytes.Equal(b, make([]byte, len(b))) {
			t.Fatalf("message %d: the state buffer is not erased after sealing (%d of %d bytes not zero)", i, len(b)-bytes.Count(b, []byte{0}), len(b))
		}
		// The list of copies is kept for the next message, emptied: it
		// holds no state or envelope of this one.
		if len(f.rk.copies) != 0 || cap(f.rk.copies) < len(f.members) {
			t.Fatalf("message %d: copies kept %d of %d, want 0 of at least %d", i, len(f.rk.copies), cap(f.rk.copies), len(f.members))
		}
		for _, c := range f.rk.copies[:cap(f.rk.copies)] {
			if c.set != nil || c.next != nil || c.env != nil {
				t.Fatalf("message %d: the kept copies still hold %s's state or envelope", i, identity.ShortID(c.p))
			}
		}
		for _, mb := range f.members {
			stored, err := f.st.Ratchets().SessionSet(mb.id)
			if err != nil {
				t.Fatal(err)
			}
			f.rk.mu.Lock()
			inMemory, err := f.rk.sets[mb.id].MarshalBinary()
			env, ok := f.rk.unsent[mb.id][m.ID]
			f.rk.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stored, inMemory) {
				t.Fatalf("message %d: the stored state for %s is not the one in memory", i, identity.ShortID(mb.id))
			}
			if !ok {
				t.Fatalf("message %d: no envelope sealed for %s", i, identity.ShortID(mb.id))
			}
			o, err := mb.set.Open(mb.local, env, time.Now())
			if err != nil {
				t.Fatalf("message %d: %s cannot open its copy: %v", i, identity.ShortID(mb.id), err)
			}
			mb.set = o.Set
			f.rk.takeSealed(mb.id, m.ID)
			if !bytes.Contains(o.Plaintext, []byte(body)) {
				t.Fatalf("message %d: %s's copy does not hold %q", i, identity.ShortID(mb.id), body)
			}
		}
	}
}

// BenchmarkSealForMembers stores and seals one group message for 100
// members with live sessions: what GroupSend spends in storeGroupSealed
// (one transaction, its fdatasyncs included in the time). Between
// messages, untimed, every member acknowledges its copy (one transaction,
// as the receipts are recorded), so the member queues stay as short as
// they are on a live group.
//
//	go test -run '^$' -bench SealForMembers -benchmem ./node/
func BenchmarkSealForMembers(b *testing.B) {
	f := newSealFixture(b, 100)
	copies := make([]store.Copy, len(f.ids))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		m := f.send(b, "a group message of a typical length, some fifty bytes or so")
		b.StopTimer()
		for i, p := range f.ids {
			f.rk.takeSealed(p, m.ID)
			copies[i] = store.Copy{Peer: p, ID: m.ID}
		}
		if _, err := f.st.SetStatuses(copies, store.StatusDelivered, time.Now()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
