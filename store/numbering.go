package store

import (
	"math/rand/v2"
	"slices"
)

// Gaps. Every text carries the sender's numbering of its messages to us:
// a stream (random, fixed for the conversation on the sender's side) and a
// number from 1 (docs/PROTOCOL.md §10). The receiver keeps, per
// conversation, a window over the current stream: the lowest number not
// yet received and the numbers received above it. From it each arriving
// message learns whether it is late (later messages arrived first) and how
// many earlier messages are still missing. Envelopes cannot tell this: a
// message resent after its first envelope was lost is sealed anew, so the
// ratchet counts a gap that never closes.

// maxTrackedGap bounds the window: a message more than this far ahead of
// the lowest missing number starts the window again, so a peer cannot make
// us keep an unbounded list.
const maxTrackedGap = 1000

// maxNumber: larger numbers (no sender writes 2^62 messages) are treated
// as unnumbered, so the window never overflows.
const maxNumber = 1 << 62

// recvWindow is what a conversation knows of the peer's numbering.
type recvWindow struct {
	Stream uint64   `json:"stream,omitempty"`
	Next   uint64   `json:"next,omitempty"`  // lowest number not yet received
	Above  []uint64 `json:"above,omitempty"` // received numbers above Next, ascending
}

// add records the arrival of a new message (never a duplicate: those are
// dropped by ID first) numbered n in stream. It reports whether the message
// is late and how many earlier messages are missing after it.
//
// The first numbered message of a stream sets the start: earlier numbers
// count as received, because this device may be new to a conversation the
// peer has had for long (a restored key, a fresh home). A number below the
// start is late but fills no gap; a number already received under another
// message ID changes nothing.
func (w *recvWindow) add(stream, n uint64) (late bool, missing int) {
	switch {
	case n == 0 || stream == 0 || n > maxNumber:
		return false, w.missing()
	case stream != w.Stream || n > w.Next && n-w.Next > maxTrackedGap:
		*w = recvWindow{Stream: stream, Next: n + 1}
		return false, 0
	case n < w.Next:
		return true, w.missing()
	case n == w.Next:
		late = len(w.Above) > 0
		w.Next++
		for len(w.Above) > 0 && w.Above[0] == w.Next {
			w.Above, w.Next = w.Above[1:], w.Next+1
		}
		if len(w.Above) == 0 {
			w.Above = nil
		}
		return late, w.missing()
	}
	if i, found := slices.BinarySearch(w.Above, n); !found {
		w.Above = slices.Insert(w.Above, i, n)
		late = i < len(w.Above)-1
	}
	return late, w.missing()
}

// missing counts the numbers between Next and the highest received that
// have not arrived.
func (w *recvWindow) missing() int {
	if len(w.Above) == 0 {
		return 0
	}
	return int(w.Above[len(w.Above)-1]-w.Next+1) - len(w.Above)
}

// number gives an outgoing message the next number of our stream (drawn
// on the conversation's first message), or records an incoming one's.
func (c *storedConv) number(m *Message) {
	if m.Direction == Outgoing {
		for c.Stream == 0 {
			c.Stream = rand.Uint64()
		}
		c.Sent++
		m.Stream, m.Number = c.Stream, c.Sent
		return
	}
	m.Late, m.Missing = c.Recv.add(m.Stream, m.Number)
	c.Missing = m.Missing
}
