package group

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Op is what a change does.
type Op uint8

// The operations on a group.
const (
	OpCreate Op = 1 // the first change: creator, name, first members, CA
	OpAdd    Op = 2 // an admin adds Peer
	OpRemove Op = 3 // an admin removes Peer
	OpLeave  Op = 4 // a member leaves
	OpRename Op = 5 // an admin renames the group to Name
	OpAdmin  Op = 6 // an admin makes member Peer an admin
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpAdd:
		return "add"
	case OpRemove:
		return "remove"
	case OpLeave:
		return "leave"
	case OpRename:
		return "rename"
	case OpAdmin:
		return "admin"
	}
	return fmt.Sprintf("op %d", uint8(o))
}

// Limits on a change, checked before anything is allocated for it.
const (
	MaxMembers   = 1000 // members of a group, and of a create
	MaxParents   = 16   // heads a change may name
	MaxNameBytes = 256  // a group's name, UTF-8
	maxPeerID    = 64   // bytes of a peer ID (an Ed25519 one has 38)
	caHashSize   = sha256.Size
	formatV1     = 1
)

// ID names a group: the hash of its create change.
type ID [32]byte

// String is the ID in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 8 hex digits of the ID, for people.
func (id ID) Short() string { return id.String()[:8] }

// Hash names a change.
type Hash [32]byte

// String is the hash's first 12 hex digits, for logs and errors.
func (h Hash) String() string { return hex.EncodeToString(h[:6]) }

// Change is one signed change to a group's membership. Its fields are
// read-only once it is signed or parsed.
type Change struct {
	Group   ID        // zero in a create
	Parents []Hash    // the heads its author had seen; none in a create
	Op      Op        //
	Author  peer.ID   // who signed it
	Time    time.Time // the author's clock, to the millisecond; shown, never trusted for order
	Peer    peer.ID   // add, remove, admin: whom it is about
	Name    string    // create, rename
	Members []peer.ID // create: the first members besides the author
	CA      []byte    // create: SHA-256 of the required CA's SubjectPublicKeyInfo, or nil
	Nonce   [16]byte  // create: makes every group's ID new

	raw  []byte // the encoding, signature included
	hash Hash
}

// Kind is c's operation as the group's rules read it: Op, except that a
// removal of its own author is its author's leave, in admission, in the
// fold and in what the log keeps out alike (PROTOCOL §14.3, "A removal
// of oneself is a leave"). Before (found 2026-12-07 by the converge
// sweep, seed 9562), it was a removal that ended its author where it took
// effect and counted as no end anywhere else: a creator that left so
// could have its key remove an admin on a version from before, and undo
// the admin's changes since (TestLapsedRemovalEndsNobody).
func (c *Change) Kind() Op {
	if c.Op == OpRemove && c.Peer == c.Author {
		return OpLeave
	}
	return c.Op
}

// Hash is the change's name: SHA-256 over a label and its encoding.
func (c *Change) Hash() Hash { return c.hash }

// Bytes is the change's encoding (PROTOCOL §14.2), signature included.
// The caller must not modify it.
func (c *Change) Bytes() []byte { return c.raw }

const (
	signLabel = "certchat group change v1\x00"
	hashLabel = "certchat group change hash v1\x00"
)

// encodeBody writes everything but the signature.
func (c *Change) encodeBody() []byte {
	var b []byte
	b = append(b, formatV1, byte(c.Op))
	b = append(b, c.Group[:]...)
	b = append(b, byte(len(c.Parents)))
	for _, p := range c.Parents {
		b = append(b, p[:]...)
	}
	b = appendVec8(b, []byte(c.Author))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMilli()))
	b = appendVec8(b, []byte(c.Peer))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Name)))
	b = append(b, c.Name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.Members)))
	for _, m := range c.Members {
		b = appendVec8(b, []byte(m))
	}
	b = appendVec8(b, c.CA)
	b = append(b, c.Nonce[:]...)
	return b
}

