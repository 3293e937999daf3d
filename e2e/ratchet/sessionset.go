package ratchet

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync"
	"time"
)

// SessionSet holds every session with one peer: the active session, used
// by Seal, and archived sessions still accepted by Open. The active session
// is always the one with the greatest SessionID; since a session id starts
// with its creation time, the newest session wins, and two sessions created
// at once (simultaneous initiation) are ordered the same way by both peers.
//
// A *SessionSet is immutable: Seal, Open and the other operations return a
// new set and leave the receiver untouched, so the caller can persist the
// new set atomically with the message, and a failure changes nothing.
type SessionSet struct {
	*parties            // shared by every set derived from this one
	sessions []*session // ascending id; the last one is active
}

// parties names the two sides of a set's conversation. It never changes
// once made, so the sets derived from one (a seal makes one) share it.
// adOut and adIn are the associated-data heads of what the local peer
// sends and receives, made once (a group message seals one envelope for
// each member).
type parties struct {
	localPID, remotePID []byte
	local, remote       ed25519.PublicKey
	adOut, adIn         []byte
}

// newParties is the parties of a conversation, with their AD heads.
func newParties(localPID, remotePID []byte, local, remote ed25519.PublicKey) *parties {
	return &parties{
		localPID: localPID, remotePID: remotePID, local: local, remote: remote,
		adOut: appendAssociatedData(nil, localPID, remotePID, local, remote),
		adIn:  appendAssociatedData(nil, remotePID, localPID, remote, local),
	}
}

// Opened is the result of a successful Open. Persist Set (and Keys when it
// is not nil) atomically with the plaintext before acknowledging.
type Opened struct {
	Plaintext []byte
	Info      Info
	Set       *SessionSet // the new state of the peer's sessions
	Keys      *LocalKeys  // the new local keys after a first contact, else nil
}

// Info describes an opened envelope.
type Info struct {
	Session       SessionID
	Active        bool   // Session is the set's active session after Open
	FirstContact  bool   // the envelope established a new session (PQXDH)
	MessageNumber uint32 // n: position in the sender's current sending chain
	PreviousChain uint32 // pn: length of the sender's previous sending chain
	Late          bool   // arrived after later ones; opened with a stored key
	Skipped       int    // messages this envelope showed to be missing
	Missing       int    // messages of this session still missing
}

// NewSessionSet returns an empty set for the conversation between the
// owner of local and the peer remotePeerID with identity remoteIdentity.
func NewSessionSet(local *LocalKeys, remotePeerID []byte, remoteIdentity ed25519.PublicKey) (*SessionSet, error) {
	if len(remotePeerID) == 0 || len(remotePeerID) > maxPeerIDSize || len(remoteIdentity) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: peer id or identity size", ErrMalformed)
	}
	return &SessionSet{parties: newParties(bytes.Clone(local.peerID), bytes.Clone(remotePeerID),
		local.Identity(), bytes.Clone(remoteIdentity))}, nil
}

// RemotePeerID returns the peer's ID.
func (s *SessionSet) RemotePeerID() []byte { return bytes.Clone(s.remotePID) }

// RemoteIdentity returns the peer's identity key.
func (s *SessionSet) RemoteIdentity() ed25519.PublicKey { return bytes.Clone(s.remote) }

// Active returns the id of the active session, if any.
func (s *SessionSet) Active() (SessionID, bool) {
	if len(s.sessions) == 0 {
		return SessionID{}, false
	}
	return s.sessions[len(s.sessions)-1].id, true
}

// Sessions returns the ids of all sessions, ascending (the last is active).
func (s *SessionSet) Sessions() []SessionID {
	ids := make([]SessionID, len(s.sessions))
	for i, x := range s.sessions {
		ids[i] = x.id
	}
	return ids
}

func (s *SessionSet) clone() *SessionSet {
	c := *s
	c.sessions = slices.Clone(s.sessions)
	return &c
}

// with returns a copy of s holding sess: inserted in id order, or replacing
// the session with the same id. The smallest ids beyond MaxSessionsPerPeer
// are dropped.
func (s *SessionSet) with(sess *session) *SessionSet {
	c := s.clone()
	i, found := slices.BinarySearchFunc(c.sessions, sess.id, func(x *session, id SessionID) int {
		return bytes.Compare(x.id[:], id[:])
	})
	if found {
		c.sessions[i] = sess
	} else {
		c.sessions = slices.Insert(c.sessions, i, sess)
	}
	if n := len(c.sessions); n > MaxSessionsPerPeer {
		c.sessions = c.sessions[n-MaxSessionsPerPeer:]
	}
	return c
}

