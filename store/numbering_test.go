package store

import (
	"fmt"
	"testing"
)

// The receive window over a peer's numbering: each arrival in turn, with
// whether it is late and how many earlier messages are still missing.
func TestRecvWindow(t *testing.T) {
	type step struct {
		stream, n uint64
		late      bool
		missing   int
	}
	const s, s2 = 0xaaaa, 0xbbbb
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{s, 1, false, 0}, {s, 2, false, 0}, {s, 3, false, 0}}},
		{"first seen is the start", []step{{s, 57, false, 0}, {s, 58, false, 0}}},
		{"below the start is late, no gap", []step{{s, 5, false, 0}, {s, 3, true, 0}, {s, 6, false, 0}}},
		{"one gap closes", []step{{s, 1, false, 0}, {s, 3, false, 1}, {s, 2, true, 0}, {s, 4, false, 0}}},
		{"reordered (1,4,5,3,2)", []step{{s, 1, false, 0}, {s, 4, false, 2}, {s, 5, false, 2}, {s, 3, true, 1}, {s, 2, true, 0}}},
		{"two gaps", []step{{s, 1, false, 0}, {s, 3, false, 1}, {s, 6, false, 3}, {s, 5, true, 2}, {s, 2, true, 1}, {s, 4, true, 0}}},
		{"number again under a new id", []step{{s, 1, false, 0}, {s, 3, false, 1}, {s, 3, false, 1}, {s, 1, true, 1}}},
		{"unnumbered keeps the count", []step{{s, 1, false, 0}, {s, 3, false, 1}, {0, 0, false, 1}, {s, 0, false, 1}}},
		{"new stream starts again", []step{{s, 1, false, 0}, {s, 3, false, 1}, {s2, 1, false, 0}, {s2, 2, false, 0}, {s, 2, false, 0}}},
		{"largest tracked gap", []step{{s, 1, false, 0}, {s, 2 + maxTrackedGap, false, maxTrackedGap}, {s, 2, true, maxTrackedGap - 1}}},
		{"beyond it starts again", []step{{s, 1, false, 0}, {s, 3 + maxTrackedGap, false, 0}, {s, 2, true, 0}}},
		{"highest number", []step{{s, maxNumber - 1, false, 0}, {s, maxNumber, false, 0}, {s, 1, true, 0}}},
		{"absurd numbers ignored", []step{{s, 1, false, 0}, {s, 3, false, 1}, {s, maxNumber + 1, false, 1}, {s, 1<<64 - 1, false, 1}, {s, 2, true, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w recvWindow
			for i, st := range tc.steps {
				late, missing := w.add(st.stream, st.n)
				if late != st.late || missing != st.missing {
					t.Fatalf("step %d (%d in %x): late %v missing %d, want %v %d; window %+v",
						i, st.n, st.stream, late, missing, st.late, st.missing, w)
				}
				if len(w.Above) > maxTrackedGap {
					t.Fatalf("window holds %d numbers", len(w.Above))
				}
			}
		})
	}
}

// However numbers arrive, the window stays bounded and its count agrees
// with a plain set of what arrived.
func TestRecvWindowAgainstSet(t *testing.T) {
	for seed := range 50 {
		var w recvWindow
		got := map[uint64]bool{}
		start := uint64(0)
		x := uint64(seed)*2654435761 + 1
		for range 400 {
			x = x*6364136223846793005 + 1442695040888963407
			n := 1 + (x>>33)%300
			if got[n] {
				continue
			}
			_, missing := w.add(7, n)
			if start == 0 {
				start = n
			}
			got[n] = true
			hi := start
			for k := range got {
				hi = max(hi, k)
			}
			want := 0
			for k := start; k <= hi; k++ {
				if !got[k] {
					want++
				}
			}
			if missing != want {
				t.Fatalf("seed %d after %d: missing %d, want %d (%s)", seed, n, missing, want, fmt.Sprint(w))
			}
		}
	}
}
