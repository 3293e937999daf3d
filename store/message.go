package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Direction of a message.
type Direction string

const (
	Incoming Direction = "in"
	Outgoing Direction = "out"
)

// Status of a message.
type Status string

const (
	StatusSending   Status = "sending"   // stored, not yet written to the peer
	StatusSent      Status = "sent"      // written to a live session, no receipt yet
	StatusQueued    Status = "queued"    // waiting at the relay's mailbox
	StatusDelivered Status = "delivered" // the peer stored it (receipt)
	StatusFailed    Status = "failed"    // given up; see Error
	StatusReceived  Status = "received"  // an incoming message
	// StatusRefused: an incoming edit, deletion or reaction that was not
	// applied (not the author's, too old, no such message); see Error.
	StatusRefused Status = "refused"
)

// Kind says what a stored message is: a text, or an action on another
// message of its conversation (its Target).
type Kind string

const (
	KindText   Kind = ""
	KindEdit   Kind = "edit"
	KindDelete Kind = "delete"
	KindReact  Kind = "react"
)

// Reaction is one reaction to a message: who reacted, with what.
type Reaction struct {
	From  peer.ID `json:",omitempty"` // empty: our own
	Emoji string
}

// Quote is the message a reply answers, as it stands when read.
type Quote struct {
	ID        e2e.MessageID
	Direction Direction
	SentAt    time.Time
	Body      string // empty when deleted
	Deleted   bool
}

// Message is one stored message.
type Message struct {
	ID        e2e.MessageID
	Peer      peer.ID // the other party
	Seq       uint64  // position in the conversation, as stored
	Direction Direction
	SentAt    time.Time // sender's clock
	StoredAt  time.Time // our clock
	Body      string
	Status    Status
	Error     string    `json:",omitempty"`
	Delivered time.Time `json:",omitempty"`
	// The sender's numbering (numbering.go): Stream 0 for a message
	// stored before messages were numbered.
	Stream, Number uint64 `json:",omitempty"`
	// Incoming only: the message arrived after later ones of the peer,
	// and how many earlier ones were still missing once it was stored.
	Late    bool `json:",omitempty"`
	Missing int  `json:",omitempty"`

	// Kind: a text, or an edit, deletion or reaction of Target (hidden
	// from History; applied to the target). An outgoing edit's Body is
	// filled, when read from the outbox, with the target's current text.
	Kind   Kind          `json:",omitempty"`
	Target e2e.MessageID `json:",omitempty"`
	Emoji  string        `json:",omitempty"` // a reaction's; empty takes it back
	// Pending: an incoming action whose target has not arrived yet; it
	// is applied when the target does.
	Pending bool `json:",omitempty"`

	// A text: the message it replies to (zero: none) and, when read, the
	// quoted message (nil when it is not in this conversation).
	ReplyTo e2e.MessageID `json:",omitempty"`
	Quote   *Quote        `json:",omitempty"`
	// A text's state after edits, deletion and reactions: the sender's
	// time of the edit shown (zero: never edited), deleted (the body is
	// gone), the reactions, one per person.
	Edited    time.Time  `json:",omitempty"`
	Deleted   bool       `json:",omitempty"`
	Reactions []Reaction `json:",omitempty"`
	// Seen: an outgoing message the peer's window showed (read markers).
	Seen time.Time `json:",omitempty"`

	// Group: the group of a group message (zero: a private message).
	// Peer is then the sender of an incoming one, the member a copy is
	// for in the outbox (groups.go). GroupChanges: in the outbox, a
	// group-change frame to send instead of a text.
	Group        GroupID  `json:",omitempty"`
	GroupChanges [][]byte `json:",omitempty"`
}

// storedMessage is the on-disk form of a message: its JSON is sealed
// whole, bound to its place (peer and sequence number), so neither its
// text nor its times, status or numbering can be read without the key,
// and a record moved to another place does not open.
type storedMessage struct {
	ID        string    `json:"id"`
	Dir       Direction `json:"dir"`
	SentAt    int64     `json:"sent"`
	StoredAt  int64     `json:"stored"`
	Status    Status    `json:"status"`
	Error     string    `json:"error,omitempty"`
	Delivered int64     `json:"delivered,omitempty"`
	Stream    uint64    `json:"stream,omitempty"`
	Number    uint64    `json:"num,omitempty"`
	Late      bool      `json:"late,omitempty"`
	Missing   int       `json:"missing,omitempty"`
	Body      string    `json:"body"`
	// Version 3 (actions.go).
	Kind      Kind             `json:"kind,omitempty"`
	Target    string           `json:"target,omitempty"`
	Emoji     string           `json:"emoji,omitempty"`
	Pending   bool             `json:"pending,omitempty"`
	ReplyTo   string           `json:"reply_to,omitempty"`
	Edited    int64            `json:"edited,omitempty"`
	Deleted   bool             `json:"deleted,omitempty"`
	Reactions []storedReaction `json:"reactions,omitempty"`
	Seen      int64            `json:"seen,omitempty"`
}

