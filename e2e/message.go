package e2e

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// Message is the extensible chat message (frame type message, 0x06; only
// inside a sealed envelope, like text): the fixed header of a text, then
// typed fields (docs/PROTOCOL.md §7, "The message frame"):
//
//	id       16 bytes
//	sent_at  8 bytes, big-endian, Unix milliseconds (sender's clock)
//	stream   8 bytes
//	number   8 bytes, big-endian (both 0: not numbered)
//	fields   field*, in strictly increasing type order
//	field    type (1 byte) || length (4 bytes, big-endian) || value
//
// Field types below 0x80 are critical: a receiver that does not know one
// refuses the message. Types from 0x80 are optional and skipped when
// unknown. A message is exactly one of:
//
//	a text        body, and optionally reply-to
//	an edit       edit-of and body (the new body)
//	a deletion    delete-of alone
//	a reaction    react alone (target and emoji; no emoji: taken back)
type Message struct {
	ID     MessageID
	SentAt time.Time
	Stream uint64
	Number uint64

	Body     string
	ReplyTo  MessageID // zero: not a reply
	EditOf   MessageID // zero: not an edit
	DeleteOf MessageID // zero: not a deletion
	ReactTo  MessageID // zero: not a reaction
	Emoji    string    // the reaction; empty takes an earlier one back
	// Group: the group the message belongs to (zero: a private message).
	// Any kind of message may carry it (PROTOCOL §14.5).
	Group [GroupIDLen]byte
}

// GroupIDLen is the length of a group ID (the hash of its create).
const GroupIDLen = 32

// FieldType is the type of a message field.
type FieldType uint8

// Field types. A later version adds its own.
const (
	FieldBody     FieldType = 0x01 // UTF-8, 1 to MaxTextBytes bytes
	FieldReplyTo  FieldType = 0x02 // the message ID replied to (16)
	FieldEditOf   FieldType = 0x03 // the message ID edited (16)
	FieldDeleteOf FieldType = 0x04 // the message ID deleted (16)
	FieldReact    FieldType = 0x05 // the message ID reacted to (16) || emoji (UTF-8, 0 to MaxEmojiBytes)
	FieldGroup    FieldType = 0x06 // the group ID (32): a group message

	firstOptionalField FieldType = 0x80
)

// MaxEmojiBytes bounds a reaction: one emoji, however many code points
// its sequence takes (a family or a flag with modifiers).
const MaxEmojiBytes = 64

// fieldHeaderLen is type (1) + length (4).
const fieldHeaderLen = 5

// MessageKind says what a message does.
type MessageKind uint8

const (
	KindText MessageKind = iota
	KindEdit
	KindDelete
	KindReact
)

// Kind reports what m does; check tells whether the combination is valid.
func (m Message) Kind() MessageKind {
	switch {
	case m.EditOf != (MessageID{}):
		return KindEdit
	case m.DeleteOf != (MessageID{}):
		return KindDelete
	case m.ReactTo != (MessageID{}):
		return KindReact
	}
	return KindText
}

// Target is the message an edit, deletion or reaction acts on.
func (m Message) Target() MessageID {
	switch m.Kind() {
	case KindEdit:
		return m.EditOf
	case KindDelete:
		return m.DeleteOf
	case KindReact:
		return m.ReactTo
	}
	return MessageID{}
}

func checkMessage(m Message) error {
	if (m.Stream == 0) != (m.Number == 0) {
		return fmt.Errorf("message numbered %d in stream %d", m.Number, m.Stream)
	}
	acts := 0
	for _, id := range []MessageID{m.EditOf, m.DeleteOf, m.ReactTo} {
		if id != (MessageID{}) {
			acts++
		}
	}
	switch {
	case acts > 1:
		return fmt.Errorf("a message may edit, delete or react, only one of them")
	case m.ReplyTo != (MessageID{}) && acts > 0:
		return fmt.Errorf("only a text may be a reply")
	case m.Emoji != "" && m.ReactTo == (MessageID{}):
		return fmt.Errorf("an emoji without a reaction")
	case len(m.Emoji) > MaxEmojiBytes || !utf8.ValidString(m.Emoji):
		return fmt.Errorf("a reaction must be valid UTF-8 of at most %d bytes", MaxEmojiBytes)
	}
	switch k := m.Kind(); {
	case k == KindText || k == KindEdit:
		if err := checkBody(m.Body); err != nil {
			return err
		}
	case m.Body != "":
		return fmt.Errorf("a deletion or a reaction carries no body")
	}
	return nil
}

func checkBody(body string) error {
	switch {
	case len(body) == 0:
		return fmt.Errorf("empty message")
	case len(body) > MaxTextBytes:
		return fmt.Errorf("message of %d bytes is longer than %d", len(body), MaxTextBytes)
	case !utf8.ValidString(body):
		return fmt.Errorf("message is not valid UTF-8")
	}
	return nil
}

