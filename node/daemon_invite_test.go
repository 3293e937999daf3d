package node_test

import (
	"regexp"
	"strings"
	"testing"
)

// Two `chat daemon --json` processes told to listen on loopback only,
// with LAN discovery left on: they start, say LAN discovery is off and
// why, and one adds the other by its invitation. The daemon's line rules
// are checked on the way: blank lines are ignored, a line with two
// objects is refused whole.
func TestDaemonLoopbackInvitation(t *testing.T) {
	p := newPair(t, shortDir(t))
	a := startDaemonArgs(t, "alice", p.aHome, 0)
	b := startDaemonArgs(t, "bob", p.bHome, 0)
	for _, d := range []*daemon{a, b} {
		lan := d.waitEvent("lan", func(e event) bool { return e.str("event") == "lan" })
		if lan["on"] != false || lan.str("reason") != "no LAN address in use" {
			t.Fatalf("%s: %v", d.name, lan)
		}
	}

	a.sendRaw([]byte("\n  \t\n"))
	a.sendRaw([]byte(`{"cmd":"id","ref":"x1"} {"cmd":"quit","ref":"x2"}` + "\n"))
	e := a.waitEvent("an error", func(e event) bool { return e.str("event") == "error" || e.str("ref") != "" })
	if e.str("ref") != "x1" || e.str("event") != "error" || !strings.Contains(e.str("error"), "more than one JSON object") {
		t.Fatalf("two objects on a line: %v", e)
	}

	inv := b.do("i1", map[string]any{"cmd": "invite"})
	text := inv.str("text")
	if inv.str("event") != "invite" || inv.str("peer_id") != p.bID || !strings.HasPrefix(text, "CERTCHAT:") {
		t.Fatalf("invite answer: %v", inv)
	}
	pe := a.do("a1", map[string]any{"cmd": "add", "addr": text})
	if pe.str("event") != "peer" || pe.str("peer_id") != p.bID || pe["online"] != true || pe.str("trust") != "tofu" || pe.str("name") != "bob" {
		t.Fatalf("add answer: %v", pe)
	}
	if pe.str("path") != "direct" {
		t.Fatalf("a loopback connection with LAN discovery off reads %q, want direct", pe.str("path"))
	}
	acc := a.do("s1", map[string]any{"cmd": "send", "to": "bob", "text": "hello over loopback"})
	b.waitEvent("message", func(e event) bool { return e.str("event") == "message" && e.str("id") == acc.str("id") })
	a.waitEvent("delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == acc.str("id") })

	// Bob gone, chat send through alice's daemon: queued, exit status 3.
	b.quit()
	r := chat(t, "send", "--home", p.aHome, "--to", "bob", "--wait", "1s", "are you there?")
	if r.code != 3 || !regexp.MustCompile(`^queued [0-9a-f]{32}\n$`).MatchString(r.stdout) || !strings.Contains(r.stderr, "exit status 3: queued") {
		t.Fatalf("chat send via the daemon to a peer who left: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	a.quit()
}
