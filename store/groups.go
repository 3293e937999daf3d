package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	mrand "math/rand/v2"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Groups is the store's part for groups: the buckets below and every
// operation on them. It is a handle on the one Store (one bbolt file, so
// a group message is stored once, in one write, with what goes with it);
// get it with Store.Groups.
type Groups struct{ *Store }

// Groups is the part of the store that holds groups.
func (s *Store) Groups() Groups { return Groups{s} }

// Groups (docs/PROTOCOL.md §14). Eight buckets, made on first use, so a
// database without groups is unchanged (and two more for the counts:
// groups_counts.go):
//
//	groups     group ID (32) → the group's record (sealed JSON): the log's
//	           changes in the order they were added, the local name and
//	           settings; what each message changes (our numbering in the
//	           group, each sender's, the unread count) is in gcount and
//	           grecv, so a message does not rewrite it
//	gmsgs/<id> one bucket per group: 8-byte sequence → message (sealed
//	           JSON), with, on an outgoing one, each member's delivery
//	           status
//	gids       message ID (16) → group ID || sequence
//	gqueue     group ID || sequence → the members whose copy is not
//	           acknowledged yet (groups_queue.go)
//	gdeliv     group ID || sequence || member peer ID → status (1 byte)
//	           || delivered (8, Unix ms), sealed: an outgoing message's
//	           delivery to each member, apart from the message, so that
//	           a receipt rewrites 49 bytes, not the message with every
//	           member's status. A member with none is sending (a new
//	           message writes none). A value of the version before, 9
//	           bytes in the clear, is sealed when the database is opened
//	           (sealDeliveries); one of status sending, as messages
//	           stored before gmembers have, is read as written
//	gmembers   group ID || sequence → the members an outgoing message
//	           went to (sealed: each peer ID after its length, a
//	           uvarint), one record whatever the members; messages
//	           stored before it have none, and a record in gdeliv for
//	           each member
//	gpending   target message ID (16) || action message ID (16) → group
//	           ID || sequence: an incoming edit, deletion or reaction
//	           whose target has not arrived yet, kept (sealed, with its
//	           body, in gmsgs) until it does (groups_actions.go)
//
//	gsettled   group ID || sequence → an outgoing message's count of
//	           copies not yet decided, then its members' deliveries
//	           gathered from gdeliv into one record once all are
//	           (groups_settled.go)
//
// A group message is stored once, on the sender as on each receiver; an
// outgoing one is queued for every member in the same transaction (one
// fsync, however many members).
var (
	bktGroups = []byte("groups")
	bktGMsgs  = []byte("gmsgs")
	bktGIDs   = []byte("gids")
	bktGDeliv = []byte("gdeliv")
	// bktGMembers lists the members of each outgoing message.
	bktGMembers = []byte("gmembers")
	// bktGPending is the index of the group actions kept pending.
	bktGPending = []byte("gpending")
)

// GroupID is a group's ID (the hash of its create).
type GroupID = [e2e.GroupIDLen]byte

// Group is what the store keeps of a group.
type Group struct {
	ID GroupID
	// Changes: the log's changes, as added (Log.Restore reads them).
	Changes [][]byte
	// Name: the local name, if the user gave one ("" : the group's).
	Name     string
	Muted    bool
	Doubts   []GroupDoubt // removals undone by their removers' own leaves (UpdateGroupDoubts)
	Last     time.Time
	Unread   int
	Messages int
	// Records counts the records the group ever held: its texts and
	// actions (pending, applied or refused), ours and its members'. Read
	// by Get only.
	Records uint64
}

// storedGroup is a group's record. What each message changes is kept
// apart (groups_counts.go), so a message leaves the record as it is.
type storedGroup struct {
	Changes [][]byte     `json:"changes"`
	Name    string       `json:"name,omitempty"`
	Muted   bool         `json:"muted,omitempty"`
	Doubts  []GroupDoubt `json:"doubts,omitempty"`
}

// MemberDelivery is one member's delivery status of an outgoing group
// message.
type MemberDelivery struct {
	Peer      peer.ID
	Status    Status
	Delivered time.Time
}

// GroupMessage is one stored group message.
type GroupMessage struct {
	Group     GroupID
	ID        e2e.MessageID
	Seq       uint64
	From      peer.ID // the sender; empty: ours
	Direction Direction
	SentAt    time.Time
	StoredAt  time.Time
	Body      string
	// The sender's numbering in the group; on an incoming message, late
	// and how many of that sender's earlier messages are still missing.
	Stream, Number uint64
	Late           bool
	Missing        int
	// Outgoing: every member it was sent to and how far it got.
	Members []MemberDelivery
	// Changes: not a message but membership changes to send (a
	// group-change frame); never in the history.
	Changes [][]byte

	// Replies, edits, deletions and reactions (groups_actions.go), as in
	// Message: Kind and Target for an action (hidden from the history,
	// applied to its target), ReplyTo for a reply, and a text's state.
	Kind      Kind
	Target    e2e.MessageID
	Emoji     string
	ReplyTo   e2e.MessageID
	Edited    time.Time
	Deleted   bool
	Reactions []Reaction
	// Refused: why an incoming action was not applied (stored so that
	// its number counts and a copy sent again is known).
	Refused string
	// Pending: an incoming action whose target has not arrived yet; it
	// keeps its body until it is applied (or refused) when it does.
	Pending bool
	// Waited: on a text just received, the actions that waited for it,
	// applied (the text shows them) or refused (Refused says why).
	Waited []GroupMessage
	// Applied: after storing an action, its target as it now stands.
	Applied *GroupMessage
}

