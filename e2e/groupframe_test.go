package e2e_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/certchat/certchat/e2e"
)

func TestGroupChangesRoundTrip(t *testing.T) {
	g := e2e.GroupChanges{ID: e2e.MessageID{1}, Group: [32]byte{2}, Changes: [][]byte{[]byte("create"), []byte("add")}}
	b, err := g.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2e.ParseGroupChanges(b)
	if err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, in := range map[string][]byte{
		"short":      b[:40],
		"no changes": append(bytes.Clone(b[:48]), 0, 0),
		"cut":        b[:len(b)-1],
		"trailing":   append(bytes.Clone(b), 0),
		"empty one":  append(bytes.Clone(b[:48]), 0, 1, 0, 0),
	} {
		if _, err := e2e.ParseGroupChanges(in); !errors.Is(err, e2e.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (e2e.GroupChanges{}).Marshal(); err == nil {
		t.Error("Marshal wrote a frame without changes")
	}
}

// FuzzParseGroupChanges: what parses marshals back to the same bytes.
func FuzzParseGroupChanges(f *testing.F) {
	g := e2e.GroupChanges{ID: e2e.MessageID{1}, Group: [32]byte{2}, Changes: [][]byte{[]byte("create"), []byte("add")}}
	b, _ := g.Marshal()
	f.Add(b)
	f.Add(b[:50])
	fuzzRoundTrip(f, e2e.ParseGroupChanges, e2e.GroupChanges.Marshal)
}

func TestGroupWantRoundTrip(t *testing.T) {
	w := e2e.GroupWant{Group: [32]byte{2}, Hashes: [][32]byte{{3}, {4}}}
	b, err := w.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2e.ParseGroupWant(b)
	if err != nil || !reflect.DeepEqual(got, w) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, in := range map[string][]byte{
		"short":     b[:32],
		"no hashes": append(bytes.Clone(b[:32]), 0),
		"cut":       b[:len(b)-1],
		"trailing":  append(bytes.Clone(b), 0),
		"more said": append(bytes.Clone(b[:32]), 3),
	} {
		if _, err := e2e.ParseGroupWant(in); !errors.Is(err, e2e.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	for _, n := range []int{0, e2e.MaxGroupWant + 1} {
		if _, err := (e2e.GroupWant{Hashes: make([][32]byte, n)}).Marshal(); err == nil {
			t.Errorf("Marshal wrote a frame of %d hashes", n)
		}
	}
}

// FuzzParseGroupWant: what parses marshals back to the same bytes.
func FuzzParseGroupWant(f *testing.F) {
	b, _ := e2e.GroupWant{Group: [32]byte{2}, Hashes: [][32]byte{{3}, {4}}}.Marshal()
	f.Add(b)
	f.Add(b[:40])
	fuzzRoundTrip(f, e2e.ParseGroupWant, e2e.GroupWant.Marshal)
}
