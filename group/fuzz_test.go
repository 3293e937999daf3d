package group_test

import (
	"bytes"
	"testing"

	"github.com/certchat/certchat/group"
)

// FuzzParse: any bytes give a change or an error, never a panic; a change
// that parses encodes back to the same bytes (one encoding per change,
// so its hash names it), and its signature was checked.
func FuzzParse(f *testing.F) {
	p := people(f, "ann", "ben", "cat")
	create, l := newGroup(f, p["ann"], p["ben"])
	f.Add(create.Bytes())
	for _, c := range []struct {
		op    group.Op
		about person
		name  string
	}{{group.OpAdd, p["cat"], ""}, {group.OpRename, person{}, "a name"}, {group.OpAdmin, p["ben"], ""}, {group.OpLeave, person{}, ""}} {
		ch, err := l.Propose(p["ann"].key, c.op, c.about.id, c.name, t0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ch.Bytes())
	}
	f.Add([]byte{})
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := group.Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Bytes(), b) {
			t.Fatalf("parsed change re-encodes differently")
		}
		if again, err := group.Parse(c.Bytes()); err != nil || again.Hash() != c.Hash() {
			t.Fatalf("a parsed change does not parse again to the same hash: %v", err)
		}
	})
}