// Delivered counts the members that have the message.
func (m GroupMessage) Delivered() int {
	n := 0
	for _, d := range m.Members {
		if d.Status == StatusDelivered {
			n++
		}
	}
	return n
}

// Waiting lists the members that do not have the message yet.
func (m GroupMessage) Waiting() []peer.ID {
	var out []peer.ID
	for _, d := range m.Members {
		if d.Status != StatusDelivered {
			out = append(out, d.Peer)
		}
	}
	return out
}

type storedGroupMessage struct {
	ID       string    `json:"id"`
	From     string    `json:"from,omitempty"`
	Dir      Direction `json:"dir"`
	SentAt   int64     `json:"sent"`
	StoredAt int64     `json:"stored"`
	Body     string    `json:"body"`
	Stream   uint64    `json:"stream,omitempty"`
	Number   uint64    `json:"num,omitempty"`
	Late     bool      `json:"late,omitempty"`
	Missing  int       `json:"missing,omitempty"`
	Changes  [][]byte  `json:"changes,omitempty"`
	// Actions (groups_actions.go).
	Kind      Kind             `json:"kind,omitempty"`
	Target    string           `json:"target,omitempty"`
	Emoji     string           `json:"emoji,omitempty"`
	ReplyTo   string           `json:"reply_to,omitempty"`
	Edited    int64            `json:"edited,omitempty"`
	Deleted   bool             `json:"deleted,omitempty"`
	Reactions []storedReaction `json:"reactions,omitempty"`
	Refused   string           `json:"refused,omitempty"`
	Pending   bool             `json:"pending,omitempty"`
}

// Delivery statuses as gdeliv stores them.
var delivCodes = []Status{StatusSending, StatusSent, StatusQueued, StatusDelivered, StatusFailed}

// delivADPrefix starts a delivery's associated data, which binds the
// sealed record to its key: delivADPrefix || key.
const delivADPrefix = "gdeliv/"

// delivAD binds a sealed delivery to its key.
func delivAD(k []byte) []byte {
	return append(append(make([]byte, 0, len(delivADPrefix)+len(k)), delivADPrefix...), k...)
}

// delivKeyAD is a delivery's key and its AD in one allocation: the key is
// the AD's tail (bbolt copies a key it keeps).
func delivKeyAD(gid GroupID, seq uint64, p peer.ID) (k, ad []byte) {
	ad = appendDelivKeyAD(make([]byte, 0, len(delivADPrefix)+len(gid)+8+len(p)), gid, seq, p)
	return ad[len(delivADPrefix):], ad
}

// appendDelivKeyAD appends a delivery's AD (delivADPrefix and its key)
// to dst.
func appendDelivKeyAD(dst []byte, gid GroupID, seq uint64, p peer.ID) []byte {
	dst = append(append(dst, delivADPrefix...), gid[:]...)
	return append(binary.BigEndian.AppendUint64(dst, seq), p...)
}

// delivPlainLen is the length of a delivery before it is sealed.
const delivPlainLen = 9

// delivValue is d's record with AD ad (delivAD of its key): its status
// and delivery time, sealed (a delivery time is when a member read the
// group).
func (s Groups) delivValue(ad []byte, d MemberDelivery) []byte {
	plain := delivPlain(d)
	return s.seal(plain[:], ad)
}

// delivPlain is d before it is sealed: its status code and delivery time.
func delivPlain(d MemberDelivery) (plain [delivPlainLen]byte) {
	plain[0] = byte(slices.Index(delivCodes, d.Status))
	binary.BigEndian.PutUint64(plain[1:], uint64(optTime(d.Delivered)))
	return plain
}

// parseDeliv opens the delivery record v with AD ad (delivAD of its
// key), of member p.
func (s Groups) parseDeliv(ad, v []byte, p peer.ID) (MemberDelivery, error) {
	plain, err := s.open(v, ad)
	if err != nil {
		return MemberDelivery{}, corrupt(fmt.Sprintf("gdeliv/%x", ad[len(delivADPrefix):]), errors.New("it does not decrypt"))
	}
	d, err := parseDelivPlain(plain, p)
	if err != nil {
		return MemberDelivery{}, corrupt(fmt.Sprintf("gdeliv/%x", ad[len(delivADPrefix):]), err)
	}
	return d, nil
}

// parseDelivPlain reads member p's delivery from its delivPlainLen
// bytes: a status code, then the delivery time.
func parseDelivPlain(plain []byte, p peer.ID) (MemberDelivery, error) {
	if len(plain) != delivPlainLen || int(plain[0]) >= len(delivCodes) {
		return MemberDelivery{}, errBadKey
	}
	return MemberDelivery{Peer: p, Status: delivCodes[plain[0]], Delivered: fromOptTime(int64(binary.BigEndian.Uint64(plain[1:])))}, nil
}

// sealDeliveries seals the deliveries a database of the version before
// kept in the clear (9 bytes each). A sealed one is longer: the nonce and
// the tag.
func (s Groups) sealDeliveries(tx *bolt.Tx) error {
	b := tx.Bucket(bktGDeliv)
	if b == nil {
		return nil
	}
	type kv struct{ k, v []byte }
	var clear []kv
	if err := b.ForEach(func(k, v []byte) error {
		if len(v) == delivPlainLen {
			clear = append(clear, kv{slices.Clone(k), slices.Clone(v)})
		}
		return nil
	}); err != nil {
		return err
	}
	for _, e := range clear {
		if err := b.Put(e.k, s.seal(e.v, delivAD(e.k))); err != nil {
			return err
		}
	}
	return nil
}

