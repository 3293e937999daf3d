package node

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Groups (docs/PROTOCOL.md §14.5). A group message is stored once and
// its copies, one per member, go through each member's outbox worker and
// pairwise ratchet like a private message, with the group's ID inside
// the envelope. Membership changes travel the same way, as group-change
// frames carrying the group's whole log (so a member never lacks a
// change's parents). A receiver accepts a group message only from a
// member of the membership it holds: the sender is the peer whose
// pairwise session opened the envelope, never a claim of the message.

var (
	// ErrUnknownGroup: no group by that ID or name.
	ErrUnknownGroup = errors.New("no such group")
	// ErrNotGroupMember: we are not (or no longer) a member of the group.
	ErrNotGroupMember = errors.New("you are not a member of this group")
	// ErrGroupBlocked: a member's key changed (or is blocked): sending
	// to the group waits until the user decides, as in a 1:1 chat.
	ErrGroupBlocked = errors.New("a member's key changed: sending to the group is blocked until you decide")
	// ErrRemovalUndone: a member's removal was undone by a leave its
	// remover's key signed beside it (group.Undone; SECURITY.md finding
	// 7): sending to the group waits until an admin removes them again or
	// the user keeps them (Groups.Keep).
	ErrRemovalUndone = errors.New("their removal was undone by a leave its remover's key signed beside it: sending to the group waits until an admin removes them again or you keep them")
	// ErrNothingUndone: Keep named a member no undone removal is about.
	ErrNothingUndone = errors.New("no removal of them in the group was undone by its remover's own leave")
	// ErrLongLogFromStranger: a peer who is not a contact sent part of a
	// group's log too long for one frame (groups_partial.go); accepting
	// it as a contact lets its next frames build the log.
	ErrLongLogFromStranger = errors.New("the group's log is longer than a frame and is put together only from a contact")
)

// GroupInfo is what the node knows of a group now.
type GroupInfo struct {
	ID        group.ID
	Name      string // the local name if the user gave one, else the group's
	GroupName string // the name the group's changes give it
	Creator   peer.ID
	Members   []peer.ID
	Admins    []peer.ID
	Version   uint64
	CA        []byte // SHA-256 of the required CA's SubjectPublicKeyInfo, or nil
	CAName    string // that CA's name, if it is among the CAs the user trusts
	Member    bool   // this node is a member
	// Undone: the removals their authors' own leaves undid whose targets
	// are members again, and which the user has not kept (Keep): sending
	// to the group waits for a decision on each.
	Undone   []group.Undone
	Unread   int
	Messages int
	Last     time.Time // the newest message's arrival (zero: none yet)
}

// Groups is the node's part for groups (Node.Groups): it owns the logs
// of the groups this node holds and is the group API the window, the
// daemon and the commands use. mu guards logs and is never held while
// calling other parts (the store aside). Its methods are called from the
// API's callers and from session read loops (receive).
type Groups struct {
	*core
	out  *outbox
	book *peerBook
	rk   *ratchetKeys

	mu   sync.Mutex
	logs map[group.ID]*group.Log

	// postMu makes storing a message and handing its copies to the
	// members' workers one step (post): two messages sent at once reach
	// each worker in the order they were numbered, so no member sees the
	// second before the first (a gap, then a late one). Held across
	// ratchetKeys.mu and outbox.mu.
	postMu sync.Mutex

	held *holds // messages waiting for their senders' adds (groups_hold.go)

	// strangers bounds the groups made by strangers that we are in
	// (groups_strangers.go). Its lock is taken before mu.
	strangers *strangerGroups

	// partial holds the logs of groups new to us, longer than a frame,
	// while their frames arrive (groups_partial.go).
	partial *partialLogs
	// wants bounds asking for changes we lack and answering such asks
	// (groups_want.go); sendSealed seals a frame for a peer and sends it
	// on its live session, or through its mailbox (set by Node).
	wants      *wants
	sendSealed func(p peer.ID, plaintext []byte) error

	// doubts keeps the removals undone by their removers' own leaves
	// with the groups (groups_doubts.go).
	doubts *doubts
}

