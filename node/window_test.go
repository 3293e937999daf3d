package node_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	bolt "go.etcd.io/bbolt"
)

// seedRatchet answers the node's ratchet seed offer as a TLS client does
// (docs/PROTOCOL.md §10), so the node can seal messages for the fake peer.
func (fp *fakePeer) seedRatchet(tn *testNode) {
	fp.t.Helper()
	var offer []byte
	timeout := time.After(15 * time.Second)
	for offer == nil {
		select {
		case f, ok := <-fp.frames:
			if !ok {
				fp.t.Fatal("session ended before the seed offer")
			}
			if f.Type == e2e.FrameRatchetInit {
				offer = f.Payload
			}
		case <-timeout:
			fp.t.Fatal("no seed offer")
		}
	}
	now := time.Now()
	self, them := []byte(fp.ID()), []byte(tn.ID())
	secret, err := fp.sess.ExportKeyingMaterial(ratchet.ExporterLabel, ratchet.ExporterContext(self, them), 32)
	if err != nil {
		fp.t.Fatal(err)
	}
	keys, err := ratchet.NewLocalKeys(fp.id.Signer(), self, now)
	if err != nil {
		fp.t.Fatal(err)
	}
	key, _ := identity.KeyFromPeerID(tn.ID())
	set, err := ratchet.NewSessionSet(keys, them, key)
	if err != nil {
		fp.t.Fatal(err)
	}
	env, _, err := set.SeedInitiator(secret, offer, now)
	if err != nil {
		fp.t.Fatal(err)
	}
	if err := fp.sess.Send(e2e.FrameEnvelope, env); err != nil {
		fp.t.Fatal(err)
	}
}

// At most 64 KiB of unacknowledged messages are in flight on a session:
// to a peer that never acknowledges, 20 messages of 10 KiB go out as 6.
func TestSendWindow(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	fp := newFakePeer(t, "mute")
	if err := alice.Contacts().Trust(fp.ID(), false); err != nil {
		t.Fatal(err)
	}
	if err := fp.dial(alice); err != nil {
		t.Fatal(err)
	}
	fp.seedRatchet(alice)
	body := strings.Repeat("w", 10<<10)
	for i := 0; i < 20; i++ {
		if _, err := alice.Send(fp.ID(), body); err != nil {
			t.Fatal(err)
		}
	}
	envelopes := 0
	for quiet := time.After(1500 * time.Millisecond); ; {
		select {
		case f := <-fp.frames:
			if f.Type == e2e.FrameEnvelope {
				envelopes++
			}
			continue
		case <-quiet:
		}
		break
	}
	if envelopes != 6 {
		t.Fatalf("%d messages written without receipts, want 6 (64 KiB of 10 KiB messages)", envelopes)
	}
}

// A node with no relays sending to a peer who is offline says nothing
// alarming: the message waits in the outbox, no error event.
func TestOfflineWithoutRelaysIsNoError(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"), "/ip4/127.0.0.1/tcp/0")
	bob := mustID(t, newHome(t, "bob")) // never online
	if err := alice.Contacts().Trust(bob, false); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(bob, "later"); err != nil {
		t.Fatal(err)
	}
	alice.quiet(1500*time.Millisecond, "an error event", func(e node.Event) bool { return e.Kind == node.EventError })
}

// countingHandler counts log records whose message is msg.
type countingHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// A pending message that can no longer be read does not make the outbox
// worker spin: it backs off like any other failure.
func TestUnreadableOutboxBacksOff(t *testing.T) {
	h := newHome(t, "alice")
	first := startNode(t, h)
	bob := mustID(t, newHome(t, "bob")) // never online
	first.Contacts().Trust(bob, false)
	if _, err := first.Send(bob, "soon unreadable"); err != nil {
		t.Fatal(err)
	}
	first.Close()

	db, err := bolt.Open(h.Path("chat.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		conv := tx.Bucket([]byte("msgs")).Bucket([]byte(bob))
		return conv.Put(binary.BigEndian.AppendUint64(nil, 1), []byte("not a message"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	var reads atomic.Int64
	startNodeWith(t, h, func(c *node.Config) {
		c.Logger = slog.New(countingHandler{msg: "read outbox", n: &reads})
	}, "/ip4/127.0.0.1/tcp/0")
	time.Sleep(time.Second)
	if got := reads.Load(); got == 0 || got > 20 {
		t.Fatalf("the outbox worker read the broken outbox %d times in a second; want a few (backing off)", got)
	}
}