type storedReaction struct {
	From  string `json:"from,omitempty"`
	Emoji string `json:"emoji"`
}

func idString(id e2e.MessageID) string {
	if id == (e2e.MessageID{}) {
		return ""
	}
	return id.String()
}

func optTime(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromOptTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// msgAD is the associated data that binds a message record to its place.
func msgAD(p peer.ID, seq uint64) []byte {
	return append(append([]byte("msgs/"), p...), seqKey(seq)...)
}

// msgRecord names a message record in errors.
func msgRecord(p peer.ID, seq uint64) string { return fmt.Sprintf("msgs/%s/%d", p, seq) }

func (s *Store) encode(m *Message) ([]byte, error) {
	sm := storedMessage{
		ID: m.ID.String(), Dir: m.Direction, SentAt: m.SentAt.UnixMilli(), StoredAt: m.StoredAt.UnixMilli(),
		Status: m.Status, Error: m.Error, Stream: m.Stream, Number: m.Number, Late: m.Late, Missing: m.Missing,
		Body: m.Body, Kind: m.Kind, Target: idString(m.Target), Emoji: m.Emoji, Pending: m.Pending,
		ReplyTo: idString(m.ReplyTo), Edited: optTime(m.Edited), Deleted: m.Deleted, Seen: optTime(m.Seen),
		Delivered: optTime(m.Delivered),
	}
	for _, r := range m.Reactions {
		sr := storedReaction{Emoji: r.Emoji}
		if r.From != "" {
			sr.From = r.From.String()
		}
		sm.Reactions = append(sm.Reactions, sr)
	}
	return s.sealMessage(m.Peer, m.Seq, sm)
}

func (s *Store) sealMessage(p peer.ID, seq uint64, sm storedMessage) ([]byte, error) {
	plain, err := json.Marshal(sm)
	if err != nil {
		return nil, err
	}
	return s.seal(plain, msgAD(p, seq)), nil
}

// parse opens a stored message's record.
func (s *Store) parse(p peer.ID, seq uint64, data []byte) (storedMessage, error) {
	var sm storedMessage
	if data == nil {
		return sm, corrupt(msgRecord(p, seq), errors.New("missing"))
	}
	plain, err := s.open(data, msgAD(p, seq))
	if err != nil {
		return sm, corrupt(msgRecord(p, seq), errors.New("it does not decrypt"))
	}
	if err := json.Unmarshal(plain, &sm); err != nil {
		return sm, corrupt(msgRecord(p, seq), err)
	}
	return sm, nil
}

func (s *Store) decode(p peer.ID, seq uint64, data []byte) (Message, error) {
	sm, err := s.parse(p, seq, data)
	if err != nil {
		return Message{}, err
	}
	return fromStored(p, seq, sm)
}

func fromStored(p peer.ID, seq uint64, sm storedMessage) (Message, error) {
	id, err := e2e.ParseMessageID(sm.ID)
	if err != nil {
		return Message{}, corrupt(msgRecord(p, seq), err)
	}
	m := Message{ID: id, Peer: p, Seq: seq, Direction: sm.Dir, SentAt: time.UnixMilli(sm.SentAt),
		StoredAt: time.UnixMilli(sm.StoredAt), Body: sm.Body, Status: sm.Status, Error: sm.Error,
		Stream: sm.Stream, Number: sm.Number, Late: sm.Late, Missing: sm.Missing,
		Kind: sm.Kind, Emoji: sm.Emoji, Pending: sm.Pending, Edited: fromOptTime(sm.Edited), Deleted: sm.Deleted,
		Seen: fromOptTime(sm.Seen), Delivered: fromOptTime(sm.Delivered)}
	for _, f := range []struct {
		s   string
		dst *e2e.MessageID
	}{{sm.Target, &m.Target}, {sm.ReplyTo, &m.ReplyTo}} {
		if f.s == "" {
			continue
		}
		if *f.dst, err = e2e.ParseMessageID(f.s); err != nil {
			return Message{}, corrupt(msgRecord(p, seq), err)
		}
	}
	for _, r := range sm.Reactions {
		rm := Reaction{Emoji: r.Emoji}
		if r.From != "" {
			if rm.From, err = peer.Decode(r.From); err != nil {
				return Message{}, corrupt(msgRecord(p, seq), err)
			}
		}
		m.Reactions = append(m.Reactions, rm)
	}
	return m, nil
}
