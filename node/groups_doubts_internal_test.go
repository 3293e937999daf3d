package node

import (
	"reflect"
	"slices"
	"testing"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMergeDoubts: what a log's state says of undone removals joins the
// doubts stored, one a member; a doubt goes once its target is no
// member, or once the log holds its removal and no longer names it, and
// stays while the log cannot tell (a restart: the removal is among the
// changes kept out, not stored). A decision (Kept) stays with it.
func TestMergeDoubts(t *testing.T) {
	carol, dan, bob := peer.ID("carol"), peer.ID("dan"), peer.ID("bob")
	r1, r2, r3 := group.Hash{1}, group.Hash{2}, group.Hash{3}
	doubt := func(h group.Hash, target peer.ID, kept bool) store.GroupDoubt {
		return store.GroupDoubt{Removal: h[:], Target: target, Author: bob, Kept: kept}
	}
	undone := func(h group.Hash, target peer.ID) group.Undone {
		return group.Undone{Removal: h, Target: target, Author: bob}
	}
	members := []peer.ID{"alice", carol, dan}
	for _, tc := range []struct {
		name    string
		stored  []store.GroupDoubt
		undone  []group.Undone
		members []peer.ID
		held    []group.Hash
		want    []store.GroupDoubt
		changed bool
	}{
		{"a new one", nil, []group.Undone{undone(r1, carol)}, members, []group.Hash{r1},
			[]store.GroupDoubt{doubt(r1, carol, false)}, true},
		{"named again", []store.GroupDoubt{doubt(r1, carol, true)}, []group.Undone{undone(r1, carol)}, members, []group.Hash{r1},
			[]store.GroupDoubt{doubt(r1, carol, true)}, false},
		{"another of the same member", []store.GroupDoubt{doubt(r1, carol, true)}, []group.Undone{undone(r1, carol), undone(r2, carol)}, members, []group.Hash{r1, r2},
			[]store.GroupDoubt{doubt(r1, carol, true)}, false},
		{"one of another member", []store.GroupDoubt{doubt(r1, carol, false)}, []group.Undone{undone(r1, carol), undone(r3, dan)}, members, []group.Hash{r1, r3},
			[]store.GroupDoubt{doubt(r1, carol, false), doubt(r3, dan, false)}, true},
		{"its target removed again", []store.GroupDoubt{doubt(r1, carol, false)}, nil, []peer.ID{"alice", dan}, []group.Hash{r1},
			nil, true},
		{"held, no longer named (added again since)", []store.GroupDoubt{doubt(r1, carol, false)}, nil, members, []group.Hash{r1},
			nil, true},
		{"not held (restarted): stays", []store.GroupDoubt{doubt(r1, carol, false)}, nil, members, nil,
			[]store.GroupDoubt{doubt(r1, carol, false)}, false},
		{"no removal's hash: goes", []store.GroupDoubt{{Removal: []byte("short"), Target: carol, Author: bob}}, nil, members, nil,
			nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := group.State{Members: tc.members}
			held := func(h group.Hash) bool { return slices.Contains(tc.held, h) }
			got, changed := mergeDoubts(slices.Clone(tc.stored), tc.undone, s, held)
			if changed != tc.changed || len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("mergeDoubts = %+v, %v; want %+v, %v", got, changed, tc.want, tc.changed)
			}
		})
	}
	// Pending: not kept, a member, not us.
	ds := []store.GroupDoubt{doubt(r1, carol, true), doubt(r3, dan, false), doubt(r2, "alice", false)}
	if got := pending(ds, group.State{Members: members}, "alice"); !reflect.DeepEqual(got, []group.Undone{undone(r3, dan)}) {
		t.Errorf("pending = %v, want dan's only", got)
	}
}
