package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// runIn runs the CLI in this process with empty stdin.
func runIn(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// Every command has help on stdout with exit 0, through all three spellings.
func TestEveryCommandHelp(t *testing.T) {
	for _, c := range commands() {
		if c.name == "" {
			continue
		}
		words := strings.Fields(c.name)
		for _, args := range [][]string{
			append(slices.Clone(words), "--help"),
			append(slices.Clone(words), "-h"),
			append([]string{"help"}, words...),
		} {
			code, out, errOut := runIn(t, args...)
			if code != 0 || errOut != "" {
				t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: chat "+c.name+" ") || !strings.Contains(out, c.summary) || !strings.Contains(out, "\nFlags:\n") {
				t.Errorf("%q: help is\n%s", args, out)
			}
		}
	}
	code, out, _ := runIn(t, "help")
	if code != 0 {
		t.Fatal(code)
	}
	for _, c := range commands() {
		if c.name != "" && !strings.Contains(out, "\n  "+c.name+" ") {
			t.Errorf("overview lacks %q", c.name)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"contacts"},
		{"trust"},
		{"ca"},
		{"cert"},
		{"contacts", "frobnicate"},
		{"--home", "/nonexistent", "frobnicate"},
		{"help", "frobnicate"},
		{"id", "--bogus"},
		{"id", "-json=maybe"},
		{"id", "extra"},
		{"init", "--name"},
		{"contacts", "add"},
		{"ca", "sign", "--days", "many", "x"},
		{"--bogus"},
	} {
		code, out, errOut := runIn(t, args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if out != "" {
			t.Errorf("%q: stdout %q", args, out)
		}
		if !strings.HasPrefix(errOut, "chat: ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: stderr is not one line: %q", args, errOut)
		}
	}
}

func TestFindCommand(t *testing.T) {
	cs := commands()
	for _, tc := range []struct {
		args []string
		name string // "-" for none
		rest []string
	}{
		{nil, "", nil},
		{[]string{"--home", "d"}, "", []string{"--home", "d"}},
		{[]string{"id"}, "id", nil},
		{[]string{"id", "--json"}, "id", []string{"--json"}},
		{[]string{"--home", "d", "id"}, "id", []string{"--home", "d"}},
		{[]string{"--home=d", "--passphrase-file", "p", "ca", "sign", "x.csr"}, "ca sign", []string{"--home=d", "--passphrase-file", "p", "x.csr"}},
		{[]string{"contacts", "add", "ID", "--name", "bob"}, "contacts add", []string{"ID", "--name", "bob"}},
		{[]string{"--name", "x"}, "", []string{"--name", "x"}},
		{[]string{"verify", "bob"}, "verify", []string{"bob"}},
		{[]string{"frobnicate"}, "-", nil},
		{[]string{"contacts"}, "-", nil},
		{[]string{"contacts", "frob"}, "-", nil},
	} {
		c, rest := findCommand(cs, tc.args)
		switch {
		case tc.name == "-":
			if c != nil {
				t.Errorf("%q: found %q", tc.args, c.name)
			}
		case c == nil:
			t.Errorf("%q: no command", tc.args)
		case c.name != tc.name || !slices.Equal(rest, tc.rest):
			t.Errorf("%q: %q %q, want %q %q", tc.args, c.name, rest, tc.name, tc.rest)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		name string
	}{
		{[]string{"a", "--name", "bob", "b"}, []string{"a", "b"}, "bob"},
		{[]string{"--name=bob", "a"}, []string{"a"}, "bob"},
		{[]string{"a", "--", "--name", "x"}, []string{"a", "--name", "x"}, ""},
		{[]string{"--", "-weird", "--name", "x"}, []string{"-weird", "--name", "x"}, ""},
		{[]string{"--name", "bob", "--", "--"}, []string{"--"}, "bob"},
		{[]string{"-"}, []string{"-"}, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		name := fs.String("name", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *name != tc.name {
			t.Errorf("%q: %q name=%q %v; want %q name=%q", tc.args, pos, *name, err, tc.pos, tc.name)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(discard)
	if _, err := parseInterspersed(fs, []string{"a", "--nope"}); err == nil {
		t.Error("unknown flag after a positional accepted")
	}
}

func TestReport(t *testing.T) {
	var b bytes.Buffer
	if code := report(&b, nil); code != 0 || b.Len() != 0 {
		t.Errorf("nil: %d %q", code, b.String())
	}
	b.Reset()
	if code := report(&b, usageErr("give %s", "X")); code != 2 || b.String() != "chat: give X\n" {
		t.Errorf("usage: %d %q", code, b.String())
	}
	b.Reset()
	if code := report(&b, errors.New("first\nsecond\t third")); code != 1 || b.String() != "chat: first second third\n" {
		t.Errorf("error: %d %q", code, b.String())
	}
}

func TestUntilText(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		-time.Second:           "EXPIRED",
		0:                      "0 days left",
		36 * time.Hour:         "1 day left",
		365 * 24 * time.Hour:   "365 days left",
		10 * 24 * time.Hour:    "10 days left",
		10*24*time.Hour - 1e9:  "9 days left",
		2*24*time.Hour + 1e9:   "2 days left",
		400 * 24 * time.Hour:   "400 days left",
		1000 * 24 * time.Hour:  "1000 days left",
		30*24*time.Hour + 3600: "30 days left",
	} {
		if got := untilText(now, now.Add(d)); got != want {
			t.Errorf("untilText(%v) = %q, want %q", d, got, want)
		}
	}
}

// `chat daemon --help` documents every command the daemon's handler
// accepts, and the handler's error for an unknown one lists them all. The
// commands are read from handle's switch, so a new one cannot be missed.
func TestDaemonHelpListsEveryCommand(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "daemon.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "handle" || fn.Recv == nil {
			return true
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			sw, ok := n.(*ast.SwitchStmt)
			if !ok {
				return true
			}
			if sel, ok := sw.Tag.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Cmd" {
				return true
			}
			for _, s := range sw.Body.List {
				for _, e := range s.(*ast.CaseClause).List {
					if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						name, _ := strconv.Unquote(lit.Value)
						cmds = append(cmds, name)
					}
				}
			}
			return false
		})
		return false
	})
	if len(cmds) < 8 {
		t.Fatalf("found only %q in handle's switch", cmds)
	}
	_, help, _ := runIn(t, "daemon", "--help")
	var unknown bytes.Buffer
	(&handler{}).handle([]byte(`{"cmd":"nope"}`), &lineWriter{w: &unknown})
	for _, c := range cmds {
		if !strings.Contains(help, `{"cmd":"`+c+`"`) {
			t.Errorf("chat daemon --help does not show the %q command", c)
		}
		if !regexp.MustCompile(`[(, ]` + c + `[,)]`).MatchString(unknown.String()) {
			t.Errorf("the unknown-command error does not list %q: %s", c, unknown.String())
		}
	}
}