// activeWith reports whether sess is the active session of s with sess
// in it: the active one is the highest ID.
func (s *SessionSet) activeWith(sess *session) bool {
	last, ok := s.Active()
	return !ok || bytes.Compare(sess.id[:], last[:]) >= 0
}

func (s *SessionSet) find(id SessionID) *session {
	for _, x := range s.sessions {
		if x.id == id {
			return x
		}
	}
	return nil
}

// nextSessionTime is the creation time for a session created locally: now
// in Unix milliseconds, but later than every session already in the set so
// that the new session becomes active.
func (s *SessionSet) nextSessionTime(now time.Time) uint64 {
	t := unixMilli(now)
	if n := len(s.sessions); n > 0 {
		last := s.sessions[n-1].id
		t = max(t, uint64(last.Time().UnixMilli())+1)
	}
	return t
}

// acceptPeerSessionID refuses a peer-chosen session id too far in the
// future (it would stay active) or already present.
func (s *SessionSet) acceptPeerSessionID(id SessionID, now time.Time) error {
	if id.Time().After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: session id in the future", ErrMalformed)
	}
	if s.find(id) != nil {
		return fmt.Errorf("%w: session id already in use", ErrMalformed)
	}
	return nil
}

// adHead appends to dst the associated-data head for a message sent by
// the local peer (outgoing) or received from the remote one.
func (s *SessionSet) adHead(dst []byte, outgoing bool) []byte {
	if outgoing {
		return append(dst, s.adOut...)
	}
	return append(dst, s.adIn...)
}

// adBufSize is the room of a pooled associated-data buffer: the head
// (two peer IDs of up to maxPeerIDSize, two keys), an envelope's prefix
// without an initial part and its sealed header. An initial part makes
// the AD outgrow it: that envelope's AD is allocated.
const adBufSize = len(labelAD) + 4 + 2*maxPeerIDSize + 64 + envelopePrefix + encHeaderSize

// adBufs holds associated-data buffers for Seal and Open. The AD is
// public (peer IDs, identity keys, the envelope's prefix and sealed
// header) and the AEADs do not keep it, so a buffer goes back to the pool
// as soon as the envelope is sealed or opened, without erasing.
var adBufs = sync.Pool{New: func() any { b := make([]byte, 0, adBufSize); return &b }}

func (s *SessionSet) checkLocal(local *LocalKeys) error {
	if local == nil || !bytes.Equal(local.peerID, s.localPID) || !bytes.Equal(local.Identity(), s.local) {
		return fmt.Errorf("%w: local keys do not match the session set", ErrIdentityMismatch)
	}
	return nil
}

// InitiateFromBundle verifies the peer's bundle (ErrBadSignature: do not
// send) and returns a set whose new active session was created by PQXDH
// from it. Its envelopes carry the PQXDH initial part until the peer replies.
func (s *SessionSet) InitiateFromBundle(local *LocalKeys, b *Bundle, now time.Time) (*SessionSet, error) {
	if err := s.checkLocal(local); err != nil {
		return nil, err
	}
	if err := VerifyBundle(b, s.remote, s.remotePID); err != nil {
		return nil, err
	}
	id, err := newSessionID(s.nextSessionTime(now))
	if err != nil {
		return nil, err
	}
	sess, err := initiate(local, b, id, unixSec(now))
	if err != nil {
		return nil, err
	}
	return s.with(sess), nil
}

// Seal encrypts plaintext on the active session and returns the envelope
// and the new set, for callers that commit every new set before its
// envelope leaves; SealLeased says when that is needed. On error s is
// unchanged and nothing was sent.
func (s *SessionSet) Seal(plaintext []byte, now time.Time) ([]byte, *SessionSet, error) {
	env, next, _, err := s.SealLeased(plaintext, now)
	return env, next, err
}

// SealLeased is Seal with the sending lease (docs/PROTOCOL.md §12.12.1).
// When commit is true, next must be committed before env leaves: the seal
// took a new lease (the first seal on a new sending chain or after
// UnmarshalSessionSet, at the lease point, or after SendLeaseMaxAge;
// leases are 1, 2, 4 … up to SendLease message numbers long from a new
// or restored session), or expired keys were erased. When it is false, next
// encodes to the same bytes as s: the caller may keep next in memory
// only, and a restart from the committed set resumes past every envelope
// sealed since, so no message key is used twice. On error s is unchanged
// and nothing was sent.
func (s *SessionSet) SealLeased(plaintext []byte, now time.Time) (env []byte, next *SessionSet, commit bool, err error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, nil, false, ErrTooLarge
	}
	if len(s.sessions) == 0 {
		return nil, nil, false, ErrNoSession
	}
	return s.sealOn(s.sessions[len(s.sessions)-1], plaintext, now)
}