// putDeliveries writes m's members: their list, sealed in one record
// (gmembers), and the status of each member whose copy is past sending.
// A member with no status record is sending, so a new message writes
// one record, not one per member.
func (s Groups) putDeliveries(tx *bolt.Tx, m *GroupMessage) error {
	if len(m.Members) == 0 {
		return nil
	}
	n := 0
	for _, d := range m.Members {
		n += binary.MaxVarintLen16 + len(d.Peer)
	}
	list := make([]byte, 0, n)
	b := tx.Bucket(bktGDeliv)
	for _, d := range m.Members {
		list = appendPeer(list, d.Peer)
		if d.Status == StatusSending {
			continue
		}
		k, ad := delivKeyAD(m.Group, m.Seq, d.Peer)
		if err := b.Put(k, s.delivValue(ad, d)); err != nil {
			return err
		}
	}
	k := seqKeyIn(m.Group, m.Seq)
	return tx.Bucket(bktGMembers).Put(k, s.seal(list, membersAD(k)))
}

// seqKeyIn is a group's ID and a sequence number: a message's key in
// the buckets of all groups.
func seqKeyIn(gid GroupID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), gid[:]...), seq)
}

func membersAD(k []byte) []byte { return append([]byte("gmembers/"), k...) }

// memberList reads the members an outgoing message went to; found is
// false for a message stored before the list was kept (each member then
// has a status record). The peer IDs share one string.
func (s Groups) memberList(tx *bolt.Tx, gid GroupID, seq uint64) (members []peer.ID, found bool, err error) {
	list, found, err := s.openList(tx, gid, seq)
	if !found || err != nil {
		return nil, found, err
	}
	members, err = peerList(list, membersRecord(gid, seq))
	return members, err == nil, err
}

// openList opens message gid/seq's member list.
func (s Groups) openList(tx *bolt.Tx, gid GroupID, seq uint64) (list []byte, found bool, err error) {
	k := seqKeyIn(gid, seq)
	var v []byte
	if b := tx.Bucket(bktGMembers); b != nil {
		v = b.Get(k)
	}
	if v == nil {
		return nil, false, nil
	}
	if list, err = s.open(v, membersAD(k)); err != nil {
		return nil, false, corrupt(membersRecord(gid, seq), errors.New("it does not decrypt"))
	}
	return list, true, nil
}

func membersRecord(gid GroupID, seq uint64) string {
	return fmt.Sprintf("gmembers/%x/%d", gid[:8], seq)
}

// appendPeer appends p to a list of peers: its length (uvarint), then
// its bytes. A message's member list is one, and a queue record that
// names its members.
func appendPeer(dst []byte, p peer.ID) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(p))), p...)
}

// peerList reads a list of peers (appendPeer) of the record named
// record; the peer IDs share one string.
func peerList(list []byte, record string) ([]peer.ID, error) {
	all := string(list)
	var peers []peer.ID
	for at := 0; at < len(list); {
		n, w := binary.Uvarint(list[at:])
		if w <= 0 || n > uint64(len(list)-at-w) {
			return nil, corrupt(record, errBadKey)
		}
		peers = append(peers, peer.ID(all[at+w:at+w+int(n)]))
		at += w + int(n)
	}
	return peers, nil
}

// loadDeliveries reads an outgoing message's members' statuses: those
// recorded, and sending for each other member of its list.
func (s Groups) loadDeliveries(tx *bolt.Tx, m *GroupMessage) error {
	m.Members = nil
	b := tx.Bucket(bktGDeliv)
	if b == nil || m.Direction != Outgoing {
		return nil
	}
	list, listed, err := s.memberList(tx, m.Group, m.Seq)
	if err != nil {
		return err
	}
	var at map[peer.ID]int // where each member of the list is in m.Members
	if listed {
		at = make(map[peer.ID]int, len(list))
	}
	settled, err := s.settled().deliveries(tx, m.Group, m.Seq, list)
	if err != nil {
		return err
	}
	for i, p := range list {
		m.Members = append(m.Members, MemberDelivery{Peer: p, Status: StatusSending})
		if settled != nil {
			m.Members[i] = settled[i]
		}
		at[p] = i
	}
	prefix := seqKeyIn(m.Group, m.Seq)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		d, err := s.parseDeliv(delivAD(k), v, peer.ID(k[len(prefix):]))
		if err != nil {
			return err
		}
		if i, ok := at[d.Peer]; ok {
			m.Members[i] = d
		} else {
			m.Members = append(m.Members, d)
		}
	}
	return nil
}

// delivery is member p's delivery of the outgoing group message gid/seq:
// its status record, or sending if p is one of its members with none
// (p's copy is still queued, or p is on its list). ErrNotFound: the
// message did not go to p.
func (s Groups) delivery(tx *bolt.Tx, gid GroupID, seq uint64, p peer.ID) (MemberDelivery, error) {
	dk, ad := delivKeyAD(gid, seq, p)
	if db := tx.Bucket(bktGDeliv); db != nil {
		if dv := db.Get(dk); dv != nil {
			return s.parseDeliv(ad, dv, p)
		}
	}
	queued, err := s.queue().has(tx, queueKey(gid, seq), p)
	if err != nil {
		return MemberDelivery{}, err
	}
	if queued {
		return MemberDelivery{Peer: p, Status: StatusSending}, nil
	}
	list, _, err := s.memberList(tx, gid, seq)
	if err != nil {
		return MemberDelivery{}, err
	}
	i := slices.Index(list, p)
	if i < 0 {
		return MemberDelivery{}, fmt.Errorf("group message %x/%d to %s: %w", gid[:4], seq, p, ErrNotFound)
	}
	settled, err := s.settled().deliveries(tx, gid, seq, list)
	if err != nil {
		return MemberDelivery{}, err
	}
	if settled != nil {
		return settled[i], nil
	}
	return MemberDelivery{Peer: p, Status: StatusSending}, nil
}

