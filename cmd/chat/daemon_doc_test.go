package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/certchat/certchat/store"
)

// docs/DAEMON.md is the one description of the daemon's JSON protocol.
// These tests fail when it, the tables daemonCommands and daemonEvents,
// the code that writes the lines, and `chat daemon --help` disagree.

const daemonDoc = "../../docs/DAEMON.md"

// docTable returns the rows of the first table under the heading "## "+
// section: each row's first cell, without its backquotes, and the row.
func docTable(t *testing.T, doc, section string) (names []string, rows map[string]string) {
	t.Helper()
	_, after, ok := strings.Cut(doc, "\n## "+section+"\n")
	if !ok {
		t.Fatalf("%s has no section %q", daemonDoc, section)
	}
	if next := strings.Index(after, "\n## "); next >= 0 {
		after = after[:next]
	}
	rows = map[string]string{}
	for line := range strings.Lines(after) {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		names = append(names, name)
		rows[name] = line
	}
	if len(names) == 0 {
		t.Fatalf("%s: no table rows under %q", daemonDoc, section)
	}
	return names, rows
}

// jsonFields are the JSON names of a struct's fields.
func jsonFields(v any) []string {
	var names []string
	typ := reflect.TypeOf(v)
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}

func TestDaemonDocAgreesWithCode(t *testing.T) {
	b, err := os.ReadFile(daemonDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	cmds, cmdRows := docTable(t, doc, "Commands")
	if !slices.Equal(cmds, daemonCommands) {
		t.Errorf("%s lists the commands %q; the code answers %q", daemonDoc, cmds, daemonCommands)
	}
	var commands string
	for _, row := range cmdRows {
		commands += row
	}
	for _, f := range jsonFields(request{}) {
		if f != "cmd" && f != "ref" && !strings.Contains(commands, "`"+f+"`") {
			t.Errorf("%s: no command names the field %q", daemonDoc, f)
		}
	}

	events, eventRows := docTable(t, doc, "Events")
	if !slices.Equal(events, daemonEvents) {
		t.Errorf("%s lists the events %q; the code writes %q", daemonDoc, events, daemonEvents)
	}
	// The type each event kind is written as.
	types := map[string]any{
		"listening": evListening{}, "peer": evPeer{}, "message": evMessage{},
		"accepted": evStatus{}, "sent": evStatus{}, "queued": evStatus{}, "delivered": evStatus{}, "failed": evStatus{},
		"ok": evOK{}, "history": evHistory{}, "id": evID{}, "error": evError{},
		"lan": evLAN{}, "invite": evInvite{},
		"seen": evStatus{}, "edited": evEdited{}, "deleted": evDeleted{}, "reaction": evReaction{}, "typing": evTyping{},
		"file_offer": evFileOffer{}, "file_progress": evFileProgress{}, "file_done": evFileDone{}, "file_failed": evFileFailed{}, "file": evFile{},
		"group": evGroup{},
	}
	for _, kind := range daemonEvents {
		v, ok := types[kind]
		if !ok {
			t.Errorf("event %q: add its type to this test", kind)
			continue
		}
		row := eventRows[kind]
		for _, f := range jsonFields(v) {
			_, status := v.(evStatus)
			switch {
			case f == "event":
				continue
			case status && kind == "accepted" && f == "error":
				continue // an answer to send that succeeded
			case status && kind != "accepted" && f == "ref":
				continue // sent, queued, ... are node events, never answers
			}
			if row != "" && !strings.Contains(row, "`"+f+"`") {
				t.Errorf("%s: the row of %q does not name its field %q", daemonDoc, kind, f)
			}
		}
	}
	_, elements, ok := strings.Cut(doc, "Each element of `messages`")
	if !ok {
		t.Fatalf("%s does not describe the elements of history's messages", daemonDoc)
	}
	elements, _, _ = strings.Cut(elements, "\n\n")
	for _, f := range jsonFields(jsonMessage{}) {
		if !strings.Contains(elements, "`"+f+"`") {
			t.Errorf("%s: history's messages: field %q is not described", daemonDoc, f)
		}
	}
}

// TestDaemonTablesAgreeWithCode checks daemonCommands and daemonEvents
// against the source: the cases of handle's switch, the literal events
// written, and the outgoing statuses of node messages.
func TestDaemonTablesAgreeWithCode(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var cases, literals []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if n.Name.Name == "handle" && n.Recv != nil {
					cases = append(cases, switchCases(n.Body, "c.Cmd")...)
				}
			case *ast.KeyValueExpr:
				if key, ok := n.Key.(*ast.Ident); ok && key.Name == "Event" {
					if lit, ok := n.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, _ := strconv.Unquote(lit.Value)
						literals = append(literals, s)
					}
				}
			}
			return true
		})
	}
	slices.Sort(cases)
	if want := slices.Sorted(slices.Values(daemonCommands)); !slices.Equal(cases, want) {
		t.Errorf("handle answers the commands %q; daemonCommands says %q", cases, want)
	}
	written := map[string]bool{}
	for _, s := range literals {
		written[s] = true
		if !slices.Contains(daemonEvents, s) {
			t.Errorf("the code writes event %q, which daemonEvents lacks", s)
		}
	}
	for _, s := range []store.Status{store.StatusSent, store.StatusQueued, store.StatusDelivered, store.StatusFailed} {
		written[string(s)] = true
		if !slices.Contains(daemonEvents, string(s)) {
			t.Errorf("status %q is written as an event; daemonEvents lacks it", s)
		}
	}
	for _, s := range []store.Status{store.StatusSending, store.StatusReceived} {
		if slices.Contains(daemonEvents, string(s)) {
			t.Errorf("daemonEvents has %q, which is never an event", s)
		}
	}
	for _, s := range daemonEvents {
		if !written[s] {
			t.Errorf("daemonEvents has %q, which the code never writes", s)
		}
	}
}

// switchCases returns the string cases of the switch statements on tag.
func switchCases(body *ast.BlockStmt, tag string) []string {
	var out []string
	ast.Inspect(body, func(n ast.Node) bool {
		sw, ok := n.(*ast.SwitchStmt)
		if !ok || sw.Tag == nil || exprString(sw.Tag) != tag {
			return true
		}
		for _, st := range sw.Body.List {
			for _, e := range st.(*ast.CaseClause).List {
				if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
			}
		}
		return true
	})
	return out
}

// exprString prints a selector expression such as c.Cmd.
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	}
	return ""
}

func TestDaemonHelpNamesEveryCommand(t *testing.T) {
	var help string
	for _, c := range nodeCommands() {
		if c.name == "daemon" {
			help = c.help
		}
	}
	for _, cmd := range daemonCommands {
		if !strings.Contains(help, `{"cmd":"`+cmd+`"`) {
			t.Errorf("chat daemon --help does not show the command %q", cmd)
		}
	}
	if !strings.Contains(help, "docs/DAEMON.md") {
		t.Error("chat daemon --help does not point to docs/DAEMON.md")
	}
}