func newGroups(c *core) *Groups {
	g := &Groups{core: c, logs: map[group.ID]*group.Log{}, strangers: newStrangerGroups(), partial: newPartialLogs(), doubts: newDoubts(c.store)}
	g.wants = newWants(g)
	g.held = &holds{core: c, groups: g}
	return g
}

// load restores the logs from the store. A group whose record or changes
// cannot be read is left out, with an error event naming it.
func (g *Groups) load() {
	gs, err := g.store.Groups().List()
	if err != nil {
		g.log.Error("read groups", "err", err)
		g.emitError("", fmt.Errorf("some groups could not be read: %w", err))
	}
	g.doubts.load(gs)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, sg := range gs {
		l, err := group.Restore(sg.Changes)
		if err != nil {
			g.emitError("", fmt.Errorf("group %x could not be restored: %w", sg.ID[:4], err))
			continue
		}
		g.logs[l.ID()] = l
		if _, err := g.doubts.note(l); err != nil { // a log stored before its doubts were
			g.emitError("", err)
		}
	}
}

// info describes a group in state s, with what the store counts. The
// caller takes s from the log under mu.
func (g *Groups) info(s group.State) GroupInfo {
	gi := GroupInfo{ID: s.ID, Name: s.Name, GroupName: s.Name, Creator: s.Creator, Members: s.Members, Admins: s.Admins,
		Version: s.Version, CA: s.CA, Member: s.IsMember(g.host.ID())}
	var doubts []store.GroupDoubt
	if sg, found, err := g.store.Groups().Get(store.GroupID(s.ID)); err == nil && found {
		if sg.Name != "" {
			gi.Name = sg.Name
		}
		gi.Unread, gi.Messages, gi.Last = sg.Unread, sg.Messages, sg.Last
		doubts = sg.Doubts
	}
	if s.CA != nil {
		gi.CAName = trustedCAName(g.trust, s.CA)
	}
	gi.Undone = pending(doubts, s, g.host.ID())
	return gi
}

// state returns the group's current membership.
func (g *Groups) state(id group.ID) (group.State, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.logs[id]
	if !ok {
		return group.State{}, false
	}
	return l.State(), true
}

// creator returns the peer that made group id, and its name, if we hold
// it.
func (g *Groups) creator(id group.ID) (peer.ID, string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.logs[id]
	if !ok {
		return "", "", false
	}
	return l.Creator(), l.Name(), true
}

// mayPost says whether p may post to group id: p is a member of the
// membership we hold, and so are we. Called by the ratchet keys with
// their lock held, before the message is stored.
func (g *Groups) mayPost(p peer.ID, id store.GroupID) error {
	g.mu.Lock()
	l, known := g.logs[group.ID(id)]
	var member, us bool
	var name string
	if known {
		member, us, name = l.IsMember(p), l.IsMember(g.host.ID()), l.Name()
	}
	g.mu.Unlock()
	switch {
	case !known:
		return fmt.Errorf("%w %x", ErrUnknownGroup, id[:4])
	case !member && !g.named(group.ID(id), p):
		return fmt.Errorf("%s is %w (%q)", identity.ShortID(p), errNotYetMember, name)
	case !member:
		return fmt.Errorf("%s is %w %q", identity.ShortID(p), group.ErrNotMember, name)
	case !us:
		return fmt.Errorf("%w %q", ErrNotGroupMember, name)
	}
	return nil
}

// distribute queues the group's log for each recipient and wakes their
// outbox workers. A log that fits a frame is one frame to all of them (one
// write). A longer one goes as the create and the newest changes, whose
// parents a member holds already, except to those in whole (members just
// added), who are sent every change, in frames oldest first (logFrames,
// groups_partial.go): one write a frame.
func (g *Groups) distribute(id group.ID, changes [][]byte, recipients []peer.ID, whole ...peer.ID) error {
	recipients = slices.DeleteFunc(slices.Clone(recipients), func(p peer.ID) bool { return p == g.host.ID() })
	if len(recipients) == 0 {
		return nil
	}
	frames := logFrames(changes)
	if len(frames) > 1 {
		newest := newestFrame(changes)
		var rest, all []peer.ID
		for _, p := range recipients {
			if slices.Contains(whole, p) {
				all = append(all, p)
			} else {
				rest = append(rest, p)
			}
		}
		if err := g.queueChanges(id, [][][]byte{newest}, rest); err != nil {
			return err
		}
		return g.queueChanges(id, frames, all)
	}
	return g.queueChanges(id, frames, recipients)
}