// sealOn is SealLeased on sess, a session of s or a new one to add to it.
func (s *SessionSet) sealOn(sess *session, plaintext []byte, now time.Time) (env []byte, next *SessionSet, commit bool, err error) {
	sess = sess.sealClone() // encrypt and takeLease change no chain
	t := unixSec(now)
	commit = sess.needsLease(t)
	ad := adBufs.Get().(*[]byte)
	env, err = sess.encrypt(plaintext, s.adHead((*ad)[:0], true))
	adBufs.Put(ad)
	if err != nil {
		return nil, nil, false, err
	}
	if commit {
		sess.takeLease(t)
	}
	next, expired := s.with(sess).Expire(now)
	return env, next, commit || expired, nil
}

// Open authenticates and decrypts an envelope from the peer. local is
// needed only for initial (first-contact) envelopes and may be nil
// otherwise. On error s and local are unchanged and the envelope should be
// dropped; ErrDuplicate means it was already opened.
func (s *SessionSet) Open(local *LocalKeys, envelope []byte, now time.Time) (*Opened, error) {
	e, err := parseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	sess := s.find(e.id)
	var keys *LocalKeys
	firstContact := false
	switch {
	case sess != nil:
		sess = sess.clone()
	case e.initial == nil:
		return nil, fmt.Errorf("%w: %s", ErrUnknownSession, e.id)
	default:
		if sess, keys, err = s.respond(local, e, now); err != nil {
			return nil, err
		}
		firstContact = true
	}
	ad := adBufs.Get().(*[]byte)
	plain, res, err := sess.decrypt(e, s.adHead((*ad)[:0], false), unixSec(now))
	adBufs.Put(ad)
	if err != nil {
		return nil, err
	}
	sess.initial = nil // the peer has the session: stop sending the initial part
	sess.lastUsed = unixSec(now)
	if s.activeWith(sess) && sess.hasCKs && sess.needsLease(sess.lastUsed) {
		// A new sending chain (or a lease used up): its lease is taken
		// now, committed with the message opened, so that the reply's
		// seal commits nothing (§12.12.1).
		sess.leaseAhead(sess.lastUsed)
	}
	next, _ := s.with(sess).Expire(now)
	active, _ := next.Active()
	return &Opened{
		Plaintext: plain,
		Set:       next,
		Keys:      keys,
		Info: Info{
			Session:       e.id,
			Active:        active == e.id,
			FirstContact:  firstContact,
			MessageNumber: res.header.n,
			PreviousChain: res.header.pn,
			Late:          res.late,
			Skipped:       res.skipped,
			Missing:       countMissing(next.find(e.id)),
		},
	}, nil
}

func countMissing(sess *session) int {
	if sess == nil {
		return 0
	}
	return len(sess.skipped)
}

func (s *SessionSet) respond(local *LocalKeys, e *envelope, now time.Time) (*session, *LocalKeys, error) {
	if err := s.checkLocal(local); err != nil {
		return nil, nil, err
	}
	if err := s.acceptPeerSessionID(e.id, now); err != nil {
		return nil, nil, err
	}
	return respond(local, e.initial, e.id, s.remotePID, s.remote, unixSec(now))
}

// Expire returns a set without skipped message keys older than
// SkippedKeyMaxAge and without archived sessions unused for
// ArchivedSessionMaxAge, and whether anything was removed. Seal and Open
// apply it to the sets they return; call it periodically as well so that
// old keys are erased even when the conversation is idle.
func (s *SessionSet) Expire(now time.Time) (*SessionSet, bool) {
	t := unixSec(now)
	maxIdle := uint64(ArchivedSessionMaxAge / time.Second)
	var c *SessionSet
	for i := len(s.sessions) - 1; i >= 0; i-- {
		x := s.sessions[i]
		if i < len(s.sessions)-1 && t >= x.lastUsed && t-x.lastUsed >= maxIdle {
			if c == nil {
				c = s.clone()
			}
			c.sessions = slices.Delete(c.sessions, i, i+1)
			continue
		}
		if !slices.ContainsFunc(x.skipped, func(k skippedKey) bool { return expired(k.stored, t) }) {
			continue
		}
		if c == nil {
			c = s.clone()
		}
		y := x.clone()
		y.expire(t)
		c.sessions[i] = y
	}
	if c == nil {
		return s, false
	}
	return c, true
}
