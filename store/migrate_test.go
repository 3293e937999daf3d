package store_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
)

// testdata/v1.db was written by the store of version 1 (before 2026-12),
// under the key 32 × 0x07: three outgoing messages (to bob, bob, carol;
// the first delivered), one incoming from bob numbered 1 in stream 99, and
// bob's peer record ("Bobby Tables", 192.0.2.7). Its IDs:
const (
	v1Bob   = "12D3KooWEbuVtQ1pFAq58ZxxaP7ZZNmCDyXSFcU82PH2WpVDuCgg"
	v1Carol = "12D3KooWQLFXY43pECCTjSoRPBLMpu21vVRwHjPC6q6PRvd4RHzi"
	v1Out0  = "d6c54e78c3159ac431e0295dd8c93f33"
	v1In    = "dfbfc6ae6d6e32c11b3c7780ca942cff"
)

// Opening a version 1 database updates it: everything reads as before,
// the numbering goes on, and afterwards nothing that version 1 left
// readable (names, addresses, times, statuses) is in the file, freed
// pages included.
func TestMigrateFromVersion1(t *testing.T) {
	v1, err := os.ReadFile(filepath.Join("testdata", "v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"Bobby Tables", "192.0.2.7", `"status"`} {
		if !bytes.Contains(v1, []byte(clear)) {
			t.Fatalf("testdata/v1.db does not hold %q in the clear: the test proves nothing", clear)
		}
	}
	path := filepath.Join(t.TempDir(), store.FileName)
	if err := os.WriteFile(path, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	s := openStore(t, path, key)
	s.Close() // before anything else is written, which could reuse freed pages by chance
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"Bobby", "192.0.2.7", `"status"`, `"delivered"`, `"unread"`, `"recv"`} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Errorf("after the update chat.db still holds %q", clear)
		}
	}
	if _, err := os.Stat(path + ".rewrite"); err == nil {
		t.Error("the rewrite's temporary file was left behind")
	}
	s = openStore(t, path, key)
	bob, _ := identity.ParsePeerID(v1Bob)
	carol, _ := identity.ParsePeerID(v1Carol)

	h, err := s.History(bob, 0, 10)
	if err != nil || !slices.Equal(bodies(h), []string{"secret out 0", "secret out 1", "secret in"}) {
		t.Fatalf("bob's history after the update: %q, %v", bodies(h), err)
	}
	if h[0].ID.String() != v1Out0 || h[0].Status != store.StatusDelivered || h[0].Delivered.IsZero() {
		t.Fatalf("the delivered message: %+v", h[0])
	}
	if h[1].Status != store.StatusSending || h[2].ID.String() != v1In || h[2].Stream != 99 || h[2].Number != 1 {
		t.Fatalf("statuses and numbering: %+v / %+v", h[1], h[2])
	}
	if ob, err := s.Outbox(bob); err != nil || len(ob) != 1 || ob[0].Body != "secret out 1" {
		t.Fatalf("bob's outbox: %v, %v", ob, err)
	}
	if ps, err := s.OutboxPeers(); err != nil || len(ps) != 2 {
		t.Fatalf("outbox peers %v, %v", ps, err)
	}
	if r, ok, err := s.Peer(bob); err != nil || !ok || r.Name != "Bobby Tables" || r.Addrs[0] != "/ip4/192.0.2.7/tcp/4001" {
		t.Fatalf("bob's record: %+v %v %v", r, ok, err)
	}
	convs, err := s.Conversations()
	if err != nil || len(convs) != 2 {
		t.Fatalf("conversations: %+v, %v", convs, err)
	}
	next := store.Message{ID: e2e.NewMessageID(), Peer: bob, SentAt: time.Now(), StoredAt: time.Now(), Body: "after"}
	if err := s.AddOutgoing(&next); err != nil || next.Number != 3 || next.Stream != h[0].Stream {
		t.Fatalf("numbering after the update: %d in %x (want 3 in %x), %v", next.Number, next.Stream, h[0].Stream, err)
	}
	if c, err := s.History(carol, 0, 10); err != nil || len(c) != 1 {
		t.Fatalf("carol's history: %v, %v", c, err)
	}
	s.Close()

	// Opened again, it is version 2 as it stands.
	s = openStore(t, path, key)
	if h, err := s.History(bob, 0, 10); err != nil || len(h) != 4 {
		t.Fatalf("reopened: %d messages, %v", len(h), err)
	}
	other := filepath.Join(t.TempDir(), store.FileName)
	if err := os.WriteFile(other, v1, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(other, []byte(strings.Repeat("x", 32))); err != store.ErrWrongKey {
		t.Fatalf("the version 1 file under another key: %v, want ErrWrongKey", err)
	}
	if after, _ := os.ReadFile(other); !bytes.Equal(after, v1) {
		t.Fatal("a version 1 file opened under the wrong key was changed")
	}
}

// testdata/v2.db was written by the store of version 2 (before edits and
// reactions), under the key 32 × 0x07: to bob, one outgoing message
// ("v2 out", delivered) and one incoming ("v2 in", numbered 1 in stream
// 5). Its IDs:
const (
	v2Out = "944d5bf7bc9b1e1118f09be2af725798"
	v2In  = "eebe5899175f4ed643227220be4cb96c"
)

// Opening a version 2 database makes it current: its messages read as
// before and take edits, reactions and pending actions.
func TestMigrateFromVersion2(t *testing.T) {
	v2, err := os.ReadFile(filepath.Join("testdata", "v2.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), store.FileName)
	if err := os.WriteFile(path, v2, 0o600); err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	s := openStore(t, path, key)
	bob, _ := identity.ParsePeerID(v1Bob)
	h, err := s.History(bob, 0, 10)
	if err != nil || !slices.Equal(bodies(h), []string{"v2 out", "v2 in"}) || h[0].ID.String() != v2Out || h[1].ID.String() != v2In {
		t.Fatalf("history after the update: %q, %v", bodies(h), err)
	}
	if h[0].Status != store.StatusDelivered || h[1].Number != 1 || h[1].Stream != 5 {
		t.Fatalf("statuses and numbering: %+v / %+v", h[0], h[1])
	}
	now := h[0].SentAt.Add(time.Minute)
	edit := &store.Message{ID: e2e.NewMessageID(), Peer: bob, Kind: store.KindEdit, Target: h[0].ID, Body: "v3 edit", SentAt: now, StoredAt: now}
	if _, err := s.Actions().AddOutgoingAction(edit, now); err != nil {
		t.Fatal(err)
	}
	early := &store.Message{ID: e2e.NewMessageID(), Peer: bob, Kind: store.KindReact, Target: e2e.NewMessageID(), Emoji: "👍", SentAt: now}
	if rec, err := s.Receive(early, now); err != nil || !rec.New {
		t.Fatalf("a pending reaction in the updated file: %+v, %v", rec, err)
	}
	s.Close()
	s = openStore(t, path, key)
	if h, err := s.History(bob, 0, 10); err != nil || !slices.Equal(bodies(h), []string{"v3 edit", "v2 in"}) {
		t.Fatalf("reopened: %q, %v", bodies(h), err)
	}
	s.Close()
	raw, _ := os.ReadFile(path)
	other := filepath.Join(t.TempDir(), "newer.db")
	os.WriteFile(other, raw, 0o600)
	if _, err := store.Open(other, []byte(strings.Repeat("x", 32))); err != store.ErrWrongKey {
		t.Fatalf("under another key: %v", err)
	}
}
