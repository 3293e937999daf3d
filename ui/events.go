package ui

import (
	"slices"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxBatch bounds how many events one redraw applies.
const maxBatch = 256

// snapshot is the state read when the window opens.
type snapshot struct {
	peers  []node.PeerInfo
	convs  []store.Conversation
	expiry map[peer.ID]time.Time // stored certificates' expiry
	relays []node.RelayInfo
	groups []node.GroupInfo
	// members: group members the peers do not describe.
	members []node.PeerInfo
	err     error
}

// pump reads the initial state, then the node's events, off the event
// loop, and hands them over in batches: one redraw per batch, however
// fast events come. It waits for each batch to be applied, so the event
// loop's queue never fills.
func (u *UI) pump(sub *node.Subscription) {
	snap := u.snapshot()
	if !u.post(func() { u.applySnapshot(snap) }) {
		return
	}
	u.xfer.loadFiles()
	for {
		batch, ok := u.nextBatch(sub)
		if !ok {
			return
		}
		pf := u.prefetch(batch)
		if !u.post(func() {
			u.gc.applyGroups(pf.groups)
			u.applyEvents(batch, pf.infos)
		}) {
			return
		}
	}
}

func (u *UI) snapshot() snapshot {
	s := snapshot{peers: u.b.Peers(), relays: u.b.Relays(), expiry: map[peer.ID]time.Time{}}
	s.convs, s.err = u.b.Conversations()
	if gb, ok := u.b.(groupBackend); ok {
		s.groups = gb.Groups().List()
		known := map[peer.ID]bool{}
		for _, p := range s.peers {
			known[p.ID] = true
		}
		for _, g := range s.groups {
			for _, m := range g.Members {
				if !known[m] && m != u.myID {
					known[m] = true
					s.members = append(s.members, u.b.PeerInfo(m))
				}
			}
		}
	}
	for _, p := range s.peers {
		if !p.NotAfter.IsZero() {
			continue
		}
		if c, ok := u.b.Certificate(p.ID); ok {
			s.expiry[p.ID] = c.NotAfter
		}
	}
	return s
}

// nextBatch waits for an event, then takes what else is queued.
func (u *UI) nextBatch(sub *node.Subscription) ([]node.Event, bool) {
	var batch []node.Event
	select {
	case e, ok := <-sub.C:
		if !ok {
			return nil, false
		}
		batch = append(batch, e)
	case <-u.quit:
		return nil, false
	}
	for len(batch) < maxBatch {
		select {
		case e, ok := <-sub.C:
			if !ok {
				return batch, true
			}
			batch = append(batch, e)
		default:
			return batch, true
		}
	}
	return batch, true
}

// prefetched is what a batch of events needs read from the node.
type prefetched struct {
	infos  map[peer.ID]node.PeerInfo         // message senders, group members
	groups map[store.GroupID]*node.GroupInfo // groups of group messages
}

// prefetch reads, off the event loop, the peer info of message senders
// and of the members of changed groups, and the groups of group
// messages (a message can come before the window knows its group).
func (u *UI) prefetch(batch []node.Event) prefetched {
	pf := prefetched{infos: map[peer.ID]node.PeerInfo{}, groups: map[store.GroupID]*node.GroupInfo{}}
	info := func(p peer.ID) {
		if _, ok := pf.infos[p]; !ok && p != u.myID {
			pf.infos[p] = u.b.PeerInfo(p)
		}
	}
	gbk, hasGroups := u.b.(groupBackend)
	for _, e := range batch {
		switch {
		case e.Kind == node.EventMessage:
			info(e.Message.Peer)
			if g := e.Message.Group; g != (store.GroupID{}) && hasGroups {
				if _, ok := pf.groups[g]; !ok {
					pf.groups[g] = nil
					if gi, ok := gbk.Groups().Get(group.ID(g)); ok {
						pf.groups[g] = &gi
					}
				}
			}
		case e.Kind == node.EventGroup:
			for _, m := range e.Group.Members {
				info(m)
			}
		}
	}
	return pf
}

// refreshMembers reads a group's members' peer info again, off the
// event loop, for its title.
func (u *groupChats) refreshMembers(g node.GroupInfo) {
	members := slices.Clone(g.Members)
	u.spawn(func() {
		var infos []node.PeerInfo
		for _, p := range members {
			if p != u.myID {
				infos = append(infos, u.b.PeerInfo(p))
			}
		}
		u.post(func() {
			for _, info := range infos {
				u.roster.setInfo(info)
			}
			u.roster.sort()
		})
	})
}

func (u *UI) applySnapshot(s snapshot) {
	for _, info := range s.peers {
		c := u.roster.setInfo(info)
		if t, ok := s.expiry[info.ID]; ok && c.notAfter.IsZero() {
			c.notAfter = t
		}
	}
	for _, cv := range s.convs {
		if cv.Peer == u.myID {
			continue
		}
		u.roster.setConversation(cv, unknownPeer(cv.Peer))
	}
	for _, info := range s.members {
		u.roster.setInfo(info)
	}
	for _, g := range s.groups {
		c := u.roster.setGroup(g)
		c.unread = g.Unread
	}
	u.roster.sort()
	u.stat.relays = s.relays
	if s.err != nil {
		u.notes.fail("Could not list the conversations", s.err)
	}
	u.settled = true
	if u.open == "" && len(u.roster.order) > 0 {
		if c := u.roster.get(u.roster.order[0]); c.hasConv {
			u.openChat(u.roster.order[0])
		}
	}
}

// applyGroups makes the chats of groups the window learns of from a
// message before their group event.
func (u *groupChats) applyGroups(groups map[store.GroupID]*node.GroupInfo) {
	for _, gi := range groups {
		if gi != nil && u.groupChatOf(store.GroupID(gi.ID)) == nil {
			u.roster.setGroup(*gi)
		}
	}
}

func (u *UI) applyEvents(batch []node.Event, infos map[peer.ID]node.PeerInfo) {
	readOpen, relays := false, false
	for _, e := range batch {
		switch e.Kind {
		case node.EventListening:
			u.stat.addrs, relays = e.Addrs, true
		case node.EventPeer:
			u.onPeer(*e.Peer)
		case node.EventMessage:
			if g := e.Message.Group; g != (store.GroupID{}) {
				if info, ok := infos[e.Message.Peer]; ok && info.ID != "" {
					u.roster.setInfo(info)
				}
				readOpen = u.gc.onGroupMessage(*e.Message) || readOpen
				continue
			}
			readOpen = u.onMessage(*e.Message, infos[e.Message.Peer]) || readOpen
		case node.EventStatus:
			if e.Message.Group != (store.GroupID{}) {
				u.gc.onGroupStatus(*e.Message)
				continue
			}
			u.onStatus(*e.Message)
		case node.EventGroup:
			for _, m := range e.Group.Members {
				if info, ok := infos[m]; ok && info.ID != "" {
					u.roster.setInfo(info)
				}
			}
			u.gc.onGroup(*e.Group)
		case node.EventUpdate:
			u.conv.update(*e.Message)
		case node.EventSeen:
			u.conv.upsert(*e.Message)
		case node.EventTyping:
			u.act.onTyping(e.PeerID, e.Typing)
		case node.EventError:
			u.notes.showErrorAbout(errorAbout(e), u.errorSentence(e))
		case node.EventLAN:
			u.stat.onLAN(*e.LAN)
		case node.EventFileOffer, node.EventFileProgress, node.EventFileDone, node.EventFileFailed:
			u.xfer.onFile(e.Kind, *e.File)
		}
	}
	u.roster.sort()
	if readOpen {
		u.markRead(u.open)
		u.act.markSeen()
	}
	if relays {
		u.stat.refreshRelays()
	}
}

// onPeer records what changed about a peer, and warns of a changed key.
func (u *UI) onPeer(info node.PeerInfo) {
	if info.ID == u.myID {
		return
	}
	wasChanged := false
	if c := u.roster.get(info.ID); c != nil {
		wasChanged = c.info.Changed != nil
	}
	c := u.roster.setInfo(info)
	if info.ID == u.open {
		u.updatePlaceholder()
	}
	if info.Changed != nil && !wasChanged {
		u.notes.showError("KEY CHANGED: a new key claims to be " + claimed(info) + ". Nothing is sent to it until you open its chat (marked KEY CHANGED), compare fingerprints and decide (/trust).")
		// Not shown in the chat of the contact it claims to be: nothing
		// of that contact's key changed.
		if prev := info.Changed.Previous; prev != nil {
			u.notes.notice.hideIn = prev.PeerID
		}
		// A first-contact question asked before the certificate came is
		// the wrong question now.
		if d := u.dlg.dialog; d != nil && d.firstContact == info.ID {
			u.dlg.keyChangedPrompt(c)
		}
	}
}

// onMessage shows an incoming message: in the open chat, or as an unread
// count; with no chat open, it opens the sender's. It reports whether the
// open chat got a message (to mark it read).
func (u *UI) onMessage(m store.Message, info node.PeerInfo) bool {
	if info.ID == "" {
		info = unknownPeer(m.Peer)
	}
	c := u.roster.setInfo(info)
	counted := m.Seq != 0 && m.Seq <= c.lastSeq
	u.att.attend(m, c, counted)
	c.hasConv, c.last, c.lastSeq = true, m.StoredAt, max(c.lastSeq, m.Seq)
	if m.Seq >= c.lastSeq {
		c.missing = m.Missing
	}
	if m.Peer == u.open {
		u.conv.upsert(m)
		u.dlg.maybeFirstContact(c)
		return true
	}
	if !counted {
		c.unread++
	}
	if u.open == "" {
		u.openChat(m.Peer)
	}
	return false
}

// onStatus shows an own message's new delivery state.
func (u *UI) onStatus(m store.Message) {
	if c := u.roster.get(m.Peer); c != nil && m.Seq > c.lastSeq {
		c.hasConv, c.last, c.lastSeq = true, m.StoredAt, m.Seq
	}
	u.conv.upsert(m)
}

// refreshRelays reads the relay reservations again.
func (u *statusLine) refreshRelays() {
	u.spawn(func() {
		rs := u.b.Relays()
		u.post(func() { u.relays = rs })
	})
}