func appendVec8(b, v []byte) []byte {
	b = append(b, byte(len(v)))
	return append(b, v...)
}

// Sign signs a change by key's peer in group g on parents, checking its
// shape only: not whether any membership would take it (Log.Propose
// does). It is what a modified client can always do, for tests and tools
// that need such a change; a log still checks it on Add.
func Sign(key ed25519.PrivateKey, g ID, parents []Hash, op Op, p peer.ID, name string, now time.Time) (*Change, error) {
	author, err := identity.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	c := &Change{Group: g, Parents: parents, Op: op, Author: author, Time: now, Peer: p, Name: name}
	return c, c.sign(key)
}

// sign checks the change's shape, signs it with key (which must be the
// author's) and fixes its encoding and hash.
func (c *Change) sign(key ed25519.PrivateKey) error {
	c.Time = time.UnixMilli(c.Time.UnixMilli())
	if err := c.checkShape(); err != nil {
		return err
	}
	if err := c.checkPeers(); err != nil {
		return err
	}
	pub, err := identity.KeyFromPeerID(c.Author)
	if err != nil {
		return err
	}
	if !bytes.Equal(pub, key.Public().(ed25519.PublicKey)) {
		return fmt.Errorf("group change: the key is not the author's")
	}
	body := c.encodeBody()
	sig := ed25519.Sign(key, append([]byte(signLabel), body...))
	c.seal(append(body, sig...))
	return nil
}

func (c *Change) seal(raw []byte) {
	c.raw = raw
	c.hash = HashOf(raw)
}

// HashOf is the hash of the change whose encoding is raw, without
// parsing it: a log that has it needs neither its parse nor its
// signature check (a member sends its whole log with each change).
func HashOf(raw []byte) Hash {
	return sha256.Sum256(append([]byte(hashLabel), raw...))
}

// Parse reads a change from untrusted bytes and verifies its signature
// with the key its author's peer ID embeds. It does not say whether the
// change is allowed: that is Log.Add's question.
func Parse(b []byte) (*Change, error) {
	r := reader{b: b}
	c := &Change{}
	if v := r.u8(); v != formatV1 {
		if r.err != nil {
			return nil, r.err
		}
		return nil, fmt.Errorf("%w: format %d (this version reads %d)", ErrMalformed, v, formatV1)
	}
	c.Op = Op(r.u8())
	copy(c.Group[:], r.take(len(c.Group)))
	n := int(r.u8())
	if n > MaxParents {
		return nil, fmt.Errorf("%w: %d parents (at most %d)", ErrMalformed, n, MaxParents)
	}
	for i := 0; i < n && r.err == nil; i++ {
		var h Hash
		copy(h[:], r.take(len(h)))
		c.Parents = append(c.Parents, h)
	}
	c.Author = r.peerID()
	c.Time = time.UnixMilli(int64(r.u64()))
	c.Peer = r.peerID()
	c.Name = string(r.take(int(r.u16())))
	m := int(r.u16())
	if m > MaxMembers {
		return nil, fmt.Errorf("%w: %d members (at most %d)", ErrMalformed, m, MaxMembers)
	}
	for i := 0; i < m && r.err == nil; i++ {
		c.Members = append(c.Members, r.peerID())
	}
	if ca := r.take(int(r.u8())); len(ca) > 0 {
		c.CA = bytes.Clone(ca)
	}
	copy(c.Nonce[:], r.take(len(c.Nonce)))
	body := len(b) - len(r.b)
	sig := r.take(ed25519.SignatureSize)
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the signature", ErrMalformed, len(r.b))
	}
	if err := c.checkShape(); err != nil {
		return nil, err
	}
	pub, err := identity.KeyFromPeerID(c.Author)
	if err != nil {
		return nil, fmt.Errorf("%w: author: %v", ErrMalformed, err)
	}
	if !ed25519.Verify(pub, append([]byte(signLabel), b[:body]...), sig) {
		return nil, fmt.Errorf("%w: change by %s", ErrBadSignature, identity.ShortID(c.Author))
	}
	c.seal(bytes.Clone(b))
	return c, nil
}

