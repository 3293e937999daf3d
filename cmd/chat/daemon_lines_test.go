package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// A daemon line with anything after its object is refused whole (nothing
// of it runs); blank lines are ignored, unanswered.
func TestDaemonLines(t *testing.T) {
	var out bytes.Buffer
	h := &handler{} // no node: nothing below may reach it
	in := "\n   \n\t\r\n" +
		`{"cmd":"quit","ref":"a"} {"cmd":"quit","ref":"b"}` + "\n" +
		`{"cmd":"quit","ref":"c"}}` + "\n" +
		`{"cmd":"quit","ref":"d"} x` + "\n"
	h.serve(strings.NewReader(in), &lineWriter{w: &out}, false)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d answers, want 3 (one per line with objects):\n%s", len(lines), out.String())
	}
	for i, l := range lines {
		var ev evError
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Event != "error" || !strings.Contains(ev.Error, "more than one JSON object") {
			t.Errorf("answer %d: %s", i, l)
		}
		if want := string(rune('a' + []int{0, 2, 3}[i])); ev.Ref != want {
			t.Errorf("answer %d has ref %q, want %q", i, ev.Ref, want)
		}
	}
}

// trust and block take a peer ID only (a decision about a key names the
// key); given a name, the error says so and where the IDs are, rather
// than only that the name fails to parse as a CID.
func TestDaemonTrustByNameSaysPeerID(t *testing.T) {
	var out bytes.Buffer
	h := &handler{} // no node: the refusal comes before it
	in := `{"cmd":"trust","peer":"carol","ref":"t"}` + "\n" + `{"cmd":"block","peer":"carol","ref":"b"}` + "\n"
	h.serve(strings.NewReader(in), &lineWriter{w: &out}, false)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d answers, want 2:\n%s", len(lines), out.String())
	}
	for i, cmd := range []string{"trust", "block"} {
		var ev evError
		if err := json.Unmarshal([]byte(lines[i]), &ev); err != nil || ev.Event != "error" ||
			!strings.Contains(ev.Error, cmd+" takes a peer ID") || !strings.Contains(ev.Error, "`peers` lists them") {
			t.Errorf("%s by name: %s", cmd, lines[i])
		}
	}
}
