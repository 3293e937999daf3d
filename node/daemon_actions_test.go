package node_test

import (
	"regexp"
	"strings"
	"testing"
)

// Replies, edits, reactions, deletions, read markers and typing through
// two real `chat daemon --json` processes, then `chat history` of the
// result, as a person reads it.
func TestDaemonJSONActions(t *testing.T) {
	p := startPair(t, shortDir(t), pairOpts{})
	a, b, aID, bID := p.a, p.b, p.aID, p.bID

	helo := a.do("s1", map[string]any{"cmd": "send", "to": "bob", "text": "helo bob"}).str("id")
	b.waitEvent("message", func(e event) bool { return e.str("event") == "message" && e.str("id") == helo })
	a.waitEvent("delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == helo })

	edit := a.do("e1", map[string]any{"cmd": "edit", "id": helo, "text": "hello bob"})
	if edit.str("event") != "accepted" || edit.str("id") == helo {
		t.Fatalf("edit answer: %v", edit)
	}
	ev := b.waitEvent("edited", func(e event) bool { return e.str("event") == "edited" })
	if ev.str("id") != helo || ev.str("text") != "hello bob" || ev.str("from") != aID || ev.str("peer") != aID || ev.str("action") != edit.str("id") {
		t.Fatalf("bob's edited event: %v", ev)
	}
	a.waitEvent("the edit delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == edit.str("id") })
	if own := eventsWithID(a, "edited", helo); len(own) != 1 || own[0].str("from") != aID {
		t.Fatalf("alice's own edited events: %v", own)
	}

	reply := b.do("r1", map[string]any{"cmd": "send", "reply_to": helo, "text": "hi alice"}).str("id")
	msg := a.waitEvent("the reply", func(e event) bool { return e.str("event") == "message" && e.str("id") == reply })
	if msg.str("reply_to") != helo {
		t.Fatalf("the reply at alice: %v", msg)
	}
	b.do("x1", map[string]any{"cmd": "react", "id": helo, "emoji": "👍"})
	ev = a.waitEvent("reaction", func(e event) bool { return e.str("event") == "reaction" && e.str("from") == bID })
	if ev.str("id") != helo || ev.str("emoji") != "👍" {
		t.Fatalf("alice's reaction event: %v", ev)
	}

	// Read markers and typing (both on by default).
	if ok := b.do("m1", map[string]any{"cmd": "mark_seen", "peer": "alice"}); ok.str("event") != "ok" {
		t.Fatalf("mark_seen: %v", ok)
	}
	a.waitEvent("seen", func(e event) bool { return e.str("event") == "seen" && e.str("id") == helo })
	a.do("y1", map[string]any{"cmd": "typing", "peer": "bob", "typing": true})
	b.waitEvent("typing", func(e event) bool {
		return e.str("event") == "typing" && e.str("peer_id") == aID && e["typing"] == true
	})

	// Refused clearly.
	for _, tc := range []struct {
		cmd  map[string]any
		want string
	}{
		{map[string]any{"cmd": "edit", "id": helo, "text": "bob's words"}, "only its author"},
		{map[string]any{"cmd": "delete", "id": helo}, "only its author"},
		{map[string]any{"cmd": "edit", "id": strings.Repeat("ab", 16), "text": "x"}, "no such message"},
		{map[string]any{"cmd": "react", "id": helo}, `react needs "emoji"`},
		{map[string]any{"cmd": "edit", "text": "x"}, `edit needs "id"`},
	} {
		tc.cmd["ref"] = "bad"
		b.send(tc.cmd)
		if e := b.answer("bad"); e.str("event") != "error" || !strings.Contains(e.str("error"), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.cmd, e, tc.want)
		}
	}

	del := a.do("d1", map[string]any{"cmd": "delete", "id": helo}).str("id")
	b.waitEvent("deleted", func(e event) bool { return e.str("event") == "deleted" && e.str("id") == helo })
	a.waitEvent("the deletion delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == del })

	var hist struct {
		Messages []struct {
			ID, Text, Quote, ReplyTo, Edited, Seen string
			Deleted                                bool
			Reactions                              []struct{ From, Emoji string }
		} `json:"messages"`
	}
	remarshal(t, b.do("h1", map[string]any{"cmd": "history", "peer": "alice"}), &hist)
	if len(hist.Messages) != 2 || !hist.Messages[0].Deleted || hist.Messages[0].Text != "" || hist.Messages[1].Text != "hi alice" {
		t.Fatalf("bob's history: %+v", hist)
	}
	b.quit()
	a.quit()

	// chat history, as a person reads it: the tombstone, the reply with
	// its quote (of a deleted message now).
	r := chat(t, "history", "alice", "--home", p.bHome)
	if r.code != 0 {
		t.Fatalf("chat history: %d %s", r.code, r.stderr)
	}
	for _, want := range []string{`alice: \[message deleted\]`, `↪ alice: \[message deleted\]\n.*me \(delivered\): hi alice`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("chat history does not match %q:\n%s", want, r.stdout)
		}
	}
}