// queueChanges queues frames, in order, for each recipient and wakes
// their outbox workers.
func (g *Groups) queueChanges(id group.ID, frames [][][]byte, recipients []peer.ID) error {
	if len(recipients) == 0 {
		return nil
	}
	for _, f := range frames {
		if err := g.store.Groups().AddGroupChanges(store.GroupID(id), e2e.NewMessageID(), f, recipients, g.cfg.Now()); err != nil {
			return fmt.Errorf("queue the group's changes: %w", err)
		}
	}
	for _, p := range recipients {
		g.out.kick(p)
	}
	return nil
}

// emitGroup tells subscribers a group changed.
func (g *Groups) emitGroup(gi GroupInfo) {
	g.emit(Event{Kind: EventGroup, Group: &gi})
}

// receive adds the changes a peer sent to the group's log (starting the
// log from its create when the group is new to us), stores the log and
// reports each refusal with its reason.
func (g *Groups) receive(from peer.ID, gc e2e.GroupChanges) {
	id := group.ID(gc.Group)
	// Parsed (each signature checked, tens of microseconds apiece) before
	// the lock: a frame of 256 changes holds it for none of that. Those
	// our log has already are not parsed at all (left nil): a member sends
	// its whole log with each change, so most of a frame is known, and a
	// peer that wrote the same frame again and again would have us check
	// every signature of it each time. The create (the first) is always
	// parsed: it says whose group it is.
	have := g.knownChanges(id, gc.Changes)
	parsed := make([]*group.Change, len(gc.Changes))
	var refusals []error
	for i, raw := range gc.Changes {
		if have[i] {
			continue
		}
		c, err := group.Parse(raw)
		if err != nil {
			refusals = append(refusals, err)
		}
		parsed[i] = c
	}
	// A group new to us starts with its create: whether we may keep it
	// is decided before the lock, and holds until it is kept or not; so
	// is whether we may be added back to one we left.
	var admit error
	if len(parsed) > 0 {
		held, err := g.strangers.admit(g, id, parsed[0])
		if held {
			defer g.strangers.mu.Unlock()
		}
		admit = err
	}
	// Before mu, as other parts: whether from is a contact, and the
	// earlier frames of a long log (groups_partial.go).
	fromContact := g.book.mayMessage(from) == nil
	taken := g.partial.take(id, g.cfg.Now())
	g.mu.Lock()
	l, known := g.logs[id]
	if known && admit != nil {
		// A group made by a stranger that we are no longer in, with no
		// room for another: none of its changes is taken (one may add
		// us back); the next frame carries them again.
		g.mu.Unlock()
		g.emitError(from, fmt.Errorf("a change to group %x from %s was refused: %w", id[:4], identity.ShortID(from), admit))
		return
	}
	before := 0
	var noted []*group.Change // ours, and removals, that take effect before the frame
	if known {
		before, noted = l.Revision(), l.TookEffect(func(c *group.Change) bool {
			return c.Author == g.host.ID() || c.Kind() == group.OpRemove
		})
	} else {
		l = taken
	}
	strangers := 0      // changes signed by from, who is not a member
	var refused []error // changes the log refused
	for i, c := range parsed {
		if c == nil {
			continue // refused above, or in our log already
		}
		if known && c.Author == from && !l.IsMember(from) && !l.Has(c.Hash()) {
			// A former member's own change, new to us: its leave or
			// removal is in our log, so nothing it signs can matter, and
			// a log that took what it signs on old versions (admissible
			// there, moot now) would fill up. Changes relayed by members
			// are taken as ever; a change that makes from a member again
			// (its add, relayed earlier in the frame) lets its own
			// through.
			strangers++
			continue
		}
		if l == nil {
			if i != 0 || c.Op != group.OpCreate || c.Hash() != group.Hash(id) {
				refusals = append(refusals, fmt.Errorf("%w: a group new to us must start with its create", group.ErrWrongGroup))
				break
			}
			var err error
			if l, err = group.New(c); err != nil {
				refusals = append(refusals, err)
				break
			}
			continue
		}
		// With the frame's changes after it: one of them may vouch for a
		// change the sender took late (group.Log.AddWith).
		if err := l.AddWith(c, parsed[i+1:]); err != nil && !errors.Is(err, group.ErrMissingParents) {
			refused = append(refused, &group.RefusedChange{Hash: c.Hash(), Err: err})
		}
	}
	if strangers > 0 {
		refusals = append(refusals, fmt.Errorf("%w: %d changes signed by %s, who is not a member", group.ErrNotMember, strangers, identity.ShortID(from)))
	}
	if l != nil {
		refusals = append(refusals, toldRefusals(l, append(refused, l.Refused()...))...)
	}
	undone := undoneBy(l, g.host.ID(), noted)
	var (
		doubted  bool // the group's doubts changed (groups_doubts.go)
		doubtErr error
	)
	if known {
		doubted, doubtErr = g.doubts.note(l)
	}
	var (
		changes  [][]byte
		revision int // the log's, to tell whether the frame changed it
		missing  []group.Hash
		partial  *group.Log // a log to hold for the next frame
		keep     bool
		merged   bool
		members  []peer.ID
		s        group.State
	)
	if l != nil {
		changes, revision = l.Changes(), l.Revision()
		s = l.State()
		members = s.Members
		merged = len(l.Heads()) > 1
		// A group we are not in, and never were told of, is not kept: a
		// stranger's log naming others is none of our business.
		keep = known || (s.IsMember(g.host.ID()) && admit == nil)
		if !known && s.IsMember(g.host.ID()) && admit != nil {
			refusals = append(refusals, admit)
		}
		if keep && !known {
			g.logs[id] = l
		}
		switch {
		case keep || known || admit != nil:
		case fromContact:
			partial = l // perhaps a frame of a long log whose last frame adds us
		case len(l.Missing()) > 0:
			// The frame that adds us, without the frames before it.
			refusals = append(refusals, fmt.Errorf("%w: accept %s as a contact, and the group comes with its next change", ErrLongLogFromStranger, identity.ShortID(from)))
		}
		if keep || partial != nil {
			missing = l.Missing() // changes we hold and cannot place yet
		}
	}
	g.mu.Unlock()
	g.wants.ask(id, from, missing) // groups_want.go
	if partial != nil {
		g.partial.put(id, from, partial, g.cfg.Now()) // no one else has it
	}
	for _, err := range refusals {
		g.emitError(from, fmt.Errorf("a change to group %x from %s was refused: %w", id[:4], identity.ShortID(from), err))
	}
	for _, err := range append(undone, doubtErr) {
		if err != nil {
			g.emitError(from, err)
		}
	}
	if !keep || (known && revision == before) {
		if doubted {
			g.emitGroup(g.info(s))
		}
		return
	}
	if err := g.store.Groups().PutGroupChanges(store.GroupID(id), changes); err != nil {
		g.emitError(from, fmt.Errorf("store group %x: %w", id[:4], err))
		return
	}
	if !known {
		g.mu.Lock()
		_, err := g.doubts.note(l)
		g.mu.Unlock()
		if err != nil {
			g.emitError(from, err)
		}
	}
	g.emitGroup(g.info(s))
	g.held.release(id)
	if merged {
		// Changes crossed in flight: their authors each sent theirs to
		// the members they knew of, so a member added on one branch may
		// lack the other. Whoever first holds both sends the merged log
		// to every member (what a member holds or set aside only
		// grows, so this ends: group.Log.besideLeave).
		others := slices.DeleteFunc(slices.Clone(members), func(p peer.ID) bool { return p == from })
		if err := g.distribute(id, changes, others); err != nil {
			g.emitError(from, err)
		}
	}
}

