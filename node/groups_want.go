package node

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Asking for changes one lacks (PROTOCOL §14.5, "Changes one lacks"). A
// member whose log holds changes it cannot place (their parents never
// came: it missed frames while restored from an old backup, a long log's
// frames came too far out of order, a log held between frames was pushed
// out) asks the peer whose frame brought them with a group-want frame,
// naming the missing parents; that peer, if the asker is a member of the
// group as it holds it and it has one of them, sends the asker the whole
// log, in frames oldest first, as to a member just added. Both ends are
// bounded: one want a group every wantEvery, one answer to a member of a
// group every wantEvery, and at most maxWantsTracked of either
// remembered (past it, a new one waits for the oldest to age out).

const (
	wantEvery       = 30 * time.Second
	maxWantsTracked = 1024
)

// errWantTooSoon: a group-want within wantEvery of the last one
// answered for that member.
var errWantTooSoon = errors.New("asked for this group's changes too recently")

// wants is the groups' part that asks for changes and answers such asks
// (Groups.wants): it remembers when each group was last asked for and
// each member of a group last answered. A leaf lock.
type wants struct {
	g *Groups

	mu       sync.Mutex
	asked    map[wantKey]time.Time // by group alone (p empty)
	answered map[wantKey]time.Time
}

type wantKey struct {
	g group.ID
	p peer.ID
}

func newWants(g *Groups) *wants {
	return &wants{g: g, asked: map[wantKey]time.Time{}, answered: map[wantKey]time.Time{}}
}

// due records now for k in m (asked or answered) and reports whether the
// last was at least wantEvery before (or never), within the bound on
// what is remembered.
func (ws *wants) due(m map[wantKey]time.Time, k wantKey, now time.Time) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if last, ok := m[k]; ok && now.Sub(last) < wantEvery {
		return false
	}
	if len(m) >= maxWantsTracked {
		for x, at := range m {
			if now.Sub(at) >= wantEvery {
				delete(m, x)
			}
		}
		if len(m) >= maxWantsTracked {
			return false
		}
	}
	m[k] = now
	return true
}

// ask sends p a group-want for the changes of group id that our log
// lacks (missing: parents of changes it holds), unless the group was
// asked for within wantEvery.
func (ws *wants) ask(id group.ID, p peer.ID, missing []group.Hash) {
	g := ws.g
	if len(missing) == 0 || g.sendSealed == nil || !ws.due(ws.asked, wantKey{g: id}, g.cfg.Now()) {
		return
	}
	w := e2e.GroupWant{Group: id}
	for _, h := range missing[:min(len(missing), e2e.MaxGroupWant)] {
		w.Hashes = append(w.Hashes, h)
	}
	payload, err := w.Marshal()
	if err == nil {
		var pt []byte
		if pt, err = innerFrame(e2e.FrameGroupWant, payload); err == nil {
			err = g.sendSealed(p, pt)
		}
	}
	if err != nil {
		g.log.Info("ask for a group's missing changes", "group", id.Short(), "peer", p, "err", err)
		return
	}
	g.log.Info("asked for a group's missing changes", "group", id.Short(), "peer", p, "changes", len(w.Hashes))
}

// answer sends p the whole log of the group it asked for (w), in frames
// oldest first, if p is a member of it as we hold it and we have one of
// the changes it names. A want that is not answered changes nothing, and
// is only logged: the asker asks again with the next frame it cannot
// place.
func (ws *wants) answer(p peer.ID, w e2e.GroupWant) {
	g, id := ws.g, group.ID(w.Group)
	changes, err := ws.mayAnswer(id, p, w)
	if err != nil {
		g.log.Info("a request for a group's changes was not answered", "group", id.Short(), "peer", p, "err", err)
		return
	}
	if err := g.queueChanges(id, logFrames(changes), []peer.ID{p}); err != nil {
		g.emitError(p, fmt.Errorf("send group %x's changes to %s, who asked for them: %w", id[:4], identity.ShortID(p), err))
	}
}

// mayAnswer returns the log to send p for its want w for group id, or
// why it is not answered.
func (ws *wants) mayAnswer(id group.ID, p peer.ID, w e2e.GroupWant) ([][]byte, error) {
	g := ws.g
	g.mu.Lock()
	l, ok := g.logs[id]
	var (
		member, has bool
		changes     [][]byte
	)
	if ok {
		member = l.IsMember(p)
		has = slices.ContainsFunc(w.Hashes, func(h [32]byte) bool { return l.Has(group.Hash(h)) })
	}
	if member && has {
		changes = l.Changes()
	}
	g.mu.Unlock()
	switch {
	case !ok:
		return nil, ErrUnknownGroup
	case !member:
		return nil, fmt.Errorf("%w: %s", group.ErrNotMember, identity.ShortID(p))
	case !has:
		return nil, errors.New("none of the changes asked for is in our log")
	case !ws.due(ws.answered, wantKey{id, p}, g.cfg.Now()):
		return nil, errWantTooSoon
	}
	return changes, nil
}

// commitGroupWant moves the ratchet state on for a group-want from p; it
// is answered by groupDelivered, and never acknowledged (nothing of it is
// kept). Called with rk.mu held.
func (rk *ratchetKeys) commitGroupWant(w store.Ratchet, f *e2e.Frame, res *opened) error {
	gw, err := e2e.ParseGroupWant(f.Payload)
	if err != nil {
		return err
	}
	res.grp = &groupOpened{want: &gw}
	return rk.saveState(w, res)
}
