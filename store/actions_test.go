package store_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

func action(p peer.ID, kind store.Kind, target e2e.MessageID, body, emoji string, at time.Time) *store.Message {
	return &store.Message{ID: e2e.NewMessageID(), Peer: p, Kind: kind, Target: target, Body: body, Emoji: emoji, SentAt: at, StoredAt: at}
}

func mustGet(t *testing.T, s *store.Store, id e2e.MessageID) store.Message {
	t.Helper()
	m, err := s.Message(id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Our own edits, deletions and reactions: applied at once, hidden from
// the history, queued; an edit goes out with the text the message shows
// now, a deletion takes the message and what is pending for it out of the
// outbox, and leaves no body in any record.
func TestStoreOwnActions(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	bob := randomPeer(t)
	mine := outgoing(t, s, bob, "helo", base)
	theirs := incoming(t, s, bob, "hi", base)

	edit := action(bob, store.KindEdit, mine.ID, "hello", "", base.Add(time.Minute))
	target, err := s.Actions().AddOutgoingAction(edit, base.Add(time.Minute))
	if err != nil || target.Body != "hello" || target.Edited.IsZero() {
		t.Fatalf("edit: %+v, %v", target, err)
	}
	react := action(bob, store.KindReact, theirs.ID, "", "👍", base.Add(2*time.Minute))
	if target, err = s.Actions().AddOutgoingAction(react, base); err != nil || len(target.Reactions) != 1 || target.Reactions[0] != (store.Reaction{Emoji: "👍"}) {
		t.Fatalf("reaction: %+v, %v", target, err)
	}
	h, err := s.History(bob, 0, 10)
	if err != nil || !slices.Equal(bodies(h), []string{"hello", "hi"}) {
		t.Fatalf("history shows %q, %v", bodies(h), err)
	}
	ob, err := s.Outbox(bob)
	if err != nil || len(ob) != 3 || ob[1].Kind != store.KindEdit || ob[1].Body != "hello" || ob[2].Emoji != "👍" {
		t.Fatalf("outbox: %+v, %v", ob, err)
	}
	if c, _ := s.Conversations(); c[0].Messages != 2 {
		t.Fatalf("actions counted as messages: %+v", c[0])
	}

	for name, tc := range map[string]struct {
		a    *store.Message
		now  time.Time
		want error
	}{
		"edit theirs":   {action(bob, store.KindEdit, theirs.ID, "mine now", "", base), base, store.ErrNotYours},
		"delete theirs": {action(bob, store.KindDelete, theirs.ID, "", "", base), base, store.ErrNotYours},
		"too old":       {action(bob, store.KindEdit, mine.ID, "late", "", base), base.Add(store.EditWindow + time.Second), store.ErrTooOld},
		"unknown":       {action(bob, store.KindEdit, e2e.NewMessageID(), "x", "", base), base, store.ErrNoTarget},
		"other chat":    {action(randomPeer(t), store.KindEdit, mine.ID, "x", "", base), base, store.ErrNoTarget},
		"an action":     {action(bob, store.KindReact, react.ID, "", "x", base), base, store.ErrNoTarget},
	} {
		if _, err := s.Actions().AddOutgoingAction(tc.a, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}

	del := action(bob, store.KindDelete, mine.ID, "", "", base.Add(3*time.Minute))
	if target, err = s.Actions().AddOutgoingAction(del, base.Add(3*time.Minute)); err != nil || !target.Deleted || target.Body != "" {
		t.Fatalf("delete: %+v, %v", target, err)
	}
	ob, err = s.Outbox(bob)
	if err != nil || len(ob) != 2 || ob[0].ID != react.ID || ob[1].ID != del.ID {
		t.Fatalf("after the deletion the outbox holds %+v, %v; want the reaction and the deletion", ob, err)
	}
	for _, id := range []e2e.MessageID{mine.ID, edit.ID, del.ID} {
		if m := mustGet(t, s, id); m.Body != "" {
			t.Fatalf("record %s (%s) still holds %q", id, m.Kind, m.Body)
		}
	}
	if found, _ := s.Search("hel", 10); len(found) != 0 {
		t.Fatalf("search finds the deleted text: %+v", found)
	}
	if _, err := s.Actions().AddOutgoingAction(action(bob, store.KindEdit, mine.ID, "again", "", base), base); !errors.Is(err, store.ErrDeleted) {
		t.Fatalf("edit after delete: %v", err)
	}
}

// What the peer sends: its edits and deletions of its own messages and its
// reactions apply; anything else is refused and kept as refused (so a
// retry is a duplicate); an action before its target waits for it.
func TestStoreIncomingActions(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	bob, carol := randomPeer(t), randomPeer(t)
	mine := outgoing(t, s, bob, "my text", base)
	theirs := incoming(t, s, bob, "thier text", base)
	carols := incoming(t, s, carol, "carol's", base)
	now := base.Add(time.Hour)

	rec, err := s.Receive(action(bob, store.KindEdit, theirs.ID, "their text", "", base.Add(time.Minute)), now)
	if err != nil || !rec.New || rec.Refused != nil || len(rec.Changed) != 1 || rec.Changed[0].Body != "their text" {
		t.Fatalf("their edit: %+v, %v", rec, err)
	}
	rec, err = s.Receive(action(bob, store.KindEdit, theirs.ID, "older edit", "", base.Add(30*time.Second)), now)
	if err != nil || rec.Refused != nil || mustGet(t, s, theirs.ID).Body != "their text" {
		t.Fatalf("an older edit arriving later replaced the newer: %+v, %v", rec, err)
	}
	rec, err = s.Receive(action(bob, store.KindReact, mine.ID, "", "🎉", base), now)
	if r := mustGet(t, s, mine.ID).Reactions; err != nil || rec.Refused != nil || len(r) != 1 || r[0] != (store.Reaction{From: bob, Emoji: "🎉"}) {
		t.Fatalf("their reaction: %+v, %v", rec, err)
	}

	for name, tc := range map[string]struct {
		a    *store.Message
		now  time.Time
		want error
	}{
		"edit ours":          {action(bob, store.KindEdit, mine.ID, "forged", "", base), now, store.ErrNotYours},
		"delete ours":        {action(bob, store.KindDelete, mine.ID, "", "", base), now, store.ErrNotYours},
		"another chat's":     {action(bob, store.KindDelete, carols.ID, "", "", base), now, store.ErrNoTarget},
		"react another chat": {action(bob, store.KindReact, carols.ID, "", "x", base), now, store.ErrNoTarget},
		"by its clock":       {action(bob, store.KindEdit, theirs.ID, "late", "", base.Add(store.EditWindow+time.Hour)), now, store.ErrTooOld},
		"by ours":            {action(bob, store.KindEdit, theirs.ID, "late", "", base.Add(time.Hour)), base.Add(16 * 24 * time.Hour), store.ErrTooOld},
	} {
		a := tc.a
		rec, err := s.Receive(a, tc.now)
		if err != nil || !errors.Is(rec.Refused, tc.want) || len(rec.Changed) != 0 {
			t.Errorf("%s: %+v, %v; want refused with %v", name, rec, err, tc.want)
			continue
		}
		if m := mustGet(t, s, a.ID); m.Status != store.StatusRefused || m.Body != "" {
			t.Errorf("%s: stored as %+v", name, m)
		}
		if again, err := s.Receive(a, tc.now); err != nil || again.New {
			t.Errorf("%s: the retry is not a duplicate: %+v, %v", name, again, err)
		}
	}
	if m := mustGet(t, s, mine.ID); m.Body != "my text" || m.Deleted {
		t.Fatalf("our message after the refusals: %+v", m)
	}
	if m := mustGet(t, s, carols.ID); m.Deleted {
		t.Fatal("bob deleted carol's message")
	}

	// Out of order: an edit and a deletion arrive before their texts.
	early := e2e.NewMessageID()
	rec, err = s.Receive(action(bob, store.KindEdit, early, "edited before it came", "", base.Add(time.Minute)), now)
	if err != nil || rec.Refused != nil || len(rec.Changed) != 0 {
		t.Fatalf("early edit: %+v, %v", rec, err)
	}
	doomed := e2e.NewMessageID()
	if _, err := s.Receive(action(bob, store.KindEdit, doomed, "edit", "", base.Add(time.Minute)), now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Receive(action(bob, store.KindDelete, doomed, "", "", base.Add(2*time.Minute)), now); err != nil {
		t.Fatal(err)
	}
	spoof := e2e.NewMessageID() // carol "edits" what bob will send
	if _, err := s.Receive(action(carol, store.KindEdit, spoof, "carol was here", "", base), now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id       e2e.MessageID
		body     string
		want     string
		deleted  bool
		refused  bool
		changed_ bool
	}{
		{early, "original", "edited before it came", false, false, true},
		{doomed, "to be deleted", "", true, false, true},
		{spoof, "bob's own", "bob's own", false, true, false},
	} {
		m := &store.Message{ID: tc.id, Peer: bob, Body: tc.body, SentAt: base, StoredAt: now}
		rec, err := s.Receive(m, now)
		if err != nil || !rec.New || (len(rec.Changed) == 1) != tc.changed_ || (rec.Refused != nil) != tc.refused {
			t.Fatalf("%q arrives: %+v, %v", tc.body, rec, err)
		}
		got := mustGet(t, s, tc.id)
		if got.Body != tc.want || got.Deleted != tc.deleted {
			t.Fatalf("%q after the actions that waited: %+v", tc.body, got)
		}
	}
	h, _ := s.History(bob, 0, 100)
	if !slices.Equal(bodies(h), []string{"my text", "their text", "edited before it came", "", "bob's own"}) {
		t.Fatalf("history: %q", bodies(h))
	}
	if c, _ := s.Conversations(); c[0].Unread != 4 && c[1].Unread != 4 {
		t.Fatalf("actions counted as unread: %+v", c)
	}
}

// A reply carries its quote when read, from its own conversation only.
func TestStoreReplyQuote(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	bob, carol := randomPeer(t), randomPeer(t)
	q := incoming(t, s, bob, "question?", base)
	secret := incoming(t, s, carol, "carol's secret", base)
	r := store.Message{ID: e2e.NewMessageID(), Peer: bob, SentAt: base, StoredAt: base, Body: "answer", ReplyTo: q.ID}
	if err := s.AddOutgoing(&r); err != nil {
		t.Fatal(err)
	}
	leak := &store.Message{ID: e2e.NewMessageID(), Peer: bob, SentAt: base, Body: "what was it?", ReplyTo: secret.ID}
	if rec, err := s.Receive(leak, base); err != nil || leak.Quote != nil || !rec.New {
		t.Fatalf("a reply to another chat's message: %+v, %v", leak.Quote, err)
	}
	h, _ := s.History(bob, 0, 10)
	if h[1].Quote == nil || h[1].Quote.Body != "question?" || h[1].Quote.Direction != store.Incoming || h[2].Quote != nil {
		t.Fatalf("quotes: %+v / %+v", h[1].Quote, h[2].Quote)
	}
	if _, err := s.Receive(action(bob, store.KindDelete, q.ID, "", "", base), base); err != nil {
		t.Fatal(err)
	}
	if m := mustGet(t, s, r.ID); m.Quote == nil || !m.Quote.Deleted || m.Quote.Body != "" {
		t.Fatalf("quote of a deleted message: %+v", m.Quote)
	}
}

// Seen marks our messages, delivers them, and is idempotent.
func TestStoreSeen(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "chat.db"), storeKey(t))
	bob := randomPeer(t)
	m := outgoing(t, s, bob, "hi", base)
	in := incoming(t, s, bob, "yo", base)
	got, err := s.Actions().SetSeen(bob, []e2e.MessageID{m.ID, in.ID, e2e.NewMessageID()}, base.Add(time.Minute))
	if err != nil || len(got) != 1 || got[0].Seen.IsZero() || got[0].Status != store.StatusDelivered {
		t.Fatalf("seen: %+v, %v", got, err)
	}
	if again, err := s.Actions().SetSeen(bob, []e2e.MessageID{m.ID}, base.Add(2*time.Minute)); err != nil || len(again) != 0 {
		t.Fatalf("seen again: %+v, %v", again, err)
	}
	if ob, _ := s.Outbox(bob); len(ob) != 0 {
		t.Fatal("a seen message stays in the outbox")
	}
}