func groupAD(id GroupID) []byte { return append([]byte("groups/"), id[:]...) }

func groupRecord(id GroupID) string { return fmt.Sprintf("groups/%x", id[:8]) }

func gmsgAD(id GroupID, seq uint64) []byte {
	return append(append([]byte("gmsgs/"), id[:]...), seqKey(seq)...)
}

func gmsgRecord(id GroupID, seq uint64) string { return fmt.Sprintf("gmsgs/%x/%d", id[:8], seq) }

// groupBucketNames are the group buckets.
var groupBucketNames = [][]byte{bktGroups, bktGMsgs, bktGIDs, bktGQueue, bktGDeliv, bktGPending, bktGMembers, bktGSettled}

// groupBuckets makes the group buckets in a writable transaction.
func groupBuckets(tx *bolt.Tx) error {
	for _, b := range groupBucketNames {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// haveBuckets reports whether the database's root holds a bucket of
// each name in each list, without opening them: one cursor on the root,
// where making them (CreateBucketIfNotExists) opens each, a cursor and a
// copy of its name apiece, though a message needs only some of them.
func haveBuckets(tx *bolt.Tx, lists ...[][]byte) bool {
	c := tx.Cursor()
	for _, names := range lists {
		for _, n := range names {
			if k, v := c.Seek(n); !bytes.Equal(k, n) || v != nil {
				return false
			}
		}
	}
	return true
}

func (g storedGroup) public(id GroupID, c storedCounts) Group {
	return Group{ID: id, Changes: g.Changes, Name: g.Name, Muted: g.Muted, Doubts: g.Doubts, Last: fromOptTime(c.Last),
		Unread: c.Unread, Messages: c.Messages}
}

// PutGroupChanges records a group's log: the changes as the log holds
// them (Log.Changes), creating the group's record if it has none. The
// local name and the numbering are kept.
func (s Groups) PutGroupChanges(id GroupID, changes [][]byte) error {
	if len(changes) == 0 {
		return errors.New("a group's log starts with its create")
	}
	return s.update(func(tx *bolt.Tx) error {
		if err := groupBuckets(tx); err != nil {
			return err
		}
		g, _, err := s.records().get(tx, id)
		if err != nil {
			return err
		}
		g.Changes = changes
		return s.records().put(tx, id, g)
	})
}

// SetGroupName sets the local name of a group ("": the group's own).
func (s Groups) SetGroupName(id GroupID, name string) error {
	return s.records().update(id, func(g *storedGroup) { g.Name = name })
}

// MarkGroupRead clears a group's unread count.
func (s Groups) MarkGroupRead(id GroupID) error {
	return s.update(func(tx *bolt.Tx) error {
		cs := s.counts()
		if !cs.exists(tx, id) {
			return fmt.Errorf("group %x: %w", id[:4], ErrNotFound)
		}
		c, err := cs.get(tx, id)
		if err != nil || c.Unread == 0 {
			return err
		}
		c.Unread = 0
		if err := countBuckets(tx); err != nil {
			return err
		}
		return cs.put(tx, id, c)
	})
}

// Group reads one group; found is false if the store has none by that ID.
func (s Groups) Get(id GroupID) (g Group, found bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		sg, ok, err := s.records().get(tx, id)
		if err != nil || !ok {
			return err
		}
		c, err := s.counts().get(tx, id)
		g, found = sg.public(id, c), true
		if b := tx.Bucket(bktGMsgs).Bucket(id[:]); b != nil {
			g.Records = b.Sequence()
		}
		return err
	})
	return g, found, err
}

// Groups lists the groups, most recent first. A record that cannot be
// read is left out and reported (a *CorruptError each, joined).
func (s Groups) List() ([]Group, error) {
	var out []Group
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktGroups)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			if len(k) != e2e.GroupIDLen {
				bad = append(bad, corrupt(fmt.Sprintf("groups/%x", k), errBadKey))
				return nil
			}
			id := GroupID(k)
			g, _, err := s.records().get(tx, id)
			if err != nil {
				bad = append(bad, err)
				return nil
			}
			c, err := s.counts().get(tx, id)
			if err != nil {
				bad = append(bad, err)
				return nil
			}
			out = append(out, g.public(id, c))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Group) int { return b.Last.Compare(a.Last) })
	return out, errors.Join(bad...)
}

func (s Groups) encodeGroupMessage(m *GroupMessage) ([]byte, error) {
	sm := storedGroupMessage{ID: m.ID.String(), Dir: m.Direction, SentAt: m.SentAt.UnixMilli(),
		StoredAt: m.StoredAt.UnixMilli(), Body: m.Body, Stream: m.Stream, Number: m.Number,
		Late: m.Late, Missing: m.Missing, Changes: m.Changes}
	if m.From != "" {
		sm.From = m.From.String()
	}
	encodeGroupAction(m, &sm)
	plain, err := json.Marshal(sm)
	if err != nil {
		return nil, err
	}
	return s.seal(plain, gmsgAD(m.Group, m.Seq)), nil
}

