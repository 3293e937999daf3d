package node_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Two real `chat daemon --json` processes driven through stdin and stdout.

func TestDaemonJSON(t *testing.T) {
	p := newPair(t, shortDir(t))
	p.start(pairOpts{})
	a, b, aID, bID := p.a, p.b, p.aID, p.bID

	if e := a.do("id", map[string]any{"cmd": "id"}); e.str("event") != "id" || e.str("peer_id") != aID || e.str("name") != "alice" {
		t.Fatalf("id: %v", e)
	}
	pe := p.link(false)
	if pe.str("event") != "peer" || pe.str("peer_id") != bID || pe["online"] != true || pe.str("trust") != "tofu" || pe.str("name") != "bob" {
		t.Fatalf("connect answer: %v", pe)
	}

	// alice → bob, by peer ID.
	acc := a.do("s1", map[string]any{"cmd": "send", "to": bID, "text": "hello bob"})
	if acc.str("event") != "accepted" || acc.str("to") != bID || len(acc.str("id")) != 32 {
		t.Fatalf("send answer: %v", acc)
	}
	id1 := acc.str("id")
	msg := b.waitEvent("message", func(e event) bool { return e.str("event") == "message" })
	if msg.str("id") != id1 || msg.str("from") != aID || msg.str("text") != "hello bob" || msg.str("name") != "alice" {
		t.Fatalf("bob got %v", msg)
	}
	if _, err := time.Parse(time.RFC3339Nano, msg.str("ts")); err != nil {
		t.Fatalf("message ts %q: %v", msg.str("ts"), err)
	}
	a.waitEvent("delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == id1 })
	if len(eventsWithID(a, "sent", id1)) != 1 {
		t.Fatalf("alice's sent events for %s: %v", id1, eventsWithID(a, "sent", id1))
	}

	// bob → alice, by the name in alice's certificate.
	acc = b.do("s2", map[string]any{"cmd": "send", "to": "alice", "text": "hi alice ✓"})
	id2 := acc.str("id")
	msg = a.waitEvent("message", func(e event) bool { return e.str("event") == "message" && e.str("id") == id2 })
	if msg.str("text") != "hi alice ✓" || msg.str("from") != bID {
		t.Fatalf("alice got %v", msg)
	}
	b.waitEvent("delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == id2 })

	// History, peers.
	h := a.do("h1", map[string]any{"cmd": "history", "peer": "bob", "limit": 10})
	var hist struct {
		Peer     string `json:"peer"`
		Messages []struct {
			ID, Dir, Text, Status string
		} `json:"messages"`
	}
	remarshal(t, h, &hist)
	if hist.Peer != bID || len(hist.Messages) != 2 ||
		hist.Messages[0].ID != id1 || hist.Messages[0].Dir != "out" || hist.Messages[0].Status != "delivered" ||
		hist.Messages[1].ID != id2 || hist.Messages[1].Dir != "in" || hist.Messages[1].Text != "hi alice ✓" {
		t.Fatalf("history: %+v", hist)
	}
	a.send(map[string]any{"cmd": "peers", "ref": "p1"})
	pe = a.answer("p1")
	if pe.str("event") != "peer" || pe.str("peer_id") != bID {
		t.Fatalf("peers: %v", pe)
	}
	if ok := a.answer("p1"); ok.str("event") != "ok" || ok.str("cmd") != "peers" {
		t.Fatalf("end of peers: %v", ok)
	}

	// Errors are answered, and the daemon carries on.
	bad := []struct {
		line string
		ref  string
		want string
	}{
		{`{not json`, "", "bad command"},
		{`["send"]`, "", "bad command"},
		{`{"cmd":"id","bogus":1}`, "", "bad command"},
		{`{"cmd":"frobnicate","ref":"u1"}`, "u1", "unknown command"},
		{`{"cmd":"send","ref":"e1","to":"nobody-by-that-name","text":"x"}`, "e1", "nobody-by-that-name"},
		{`{"cmd":"send","ref":"e2","to":"` + bID + `","text":""}`, "e2", `send needs "text"`},
		{`{"cmd":"send","ref":"e5","text":"hi"}`, "e5", `send needs "to"`},
		{`{"cmd":"history","ref":"e6"}`, "e6", `history needs "peer"`},
		{`{"cmd":"connect","ref":"e7"}`, "e7", `connect needs "addr"`},
		{`{"cmd":"trust","ref":"e3","peer":"not-a-peer-id"}`, "e3", ""},
		{`{"cmd":"connect","ref":"e4","addr":"/ip4/127.0.0.1/tcp/1"}`, "e4", "/p2p/"},
	}
	for i, tc := range bad {
		a.sendRaw([]byte(tc.line + "\n"))
		e := a.waitEvent("error for "+tc.line, func(e event) bool { return e.str("event") == "error" })
		if e.str("ref") != tc.ref || !strings.Contains(e.str("error"), tc.want) || strings.Contains(e.str("error"), "\n") {
			t.Errorf("%s: got %v", tc.line, e)
		}
		// Still answering.
		ref := "alive" + string(rune('a'+i))
		if e := a.do(ref, map[string]any{"cmd": "id"}); e.str("peer_id") != aID {
			t.Fatalf("after %s: %v", tc.line, e)
		}
	}
	// An over-long line (over the 1 MiB limit) is skipped whole.
	long := `{"cmd":"send","ref":"long","to":"` + bID + `","text":"` + strings.Repeat("x", 1<<20+10) + `"}` + "\n"
	a.sendRaw([]byte(long))
	e := a.waitEvent("error for the long line", func(e event) bool { return e.str("event") == "error" })
	if !strings.Contains(e.str("error"), "longer than") {
		t.Fatalf("long line: %v", e)
	}
	a.sendRaw([]byte("\n\n")) // empty lines are ignored
	if e := a.do("after-long", map[string]any{"cmd": "id"}); e.str("peer_id") != aID {
		t.Fatalf("after the long line: %v", e)
	}
	if len(eventsWithID(b, "message", "")) != 1 {
		t.Fatal("the long line's message was sent")
	}

	// Shutdown: quit for alice, SIGTERM for bob; both exit 0.
	a.quit()
	b.waitEvent("alice offline", func(e event) bool {
		return e.str("event") == "peer" && e.str("peer_id") == aID && e["online"] == false
	})
	b.term()
}

// eventsWithID lists the daemon's events of a kind (for one message ID, or
// all with id "").
func eventsWithID(d *daemon, kind, id string) []event {
	var out []event
	for _, e := range d.eventsOf(kind) {
		if id == "" || e.str("id") == id {
			out = append(out, e)
		}
	}
	return out
}

func remarshal(t *testing.T, from any, to any) {
	t.Helper()
	b, _ := json.Marshal(from)
	if err := json.Unmarshal(b, to); err != nil {
		t.Fatal(err)
	}
}

type historyJSON []struct {
	ID     string `json:"id"`
	Dir    string `json:"dir"`
	Text   string `json:"text"`
	Status string `json:"status"`
}

func chatHistory(t *testing.T, home, who string) historyJSON {
	t.Helper()
	r := chat(t, "history", who, "--home", home, "--json", "--limit", "1000")
	if r.code != 0 {
		t.Fatalf("chat history %s: exit %d: %s", who, r.code, r.stderr)
	}
	var h historyJSON
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("chat history --json: %v\n%s", err, r.stdout)
	}
	return h
}

var oneLineErr = regexp.MustCompile(`^chat: [^\n]+\n$`)

// TestOneShotCommands: `chat send` and `chat history` through a running
// daemon's control socket, and on their own.
func TestOneShotCommands(t *testing.T) {
	dir := shortDir(t)
	p := procContacts(t, dir)
	p.start(pairOpts{bFixedPort: true})
	a, b, aHome := p.a, p.b, p.aHome
	a.do("c", map[string]any{"cmd": "connect", "addr": b.addr()})

	// Through alice's daemon.
	r := chat(t, "send", "--home", aHome, "--to", "bob", "--wait", "20s", "via", "the", "control", "socket")
	if r.code != 0 || !regexp.MustCompile(`^delivered [0-9a-f]{32}\n$`).MatchString(r.stdout) {
		t.Fatalf("chat send via the daemon: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	id := strings.Fields(r.stdout)[1]
	msg := b.waitEvent("message", func(e event) bool { return e.str("event") == "message" })
	if msg.str("id") != id || msg.str("text") != "via the control socket" {
		t.Fatalf("bob got %v", msg)
	}
	// The daemon's own stdout shows the message it sent for the client.
	a.waitEvent("delivered", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == id })
	h := chatHistory(t, aHome, "bob")
	if len(h) != 1 || h[0].ID != id || h[0].Status != "delivered" || h[0].Dir != "out" {
		t.Fatalf("chat history through the daemon: %+v", h)
	}
	// Untrusted: exit 1, one line, through the daemon too.
	_, strangerID := procHome(t, dir, "stranger")
	r = chat(t, "send", "--home", aHome, "--to", strangerID, "psst")
	if r.code != 1 || !oneLineErr.MatchString(r.stderr) || !strings.Contains(r.stderr, "not in your contacts") {
		t.Fatalf("send to an untrusted peer via the daemon: exit %d, stderr %q", r.code, r.stderr)
	}
	r = chat(t, "history", "nobody", "--home", aHome, "--json")
	if r.code != 1 || !oneLineErr.MatchString(r.stderr) {
		t.Fatalf("history of an unknown contact: exit %d, stderr %q", r.code, r.stderr)
	}
	a.quit()

	// No daemon: chat send runs a node itself; bob is up, so it delivers.
	nodeFlags := []string{"--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"}
	r = chat(t, append([]string{"send", "--home", aHome, "--to", "bob", "--wait", "20s", "direct"}, nodeFlags...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "delivered ") {
		t.Fatalf("chat send without a daemon: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	b.waitEvent("direct message", func(e event) bool { return e.str("event") == "message" && e.str("text") == "direct" })
	b.quit()

	// Bob is down: queued, exit 3, one line on stderr. (The escape
	// sequence and the bidi override are for the text history below:
	// never printed raw.)
	r = chat(t, append([]string{"send", "--home", aHome, "--to", "bob", "--wait", "1s", "while you were out\x1b[2J\u202e"}, nodeFlags...)...)
	if r.code != 3 || !strings.HasPrefix(r.stdout, "queued ") || !oneLineErr.MatchString(r.stderr) || !strings.Contains(r.stderr, "exit status 3: queued") {
		t.Fatalf("chat send to an unreachable peer: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	queued := strings.TrimSuffix(strings.Fields(r.stdout)[1], ":")
	// Untrusted without a daemon: exit 1, one line.
	r = chat(t, append([]string{"send", "--home", aHome, "--to", strangerID, "psst"}, nodeFlags...)...)
	if r.code != 1 || !oneLineErr.MatchString(r.stderr) || !strings.Contains(r.stderr, "not in your contacts") {
		t.Fatalf("send to an untrusted peer: exit %d, stderr %q", r.code, r.stderr)
	}
	// History without a daemon reads the database itself.
	h = chatHistory(t, aHome, "bob")
	if len(h) != 3 || h[2].ID != queued || h[2].Status != "sending" || h[1].Text != "direct" {
		t.Fatalf("chat history without a daemon: %+v", h)
	}
	r = chat(t, "history", "bob", "--home", aHome)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "me (sending): while you were out") {
		t.Fatalf("chat history (text): %q", r.stdout)
	}
	if strings.ContainsAny(r.stdout, "\x1b\u202e") {
		t.Fatalf("chat history printed control characters from a message: %q", r.stdout)
	}

	// The queued message goes out with the next daemon run.
	b = startDaemon(t, "bob", p.bHome, p.bPort)
	a = startDaemon(t, "alice", aHome, 0)
	b.waitEvent("the queued message", func(e event) bool { return e.str("event") == "message" && e.str("id") == queued })
	a.waitEvent("its receipt", func(e event) bool { return e.str("event") == "delivered" && e.str("id") == queued })
	a.term()
	b.term()
}