func TestSafetyRows(t *testing.T) {
	number := "00001 00002 00003 00004 00005 00006 00007 00008 00009 00010 00011 00012"
	want := []string{
		"    00001 00002 00003 00004",
		"    00005 00006 00007 00008",
		"    00009 00010 00011 00012",
	}
	if got := safetyRows(number); !slices.Equal(got, want) {
		t.Errorf("safetyRows = %q, want %q", got, want)
	}
}

func TestPrintHistoryLine(t *testing.T) {
	var b bytes.Buffer
	ts := time.Date(2030, 1, 2, 3, 4, 5, 0, time.Local).UTC().Format(time.RFC3339Nano)
	printHistoryLine(&b, jsonMessage{Direction: "in", TS: ts, Text: "hello\nthere"}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "out", TS: ts, Text: "hi", Status: "queued"}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "in", TS: ts, Text: "x", Late: true}, "bob")
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.Local)
	later := func(d time.Duration) string { return at.Add(d).UTC().Format(time.RFC3339Nano) }
	printHistoryLine(&b, jsonMessage{Direction: "in", TS: ts, Stored: later(30 * time.Second), Text: "soon"}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "in", TS: ts, Stored: later(time.Hour), Text: "by mailbox"}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "in", TS: ts, Stored: later(48 * time.Hour), Text: "days later"}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "out", TS: ts, Text: "fixed", Status: "delivered", Seen: ts, Edited: ts,
		Reactions: []jsonReaction{{From: "12D3KooW", Emoji: "👍"}}}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "in", TS: ts, Deleted: true}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "out", TS: ts, Text: "yes", Status: "sent", Quote: "shall we?", QuoteFrom: "12D3KooW"}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "in", TS: ts, Text: "what?", QuoteFrom: "me"}, "bob")
	printHistoryLine(&b, jsonMessage{Direction: "out", TS: ts, Text: "to the group", Status: "sending", Delivered: 1, Members: 2}, "")
	printHistoryLine(&b, jsonMessage{Direction: "out", TS: ts, Text: "all have it", Status: "sending", Delivered: 2, Members: 2}, "")
	want := "2030-01-02 03:04  bob: hello\n" +
		"                  there\n" +
		"2030-01-02 03:04  me (queued): hi\n" +
		"2030-01-02 03:04  bob (late): x\n" +
		"2030-01-02 03:04  bob: soon\n" +
		"2030-01-02 03:04  bob (arrived 04:04): by mailbox\n" +
		"2030-01-02 03:04  bob (arrived 2030-01-04 03:04): days later\n" +
		"2030-01-02 03:04  me (seen): fixed (edited)  [👍 bob]\n" +
		"2030-01-02 03:04  bob: [message deleted]\n" +
		"                  ↪ bob: shall we?\n" +
		"2030-01-02 03:04  me (sent): yes\n" +
		"                  ↪ me: [message deleted]\n" +
		"2030-01-02 03:04  bob: what?\n" +
		"2030-01-02 03:04  me (delivered to 1 of 2): to the group\n" +
		"2030-01-02 03:04  me (delivered to all 2): all have it\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// Groups without a command list what they have; there is no double space