// checkPeers refuses a change naming a peer (its peer, or a member of a
// create) by an ID that is not an Ed25519 one: every other member's
// Parse would refuse it as malformed (reader.peerID), so the log of
// the member who signed it would part from everyone else's, and
// Restore would not load it. Text can decode as such an ID: the end of
// a real one, "16FbzZ", is an identity multihash of two bytes.
func (c *Change) checkPeers() error {
	for _, p := range append([]peer.ID{c.Peer}, c.Members...) {
		if p == "" {
			continue
		}
		if _, err := identity.KeyFromPeerID(p); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, c.Op, err)
		}
	}
	return nil
}

// checkShape checks that the change carries exactly the fields its
// operation uses, each well formed.
func (c *Change) checkShape() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrMalformed, c.Op, fmt.Sprintf(format, a...))
	}
	if c.Author == "" {
		return bad("no author")
	}
	if len(c.Parents) > MaxParents {
		return bad("%d parents (at most %d)", len(c.Parents), MaxParents)
	}
	create := c.Op == OpCreate
	switch {
	case create != (len(c.Parents) == 0):
		return bad("a create has no parents and every other change has some")
	case create != (c.Group == ID{}):
		return bad("only a create has no group ID")
	case !create && (len(c.Members) > 0 || len(c.CA) > 0 || c.Nonce != [16]byte{}):
		return bad("members, CA and nonce belong to a create")
	case len(c.CA) != 0 && len(c.CA) != caHashSize:
		return bad("a CA hash of %d bytes", len(c.CA))
	case len(c.Members) > MaxMembers-1:
		return bad("%d members (at most %d)", len(c.Members)+1, MaxMembers)
	}
	named := c.Op == OpCreate || c.Op == OpRename
	if named != (c.Name != "") {
		return bad("a name belongs to create and rename, which need one")
	}
	if named {
		if err := checkName(c.Name); err != nil {
			return bad("%v", err)
		}
	}
	about := c.Op == OpAdd || c.Op == OpRemove || c.Op == OpAdmin
	if about != (c.Peer != "") {
		return bad("a peer belongs to add, remove and admin, which need one")
	}
	switch c.Op {
	case OpCreate, OpAdd, OpRemove, OpLeave, OpRename, OpAdmin:
	default:
		return fmt.Errorf("%w: %s", ErrMalformed, c.Op)
	}
	for i := range c.Parents {
		for j := range i {
			if c.Parents[i] == c.Parents[j] {
				return bad("a parent named twice")
			}
		}
	}
	seen := map[peer.ID]bool{c.Author: true}
	for _, m := range c.Members {
		if seen[m] {
			return bad("member %s named twice", identity.ShortID(m))
		}
		seen[m] = true
	}
	return nil
}

// checkName refuses names that are empty, too long, not UTF-8 or hold
// control characters (a name reaches terminals).
func checkName(name string) error {
	if len(name) > MaxNameBytes {
		return fmt.Errorf("a name of %d bytes (at most %d)", len(name), MaxNameBytes)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("a name that is not UTF-8")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return fmt.Errorf("a name with control characters")
		}
	}
	return nil
}

// reader takes fields from a change's bytes; the first shortage sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = fmt.Errorf("%w: the change ends early", ErrMalformed)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// peerID reads a vec8 peer ID; empty stays empty, anything else must be a
// valid Ed25519 peer ID.
func (r *reader) peerID() peer.ID {
	n := int(r.u8())
	if n > maxPeerID && r.err == nil {
		r.err = fmt.Errorf("%w: a peer ID of %d bytes", ErrMalformed, n)
	}
	v := r.take(n)
	if len(v) == 0 || r.err != nil {
		return ""
	}
	id := peer.ID(v)
	if _, err := identity.KeyFromPeerID(id); err != nil {
		r.err = fmt.Errorf("%w: %v", ErrMalformed, err)
		return ""
	}
	return id
}
