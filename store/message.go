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
)

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
}

// storedMessage is the on-disk form.
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
	Sealed    []byte    `json:"body"`
}

func bodyAD(id e2e.MessageID, p peer.ID) []byte { return append(id[:], p...) }

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// msgRecord names a message record in errors.
func msgRecord(p peer.ID, seq uint64) string { return fmt.Sprintf("msgs/%s/%d", p, seq) }

func (s *Store) encode(m *Message) ([]byte, error) {
	sm := storedMessage{
		ID: m.ID.String(), Dir: m.Direction, SentAt: m.SentAt.UnixMilli(), StoredAt: m.StoredAt.UnixMilli(),
		Status: m.Status, Error: m.Error, Stream: m.Stream, Number: m.Number, Late: m.Late, Missing: m.Missing,
		Sealed: s.seal([]byte(m.Body), bodyAD(m.ID, m.Peer)),
	}
	if !m.Delivered.IsZero() {
		sm.Delivered = m.Delivered.UnixMilli()
	}
	return json.Marshal(sm)
}

// parse reads a stored message's record without opening its body.
func parse(p peer.ID, seq uint64, data []byte) (storedMessage, error) {
	var sm storedMessage
	if data == nil {
		return sm, corrupt(msgRecord(p, seq), errors.New("missing"))
	}
	if err := json.Unmarshal(data, &sm); err != nil {
		return sm, corrupt(msgRecord(p, seq), err)
	}
	return sm, nil
}

func (s *Store) decode(p peer.ID, seq uint64, data []byte) (Message, error) {
	sm, err := parse(p, seq, data)
	if err != nil {
		return Message{}, err
	}
	id, err := e2e.ParseMessageID(sm.ID)
	if err != nil {
		return Message{}, corrupt(msgRecord(p, seq), err)
	}
	body, err := s.open(sm.Sealed, bodyAD(id, p))
	if err != nil {
		return Message{}, corrupt(msgRecord(p, seq), errors.New("the body does not decrypt"))
	}
	m := Message{ID: id, Peer: p, Seq: seq, Direction: sm.Dir, SentAt: time.UnixMilli(sm.SentAt),
		StoredAt: time.UnixMilli(sm.StoredAt), Body: string(body), Status: sm.Status, Error: sm.Error,
		Stream: sm.Stream, Number: sm.Number, Late: sm.Late, Missing: sm.Missing}
	if sm.Delivered != 0 {
		m.Delivered = time.UnixMilli(sm.Delivered)
	}
	return m, nil
}