// where a command name is empty.
func TestGroupAndStartUsage(t *testing.T) {
	for group, subs := range map[string]string{
		"contacts": "add, block, list, remove, rename, unblock, verify",
		"trust":    "add-ca, list, remove-ca",
		"ca":       "init, sign",
		"cert":     "import",
	} {
		code, out, errOut := runIn(t, group)
		want := "chat: " + group + " needs a command: " + subs + " (see `chat help " + group + "`)\n"
		if code != 2 || out != "" || errOut != want {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %q", group, code, out, errOut, want)
		}
		code, out, errOut = runIn(t, group, "--help")
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "Usage: chat "+group+" COMMAND") {
			t.Errorf("%s --help: exit %d, stderr %q, stdout %q", group, code, errOut, out)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "chat: flag provided but not defined: -bogus (see `chat --help`)\n"},
		{[]string{"--home"}, "chat: flag needs an argument: -home (see `chat --help`)\n"},
		{[]string{"--no-mdns", "extra"}, "chat: chat takes 0 argument(s): " + startCommand().args + "\n"},
	} {
		if code, _, errOut := runIn(t, tc.args...); code != 2 || errOut != tc.want {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
}

// forceQuitAfter waits for the window to close, or cleans up and exits.
// The exit itself is seen from outside: a helper process that never
// closes exits with status 1 after the grace time.
func TestForceQuitAfter(t *testing.T) {
	if os.Getenv("CERTCHAT_FORCEQUIT_CHILD") == "1" {
		forceQuitAfter(make(chan struct{}), 50*time.Millisecond, func() { fmt.Println("cleaned up") })
		fmt.Println("not reached")
		return
	}
	closed := make(chan struct{})
	close(closed)
	forceQuitAfter(closed, time.Hour, func() { t.Fatal("cleanup ran although the window closed") })

	cmd := exec.Command(os.Args[0], "-test.run=^TestForceQuitAfter$")
	cmd.Env = append(os.Environ(), "CERTCHAT_FORCEQUIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "cleaned up") || strings.Contains(string(out), "not reached") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// The daemon's event stream leaves out a peer event that repeats the last
// one about the same peer, and keeps every change.
func TestEventStreamDropsRepeatedPeers(t *testing.T) {
	var b bytes.Buffer
	es := newEventStream(&lineWriter{w: &b}, func(store.Message) string { return "" }, "")
	a, c := randomPeerID(t), randomPeerID(t)
	peerEv := func(p peer.ID, path node.Path, online bool) node.Event {
		return node.Event{Kind: node.EventPeer, Peer: &node.PeerInfo{ID: p, Name: "x", Trust: identity.StateTOFU, Path: path, Online: online}}
	}
	for _, e := range []node.Event{
		peerEv(a, node.PathLAN, true),
		peerEv(a, node.PathLAN, true), // repeat: dropped
		peerEv(c, node.PathLAN, true), // another peer
		peerEv(a, node.PathRelay, true),
		peerEv(a, node.PathLAN, true), // a change back is a change
		peerEv(a, node.PathLAN, true), // repeat: dropped
	} {
		es.event(e)
	}
	var paths []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var ev evPeer
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, ev.PeerID[len(ev.PeerID)-4:]+":"+ev.Path)
	}
	sa, sc := a.String()[len(a.String())-4:], c.String()[len(c.String())-4:]
	want := []string{sa + ":lan", sc + ":lan", sa + ":relay", sa + ":lan"}
	if !slices.Equal(paths, want) {
		t.Fatalf("lines %q, want %q", paths, want)
	}
}

func randomPeerID(t *testing.T) peer.ID {
	t.Helper()
	id, err := identity.Generate("p", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return id.PeerID()
}

// A daemon command without a field it needs is refused by name.
func TestMissingField(t *testing.T) {
	for _, tc := range []struct {
		req  request
		want string
	}{
		{request{Cmd: "send"}, "to"},
		{request{Cmd: "send", To: "bob"}, "text"},
		{request{Cmd: "send", To: "bob", Text: "hi"}, ""},
		{request{Cmd: "connect"}, "addr"},
		{request{Cmd: "trust"}, "peer"},
		{request{Cmd: "block"}, "peer"},
		{request{Cmd: "history"}, "peer"},
		{request{Cmd: "history", Peer: "bob"}, ""},
		{request{Cmd: "peers"}, ""},
		{request{Cmd: "id"}, ""},
		{request{Cmd: "quit"}, ""},
		{request{Cmd: "group_rename"}, "group"},
		{request{Cmd: "group_rename", Group: "team"}, "name"},
		{request{Cmd: "group_rename", Group: "team", Name: "crew"}, ""},
		{request{Cmd: "group_keep", Group: "team"}, "peer"},
		{request{Cmd: "group_keep", Peer: "carol"}, "group"},
		{request{Cmd: "group_keep", Group: "team", Peer: "carol"}, ""},
	} {
		if got := missingField(tc.req); got != tc.want {
			t.Errorf("missingField(%+v) = %q, want %q", tc.req, got, tc.want)
		}
	}
}

// /seen and /typing are remembered in config.json; absent, both are on.
func TestIndicationsConfig(t *testing.T) {
	h := identity.Home{Dir: t.TempDir()}
	c, err := loadConfig(h)
	if err != nil || !on(c.ReadMarkers) || !on(c.Typing) {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if err := saveIndications(h, e2e.Settings{ReadMarkers: false, Typing: true}); err != nil {
		t.Fatal(err)
	}
	if c, err = loadConfig(h); err != nil || on(c.ReadMarkers) || !on(c.Typing) {
		t.Fatalf("after /seen off: %+v, %v", c, err)
	}
}
