package e2e

import (
	"encoding/binary"
	"fmt"
)

// Group frames (docs/PROTOCOL.md §14.5). Like text and message frames they
// only ever travel inside a sealed envelope; on the channel they are
// unknown critical frames.
const (
	// FrameGroupChange carries signed membership changes of one group
	// (see GroupChanges).
	FrameGroupChange FrameType = 0x0a
	// FrameGroupWant asks a member for changes its sender lacks (see
	// GroupWant).
	FrameGroupWant FrameType = 0x0b
)

// MaxGroupChanges bounds the changes of one group-change frame.
const MaxGroupChanges = 256

// MaxGroupWant bounds the hashes of one group-want frame.
const MaxGroupWant = 255

// changeHashLen is the length of a change's hash (group.Hash).
const changeHashLen = 32

// GroupChanges is the payload of a group-change frame:
//
//	id (16) || group ID (32) || u16 n (1..MaxGroupChanges)
//	|| n × (u16 length || change)
//
// The ID is what the receipt names; the changes are opaque here (the
// group package parses and checks them), parents before children.
type GroupChanges struct {
	ID      MessageID
	Group   [GroupIDLen]byte
	Changes [][]byte
}

// Marshal encodes the frame's payload.
func (g GroupChanges) Marshal() ([]byte, error) {
	if len(g.Changes) == 0 || len(g.Changes) > MaxGroupChanges {
		return nil, fmt.Errorf("a group-change frame carries 1 to %d changes, not %d", MaxGroupChanges, len(g.Changes))
	}
	b := append(append([]byte(nil), g.ID[:]...), g.Group[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(g.Changes)))
	for _, c := range g.Changes {
		if len(c) == 0 || len(c) > 0xffff {
			return nil, fmt.Errorf("a group change of %d bytes", len(c))
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(c)))
		b = append(b, c...)
	}
	if len(b) > MaxFramePayload {
		return nil, fmt.Errorf("%w: group changes of %d bytes", ErrFrameTooLarge, len(b))
	}
	return b, nil
}

// ParseGroupChanges decodes a group-change payload strictly. Every error
// is ErrMalformed.
func ParseGroupChanges(p []byte) (GroupChanges, error) {
	var g GroupChanges
	if len(p) < 16+GroupIDLen+2 {
		return g, fmt.Errorf("%w: group-change frame of %d bytes", ErrMalformed, len(p))
	}
	copy(g.ID[:], p)
	copy(g.Group[:], p[16:])
	n := int(binary.BigEndian.Uint16(p[16+GroupIDLen:]))
	rest := p[16+GroupIDLen+2:]
	if n == 0 || n > MaxGroupChanges {
		return GroupChanges{}, fmt.Errorf("%w: group-change frame with %d changes", ErrMalformed, n)
	}
	for range n {
		if len(rest) < 2 {
			return GroupChanges{}, fmt.Errorf("%w: group change length cut short", ErrMalformed)
		}
		l := int(binary.BigEndian.Uint16(rest))
		if l == 0 || l > len(rest)-2 {
			return GroupChanges{}, fmt.Errorf("%w: group change of %d bytes in %d", ErrMalformed, l, len(rest)-2)
		}
		g.Changes = append(g.Changes, rest[2:2+l:2+l])
		rest = rest[2+l:]
	}
	if len(rest) != 0 {
		return GroupChanges{}, fmt.Errorf("%w: %d bytes after the group changes", ErrMalformed, len(rest))
	}
	return g, nil
}

// GroupWant is the payload of a group-want frame:
//
//	group ID (32) || u8 n (1..MaxGroupWant) || n × change hash (32)
//
// The hashes name changes its sender lacks: parents of changes it holds
// and cannot place yet.
type GroupWant struct {
	Group  [GroupIDLen]byte
	Hashes [][changeHashLen]byte
}

// Marshal encodes the frame's payload.
func (w GroupWant) Marshal() ([]byte, error) {
	if len(w.Hashes) == 0 || len(w.Hashes) > MaxGroupWant {
		return nil, fmt.Errorf("a group-want frame names 1 to %d changes, not %d", MaxGroupWant, len(w.Hashes))
	}
	b := make([]byte, 0, GroupIDLen+1+changeHashLen*len(w.Hashes))
	b = append(b, w.Group[:]...)
	b = append(b, byte(len(w.Hashes)))
	for _, h := range w.Hashes {
		b = append(b, h[:]...)
	}
	return b, nil
}

// ParseGroupWant decodes a group-want payload strictly. Every error is
// ErrMalformed.
func ParseGroupWant(p []byte) (GroupWant, error) {
	var w GroupWant
	if len(p) < GroupIDLen+1 {
		return w, fmt.Errorf("%w: group-want frame of %d bytes", ErrMalformed, len(p))
	}
	copy(w.Group[:], p)
	n, rest := int(p[GroupIDLen]), p[GroupIDLen+1:]
	if n == 0 || len(rest) != n*changeHashLen {
		return GroupWant{}, fmt.Errorf("%w: group-want frame of %d hashes in %d bytes", ErrMalformed, n, len(rest))
	}
	w.Hashes = make([][changeHashLen]byte, n)
	for i := range w.Hashes {
		copy(w.Hashes[i][:], rest[i*changeHashLen:])
	}
	return w, nil
}
