package e2e

import (
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Forwarded copies of group messages (docs/PROTOCOL.md §14.7). A sender
// hands a few members, the forwarders, the sealed copies of some other
// members in one forward frame each; a forwarder writes each copy onward
// as a forwarded frame on its own session with that member, and names the
// copies it did not take in a forward-refused frame. The copies are
// Double Ratchet envelopes sealed by the sender for each member: the
// forwarder can neither open nor alter them. All three types are optional:
// they go only to a peer whose settings frame said it forwards (Settings).
const (
	// FrameForward carries a group message's copies for a forwarder to
	// write onward (see Forward). Sender to forwarder.
	FrameForward FrameType = 0x82
	// FrameForwarded carries one copy written onward (see Forwarded).
	// Forwarder to member.
	FrameForwarded FrameType = 0x83
	// FrameForwardRefused names the copies of a forward frame that the
	// forwarder did not write onward (see ForwardRefused). Forwarder to
	// sender.
	FrameForwardRefused FrameType = 0x84
)

// MaxForwardCopies bounds the copies of one forward frame.
const MaxForwardCopies = 255

// maxPeerIDLen bounds an encoded peer ID (an Ed25519 key's is 38 bytes;
// a hashed one 34).
const maxPeerIDLen = 64

// ForwardCopy is one member's sealed copy in a forward frame.
type ForwardCopy struct {
	Member   peer.ID
	Envelope []byte
}

// Forward is the payload of a forward frame:
//
//	group ID (32) || message ID (16) || u16 n (1..MaxForwardCopies)
//	|| n × (u8 length || member peer ID || u32 length || envelope)
//
// The message ID is the group message's, the same in every copy: what a
// refusal names. The envelopes are opaque here.
type Forward struct {
	Group  [GroupIDLen]byte
	ID     MessageID
	Copies []ForwardCopy
}

// Marshal encodes the frame's payload.
func (f Forward) Marshal() ([]byte, error) {
	if len(f.Copies) == 0 || len(f.Copies) > MaxForwardCopies {
		return nil, fmt.Errorf("a forward frame carries 1 to %d copies, not %d", MaxForwardCopies, len(f.Copies))
	}
	size := GroupIDLen + 16 + 2
	for _, c := range f.Copies {
		size += 1 + len(c.Member) + 4 + len(c.Envelope)
	}
	if size > MaxFramePayload {
		return nil, fmt.Errorf("%w: forwarded copies of %d bytes", ErrFrameTooLarge, size)
	}
	b := make([]byte, 0, size)
	b = append(append(b, f.Group[:]...), f.ID[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(f.Copies)))
	for _, c := range f.Copies {
		var err error
		if b, err = appendPeer(b, c.Member); err != nil {
			return nil, err
		}
		if len(c.Envelope) == 0 {
			return nil, fmt.Errorf("an empty copy for %s in a forward frame", c.Member)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(c.Envelope)))
		b = append(b, c.Envelope...)
	}
	return b, nil
}

// ParseForward decodes a forward payload strictly. Every error is
// ErrMalformed. The envelopes alias p.
func ParseForward(p []byte) (Forward, error) {
	var f Forward
	if len(p) < GroupIDLen+16+2 {
		return f, fmt.Errorf("%w: forward frame of %d bytes", ErrMalformed, len(p))
	}
	copy(f.Group[:], p)
	copy(f.ID[:], p[GroupIDLen:])
	n := int(binary.BigEndian.Uint16(p[GroupIDLen+16:]))
	if n == 0 || n > MaxForwardCopies {
		return Forward{}, fmt.Errorf("%w: forward frame with %d copies", ErrMalformed, n)
	}
	rest := p[GroupIDLen+16+2:]
	f.Copies = make([]ForwardCopy, 0, n)
	for range n {
		var c ForwardCopy
		var err error
		if c.Member, rest, err = cutPeer(rest); err != nil {
			return Forward{}, err
		}
		if len(rest) < 4 {
			return Forward{}, fmt.Errorf("%w: forwarded copy's length cut short", ErrMalformed)
		}
		l := binary.BigEndian.Uint32(rest)
		if l == 0 || uint64(l) > uint64(len(rest)-4) {
			return Forward{}, fmt.Errorf("%w: forwarded copy of %d bytes", ErrMalformed, l)
		}
		c.Envelope, rest = rest[4:4+l], rest[4+l:]
		f.Copies = append(f.Copies, c)
	}
	if len(rest) != 0 {
		return Forward{}, fmt.Errorf("%w: %d bytes after a forward frame's copies", ErrMalformed, len(rest))
	}
	return f, nil
}

// Forwarded is the payload of a forwarded frame:
//
//	group ID (32) || u8 length || sender peer ID || envelope (the rest, not empty)
//
// The envelope is the sender's, sealed for the receiver; the group is the
// one the forwarder and the sender share with it.
type Forwarded struct {
	Group    [GroupIDLen]byte
	Sender   peer.ID
	Envelope []byte
}