// toldRefusals are the refusals of changes by l to tell the user of: not
// those of the changes a removal in doubt rests on, which come with
// every log that holds them (group.Log.Changes), in whatever order, and
// which the doubt tells of (groups_doubts.go). Called with g.mu held.
func toldRefusals(l *group.Log, refused []error) []error {
	var inDoubt map[group.Hash]bool // read once, if a refusal names a change
	return slices.DeleteFunc(refused, func(err error) bool {
		var rc *group.RefusedChange
		if !errors.As(err, &rc) {
			return false
		}
		if inDoubt == nil {
			inDoubt = group.InDoubt(l)
		}
		return inDoubt[rc.Hash]
	})
}

// undoneBy says which of noted, our changes and removals that took
// effect in l before a frame, no longer do with it: a change that
// crossed one undid it (a senior admin's removal of us, or one ours
// would have undone). The membership shows the outcome; this tells why.
// Someone else's removal undone is told only where its target is a
// member again: a departed admin's key can undo its own last removals
// with a leave signed on an older version, a limit of the rules
// (SECURITY.md, open finding 7), and the member who had the removal
// should know before writing to the group again. Called with g.mu held.
func undoneBy(l *group.Log, self peer.ID, noted []*group.Change) []error {
	var out []error
	for _, c := range noted {
		err := l.Effect(c.Hash())
		switch {
		case err == nil:
		case c.Author == self:
			out = append(out, fmt.Errorf("your %s in group %q was undone by a change that crossed it: %w", changeNoun(c), l.Name(), err))
		case l.IsMember(c.Peer):
			out = append(out, &RemovalUndoneError{Group: l.ID(), Name: l.Name(), Target: c.Peer, Author: c.Author, Cause: err})
		}
	}
	return out
}

