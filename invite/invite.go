package invite

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Prefix starts every invitation text. Decode accepts it in any case.
const Prefix = "CERTCHAT:"

// Version is the encoding's version, its first byte.
const Version = 1

// Limits. An encoder keeps to them (Choose picks the addresses); a
// decoder refuses anything beyond them before reading it.
const (
	MaxAddrs   = 8    // direct addresses
	MaxRelays  = 4    // relays
	MaxAddrLen = 128  // bytes of one binary multiaddr
	MaxText    = 4096 // characters of an invitation text, prefix included
	maxPeerID  = 64   // bytes of a binary peer ID (an Ed25519 one has 38)
	sigLen     = ed25519.SignatureSize
)

// sigContext separates invitation signatures from any other use of the
// identity key.
const sigContext = "certchat invitation v1\x00"

// Errors callers branch on.
var (
	// ErrNotInvitation: the text does not start with Prefix.
	ErrNotInvitation = errors.New(`not an invitation: it should start with "` + Prefix + `"`)
	// ErrVersion: a newer certchat made the invitation.
	ErrVersion = errors.New("the invitation was made by a newer certchat (unknown version): update certchat to read it")
	// ErrSignature: the invitation was changed after it was made (or
	// made by someone without the key).
	ErrSignature = errors.New("the invitation's signature does not match its peer ID: it was changed or damaged; ask for it again")
	// ErrMalformed: the invitation is damaged or cut short.
	ErrMalformed = errors.New("the invitation is damaged or incomplete: copy all of it")
)

// Invitation is what a person shares to be added.
type Invitation struct {
	// PeerID is the inviter's peer ID; its Ed25519 key verifies the
	// invitation and, later, the TLS handshake.
	PeerID peer.ID
	// Name is the name the inviter suggests; the one who adds them may
	// choose another. It may be empty.
	Name string
	// Addrs are direct addresses (transport only, no /p2p/).
	Addrs []ma.Multiaddr
	// Relays are the inviter's relays, each a transport address and
	// /p2p/<relay peer id>; the inviter is reachable through each as
	// <relay>/p2p-circuit/p2p/<peer id>.
	Relays []ma.Multiaddr
	// Issued is when it was made, to the second.
	Issued time.Time
}

// Fingerprint is the fingerprint of the inviter's key.
func (inv Invitation) Fingerprint() (identity.Fingerprint, error) {
	pub, err := identity.KeyFromPeerID(inv.PeerID)
	if err != nil {
		return identity.Fingerprint{}, err
	}
	return identity.FingerprintOf(pub), nil
}

// DialAddrs are the addresses to reach the inviter at: the direct ones,
// then one circuit address through each relay (without the final
// /p2p/<peer id>, as a peerstore holds them).
func (inv Invitation) DialAddrs() []ma.Multiaddr {
	out := slices.Clone(inv.Addrs)
	for _, r := range inv.Relays {
		out = append(out, r.Encapsulate(ma.StringCast("/p2p-circuit")))
	}
	return out
}

