package ui

import (
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// chat is one entry of the chat list: a peer and its conversation.
type chat struct {
	info     node.PeerInfo
	notAfter time.Time // certificate expiry, from the peer info or the stored certificate
	unread   int
	missing  int       // the peer's earlier messages not yet arrived
	last     time.Time // last message, for ordering
	lastSeq  uint64    // newest message counted in unread
	hasConv  bool      // messages were exchanged
	pinned   bool      // the user opened it (e.g. with /add)
	label    string    // the last name known that was not a short peer ID
	// typingUntil: the peer said it types; shown until then (wall clock).
	typingUntil time.Time
	// grp is set on a group's chat (groupchat.go); info.ID is then the
	// group's key, not a peer.
	grp *groupChat
}

// name is the peer's name, or the last one known when the node fell back
// to the short peer ID (a key rejected before it was named, for instance).
// setInfo keeps label up to date, so this costs nothing: it runs on every
// comparison when the list is sorted.
func (c *chat) name() string {
	if c.label != "" {
		return c.label
	}
	return identity.ShortID(c.info.ID)
}

// visible: contacts, conversations, peers the user opened, peers online in
// a verified session and changed keys are listed; other peers the node saw
// (relays, strangers' connections) are not.
func (c *chat) visible() bool {
	return c.grp != nil || c.hasConv || c.pinned || c.info.Online || c.info.Changed != nil ||
		c.info.Trust != identity.StateUnknown
}

// roster holds the chats; it lives on the UI goroutine.
type roster struct {
	chats map[peer.ID]*chat
	order []peer.ID // visible chats, most recent first, then by name
}

func newRoster() *roster { return &roster{chats: map[peer.ID]*chat{}} }

func (r *roster) get(p peer.ID) *chat { return r.chats[p] }

// unknownPeer is what is known of a peer the node has not described: its
// short ID, and no trust.
func unknownPeer(p peer.ID) node.PeerInfo {
	return node.PeerInfo{ID: p, Name: identity.ShortID(p), Trust: identity.StateUnknown}
}

// ensure returns p's chat, creating it from info.
func (r *roster) ensure(info node.PeerInfo) *chat {
	c, ok := r.chats[info.ID]
	if !ok {
		c = &chat{info: info}
		r.chats[info.ID] = c
		if n := displayName(info); n != identity.ShortID(info.ID) {
			c.label = n
		}
	}
	return c
}

// setInfo records new peer info, keeping a known certificate expiry, and
// a known name where the node fell back to the short peer ID (a key
// rejected before it was named, for instance).
func (r *roster) setInfo(info node.PeerInfo) *chat {
	c := r.ensure(info)
	c.info = info
	if n := displayName(info); n != identity.ShortID(info.ID) {
		c.label = n
	}
	if !info.NotAfter.IsZero() {
		c.notAfter = info.NotAfter
	}
	return c
}

// setConversation records a stored conversation summary.
func (r *roster) setConversation(cv store.Conversation, info node.PeerInfo) {
	c := r.ensure(info)
	c.hasConv = true
	c.unread, c.last, c.lastSeq, c.missing = cv.Unread, cv.Last, cv.LastSeq, cv.Missing
}

// sort recomputes the visible order.
func (r *roster) sort() {
	r.order = r.order[:0]
	for p, c := range r.chats {
		if c.visible() {
			r.order = append(r.order, p)
		}
	}
	slices.SortFunc(r.order, func(a, b peer.ID) int {
		ca, cb := r.chats[a], r.chats[b]
		if n := cb.last.Compare(ca.last); n != 0 {
			return n
		}
		if n := strings.Compare(strings.ToLower(ca.name()), strings.ToLower(cb.name())); n != 0 {
			return n
		}
		return strings.Compare(string(a), string(b))
	})
}

// index is p's position in the visible order, or -1.
func (r *roster) index(p peer.ID) int { return slices.Index(r.order, p) }

// step returns the chat d places from p in the visible order, wrapping.
func (r *roster) step(p peer.ID, d int) (peer.ID, bool) {
	n := len(r.order)
	if n == 0 {
		return "", false
	}
	i := r.index(p)
	if i < 0 {
		if d > 0 {
			return r.order[0], true
		}
		return r.order[n-1], true
	}
	return r.order[((i+d)%n+n)%n], true
}

// nextUnread is the first chat after p, wrapping, with unread messages.
func (r *roster) nextUnread(p peer.ID) (peer.ID, bool) {
	n := len(r.order)
	start := r.index(p)
	for k := 1; k <= n; k++ {
		q := r.order[((start+k)%n+n)%n]
		if r.chats[q].unread > 0 && q != p {
			return q, true
		}
	}
	return "", false
}

// totalUnread counts unread messages outside the open chat.
func (r *roster) totalUnread(open peer.ID) int {
	n := 0
	for p, c := range r.chats {
		if p != open {
			n += c.unread
		}
	}
	return n
}