// RemovalUndoneError tells a member that a removal which had taken
// effect no longer does, with a frame that crossed it, and that its
// target is a member again (undoneBy).
type RemovalUndoneError struct {
	Group  group.ID
	Name   string  // the group's
	Target peer.ID // a member again
	Author peer.ID // of the removal
	Cause  error   // why the removal takes no effect now
}

func (e *RemovalUndoneError) Error() string {
	who := identity.ShortID(e.Target)
	return fmt.Sprintf("%s is a member of group %q again: the removal of %s by %s was undone by a change that crossed it (remove them again if that is not what you want): %v",
		who, e.Name, who, identity.ShortID(e.Author), e.Cause)
}

func (e *RemovalUndoneError) Unwrap() error { return e.Cause }

// changeNoun names a change for a sentence: "removal of 12D3…x", "rename".
func changeNoun(c *group.Change) string {
	who := identity.ShortID(c.Peer)
	switch c.Op {
	case group.OpAdd:
		return "addition of " + who
	case group.OpRemove:
		return "removal of " + who
	case group.OpAdmin:
		return "making " + who + " an admin"
	}
	return c.Op.String()
}

// knownChanges says which of raw, the encoded changes of a frame for
// group id, its log holds already (the first, its create, never: see
// receive). What it holds now it holds under the lock taken again, or
// has set aside as moot since (group.Log.besideLeave), which taking it
// again would not change.
func (g *Groups) knownChanges(id group.ID, raw [][]byte) []bool {
	known := make([]bool, len(raw))
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.logs[id]
	if l == nil {
		return known
	}
	for i := 1; i < len(raw); i++ {
		known[i] = group.Holds(l, group.HashOf(raw[i])) // kept out, it would be kept out again
	}
	return known
}

