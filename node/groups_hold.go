package node

import (
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

// Messages from members we do not know of yet (PROTOCOL §14.5, "Held
// messages"). A member just added may write before the add reaches us:
// the add's author sends it to every member, but on another path. Such a
// message is held in memory, unacknowledged, bounded per group and in
// all and for a time, and stored (then acknowledged) once a change we
// receive makes its sender a member. Until then the sender keeps it in its
// outbox and tries again, so a crash here loses nothing, and a retry of a
// message still held is the same message, held once. It is dropped, and
// then acknowledged so that the sender stops trying, with the reason,
// when the time runs
// out, when the changes that came name the sender and still do not admit
// it (removed, or its add lost), or when we leave the group. A sender
// some change names and who is not a member now (removed, left) is not
// held: its message is refused at once.

// Bounds of the hold.
const (
	// DefaultGroupHoldTTL is how long a message from a peer not yet known
	// as a member waits for the change that adds it.
	DefaultGroupHoldTTL = 10 * time.Minute
	maxHeldPerGroup     = 64
	maxHeld             = 512
	maxHeldBytes        = 8 << 20
)

// errNotYetMember: the sender is named by no change we hold: it may be a
// member just added whose add has not reached us.
var errNotYetMember = fmt.Errorf("%w yet", group.ErrNotMember)

// holds is the groups' part that keeps the held messages (Groups.held):
// its lock guards them, and is never held while calling other parts.
// Its methods run on session read loops and mailbox loops (hold), on
// whoever applies a group's changes (release) and on its sweep goroutine.
type holds struct {
	*core
	groups *Groups
	// ack sends the receipt for a message from p once it is decided:
	// stored, or dropped for good (set by Node).
	ack func(p peer.ID, id e2e.MessageID)
	// keepOK says whether a message in a group may be kept now, and tell
	// reports its refusal once (strangers.keepInGroup and tell, set by
	// Node): a message released from the hold counts against the bound
	// on a group made by a stranger as any other does.
	keepOK func(store.GroupID) error
	tell   func(peer.ID, error)

	mu       sync.Mutex
	held     map[group.ID][]heldMessage
	count    int
	bytes    int
	sweeping bool // a sweep goroutine runs
}

// heldMessage is a group message waiting for its sender's add.
type heldMessage struct {
	from peer.ID
	msg  store.GroupMessage
	at   time.Time
}

func (h heldMessage) size() int { return len(h.msg.Body) + 256 }

// holdTTL is the configured hold time.
func (g *holds) holdTTL() time.Duration {
	if g.cfg.GroupHoldTTL > 0 {
		return g.cfg.GroupHoldTTL
	}
	return DefaultGroupHoldTTL
}

// named says whether a change of the group names p as a member.
func (g *Groups) named(id group.ID, p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.logs[id]
	return ok && l.Named(p)
}

// hold keeps m from p until a change admits p, or drops it with the
// reason when a bound is reached.
func (g *holds) hold(p peer.ID, m store.GroupMessage) {
	id := group.ID(m.Group)
	h := heldMessage{from: p, msg: m, at: g.cfg.Now()}
	g.mu.Lock()
	if g.held == nil {
		g.held = map[group.ID][]heldMessage{}
	}
	for _, o := range g.held[id] {
		if o.msg.ID == m.ID {
			g.mu.Unlock()
			return
		}
	}
	var reason string
	switch {
	case len(g.held[id]) >= maxHeldPerGroup:
		reason = fmt.Sprintf("%d messages of the group already wait for their senders' adds", maxHeldPerGroup)
	case g.count >= maxHeld || g.bytes+h.size() > maxHeldBytes:
		reason = "too many messages already wait for their senders' adds"
	}
	if reason == "" {
		g.held[id] = append(g.held[id], h)
		g.count++
		g.bytes += h.size()
	}
	start := reason == "" && !g.sweeping
	if start {
		g.sweeping = true
	}
	g.mu.Unlock()
	if reason != "" {
		// Neither held nor acknowledged: the sender tries again later,
		// when there may be room, so nothing is lost to a full hold.
		g.log.Warn("group message not held, left to its sender's next try", "group", id.Short(), "peer", p, "id", m.ID, "reason", reason)
		return
	}
	g.log.Info("group message held until its sender's add arrives", "group", id.Short(), "peer", p, "id", m.ID)
	if start && !g.work.goDo(g.sweep) {
		g.mu.Lock()
		g.sweeping = false
		g.mu.Unlock()
	}
	// The add may have been applied by another session's read loop since
	// this message was checked: decide now rather than at the next change.
	g.release(id)
}

// sweep drops held messages whose time ran out; it ends when none is held.
func (g *holds) sweep() {
	ttl := g.holdTTL()
	for {
		now := g.cfg.Now()
		var expired []heldMessage
		next := time.Duration(-1)
		g.mu.Lock()
		for id, hs := range g.held {
			kept := hs[:0]
			for _, h := range hs {
				if left := ttl - now.Sub(h.at); left <= 0 {
					expired = append(expired, h)
					g.count--
					g.bytes -= h.size()
				} else {
					kept = append(kept, h)
					if next < 0 || left < next {
						next = left
					}
				}
			}
			if len(kept) == 0 {
				delete(g.held, id)
			} else {
				g.held[id] = kept
			}
		}
		if next < 0 {
			g.sweeping = false
		}
		g.mu.Unlock()
		for _, h := range expired {
			g.drop(h, fmt.Errorf("no change making them a member came within %s", ttl))
		}
		if next < 0 {
			return
		}
		if !g.sleep(next) { // the node is closing
			g.mu.Lock()
			g.sweeping = false
			g.mu.Unlock()
			return
		}
	}
}

// release decides on the messages held for group id now that its
// membership changed: stored if their sender is a member now, dropped if
// the group's changes name the sender and still do not admit it, or if
// we are no longer a member; the others wait on.
func (g *holds) release(id group.ID) {
	g.mu.Lock()
	hs := slices.Clone(g.held[id]) // the sweep filters the slice in place
	g.mu.Unlock()
	if len(hs) == 0 {
		return
	}
	s, ok := g.groups.state(id)
	why := map[e2e.MessageID]error{} // nil: admit
	for _, h := range hs {
		switch {
		case !ok || !s.IsMember(g.host.ID()):
			why[h.msg.ID] = ErrNotGroupMember
		case s.IsMember(h.from):
			why[h.msg.ID] = nil
		case g.groups.named(id, h.from):
			why[h.msg.ID] = fmt.Errorf("%w: the changes that came name them and do not make them one", group.ErrNotMember)
		}
	}
	// Only what is still held is decided here (a release running at the
	// same time, or the sweep, may have taken some).
	var decided []heldMessage
	g.mu.Lock()
	kept := g.held[id][:0]
	for _, h := range g.held[id] {
		if _, ok := why[h.msg.ID]; ok {
			decided = append(decided, h)
			g.count--
			g.bytes -= h.size()
			continue
		}
		kept = append(kept, h)
	}
	if len(kept) == 0 {
		delete(g.held, id)
	} else {
		g.held[id] = kept
	}
	g.mu.Unlock()
	for _, h := range decided { // in the order they came: a text before a reaction to it
		if err := why[h.msg.ID]; err != nil {
			g.drop(h, err)
		} else {
			g.admit(h)
		}
	}
}

// admit stores a held message whose sender is now a member, unless its
// group is made by a stranger and full (strangers.keepInGroup): then it
// is neither stored nor acknowledged, its sender keeps it, and the
// refusal is told once.
func (g *holds) admit(h heldMessage) {
	m := h.msg
	if g.keepOK != nil {
		if err := g.keepOK(m.Group); err != nil {
			g.log.Info("held group message not kept, left to its sender's next try", "group", group.ID(m.Group).Short(), "peer", h.from, "id", m.ID)
			g.tell(h.from, err)
			return
		}
	}
	isNew, err := g.store.Groups().ReceiveGroup(&m, g.cfg.Now())
	if err != nil {
		g.emitError(h.from, fmt.Errorf("store a group message from %s: %w", identity.ShortID(h.from), err))
		return
	}
	g.log.Info("held group message accepted: its sender's add arrived", "group", group.ID(m.Group).Short(), "peer", h.from, "id", m.ID)
	if isNew {
		g.groups.reportIncoming(h.from, &m)
	}
	g.ack(h.from, m.ID)
}

// drop reports a held message given up, with the reason.
func (g *holds) drop(h heldMessage, why error) {
	g.log.Info("held group message dropped", "group", group.ID(h.msg.Group).Short(), "peer", h.from, "id", h.msg.ID, "reason", why)
	g.emitError(h.from, fmt.Errorf("a group message from %s was refused: %s is not a member of the group: %w",
		identity.ShortID(h.from), identity.ShortID(h.from), why))
	g.ack(h.from, h.msg.ID)
}
