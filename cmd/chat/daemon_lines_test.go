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