// groupPlaintext is the ratchet plaintext of a group message's copy: a
// message frame with the group field, or a group-change frame.
func groupPlaintext(m store.Message) ([]byte, error) {
	if m.GroupChanges != nil {
		payload, err := (e2e.GroupChanges{ID: m.ID, Group: m.Group, Changes: m.GroupChanges}).Marshal()
		if err != nil {
			return nil, err
		}
		return innerFrame(e2e.FrameGroupChange, payload)
	}
	w := e2e.Message{ID: m.ID, SentAt: m.SentAt, Stream: m.Stream, Number: m.Number, Body: m.Body, Group: m.Group, ReplyTo: m.ReplyTo}
	switch m.Kind {
	case store.KindEdit:
		w.EditOf, w.ReplyTo = m.Target, e2e.MessageID{}
	case store.KindDelete:
		w.DeleteOf, w.ReplyTo, w.Body = m.Target, e2e.MessageID{}, ""
	case store.KindReact:
		w.ReactTo, w.Emoji, w.ReplyTo, w.Body = m.Target, m.Emoji, e2e.MessageID{}, ""
	}
	payload, err := w.Marshal()
	if err != nil {
		return nil, err
	}
	return innerFrame(e2e.FrameMessage, payload)
}

// The API.

// Groups is the node's group part: create, change, send to and read groups.
func (n *Node) Groups() *Groups { return n.groups }