func (s Groups) decodeGroupMessage(id GroupID, seq uint64, data []byte) (GroupMessage, error) {
	rec := gmsgRecord(id, seq)
	if data == nil {
		return GroupMessage{}, corrupt(rec, errors.New("missing"))
	}
	var sm storedGroupMessage
	if err := s.openJSON(data, gmsgAD(id, seq), &sm); err != nil {
		return GroupMessage{}, corrupt(rec, err)
	}
	mid, err := e2e.ParseMessageID(sm.ID)
	if err != nil {
		return GroupMessage{}, corrupt(rec, err)
	}
	m := GroupMessage{Group: id, ID: mid, Seq: seq, Direction: sm.Dir, SentAt: time.UnixMilli(sm.SentAt),
		StoredAt: time.UnixMilli(sm.StoredAt), Body: sm.Body, Stream: sm.Stream, Number: sm.Number,
		Late: sm.Late, Missing: sm.Missing, Changes: sm.Changes}
	if sm.From != "" {
		if m.From, err = peer.Decode(sm.From); err != nil {
			return GroupMessage{}, corrupt(rec, err)
		}
	}
	if err := decodeGroupAction(&sm, &m); err != nil {
		return GroupMessage{}, corrupt(rec, err)
	}
	return m, nil
}

// appendGroupMessage gives m the group's next sequence number and writes
// it with its ID index entry, counting it in c.
func (s Groups) appendGroupMessage(tx *bolt.Tx, c *storedCounts, m *GroupMessage) error {
	b, err := tx.Bucket(bktGMsgs).CreateBucketIfNotExists(m.Group[:])
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	m.Seq = seq
	v, err := s.encodeGroupMessage(m)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return err
	}
	if err := s.putDeliveries(tx, m); err != nil {
		return err
	}
	if err := tx.Bucket(bktGIDs).Put(m.ID[:], seqKeyIn(m.Group, seq)); err != nil {
		return err
	}
	c.Last, c.Messages = m.StoredAt.UnixMilli(), c.Messages+1
	return nil
}

// AddGroupOutgoing stores a new outgoing group message once, numbered in
// the group, and queues it for every member in members, all in one
// transaction: one durable write whatever the group's size.
func (s Groups) AddGroupOutgoing(m *GroupMessage, members []peer.ID) error {
	return s.AddGroupOutgoingSealed(m, members, nil)
}

// AddGroupOutgoingSealed is AddGroupOutgoing that also writes, in the same
// transaction, the ratchet states seal puts: seal is called once m is
// numbered, to seal its copies (the message, every member's queue entry
// and every member's new ratchet state: one durable write). put seals a
// state's encoding into the transaction at once, so seal may encode every
// state into one buffer, reused (and cleared) from one put to the next.
func (s Groups) AddGroupOutgoingSealed(m *GroupMessage, members []peer.ID, seal func(m *GroupMessage, put func(Ratchet) error) error) error {
	m.Direction, m.From = Outgoing, ""
	m.Members = slices.Grow(m.Members[:0], len(members))
	for _, p := range members {
		m.Members = append(m.Members, MemberDelivery{Peer: p, Status: StatusSending})
	}
	return s.update(func(tx *bolt.Tx) error {
		g, err := s.counts().forMessage(tx, m.Group)
		if err != nil {
			return err
		}
		if tx.Bucket(bktGIDs).Get(m.ID[:]) != nil {
			return fmt.Errorf("message %s: %w", m.ID, ErrIDTaken)
		}
		for g.Stream == 0 {
			g.Stream = mrand.Uint64()
		}
		g.Sent++
		m.Stream, m.Number = g.Stream, g.Sent
		if m.Kind != KindText {
			if err := s.actions().applyGroupAction(tx, m, m.StoredAt); err != nil {
				return err
			}
		}
		if seal != nil {
			if err := seal(m, func(r Ratchet) error { return s.Ratchets().putRatchet(tx, r) }); err != nil {
				return err
			}
		}
		msgs, last := g.Messages, g.Last
		if err := s.actions().appendAction(tx, &g, m); err != nil {
			return err
		}
		if m.Kind != KindText {
			g.Messages, g.Last = msgs, last // actions are not messages
		}
		if err := s.queue().put(tx, queueKey(m.Group, m.Seq), members, true); err != nil {
			return err
		}
		if len(members) > 0 {
			if err := s.settled().waitFor(tx, m.Group, m.Seq, len(members)); err != nil {
				return err
			}
		}
		return s.counts().put(tx, m.Group, g)
	})
}

// ReceiveGroup stores a group message from m.From unless one with its ID
// is stored (new is false then, and nothing changes). The caller has
// checked that the sender is a member. It records the sender's numbering
// in the group: m.Late and m.Missing say what it found.
func (s Groups) ReceiveGroup(m *GroupMessage, now time.Time) (isNew bool, err error) {
	err = s.update(func(tx *bolt.Tx) error {
		var err error
		isNew, err = s.receiveGroup(tx, m, now)
		return err
	})
	return isNew, err
}

// sameSender says whether m, whose ID the group index holds (v: group
// ID and sequence), is a copy of the message stored under it: nil if it
// is (a copy sent again), ErrIDTaken if the message stored is in another
// conversation or from another sender. A member who got a message before
// another member did could otherwise send that member one of its own
// under the same ID, and the real one would be taken for a copy already
// stored and dropped without a word.
func (s Groups) sameSender(tx *bolt.Tx, m *GroupMessage, v []byte) error {
	taken := fmt.Errorf("message %s in group %x: %w", m.ID, m.Group[:4], ErrIDTaken)
	if len(v) != e2e.GroupIDLen+8 || !bytes.HasPrefix(v, m.Group[:]) {
		return taken
	}
	seq := binary.BigEndian.Uint64(v[e2e.GroupIDLen:])
	b := tx.Bucket(bktGMsgs).Bucket(m.Group[:])
	if b == nil {
		return corrupt(gmsgRecord(m.Group, seq), errors.New("missing"))
	}
	old, err := s.decodeGroupMessage(m.Group, seq, b.Get(seqKey(seq)))
	if err != nil {
		return err
	}
	if old.Direction != Incoming || old.From != m.From {
		return taken
	}
	return nil
}

