package node

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	ma "github.com/multiformats/go-multiaddr"
	bolt "go.etcd.io/bbolt"
)

// What the node decides when the store reports a corrupt record: a peer
// record is skipped with a warning (the others still count); a message to
// a conversation whose record is corrupt is refused, with nothing queued;
// a receipt naming a message that cannot be read is passed over with a
// warning, and the ratchet moves on.

// corruptHome is a home whose chat.db holds what prepare stores, then is
// changed by poke behind the store's back, as a disk error or another
// program would.
func corruptHome(t *testing.T, prepare func(*store.Store), poke func(*bolt.Tx) error) (identity.Home, *identity.Identity) {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init("alice", nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenIdentity(h.Path(store.FileName), id)
	if err != nil {
		t.Fatal(err)
	}
	prepare(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(h.Path(store.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(poke); err != nil {
		t.Fatal(err)
	}
	return h, id
}

// put is a poke that writes value under key in a top-level bucket.
func put(bucket string, key, value []byte) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put(key, value) }
}

func TestCorruptPeerRecordSkipped(t *testing.T) {
	good, bad := noticePeerID(t), noticePeerID(t)
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4999")
	h, id := corruptHome(t, func(st *store.Store) {
		if err := st.PutPeer(good, store.PeerRecord{Name: "bob", Addrs: []string{addr.String()}}); err != nil {
			t.Fatal(err)
		}
	}, put("peers", []byte(bad), []byte("not json")))
	alice := offNodeAt(t, h, id, nil, true)
	if got := alice.host.Peerstore().Addrs(good); len(got) != 1 || !got[0].Equal(addr) {
		t.Fatalf("the readable record's addresses were not restored: %v", got)
	}
	if c := alice.logs.count("some stored peer records cannot be read; their addresses are forgotten"); c != 1 {
		t.Fatalf("warned %d times of the corrupt record, want once", c)
	}
	// The corrupt record is replaced, not kept, once the peer is met.
	alice.book.rememberAddrs(bad)
	if _, ok, err := alice.store.Peer(bad); err != nil || !ok {
		t.Fatalf("the record after rewriting: %v %v", ok, err)
	}
}

func TestCorruptConversationRefusesSend(t *testing.T) {
	bob := noticePeerID(t)
	h, id := corruptHome(t, func(*store.Store) {}, put("convs", []byte(bob), []byte(`{"sent":`)))
	alice := offNodeAt(t, h, id, nil, true)
	if err := alice.Contacts().Trust(bob, false); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Send(bob, "hello")
	var ce *store.CorruptError
	if !errors.As(err, &ce) || ce.Record != "convs/"+bob.String() {
		t.Fatalf("Send to a conversation with a corrupt record: %v, want a *store.CorruptError naming it", err)
	}
	if ps, err := alice.store.OutboxPeers(); err != nil || len(ps) != 0 {
		t.Fatalf("something was queued: %v %v", ps, err)
	}
}

// A receipt for a message whose record cannot be read (here its index
// entry points to no message): the envelope was
// opened, so the ratchet state moves on (else every later envelope from
// the peer would fail), the mail is acknowledged, and a warning is logged.
func TestCorruptReceiptPassedOver(t *testing.T) {
	bob := offNewNode(t, "bob", nil, false)
	m := store.Message{ID: e2e.NewMessageID(), Peer: bob.ID(), SentAt: time.Now(), StoredAt: time.Now(), Body: "to bob"}
	h, id := corruptHome(t, func(st *store.Store) {
		if err := st.AddOutgoing(&m); err != nil {
			t.Fatal(err)
		}
	}, put("ids", m.ID[:], binary.BigEndian.AppendUint64([]byte(bob.ID()), 1000))) // points to no message

	alice := offNodeAt(t, h, id, nil, false)
	offMeet(t, alice, bob)

	env, err := bob.rk.sealReceipt(alice.ID(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !alice.offMail(bob.ID(), env) {
		t.Fatal("the receipt was kept for another try: it can never be recorded")
	}
	if c := alice.logs.count("a receipt names a message that cannot be read; passed over"); c != 1 {
		t.Fatalf("warned %d times, want once", c)
	}
	r, env := bob.offText(alice.ID(), "after the bad receipt")
	if !alice.offMail(bob.ID(), env) || alice.offCount(bob.ID(), r.ID) != 1 {
		t.Fatal("the next message from bob was not stored: the ratchet did not move on")
	}
}