// List lists the groups this node holds.
func (g *Groups) List() []GroupInfo {
	g.mu.Lock()
	states := make([]group.State, 0, len(g.logs))
	for _, l := range g.logs {
		states = append(states, l.State())
	}
	g.mu.Unlock()
	out := make([]GroupInfo, 0, len(states))
	for _, s := range states {
		out = append(out, g.info(s))
	}
	slices.SortFunc(out, func(a, b GroupInfo) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// Get describes one group.
func (g *Groups) Get(id group.ID) (GroupInfo, bool) {
	s, ok := g.state(id)
	if !ok {
		return GroupInfo{}, false
	}
	return g.info(s), true
}

// Find finds a group by its ID (hex, or a prefix of at least 8
// digits) or its name; a name two groups share is ambiguous, and the
// error lists their short IDs, which Find takes.
func (g *Groups) Find(s string) (GroupInfo, error) {
	var found []GroupInfo
	for _, gi := range g.List() {
		hexID := gi.ID.String()
		if s == hexID || (len(s) >= 8 && len(s) < len(hexID) && hexID[:len(s)] == s) || gi.Name == s {
			found = append(found, gi)
		}
	}
	switch len(found) {
	case 0:
		return GroupInfo{}, fmt.Errorf("%w %q", ErrUnknownGroup, s)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, gi := range found {
		ids[i] = gi.ID.Short()
	}
	return GroupInfo{}, fmt.Errorf("%d groups are called %q: name one by its ID (%s)", len(found), s, strings.Join(ids, ", "))
}

// Create makes a group with a name and its first members (besides
// this node, its first admin), stores it and sends it to the members.
func (g *Groups) Create(name string, members []peer.ID) (GroupInfo, error) {
	return g.CreateCA(name, members, nil)
}

// CreateCA is Create for a group bound to a CA: ca is the
// SHA-256 of its certificate's SubjectPublicKeyInfo.
func (g *Groups) CreateCA(name string, members []peer.ID, ca []byte) (GroupInfo, error) {
	var uniq []peer.ID
	for _, p := range members {
		if p == g.host.ID() {
			continue
		}
		if !slices.Contains(uniq, p) {
			uniq = append(uniq, p)
		}
	}
	if err := g.checkCAMembers(ca, append([]peer.ID{g.host.ID()}, uniq...)); err != nil {
		return GroupInfo{}, fmt.Errorf("create group %q: %w", name, err)
	}
	c, err := group.Create(g.id.Signer(), name, uniq, ca, g.cfg.Now())
	if err != nil {
		return GroupInfo{}, fmt.Errorf("create group %q: %w", name, err)
	}
	l, err := group.New(c)
	if err != nil {
		return GroupInfo{}, fmt.Errorf("create group %q: %w", name, err)
	}
	id := l.ID()
	if err := g.store.Groups().PutGroupChanges(store.GroupID(id), l.Changes()); err != nil {
		return GroupInfo{}, fmt.Errorf("store group %q: %w", name, err)
	}
	s := l.State()
	g.mu.Lock()
	g.logs[id] = l
	g.mu.Unlock()
	if err := g.distribute(id, l.Changes(), uniq); err != nil {
		return GroupInfo{}, err
	}
	gi := g.info(s)
	g.emitGroup(gi)
	return gi, nil
}

// Add adds p to the group (admins only).
func (g *Groups) Add(id group.ID, p peer.ID) (GroupInfo, error) {
	if s, ok := g.state(id); ok {
		if err := g.checkCAMembers(s.CA, []peer.ID{p}); err != nil {
			return GroupInfo{}, fmt.Errorf("add to group %q: %w", s.Name, err)
		}
	}
	return g.change(id, group.OpAdd, p, "")
}

// Remove removes p from the group (admins only). p is sent the
// change, and nothing after it. Removing oneself is leaving, and signed
// as a leave, which every version reads as the end it is (a removal of
// oneself was read as one only where it took effect before 2026-12-07:
// group.Change.Kind).
func (g *Groups) Remove(id group.ID, p peer.ID) (GroupInfo, error) {
	if p == g.host.ID() {
		return g.Leave(id)
	}
	return g.change(id, group.OpRemove, p, "")
}

// Leave leaves the group.
func (g *Groups) Leave(id group.ID) (GroupInfo, error) {
	return g.change(id, group.OpLeave, "", "")
}

// Rename renames the group for every member (admins only).
func (g *Groups) Rename(id group.ID, name string) (GroupInfo, error) {
	return g.change(id, group.OpRename, "", name)
}

// Admin makes member p an admin (admins only).
func (g *Groups) Admin(id group.ID, p peer.ID) (GroupInfo, error) {
	return g.change(id, group.OpAdmin, p, "")
}

// change proposes a change to the current version and commits it.
func (g *Groups) change(id group.ID, op group.Op, p peer.ID, name string) (GroupInfo, error) {
	c, err := g.propose(id, op, p, name)
	if err != nil {
		return GroupInfo{}, err
	}
	return g.commit(id, c)
}

// propose makes and signs a change to the version we hold (group.Log's
// checks say why it would not take effect).
func (g *Groups) propose(id group.ID, op group.Op, p peer.ID, name ...string) (*group.Change, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l, ok := g.logs[id]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownGroup, id.Short())
	}
	s := l.State()
	c, err := l.Propose(g.id.Signer(), op, p, strings.Join(name, ""), g.cfg.Now())
	if err != nil {
		what := op.String()
		if p != "" {
			what += " " + userName(g.trust, g.host.ID(), p)
		}
		named := group.Named(err, func(p peer.ID) string { return userName(g.trust, g.host.ID(), p) })
		return nil, fmt.Errorf("%s in group %q: %w", what, s.Name, namedError{err, named})
	}
	return c, nil
}

// userName is p as the user knows it, in what is said of the user's own
// changes: "you" (self), its contact's label, else its short peer ID.
func userName(t *identity.TrustStore, self, p peer.ID) string {
	if p == self {
		return "you"
	}
	if c, ok, err := t.Contact(p); err == nil && ok {
		return identity.SanitizeName(c.Label()) // a certificate's name, maybe: a peer chose it
	}
	return identity.ShortID(p)
}

// namedError is an error said with the user's names for the peers in it
// (group.Named), which errors.Is and errors.As still see through.
type namedError struct {
	err  error
	text string
}

func (e namedError) Error() string { return e.text }
func (e namedError) Unwrap() error { return e.err }

// commit adds our change to the log, stores the log and sends it to the
// members of the version before and after (so a removed member learns it
// is out).
func (g *Groups) commit(id group.ID, c *group.Change) (GroupInfo, error) {
	g.mu.Lock()
	l, ok := g.logs[id]
	if !ok {
		g.mu.Unlock()
		return GroupInfo{}, fmt.Errorf("%w %s", ErrUnknownGroup, id.Short())
	}
	before := l.State()
	if err := l.Add(c); err != nil {
		g.mu.Unlock()
		return GroupInfo{}, fmt.Errorf("%s in group %q: %w", c.Op, before.Name, err)
	}
	changes, after := l.Changes(), l.State()
	g.mu.Unlock()
	if err := g.store.Groups().PutGroupChanges(store.GroupID(id), changes); err != nil {
		return GroupInfo{}, fmt.Errorf("store group %q: %w", before.Name, err)
	}
	g.mu.Lock()
	_, err := g.doubts.note(l) // ours may decide one: a removal of its target
	g.mu.Unlock()
	if err != nil {
		g.emitError("", err)
	}
	recipients := slices.Clone(after.Members)
	for _, m := range before.Members {
		if !slices.Contains(recipients, m) {
			recipients = append(recipients, m)
		}
	}
	if c.Op == group.OpRemove && !slices.Contains(recipients, c.Peer) {
		recipients = append(recipients, c.Peer)
	}
	var added []peer.ID // sent the whole log, however long
	if c.Op == group.OpAdd && !before.IsMember(c.Peer) {
		added = append(added, c.Peer)
	}
	if err := g.distribute(id, changes, recipients, added...); err != nil {
		return GroupInfo{}, err
	}
	gi := g.info(after)
	g.emitGroup(gi)
	g.held.release(id)
	return gi, nil
}

// Send stores a text to the group once and queues a copy for each
// other member. It is refused while a member's key changed or is blocked.
func (g *Groups) Send(id group.ID, text string) (store.GroupMessage, error) {
	return g.post(id, store.GroupMessage{Body: text})
}

// post stores m (a text, reply or action) to the group once and queues a
// copy for each other member.
func (g *Groups) post(id group.ID, m store.GroupMessage) (store.GroupMessage, error) {
	s, ok := g.state(id)
	if !ok {
		return store.GroupMessage{}, fmt.Errorf("%w %s", ErrUnknownGroup, id.Short())
	}
	if !s.IsMember(g.host.ID()) {
		return store.GroupMessage{}, fmt.Errorf("send to %q: %w", s.Name, ErrNotGroupMember)
	}
	if err := g.doubts.undecided(s, g.host.ID()); err != nil {
		return store.GroupMessage{}, fmt.Errorf("send to %q: %w", s.Name, err)
	}
	to := make([]peer.ID, 0, len(s.Members))
	may := make([]bool, 0, len(s.Members)) // may be written to now (pushGroup)
	since := time.Now()                    // one look at the trust store for every member
	for _, p := range s.Members {
		if p == g.host.ID() {
			continue
		}
		err := g.book.mayMessageSince(p, since)
		if errors.Is(err, ErrKeyChanged) || errors.Is(err, ErrBlocked) {
			return store.GroupMessage{}, fmt.Errorf("send to %q: %s: %w (%w)", s.Name, identity.ShortID(p), ErrGroupBlocked, err)
		}
		to, may = append(to, p), append(may, err == nil)
	}
	now := g.cfg.Now()
	m.Group, m.ID, m.SentAt, m.StoredAt = store.GroupID(id), e2e.NewMessageID(), now, now
	if _, err := groupPlaintext(m.AsMessage()); err != nil { // refused now rather than failed later
		return store.GroupMessage{}, err
	}
	g.postMu.Lock()
	defer g.postMu.Unlock()
	if err := g.rk.storeGroupSealed(&m, to); err != nil {
		return store.GroupMessage{}, fmt.Errorf("store group message: %w", err)
	}
	g.out.pushGroup(&m, to, may)
	return m, nil
}

// History returns a page of a group's messages, oldest first.
func (g *Groups) History(id group.ID, before uint64, limit int) ([]store.GroupMessage, error) {
	return g.store.Groups().GroupHistory(store.GroupID(id), before, limit)
}

// Delivery reports an outgoing group message with each member's
// delivery status ("delivered to 4 of 6", and who is missing).
func (g *Groups) Delivery(msg e2e.MessageID) (store.GroupMessage, error) {
	return g.store.Groups().GroupMessageByID(msg)
}

// MarkRead clears a group's unread count.
func (g *Groups) MarkRead(id group.ID) error {
	return g.store.Groups().MarkGroupRead(store.GroupID(id))
}