func (s Groups) receiveGroup(tx *bolt.Tx, m *GroupMessage, now time.Time) (bool, error) {
	m.Direction, m.StoredAt, m.Members = Incoming, now, nil
	if m.From == "" {
		return false, errors.New("a received group message needs its sender")
	}
	cs := s.counts()
	g, gAt, err := cs.forMessageAt(tx, m.Group)
	if err != nil {
		return false, err
	}
	if v := tx.Bucket(bktGIDs).Get(m.ID[:]); v != nil {
		return false, s.sameSender(tx, m, v)
	}
	wAt := cs.recvAt(m.Group, m.From)
	w, err := cs.window(tx, m.Group, m.From, wAt)
	if err != nil {
		return false, err
	}
	m.Late, m.Missing = w.add(m.Stream, m.Number)
	if err := cs.putWindow(tx, wAt, w); err != nil {
		return false, err
	}
	if m.Kind != KindText {
		msgs, last := g.Messages, g.Last
		if err := s.actions().receiveAction(tx, &g, m, now); err != nil {
			return false, err
		}
		g.Messages, g.Last = msgs, last // actions are not messages
		return true, cs.putSealed(tx, bktGCount, gAt, g)
	}
	if err := s.appendGroupMessage(tx, &g, m); err != nil {
		return false, err
	}
	g.Unread++
	if err := s.actions().applyPending(tx, m, now); err != nil {
		return false, err
	}
	if err := s.Actions().refusePending(tx, m.ID); err != nil {
		return false, err
	}
	return true, cs.putSealed(tx, bktGCount, gAt, g)
}

// GroupOutbox lists the group messages (and changes) member p has not
// acknowledged, in the order written.
func (s Groups) GroupOutbox(p peer.ID) ([]GroupMessage, error) {
	var out []GroupMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, err = s.groupOutbox(tx, p)
		return err
	})
	return out, err
}

// groupOutbox reads in tx the messages the index has queued for p, as
// of this transaction: the index may have moved on since it began.
func (s Groups) groupOutbox(tx *bolt.Tx, p peer.ID) ([]GroupMessage, error) {
	var out []GroupMessage
	for _, k := range s.qindex.list(p) {
		queued, err := s.queue().has(tx, k, p)
		if err != nil {
			return out, err
		}
		if !queued {
			continue
		}
		id, seq := k.gid(), k.seq()
		var raw []byte
		if b := tx.Bucket(bktGMsgs).Bucket(id[:]); b != nil {
			raw = b.Get(seqKey(seq))
		}
		m, err := s.decodeGroupMessage(id, seq, raw)
		if err != nil {
			return out, err
		}
		if err := s.actions().fillEdit(tx, &m); err != nil {
			return out, err
		}
		dk, ad := delivKeyAD(id, seq, p)
		if v := tx.Bucket(bktGDeliv).Get(dk); v != nil {
			d, err := s.parseDeliv(ad, v, p)
			if err != nil {
				return out, err
			}
			m.Members = []MemberDelivery{d}
		}
		out = append(out, m)
	}
	return out, nil
}

// copyFor is member p's copy of an outgoing group message, as the
// outbox sends it: a store message to p with the group's ID.
func (m GroupMessage) copyFor(p peer.ID) Message {
	st := StatusSending
	for _, d := range m.Members {
		if d.Peer == p {
			st = d.Status
		}
	}
	return m.copyWith(p, st)
}

// copyWith is member p's copy of an outgoing group message whose
// status for p is st.
func (m *GroupMessage) copyWith(p peer.ID, st Status) Message {
	return Message{ID: m.ID, Peer: p, Seq: m.Seq, Direction: Outgoing, SentAt: m.SentAt, StoredAt: m.StoredAt,
		Body: m.Body, Status: st, Stream: m.Stream, Number: m.Number, Group: m.Group, GroupChanges: m.Changes,
		Kind: m.Kind, Target: m.Target, Emoji: m.Emoji, ReplyTo: m.ReplyTo}
}

// CopyFor is member p's copy of an outgoing group message, as the
// outbox sends it and Outbox lists it.
func (m GroupMessage) CopyFor(p peer.ID) Message { return m.copyFor(p) }

// MemberCopy is CopyFor for m.Members[i], without looking the member up
// (a message to a hundred members would look a hundred times).
func (m *GroupMessage) MemberCopy(i int) Message {
	return m.copyWith(m.Members[i].Peer, m.Members[i].Status)
}

// AsMessage is an incoming group message in the form of a private one
// (Peer: the sender, Group: the group), for events.
func (m GroupMessage) AsMessage() Message {
	out := Message{ID: m.ID, Peer: m.From, Seq: m.Seq, Direction: m.Direction, SentAt: m.SentAt, StoredAt: m.StoredAt,
		Body: m.Body, Status: StatusReceived, Stream: m.Stream, Number: m.Number, Late: m.Late, Missing: m.Missing, Group: m.Group,
		Kind: m.Kind, Target: m.Target, Emoji: m.Emoji, ReplyTo: m.ReplyTo, Edited: m.Edited, Deleted: m.Deleted,
		Reactions: m.Reactions, Error: m.Refused, Pending: m.Pending}
	if m.Refused != "" {
		out.Status = StatusRefused
	}
	if m.Direction == Outgoing {
		out.Status = StatusSending
		if len(m.Members) > 0 && m.Delivered() == len(m.Members) {
			out.Status = StatusDelivered
		}
	}
	return out
}