// Encode signs the invitation with key, which must be the key of
// inv.PeerID, and returns its text. inv must keep to the limits (Choose
// picks addresses that do).
func Encode(inv Invitation, key ed25519.PrivateKey) (string, error) {
	body, err := marshal(inv)
	if err != nil {
		return "", err
	}
	pub, err := identity.KeyFromPeerID(inv.PeerID)
	if err != nil {
		return "", fmt.Errorf("invitation: %w", err)
	}
	if !pub.Equal(key.Public()) {
		return "", errors.New("invitation: the key is not the key of the peer ID")
	}
	sig := ed25519.Sign(key, signed(body))
	return Prefix + b32.EncodeToString(append(body, sig...)), nil
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func signed(body []byte) []byte { return append([]byte(sigContext), body...) }

// marshal is the binary encoding without the signature (PROTOCOL.md,
// "Invitations").
func marshal(inv Invitation) ([]byte, error) {
	id := []byte(inv.PeerID)
	switch {
	case len(id) == 0 || len(id) > maxPeerID:
		return nil, errors.New("invitation: no valid peer ID")
	case len(inv.Name) > 255:
		return nil, errors.New("invitation: the name is too long")
	case len(inv.Addrs) > MaxAddrs:
		return nil, fmt.Errorf("invitation: more than %d addresses", MaxAddrs)
	case len(inv.Relays) > MaxRelays:
		return nil, fmt.Errorf("invitation: more than %d relays", MaxRelays)
	case inv.Issued.Unix() < 0 || inv.Issued.Unix() > 1<<32-1:
		return nil, errors.New("invitation: the time is out of range")
	}
	if inv.Name != "" {
		if err := identity.CheckName(inv.Name); err != nil {
			return nil, fmt.Errorf("invitation: %w", err)
		}
	}
	b := []byte{Version, 0}
	b = binary.BigEndian.AppendUint32(b, uint32(inv.Issued.Unix()))
	b = append(b, byte(len(id)))
	b = append(b, id...)
	b = append(b, byte(len(inv.Name)))
	b = append(b, inv.Name...)
	for _, list := range [][]ma.Multiaddr{inv.Addrs, inv.Relays} {
		b = append(b, byte(len(list)))
		for _, a := range list {
			ab := a.Bytes()
			if len(ab) == 0 || len(ab) > MaxAddrLen {
				return nil, fmt.Errorf("invitation: address %s is longer than %d bytes", a, MaxAddrLen)
			}
			b = append(b, byte(len(ab)))
			b = append(b, ab...)
		}
	}
	// What Decode refuses is never encoded.
	if _, err := unmarshal(b); err != nil {
		return nil, err
	}
	return b, nil
}

// IsInvitation reports whether s looks like an invitation (its prefix),
// to tell it from an address or a peer ID.
func IsInvitation(s string) bool {
	s = strings.TrimSpace(s)
	return len(s) >= len(Prefix) && strings.EqualFold(s[:len(Prefix)], Prefix)
}

// Decode reads and verifies an invitation text. White space anywhere is
// ignored (a wrapped copy reads the same) and case does not matter.
func Decode(text string) (Invitation, error) {
	if len(text) > MaxText {
		return Invitation{}, fmt.Errorf("%w: longer than %d characters", ErrMalformed, MaxText)
	}
	if !IsInvitation(text) {
		return Invitation{}, ErrNotInvitation
	}
	text = strings.TrimSpace(text)[len(Prefix):]
	text = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToUpper(r)
	}, text)
	raw, err := b32.DecodeString(text)
	if err != nil {
		return Invitation{}, ErrMalformed
	}
	if len(raw) < 1 {
		return Invitation{}, ErrMalformed
	}
	switch {
	case raw[0] > Version:
		return Invitation{}, ErrVersion
	case raw[0] != Version:
		return Invitation{}, ErrMalformed
	}
	if len(raw) < sigLen+1 {
		return Invitation{}, ErrMalformed
	}
	body, sig := raw[:len(raw)-sigLen], raw[len(raw)-sigLen:]
	inv, err := unmarshal(body)
	if err != nil {
		return Invitation{}, err
	}
	pub, err := identity.KeyFromPeerID(inv.PeerID)
	if err != nil {
		return Invitation{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !ed25519.Verify(pub, signed(body), sig) {
		return Invitation{}, ErrSignature
	}
	return inv, nil
}

// reader reads the binary encoding; any read past the end sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() int {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

// unmarshal reads the body (without the signature), checking every
// field; the signature is checked by the caller.
func unmarshal(body []byte) (Invitation, error) {
	r := &reader{b: body}
	switch v := r.byte(); {
	case v > Version:
		return Invitation{}, ErrVersion
	case v != Version:
		return Invitation{}, ErrMalformed
	}
	if flags := r.byte(); flags != 0 {
		return Invitation{}, fmt.Errorf("%w: unknown flags", ErrMalformed)
	}
	issued := r.take(4)
	var inv Invitation
	if issued != nil {
		inv.Issued = time.Unix(int64(binary.BigEndian.Uint32(issued)), 0).UTC()
	}
	idLen := r.byte()
	if idLen == 0 || idLen > maxPeerID {
		return Invitation{}, fmt.Errorf("%w: bad peer ID length", ErrMalformed)
	}
	id, err := peer.IDFromBytes(r.take(idLen))
	if r.bad {
		return Invitation{}, ErrMalformed
	}
	if err != nil {
		return Invitation{}, fmt.Errorf("%w: bad peer ID", ErrMalformed)
	}
	if _, err := identity.KeyFromPeerID(id); err != nil {
		return Invitation{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	inv.PeerID = id
	name := r.take(r.byte())
	if r.bad {
		return Invitation{}, ErrMalformed
	}
	if len(name) > 0 {
		if err := identity.CheckName(string(name)); err != nil {
			return Invitation{}, fmt.Errorf("%w: the name: %v", ErrMalformed, err)
		}
		inv.Name = string(name)
	}
	if inv.Addrs, err = readAddrs(r, MaxAddrs, checkDirect); err != nil {
		return Invitation{}, err
	}
	if inv.Relays, err = readAddrs(r, MaxRelays, checkRelay); err != nil {
		return Invitation{}, err
	}
	if r.bad || len(r.b) != 0 {
		return Invitation{}, fmt.Errorf("%w: unexpected bytes at the end", ErrMalformed)
	}
	return inv, nil
}

func readAddrs(r *reader, limit int, check func(ma.Multiaddr) error) ([]ma.Multiaddr, error) {
	n := r.byte()
	if n > limit {
		return nil, fmt.Errorf("%w: more than %d addresses", ErrMalformed, limit)
	}
	var out []ma.Multiaddr
	for range n {
		l := r.byte()
		raw := r.take(l)
		if r.bad || l == 0 || l > MaxAddrLen {
			return nil, ErrMalformed
		}
		a, err := ma.NewMultiaddrBytes(raw)
		if err != nil || !bytes.Equal(a.Bytes(), raw) {
			return nil, fmt.Errorf("%w: a bad address", ErrMalformed)
		}
		if err := check(a); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// checkDirect accepts a transport address: no /p2p/ and no circuit.
func checkDirect(a ma.Multiaddr) error {
	for _, c := range a {
		switch c.Code() {
		case ma.P_P2P, ma.P_CIRCUIT:
			return fmt.Errorf("direct address %s names a peer or a relay", a)
		}
	}
	return nil
}

// checkRelay accepts a relay address: a transport address and
// /p2p/<relay peer id>, nothing after it.
func checkRelay(a ma.Multiaddr) error {
	info, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil || len(info.Addrs) != 1 {
		return fmt.Errorf("relay address %s must end with /p2p/<relay peer id>", a)
	}
	return checkDirect(info.Addrs[0])
}

// Choose picks, from a node's addresses, the direct ones an invitation
// carries: no circuit addresses, /p2p/ cut off, no duplicates; loopback
// and link-local ones only when there is nothing else (someone on
// another machine cannot use them), at most MaxAddrs, in the order given.
func Choose(addrs []ma.Multiaddr) []ma.Multiaddr {
	var wide, local []ma.Multiaddr
	seen := map[string]bool{}
	for _, a := range addrs {
		a, _ = peer.SplitAddr(a)
		if a == nil || checkDirect(a) != nil || len(a.Bytes()) > MaxAddrLen || seen[string(a.Bytes())] {
			continue
		}
		seen[string(a.Bytes())] = true
		if ip, err := manet.ToIP(a); err == nil && (ip.IsLoopback() || ip.IsLinkLocalUnicast()) {
			local = append(local, a)
			continue
		}
		wide = append(wide, a)
	}
	if len(wide) == 0 {
		wide = local
	}
	return wide[:min(len(wide), MaxAddrs)]
}

// ChooseRelays keeps the relay addresses an invitation can carry: valid
// ones, at most MaxRelays.
func ChooseRelays(relays []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, r := range relays {
		if checkRelay(r) == nil && len(r.Bytes()) <= MaxAddrLen && len(out) < MaxRelays {
			out = append(out, r)
		}
	}
	return out
}