// Marshal encodes the frame's payload.
func (f Forwarded) Marshal() ([]byte, error) {
	if len(f.Envelope) == 0 {
		return nil, fmt.Errorf("a forwarded frame without its copy")
	}
	b := make([]byte, 0, GroupIDLen+1+len(f.Sender)+len(f.Envelope))
	b = append(b, f.Group[:]...)
	b, err := appendPeer(b, f.Sender)
	if err != nil {
		return nil, err
	}
	b = append(b, f.Envelope...)
	if len(b) > MaxFramePayload {
		return nil, fmt.Errorf("%w: a forwarded copy of %d bytes", ErrFrameTooLarge, len(b))
	}
	return b, nil
}

// ParseForwarded decodes a forwarded payload strictly. Every error is
// ErrMalformed. The envelope aliases p.
func ParseForwarded(p []byte) (Forwarded, error) {
	var f Forwarded
	if len(p) < GroupIDLen+1 {
		return f, fmt.Errorf("%w: forwarded frame of %d bytes", ErrMalformed, len(p))
	}
	copy(f.Group[:], p)
	sender, rest, err := cutPeer(p[GroupIDLen:])
	if err != nil {
		return Forwarded{}, err
	}
	if len(rest) == 0 {
		return Forwarded{}, fmt.Errorf("%w: forwarded frame without its copy", ErrMalformed)
	}
	f.Sender, f.Envelope = sender, rest
	return f, nil
}

// ForwardRefused is the payload of a forward-refused frame:
//
//	message ID (16) || u16 n (1..MaxForwardCopies)
//	|| n × (u8 flags || u8 length || member peer ID)
//
// flags: bit 0 "later": the forwarder has no session with the member
// yet and is opening one, so it may take that member's copies soon;
// without it, not to be asked again for a while. Other bits are zero.
type ForwardRefused struct {
	ID      MessageID
	Refused []Refusal
}

// Refusal is one member's copy a forwarder did not write onward.
type Refusal struct {
	Member peer.ID
	Later  bool
}

// Marshal encodes the frame's payload.
func (r ForwardRefused) Marshal() ([]byte, error) {
	if len(r.Refused) == 0 || len(r.Refused) > MaxForwardCopies {
		return nil, fmt.Errorf("a forward-refused frame names 1 to %d members, not %d", MaxForwardCopies, len(r.Refused))
	}
	b := make([]byte, 0, 16+2+len(r.Refused)*40)
	b = append(b, r.ID[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Refused)))
	for _, x := range r.Refused {
		var flags byte
		if x.Later {
			flags = 1
		}
		var err error
		if b, err = appendPeer(append(b, flags), x.Member); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// ParseForwardRefused decodes a forward-refused payload strictly. Every
// error is ErrMalformed.
func ParseForwardRefused(p []byte) (ForwardRefused, error) {
	var r ForwardRefused
	if len(p) < 16+2 {
		return r, fmt.Errorf("%w: forward-refused frame of %d bytes", ErrMalformed, len(p))
	}
	copy(r.ID[:], p)
	n := int(binary.BigEndian.Uint16(p[16:]))
	if n == 0 || n > MaxForwardCopies {
		return ForwardRefused{}, fmt.Errorf("%w: forward-refused frame naming %d members", ErrMalformed, n)
	}
	rest := p[18:]
	r.Refused = make([]Refusal, 0, n)
	for range n {
		if len(rest) < 1 || rest[0] > 1 {
			return ForwardRefused{}, fmt.Errorf("%w: a refusal's flags", ErrMalformed)
		}
		later := rest[0] == 1
		m, more, err := cutPeer(rest[1:])
		if err != nil {
			return ForwardRefused{}, err
		}
		r.Refused, rest = append(r.Refused, Refusal{Member: m, Later: later}), more
	}
	if len(rest) != 0 {
		return ForwardRefused{}, fmt.Errorf("%w: %d bytes after a forward-refused frame's members", ErrMalformed, len(rest))
	}
	return r, nil
}

// appendPeer appends u8 length || peer ID.
func appendPeer(b []byte, p peer.ID) ([]byte, error) {
	if len(p) == 0 || len(p) > maxPeerIDLen {
		return nil, fmt.Errorf("a peer ID of %d bytes in a forward frame", len(p))
	}
	return append(append(b, byte(len(p))), p...), nil
}

// cutPeer reads u8 length || peer ID off the front of b. The ID must be
// one: a multihash of a key.
func cutPeer(b []byte) (peer.ID, []byte, error) {
	if len(b) < 1 || int(b[0]) == 0 || int(b[0]) > maxPeerIDLen || len(b) < 1+int(b[0]) {
		return "", nil, fmt.Errorf("%w: a peer ID cut short", ErrMalformed)
	}
	id, err := peer.IDFromBytes(b[1 : 1+b[0]])
	if err != nil {
		return "", nil, fmt.Errorf("%w: not a peer ID", ErrMalformed)
	}
	return id, b[1+b[0]:], nil
}
