package node

import (
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Logs longer than a frame (PROTOCOL §14.5, "A log longer than a
// frame"). A group-change frame carries at most e2e.MaxGroupChanges
// changes, and a frame's changes must each find their parents. A member
// added to a group whose log is longer is sent the whole log, in frames
// of the create and the next changes, oldest first (logFrames); the
// frames before the last one, which holds its add, are the log of a
// group it is not in yet, which receive does not keep. So it is held
// here, in memory, for the next frame to build on.
//
// Only from a peer we may message (a contact, or vouched for by a CA we
// trust): each frame a log grows by costs a fold per change over the
// whole log, and a stranger could otherwise make us fold ever longer
// logs of groups of its own (one frame at a time, as before, is all a
// stranger gets: receive starts such a log anew from each frame). At
// most maxPartialLogs in all and maxPartialPerSender from one peer, the
// oldest making way, and each for at most partialLogTTL after its last
// frame.

const (
	maxPartialLogs      = 8
	maxPartialPerSender = 2
	partialLogTTL       = 10 * time.Minute
	// frameChangeBytes bounds the changes of a frame that distribute
	// splits a long log into, besides their count, so that a frame fits
	// a mailbox envelope (mailbox.MaxEnvelope, 96 KiB) with room for its
	// framing and seal: a change with a long name is about 500 bytes.
	frameChangeBytes = 64 << 10
)

// partialLogs holds the logs of groups new to us that we are not (yet)
// a member of, from the frames of a long log received so far. A leaf
// lock: receive takes a log before Groups.mu and puts it back after.
type partialLogs struct {
	mu   sync.Mutex
	logs map[group.ID]partialLog
}

type partialLog struct {
	l    *group.Log
	from peer.ID
	at   time.Time // the last frame's arrival
}

func newPartialLogs() *partialLogs {
	return &partialLogs{logs: map[group.ID]partialLog{}}
}

// take returns the log held for group id, if any and not expired at now,
// and forgets it: the caller puts it back (put) if it is still partial.
func (pl *partialLogs) take(id group.ID, now time.Time) *group.Log {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	p, ok := pl.logs[id]
	delete(pl.logs, id)
	if !ok || now.Sub(p.at) > partialLogTTL {
		return nil
	}
	return p.l
}

// put holds l, the log of group id as far as from's frames went, making
// way for it within the bounds.
func (pl *partialLogs) put(id group.ID, from peer.ID, l *group.Log, now time.Time) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for k, p := range pl.logs {
		if now.Sub(p.at) > partialLogTTL {
			delete(pl.logs, k)
		}
	}
	delete(pl.logs, id)
	for pl.count(from) >= maxPartialPerSender {
		pl.dropOldest(from)
	}
	for len(pl.logs) >= maxPartialLogs {
		pl.dropOldest("")
	}
	pl.logs[id] = partialLog{l: l, from: from, at: now}
}

// count is how many logs are held from p. Callers hold mu.
func (pl *partialLogs) count(p peer.ID) int {
	n := 0
	for _, x := range pl.logs {
		if x.from == p {
			n++
		}
	}
	return n
}

// dropOldest forgets the log held longest since its last frame, of those
// from p (any peer's if p is empty). Callers hold mu.
func (pl *partialLogs) dropOldest(p peer.ID) {
	var (
		oldest group.ID
		at     time.Time
		found  bool
	)
	for k, x := range pl.logs {
		if (p == "" || x.from == p) && (!found || x.at.Before(at)) {
			oldest, at, found = k, x.at, true
		}
	}
	if found {
		delete(pl.logs, oldest)
	}
}

// logFrames splits a log (the create first, each change after its
// parents) into the frames that carry all of it: each the create and
// the next changes, at most e2e.MaxGroupChanges changes and
// frameChangeBytes of them in all, oldest first. A log that fits one
// frame is one frame.
func logFrames(changes [][]byte) [][][]byte {
	if len(changes) == 0 {
		return nil
	}
	var frames [][][]byte
	create, rest := changes[0], changes[1:]
	for first := true; first || len(rest) > 0; first = false {
		f := [][]byte{create}
		size := len(create)
		for len(rest) > 0 && roomFor(len(f), size, len(rest[0])) {
			f = append(f, rest[0])
			size += len(rest[0])
			rest = rest[1:]
		}
		frames = append(frames, f)
	}
	return frames
}

// roomFor says whether a frame of n changes (the create among them) and
// size bytes takes one more of next bytes: at most e2e.MaxGroupChanges
// changes, and frameChangeBytes of them unless it would hold the create
// alone.
func roomFor(n, size, next int) bool {
	return n < e2e.MaxGroupChanges && (n == 1 || size+next <= frameChangeBytes)
}

// newestFrame is the frame a member who holds the log up to recently is
// sent when the log is longer than one: the create and the newest
// changes, within the same bounds as logFrames.
func newestFrame(changes [][]byte) [][]byte {
	if len(changes) == 0 {
		return nil
	}
	create, size, from := changes[0], len(changes[0]), len(changes)
	for from > 1 && roomFor(len(changes)-from+1, size, len(changes[from-1])) {
		from--
		size += len(changes[from])
	}
	return append([][]byte{create}, changes[from:]...)
}
