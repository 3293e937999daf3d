package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Frames (docs/PROTOCOL.md, "Framing"). Inside the TLS channel the
// stream is a sequence of frames:
//
//	type    1 byte
//	length  4 bytes, big-endian, at most MaxFramePayload
//	payload length bytes
//
// Types below 0x80 are critical: a receiver that does not know one closes
// the session with ErrUnknownFrame. Types from 0x80 are optional and are
// skipped when unknown, so later versions can add them.
type FrameType uint8

const (
	// FrameText carries a text message (see Text).
	FrameText FrameType = 0x01
	// FrameReceipt acknowledges a message (see Receipt).
	FrameReceipt FrameType = 0x02
	// FrameEnvelope carries a Double Ratchet envelope (offline-capable
	// messages; docs/PROTOCOL.md §12.9).
	FrameEnvelope FrameType = 0x03
	// FrameRatchetInit, empty, asks the TLS server for a ratchet seed; with
	// a payload it is the server's seed offer (docs/PROTOCOL.md §12.8).
	FrameRatchetInit FrameType = 0x04
	// FrameReady is the responder's first frame, empty: it has verified
	// the initiator and accepts the session. Only valid first.
	FrameReady FrameType = 0x05
	// FrameMessage carries a chat message with typed fields (see
	// Message): texts, replies, edits, deletions and reactions. Like
	// FrameText, only inside a sealed envelope.
	FrameMessage FrameType = 0x06
	// FrameClose ends the session on purpose: code (1 byte) and a UTF-8
	// reason. A stream that ends without it was truncated.
	FrameClose FrameType = 0x0f

	// FrameSettings (optional) tells the peer which live indications the
	// sender takes part in (see Settings); sent when a session starts and
	// whenever they change. Old peers skip it.
	FrameSettings FrameType = 0x80
	// FrameTyping (optional) says the sender is typing to the peer, or
	// stopped (see Typing). Live only, never stored nor sealed.
	FrameTyping FrameType = 0x81

	// firstOptional is the first type a receiver may skip.
	firstOptional FrameType = 0x80
)

// Critical reports whether a receiver must understand the type.
func (t FrameType) Critical() bool { return t < firstOptional }

func (t FrameType) known() bool {
	switch t {
	case FrameText, FrameReceipt, FrameEnvelope, FrameRatchetInit, FrameMessage, FrameClose, FrameSettings, FrameTyping,
		FrameForward, FrameForwarded, FrameForwardRefused:
		return true
	}
	return false
}

func (t FrameType) String() string {
	switch t {
	case FrameText:
		return "text"
	case FrameReceipt:
		return "receipt"
	case FrameEnvelope:
		return "envelope"
	case FrameRatchetInit:
		return "ratchet-init"
	case FrameReady:
		return "ready"
	case FrameMessage:
		return "message"
	case FrameSettings:
		return "settings"
	case FrameTyping:
		return "typing"
	case FrameForward:
		return "forward"
	case FrameForwarded:
		return "forwarded"
	case FrameForwardRefused:
		return "forward-refused"
	case FrameClose:
		return "close"
	}
	return fmt.Sprintf("type-%#02x", uint8(t))
}

// Frame is one decoded frame.
type Frame struct {
	Type    FrameType
	Payload []byte
}

// AppendFrame encodes a frame onto dst.
func AppendFrame(dst []byte, t FrameType, payload []byte) ([]byte, error) {
	if len(payload) > MaxFramePayload {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, len(payload))
	}
	dst = append(dst, byte(t))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...), nil
}

// ReadFrame reads one frame. The length is checked against
// MaxFramePayload before anything is allocated. io.EOF means the stream
// ended cleanly between frames; an end inside a frame is ErrTruncated.
func ReadFrame(r io.Reader) (Frame, error) { return readFrame(r, nil) }

// readFrame is ReadFrame reading the payload into buf when it is large
// enough.
func readFrame(r io.Reader, buf []byte) (Frame, error) {
	var hdr [frameHeaderLen]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		if n > 0 && err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("%w: inside a frame header", ErrTruncated)
		}
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > MaxFramePayload {
		return Frame{}, fmt.Errorf("%w: %d bytes announced", ErrFrameTooLarge, n)
	}
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	f := Frame{Type: FrameType(hdr[0]), Payload: buf[:n]}
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Frame{}, fmt.Errorf("%w: inside a frame", ErrTruncated)
		}
		return Frame{}, err
	}
	return f, nil
}

// MessageID is a message's random 128-bit identifier.
type MessageID [16]byte

// NewMessageID draws a random ID.
func NewMessageID() MessageID {
	var id MessageID
	rand.Read(id[:])
	return id
}

func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// ParseMessageID reads the hex form.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%q is not a message id (32 hex digits)", s)
	}
	copy(id[:], b)
	return id, nil
}

// Text is a chat message:
//
//	id       16 bytes
//	sent_at  8 bytes, big-endian, Unix milliseconds (sender's clock)
//	stream   8 bytes: the sender's numbering of its messages to this peer
//	number   8 bytes, big-endian: the message's place in that numbering,
//	         from 1; stream and number both 0 when the sender does not
//	         number the message
//	body     the rest: valid UTF-8, 1 to MaxTextBytes bytes
//
// The numbering lets the receiver see a gap (messages that have not
// arrived yet) and a message that arrives after later ones.
type Text struct {
	ID     MessageID
	SentAt time.Time
	Stream uint64
	Number uint64
	Body   string
}

const textHeaderLen = 16 + 8 + 8 + 8