// AddGroupChanges queues membership changes of a group for each
// recipient (one write), to be sent as a group-change frame with ID id.
func (s Groups) AddGroupChanges(gid GroupID, id e2e.MessageID, changes [][]byte, recipients []peer.ID, now time.Time) error {
	m := &GroupMessage{Group: gid, ID: id, SentAt: now, StoredAt: now, Direction: Outgoing, Changes: changes}
	for _, p := range recipients {
		m.Members = append(m.Members, MemberDelivery{Peer: p, Status: StatusSending})
	}
	return s.update(func(tx *bolt.Tx) error {
		if err := groupBuckets(tx); err != nil {
			return err
		}
		if !s.counts().exists(tx, gid) {
			return fmt.Errorf("group %x: %w", gid[:4], ErrNotFound)
		}
		var uncounted storedCounts // changes are not messages
		if err := s.appendGroupMessage(tx, &uncounted, m); err != nil {
			return err
		}
		return s.queue().put(tx, queueKey(gid, m.Seq), recipients, true)
	})
}

// SetGroupStatus records member p's status of an outgoing group message
// (sent, queued, delivered, failed) and reports whether it changed.
// Delivered (and failed) take the message out of p's outbox. A message
// that is not ours or was not sent to p is ErrNotFound.
func (s Groups) SetGroupStatus(id e2e.MessageID, p peer.ID, st Status, now time.Time) (GroupMessage, bool, error) {
	var (
		out     GroupMessage
		changed bool
	)
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		out, changed, err = s.setGroupStatus(tx, id, p, st, now)
		return err
	})
	return out, changed, err
}

// setGroupStatusOf is setStatus for a group message's copy to p: the
// message as p's copy.
func (s Groups) setGroupStatusOf(tx *bolt.Tx, id e2e.MessageID, p peer.ID, st Status, now time.Time, gm *groupMessages) (Message, bool, error) {
	m, d, changed, err := s.setGroupStatusIn(tx, id, p, st, now, gm)
	if err != nil {
		return Message{}, false, err
	}
	return m.copyWith(p, d.Status), changed, nil
}

func (s Groups) setGroupStatus(tx *bolt.Tx, id e2e.MessageID, p peer.ID, st Status, now time.Time) (GroupMessage, bool, error) {
	m, d, changed, err := s.setGroupStatusIn(tx, id, p, st, now, nil)
	if err != nil {
		return GroupMessage{}, false, err
	}
	m.Members = []MemberDelivery{d} // m is this call's copy: its Members are its own
	return m, changed, nil
}

// groupMessages is what one transaction that records many copies'
// statuses keeps from one to the next: the group messages decoded, by
// ID, without their members' statuses, a buffer for the keys it looks
// up and writes (bbolt copies a key it keeps; the values are allocated
// each).
type groupMessages struct {
	byID map[e2e.MessageID]GroupMessage
	keys []byte
	// decided counts the copies decided, by message, for groupSettled.apply
	// at the end of the transaction; fresh are the deliveries of those
	// copies, whose records it writes then.
	decided settledDecisions
	fresh   map[qkey][]MemberDelivery
}

func newGroupMessages() *groupMessages {
	return &groupMessages{byID: map[e2e.MessageID]GroupMessage{}, decided: settledDecisions{}, fresh: map[qkey][]MemberDelivery{}}
}

// freshFor is p's delivery of message k recorded earlier in this
// transaction, if there is one (gm nil: none kept).
func (gm *groupMessages) freshFor(k qkey, p peer.ID) (MemberDelivery, bool) {
	if gm == nil {
		return MemberDelivery{}, false
	}
	for _, d := range gm.fresh[k] {
		if d.Peer == p {
			return d, true
		}
	}
	return MemberDelivery{}, false
}

// has reports whether group message id was decoded in this transaction
// (gm nil: none kept).
func (gm *groupMessages) has(id e2e.MessageID) bool {
	if gm == nil {
		return false
	}
	_, ok := gm.byID[id]
	return ok
}

// keyBuf is a buffer for the keys of one copy (gm nil: a new one).
func (gm *groupMessages) keyBuf() []byte {
	if gm == nil {
		return nil
	}
	return gm.keys[:0]
}