// Marshal encodes the message payload.
func (m Message) Marshal() ([]byte, error) {
	if err := checkMessage(m); err != nil {
		return nil, err
	}
	b := make([]byte, 0, textHeaderLen+fieldHeaderLen+len(m.Body)+3*(fieldHeaderLen+16))
	b = append(b, m.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.SentAt.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, m.Stream)
	b = binary.BigEndian.AppendUint64(b, m.Number)
	field := func(t FieldType, v ...[]byte) {
		n := 0
		for _, p := range v {
			n += len(p)
		}
		b = append(b, byte(t))
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		for _, p := range v {
			b = append(b, p...)
		}
	}
	if m.Body != "" {
		field(FieldBody, []byte(m.Body))
	}
	for _, f := range []struct {
		t  FieldType
		id MessageID
	}{{FieldReplyTo, m.ReplyTo}, {FieldEditOf, m.EditOf}, {FieldDeleteOf, m.DeleteOf}} {
		if f.id != (MessageID{}) {
			field(f.t, f.id[:])
		}
	}
	if m.ReactTo != (MessageID{}) {
		field(FieldReact, m.ReactTo[:], []byte(m.Emoji))
	}
	if m.Group != ([GroupIDLen]byte{}) {
		field(FieldGroup, m.Group[:])
	}
	return b, nil
}

// ParseMessage decodes a message payload strictly: fields in increasing
// type order, each known critical field valid, optional fields of
// unknown types skipped, and a valid combination. Every error is
// ErrMalformed.
func ParseMessage(p []byte) (Message, error) {
	if len(p) < textHeaderLen {
		return Message{}, fmt.Errorf("%w: message of %d bytes", ErrMalformed, len(p))
	}
	var m Message
	copy(m.ID[:], p)
	m.SentAt = time.UnixMilli(int64(binary.BigEndian.Uint64(p[16:])))
	m.Stream = binary.BigEndian.Uint64(p[24:])
	m.Number = binary.BigEndian.Uint64(p[32:])
	rest := p[textHeaderLen:]
	last := -1
	for len(rest) > 0 {
		if len(rest) < fieldHeaderLen {
			return Message{}, fmt.Errorf("%w: message field header cut short", ErrMalformed)
		}
		t := FieldType(rest[0])
		n := binary.BigEndian.Uint32(rest[1:])
		if uint64(n) > uint64(len(rest)-fieldHeaderLen) {
			return Message{}, fmt.Errorf("%w: message field %#02x of %d bytes overruns the message", ErrMalformed, uint8(t), n)
		}
		if int(t) <= last {
			return Message{}, fmt.Errorf("%w: message field %#02x out of order or repeated", ErrMalformed, uint8(t))
		}
		last = int(t)
		v := rest[fieldHeaderLen : fieldHeaderLen+int(n)]
		rest = rest[fieldHeaderLen+int(n):]
		if err := m.setField(t, v); err != nil {
			return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if err := checkMessage(m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}

func (m *Message) setField(t FieldType, v []byte) error {
	id := func(dst *MessageID, v []byte) error {
		if len(v) < 16 {
			return fmt.Errorf("field %#02x: a message ID is 16 bytes", uint8(t))
		}
		copy(dst[:], v)
		if *dst == (MessageID{}) {
			return fmt.Errorf("field %#02x: the zero message ID", uint8(t))
		}
		return nil
	}
	exact := func(dst *MessageID) error {
		if len(v) != 16 {
			return fmt.Errorf("field %#02x: a message ID is 16 bytes", uint8(t))
		}
		return id(dst, v)
	}
	switch t {
	case FieldBody:
		if len(v) == 0 {
			return fmt.Errorf("an empty body field")
		}
		m.Body = string(v)
		return nil
	case FieldReplyTo:
		return exact(&m.ReplyTo)
	case FieldEditOf:
		return exact(&m.EditOf)
	case FieldDeleteOf:
		return exact(&m.DeleteOf)
	case FieldReact:
		if err := id(&m.ReactTo, v); err != nil {
			return err
		}
		m.Emoji = string(v[16:])
		return nil
	case FieldGroup:
		if len(v) != GroupIDLen {
			return fmt.Errorf("field %#02x: a group ID is %d bytes", uint8(t), GroupIDLen)
		}
		copy(m.Group[:], v)
		if m.Group == ([GroupIDLen]byte{}) {
			return fmt.Errorf("field %#02x: the zero group ID", uint8(t))
		}
		return nil
	}
	if t < firstOptionalField {
		return fmt.Errorf("unknown critical message field %#02x", uint8(t))
	}
	return nil // an optional field of a later version
}