// Marshal encodes the text payload.
func (t Text) Marshal() ([]byte, error) {
	if err := checkText(t); err != nil {
		return nil, err
	}
	b := make([]byte, 0, textHeaderLen+len(t.Body))
	b = append(b, t.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.SentAt.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, t.Stream)
	b = binary.BigEndian.AppendUint64(b, t.Number)
	return append(b, t.Body...), nil
}

// ParseText decodes a text payload strictly.
func ParseText(p []byte) (Text, error) {
	if len(p) < textHeaderLen+1 {
		return Text{}, fmt.Errorf("%w: text of %d bytes", ErrMalformed, len(p))
	}
	var t Text
	copy(t.ID[:], p)
	t.SentAt = time.UnixMilli(int64(binary.BigEndian.Uint64(p[16:])))
	t.Stream = binary.BigEndian.Uint64(p[24:])
	t.Number = binary.BigEndian.Uint64(p[32:])
	t.Body = string(p[textHeaderLen:])
	if err := checkText(t); err != nil {
		return Text{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return t, nil
}

func checkText(t Text) error {
	body := t.Body
	switch {
	case (t.Stream == 0) != (t.Number == 0):
		return fmt.Errorf("message numbered %d in stream %d", t.Number, t.Stream)
	case len(body) == 0:
		return fmt.Errorf("empty message")
	case len(body) > MaxTextBytes:
		return fmt.Errorf("message of %d bytes is longer than %d", len(body), MaxTextBytes)
	case !utf8.ValidString(body):
		return fmt.Errorf("message is not valid UTF-8")
	}
	return nil
}

// ReceiptStatus says what happened to a message.
type ReceiptStatus uint8

const (
	// ReceiptStored: the recipient stored the message durably.
	ReceiptStored ReceiptStatus = 1
	// ReceiptSeen: the recipient's window showed the message with its
	// chat open. Sent only to a peer whose settings frame asked for read
	// markers (older peers refuse the status).
	ReceiptSeen ReceiptStatus = 2
)

// Receipt acknowledges a message:
//
//	id      16 bytes
//	status  1 byte (1 = stored, 2 = seen)
type Receipt struct {
	ID     MessageID
	Status ReceiptStatus
}

// receiptLen is the size of a receipt payload.
const receiptLen = 16 + 1

// Marshal encodes the receipt payload.
func (r Receipt) Marshal() []byte { return r.appendPayload(make([]byte, 0, receiptLen)) }

// appendPayload appends the receipt payload (Marshal's) to dst.
func (r Receipt) appendPayload(dst []byte) []byte {
	return append(append(dst, r.ID[:]...), byte(r.Status))
}

// ParseReceipt decodes a receipt payload strictly.
func ParseReceipt(p []byte) (Receipt, error) {
	if len(p) != receiptLen {
		return Receipt{}, fmt.Errorf("%w: receipt of %d bytes", ErrMalformed, len(p))
	}
	r := Receipt{Status: ReceiptStatus(p[16])}
	copy(r.ID[:], p)
	if r.Status != ReceiptStored && r.Status != ReceiptSeen {
		return Receipt{}, fmt.Errorf("%w: receipt status %d", ErrMalformed, p[16])
	}
	return r, nil
}

// CloseCode says why a session ends.
type CloseCode uint8

const (
	CloseNormal    CloseCode = 0 // done
	CloseGoingAway CloseCode = 1 // the peer shuts down
	CloseProtocol  CloseCode = 2 // the peer broke the protocol
	CloseRejected  CloseCode = 3 // the user rejected the peer
)

func marshalClose(code CloseCode, reason string) []byte {
	if len(reason) > MaxCloseReason {
		reason = reason[:MaxCloseReason]
	}
	return append([]byte{byte(code)}, bytes.ToValidUTF8([]byte(reason), []byte("?"))...)
}

func parseClose(p []byte) (CloseCode, string, error) {
	if len(p) < 1 || len(p) > 1+MaxCloseReason || !utf8.Valid(p[1:]) {
		return 0, "", fmt.Errorf("%w: close frame", ErrMalformed)
	}
	return CloseCode(p[0]), string(p[1:]), nil
}

// Settings are the live indications a peer takes part in, and whether it
// forwards group copies. Either side turning an indication off stops it
// both ways: each sends an indication only when both said yes, and
// honours one only when its own setting is on.
//
//	flags  1 byte: bit 0 read markers ("seen"), bit 1 typing, bit 2
//	       forwards (it takes forward and forwarded frames, §14.7); other
//	       bits are ignored (later indications)
type Settings struct {
	ReadMarkers bool
	Typing      bool
	Forwards    bool
}

// Marshal encodes the settings payload.
func (s Settings) Marshal() []byte {
	var b byte
	if s.ReadMarkers {
		b |= 1
	}
	if s.Typing {
		b |= 2
	}
	if s.Forwards {
		b |= 4
	}
	return []byte{b}
}

// ParseSettings decodes a settings payload: at least the flags byte; more
// bytes are a later version's and are ignored.
func ParseSettings(p []byte) (Settings, error) {
	if len(p) < 1 {
		return Settings{}, fmt.Errorf("%w: empty settings frame", ErrMalformed)
	}
	return Settings{ReadMarkers: p[0]&1 != 0, Typing: p[0]&2 != 0, Forwards: p[0]&4 != 0}, nil
}

// Typing says whether the sender is typing:
//
//	state  1 byte: 1 typing, 0 stopped
type Typing bool

// Marshal encodes the typing payload.
func (t Typing) Marshal() []byte {
	if t {
		return []byte{1}
	}
	return []byte{0}
}

// ParseTyping decodes a typing payload strictly.
func ParseTyping(p []byte) (Typing, error) {
	if len(p) != 1 || p[0] > 1 {
		return false, fmt.Errorf("%w: typing frame", ErrMalformed)
	}
	return p[0] == 1, nil
}
