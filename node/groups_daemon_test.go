package node_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Groups through three real daemons' JSON protocol, and `chat send --to
// GROUP` / `chat history GROUP` through a running daemon.
func TestGroupDaemons(t *testing.T) {
	dir := shortDir(t)
	aHome, aID := procHome(t, dir, "alice")
	bHome, bID := procHome(t, dir, "bob")
	cHome, cID := procHome(t, dir, "carol")
	a := startDaemon(t, "alice", aHome, 0)
	b := startDaemon(t, "bob", bHome, 0)
	c := startDaemon(t, "carol", cHome, 0)
	linkDaemons(t, false, []*daemon{a, b, c}, []string{aID, bID, cID})

	g := a.do("g1", map[string]any{"cmd": "group_create", "name": "team", "members": []string{"bob", cID}})
	gid := g.str("id")
	if g.str("event") != "group" || len(gid) != 64 || g.str("name") != "team" || g["version"] != 1.0 || len(g["members"].([]any)) != 3 {
		t.Fatalf("group_create answer: %v", g)
	}
	for _, d := range []*daemon{b, c} {
		d.waitEvent("the group", func(e event) bool { return e.str("event") == "group" && e.str("id") == gid && e["member"] == true })
	}

	acc := a.do("s1", map[string]any{"cmd": "send", "to": "team", "text": "hello team"})
	if acc.str("event") != "accepted" || acc.str("group") != gid {
		t.Fatalf("send to a group: %v", acc)
	}
	for _, d := range []*daemon{b, c} {
		m := d.waitEvent("the group message", func(e event) bool { return e.str("event") == "message" && e.str("id") == acc.str("id") })
		if m.str("group") != gid || m.str("from") != aID || m.str("text") != "hello team" {
			t.Fatalf("%s got %v", d.name, m)
		}
	}
	delivered := map[string]bool{}
	a.waitEvent("delivered to bob and carol", func(e event) bool {
		if e.str("event") == "delivered" && e.str("id") == acc.str("id") && e.str("group") == gid {
			delivered[e.str("to")] = true
		}
		return delivered[bID] && delivered[cID]
	})

	// Replies, edits and reactions in the group, through the same commands
	// as in a private conversation; each line carries the group.
	rep := b.do("r1", map[string]any{"cmd": "send", "reply_to": acc.str("id"), "to": "team", "text": "hello alice"})
	if rep.str("event") != "accepted" || rep.str("group") != gid || rep.str("to") != gid {
		t.Fatalf("reply in a group: %v", rep)
	}
	for _, d := range []*daemon{a, c} {
		m := d.waitEvent("the reply", func(e event) bool { return e.str("event") == "message" && e.str("id") == rep.str("id") })
		if m.str("reply_to") != acc.str("id") || m.str("group") != gid || m.str("from") != bID {
			t.Fatalf("%s got the reply as %v", d.name, m)
		}
	}
	ed := a.do("e1", map[string]any{"cmd": "edit", "id": acc.str("id"), "text": "hello, team"})
	if ed.str("event") != "accepted" || ed.str("group") != gid {
		t.Fatalf("edit in a group: %v", ed)
	}
	for _, d := range []*daemon{b, c} {
		e := d.waitEvent("the edit", func(e event) bool { return e.str("event") == "edited" && e.str("id") == acc.str("id") })
		if e.str("text") != "hello, team" || e.str("from") != aID || e.str("group") != gid {
			t.Fatalf("%s got the edit as %v", d.name, e)
		}
	}
	c.do("x1", map[string]any{"cmd": "react", "id": acc.str("id"), "emoji": "🎉"})
	if e := a.waitEvent("carol's reaction", func(e event) bool { return e.str("event") == "reaction" && e.str("from") == cID }); e.str("group") != gid || e.str("emoji") != "🎉" {
		t.Fatalf("alice's reaction event: %v", e)
	}
	c.send(map[string]any{"cmd": "edit", "ref": "ce", "id": acc.str("id"), "text": "carol's words"})
	if e := c.answer("ce"); e.str("event") != "error" || !strings.Contains(e.str("error"), "only its author") {
		t.Fatalf("carol edits alice's group message: %v", e)
	}

	// A non-admin's add is refused with the reason.
	b.send(map[string]any{"cmd": "group_add", "ref": "x", "group": "team", "peer": aID})
	if e := b.answer("x"); e.str("event") != "error" || !strings.Contains(e.str("error"), "admin") {
		t.Fatalf("bob's group_add: %v", e)
	}

	// `chat send --to team` and `chat history team` through bob's daemon:
	// send waits until both other members have the message, as it does
	// without a daemon (it said "accepted" and exit status 0 at once).
	if r := chat(t, "send", "--home", bHome, "--to", "team", "from the command line"); r.code != 0 ||
		!regexp.MustCompile(`^delivered [0-9a-f]{32} to 2 of 2 members of team\n$`).MatchString(r.stdout) {
		t.Fatalf("chat send --to team: %d %q %q", r.code, r.stdout, r.stderr)
	}
	a.waitEvent("bob's line", func(e event) bool { return e.str("event") == "message" && e.str("text") == "from the command line" })

	// Carol is removed: she is told, alice's history shows the delivery.
	g = a.do("g2", map[string]any{"cmd": "group_remove", "group": gid[:12], "peer": cID})
	if len(g["members"].([]any)) != 2 {
		t.Fatalf("after the removal: %v", g)
	}
	c.waitEvent("her removal", func(e event) bool { return e.str("event") == "group" && e.str("id") == gid && e["member"] == false })

	h := a.do("h1", map[string]any{"cmd": "history", "peer": "team"})
	msgs := h["messages"].([]any)
	if h.str("group") != gid || len(msgs) != 3 {
		t.Fatalf("alice's group history: %v", h)
	}
	first := event(msgs[0].(map[string]any))
	if first.str("dir") != "out" || first["members"] != 2.0 || first["delivered"] != 2.0 || first.str("group") != gid ||
		first.str("text") != "hello, team" || first.str("edited") == "" || len(first["reactions"].([]any)) != 1 {
		t.Fatalf("the first message's delivery: %v", first)
	}
	a.send(map[string]any{"cmd": "groups", "ref": "l"})
	if e := a.answer("l"); e.str("event") != "group" || e.str("id") != gid {
		t.Fatalf("groups: %v", e)
	}
	if e := a.answer("l"); e.str("event") != "ok" {
		t.Fatalf("end of groups: %v", e)
	}
	r := chat(t, "history", "team", "--home", cHome)
	if r.code != 0 || !strings.Contains(r.stdout, "hello, team (edited)") || !strings.Contains(r.stdout, "from the command line") {
		t.Fatalf("chat history team (carol): %d %q %q", r.code, r.stdout, r.stderr)
	}

	// With bob away, `chat send --to team` through alice's daemon waits
	// --wait for him, then says the message is queued (exit status 3),
	// and for whom.
	b.quit()
	r = chat(t, "send", "--home", aHome, "--to", "team", "--wait", "1s", "while bob is away")
	if r.code != 3 || !regexp.MustCompile(`^queued [0-9a-f]{32}: delivered to 0 of 1 members of team\n$`).MatchString(r.stdout) ||
		!strings.Contains(r.stderr, "1 member of team has not stored the message yet (bob); the running daemon keeps trying") {
		t.Fatalf("chat send --to team, bob away: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// Without a daemon, `chat send` runs a node of its own and says the
	// same, and that the message stays in the outbox.
	a.quit()
	r = chat(t, "send", "--home", aHome, "--to", "team", "--wait", "1s", "with nobody running")
	if r.code != 3 || !strings.Contains(r.stderr, "1 member of team has not stored the message yet (bob); it stays in the outbox for them") {
		t.Fatalf("chat send --to team without a daemon, bob away: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// A group bound to a CA through the daemon, with identities, CA and
// certificates made by the chat binary as a team would: group_create's
// "ca" names a trusted CA (by name or fingerprint); a member without a
// certificate from it, or a CA not trusted, is refused with the reason;
// the group's events carry the CA to every member. Then group_rename.
// Before, the daemon had no way to make such a group, nor to rename one
// (the window had /rename).
func TestGroupDaemonBoundToCA(t *testing.T) {
	dir := shortDir(t)
	p := newPair(t, dir)
	_, cID := procHome(t, dir, "carol") // self-signed, and never met: no certificate from the CA
	caDir := filepath.Join(dir, "ca")
	if r := chat(t, "ca", "init", "--name", "Acme Root", "--out", caDir, "--no-passphrase"); r.code != 0 {
		t.Fatalf("chat ca init: %d %s", r.code, r.stderr)
	}
	for _, h := range []string{p.aHome, p.bHome} {
		csr := chat(t, "csr", "--home", h)
		csrFile, crtFile := filepath.Join(h, "me.csr"), filepath.Join(h, "me.crt")
		if err := os.WriteFile(csrFile, []byte(csr.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		crt := chat(t, "ca", "sign", "--ca", caDir, csrFile)
		if err := os.WriteFile(crtFile, []byte(crt.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"trust", "add-ca", filepath.Join(caDir, "ca.pem")}, {"cert", "import", crtFile}} {
			if r := chat(t, append(args, "--home", h)...); r.code != 0 {
				t.Fatalf("chat %v: %d %s", args, r.code, r.stderr)
			}
		}
	}
	p.start(pairOpts{})
	a, b := p.a, p.b
	a.do("t", map[string]any{"cmd": "trust", "peer": cID})
	p.link(false)

	for _, tc := range []struct{ ca, member, want string }{
		{"Other Root", p.bID, `group_create: no CA you trust is called "Other Root"`},
		{"acme root", cID, "cannot join a group bound to a CA: has no certificate from the group's CA"},
	} {
		a.send(map[string]any{"cmd": "group_create", "ref": "g0", "name": "acme", "members": []string{tc.member}, "ca": tc.ca})
		e := a.answer("g0")
		if e.str("event") != "error" || !strings.Contains(e.str("error"), tc.want) {
			t.Fatalf("group_create with ca %q and %s: %v, want an error with %q", tc.ca, tc.member, e, tc.want)
		}
	}
	g := a.do("g1", map[string]any{"cmd": "group_create", "name": "acme", "members": []string{"bob"}, "ca": "Acme Root"})
	if g.str("event") != "group" || len(g.str("ca")) != 64 || g.str("ca_name") != "Acme Root" {
		t.Fatalf("group_create bound to Acme Root: %v", g)
	}
	got := b.waitEvent("the group, bound to the CA", func(e event) bool { return e.str("event") == "group" && e.str("id") == g.str("id") })
	if got.str("ca") != g.str("ca") || got.str("ca_name") != "Acme Root" {
		t.Fatalf("bob's group names CA %q, alice's %q", got.str("ca"), g.str("ca"))
	}

	// group_rename, as /rename in the group's chat: bob is told, and a
	// non-admin's rename is refused.
	if r := a.do("r1", map[string]any{"cmd": "group_rename", "group": "acme", "name": "acme eng"}); r.str("name") != "acme eng" {
		t.Fatalf("group_rename: %v", r)
	}
	b.waitEvent("the new name", func(e event) bool {
		return e.str("event") == "group" && e.str("id") == g.str("id") && e.str("name") == "acme eng"
	})
	b.send(map[string]any{"cmd": "group_rename", "ref": "r2", "group": g.str("id")[:8], "name": "mine"})
	if e := b.answer("r2"); e.str("event") != "error" || !strings.Contains(e.str("error"), "admin") {
		t.Fatalf("a member's group_rename: %v", e)
	}
	// group_keep of a member whose removal nobody undid: nothing to keep.
	b.send(map[string]any{"cmd": "group_keep", "ref": "r3", "group": "acme eng", "peer": p.aID})
	if e := b.answer("r3"); e.str("event") != "error" || !strings.Contains(e.str("error"), "no removal of them in the group was undone") {
		t.Fatalf("group_keep with nothing undone: %v", e)
	}
}