// setGroupStatusIn records member p's status st of the outgoing group
// message id, and returns the message (without its members' statuses),
// p's delivery now, and whether it changed.
func (s Groups) setGroupStatusIn(tx *bolt.Tx, id e2e.MessageID, p peer.ID, st Status, now time.Time, gm *groupMessages) (GroupMessage, MemberDelivery, bool, error) {
	var m GroupMessage
	ok := false
	if gm != nil {
		m, ok = gm.byID[id] // decoded for another member in this transaction
	}
	if !ok {
		var err error
		if m, err = s.groupMessageIn(tx, id); err != nil {
			return GroupMessage{}, MemberDelivery{}, false, err
		}
		if gm != nil {
			gm.byID[id] = m
		}
	}
	gid, seq := m.Group, m.Seq
	if m.Direction != Outgoing {
		return GroupMessage{}, MemberDelivery{}, false, fmt.Errorf("message %s to %s: %w", id, p, ErrNotFound)
	}
	// One buffer for this copy's delivery record: its AD, whose tail is
	// its key.
	buf := appendDelivKeyAD(gm.keyBuf(), gid, seq, p)
	ad := buf[:len(buf):len(buf)]
	dk := ad[len(delivADPrefix):]
	if gm != nil {
		gm.keys = buf
	}
	qk := queueKey(gid, seq)
	if st == StatusDelivered {
		// A copy still queued for p is neither delivered nor failed:
		// its receipt changes it, whatever it was (sending, sent or
		// queued), without reading its delivery record first: a group
		// message's receipts are recorded a hundred at a time.
		ok, err := s.queue().take(tx, qk, p)
		if err != nil {
			return GroupMessage{}, MemberDelivery{}, false, err
		}
		if ok {
			if err := s.settled().decide(tx, gm, gid, seq); err != nil {
				return GroupMessage{}, MemberDelivery{}, false, err
			}
			d := MemberDelivery{Peer: p, Status: st, Delivered: now}
			if gm != nil {
				// Written at the end of the transaction, into the
				// message's settled record if this transaction
				// settles it (groupSettled.apply).
				gm.fresh[qk] = append(gm.fresh[qk], d)
				return m, d, true, nil
			}
			return m, d, true, tx.Bucket(bktGDeliv).Put(dk, s.delivValue(ad, d))
		}
	}
	if d, ok := gm.freshFor(qk, p); ok { // delivered earlier in this transaction
		return m, d, false, nil
	}
	d, err := s.delivery(tx, gid, seq, p)
	if errors.Is(err, ErrNotFound) {
		return GroupMessage{}, MemberDelivery{}, false, fmt.Errorf("message %s to %s: %w", id, p, ErrNotFound)
	}
	if err != nil {
		return GroupMessage{}, MemberDelivery{}, false, err
	}
	if d.Status == StatusDelivered || d.Status == st || (st == StatusSent && (d.Status == StatusQueued || d.Status == StatusFailed)) {
		return m, d, false, nil
	}
	d.Status = st
	if st == StatusDelivered {
		d.Delivered = now
	}
	if st == StatusDelivered || st == StatusFailed {
		took, err := s.queue().take(tx, qk, p)
		if err == nil && took {
			err = s.settled().decide(tx, gm, gid, seq)
		}
		if err != nil {
			return GroupMessage{}, MemberDelivery{}, false, err
		}
	}
	return m, d, true, tx.Bucket(bktGDeliv).Put(dk, s.delivValue(ad, d))
}

// decide counts member's copy of gid/seq decided: at once, or at the end
// of gm's transaction (groupSettled.apply) when there is one.
func (s groupSettled) decide(tx *bolt.Tx, gm *groupMessages, gid GroupID, seq uint64) error {
	if gm == nil {
		_, err := s.decided(tx, gid, seq, 1, nil)
		return err
	}
	gm.decided.add(gid, seq, 1)
	return nil
}

// groupMessageIn reads and decodes group message id, without its
// members' statuses.
func (s Groups) groupMessageIn(tx *bolt.Tx, id e2e.MessageID) (GroupMessage, error) {
	idx := tx.Bucket(bktGIDs)
	var v []byte
	if idx != nil {
		v = idx.Get(id[:])
	}
	if v == nil {
		return GroupMessage{}, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	if len(v) != e2e.GroupIDLen+8 {
		return GroupMessage{}, corrupt("gids/"+id.String(), errBadKey)
	}
	gid, seq := GroupID(v[:e2e.GroupIDLen]), binary.BigEndian.Uint64(v[e2e.GroupIDLen:])
	b := tx.Bucket(bktGMsgs).Bucket(gid[:])
	if b == nil {
		return GroupMessage{}, corrupt(gmsgRecord(gid, seq), errors.New("missing"))
	}
	return s.decodeGroupMessage(gid, seq, b.Get(seqKey(seq)))
}

// GroupMessageByID returns one group message.
func (s Groups) GroupMessageByID(id e2e.MessageID) (GroupMessage, error) {
	var out GroupMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bktGIDs)
		var v []byte
		if idx != nil {
			v = idx.Get(id[:])
		}
		if v == nil {
			return fmt.Errorf("message %s: %w", id, ErrNotFound)
		}
		if len(v) != e2e.GroupIDLen+8 {
			return corrupt("gids/"+id.String(), errBadKey)
		}
		gid, seq := GroupID(v[:e2e.GroupIDLen]), binary.BigEndian.Uint64(v[e2e.GroupIDLen:])
		var raw []byte
		if b := tx.Bucket(bktGMsgs).Bucket(gid[:]); b != nil {
			raw = b.Get(seqKey(seq))
		}
		var err error
		if out, err = s.decodeGroupMessage(gid, seq, raw); err != nil {
			return err
		}
		return s.loadDeliveries(tx, &out)
	})
	return out, err
}

// GroupHistory returns up to limit messages of a group before sequence
// number before (0: the newest), oldest first.
func (s Groups) GroupHistory(id GroupID, before uint64, limit int) ([]GroupMessage, error) {
	var out []GroupMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bktGMsgs)
		if root == nil {
			return nil
		}
		b := root.Bucket(id[:])
		if b == nil || limit <= 0 {
			return nil
		}
		return backwards(b, before, func(seq uint64, v []byte) (bool, error) {
			m, err := s.decodeGroupMessage(id, seq, v)
			if err != nil {
				return false, err
			}
			if m.Changes != nil || m.Kind != KindText {
				return true, nil
			}
			if err := s.loadDeliveries(tx, &m); err != nil {
				return false, err
			}
			out = append(out, m)
			return len(out) < limit, nil
		})
	})
	slices.Reverse(out)
	return out, err
}
