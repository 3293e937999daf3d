package ratchet

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"slices"
)

const (
	stateHasCKs = 1 << 0
	stateHasCKr = 1 << 1
)

// MarshalBinary encodes the set, including every secret of its sessions.
// The encoding is deterministic: equal states encode to equal bytes. A
// session's sending chain is encoded at its lease point (SealLeased), so
// a set decoded from it resumes sending there.
func (s *SessionSet) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// AppendBinary appends the set's encoding (MarshalBinary's) to b and
// returns the extended slice (encoding.BinaryAppender): a caller that
// encodes many sets can reuse one buffer. The encoding holds every secret
// of the set: clear the buffer when done. b grows (once) before anything
// is written, so an array it leaves behind holds no part of the encoding.
func (s *SessionSet) AppendBinary(b []byte) ([]byte, error) {
	w := writer{b: slices.Grow(b, s.encodedSize())}
	w.u8(stateTagSet)
	w.u8(stateVersion)
	w.vec16(s.localPID)
	w.vec16(s.remotePID)
	w.raw(s.local)
	w.raw(s.remote)
	w.u16(uint16(len(s.sessions)))
	for _, x := range s.sessions {
		x.marshal(&w)
	}
	return w.b, nil
}

// encodedSize is the length of MarshalBinary's encoding.
func (s *SessionSet) encodedSize() int {
	n := 2 + 2 + len(s.localPID) + 2 + len(s.remotePID) + len(s.local) + len(s.remote) + 2
	for _, x := range s.sessions {
		n += x.encodedSize()
	}
	return n
}

// encodedSize is the length of marshal's encoding.
func (s *session) encodedSize() int {
	n := sessionIDSize + 8 + keySize + keySize + 1 // id, last used, rk, dhs, flags
	if s.hasCKs {
		n += 2 * keySize
	}
	if s.hasCKr {
		n += 2 * keySize
	}
	n += 2*keySize + 4*4 + 2 + len(s.initial) // nhks, nhkr, ns, nr, pn, discarded, initial
	n += 2 + len(s.retired)*(keySize+4+4)
	n += 2 + len(s.skipped)*(keySize+4+keySize+8)
	return n
}

func (s *session) marshal(w *writer) {
	w.raw(s.id[:])
	w.u64(s.lastUsed)
	w.key(&s.rk)
	w.raw(s.dhs.Bytes())
	var flags byte
	if s.hasCKs {
		flags |= stateHasCKs
	}
	if s.hasCKr {
		flags |= stateHasCKr
	}
	w.u8(flags)
	ns := s.ns
	if s.hasCKs {
		ck := &s.cks
		if s.leased { // the lease point, never the live chain (§12.12.1)
			ck, ns = &s.leaseCK, s.leaseN
		}
		w.key(ck)
		w.key(&s.hks)
	}
	if s.hasCKr {
		w.key(&s.ckr)
		w.key(&s.hkr)
	}
	w.key(&s.nhks)
	w.key(&s.nhkr)
	w.u32(ns)
	w.u32(s.nr)
	w.u32(s.pn)
	w.u32(s.discarded)
	w.vec16(s.initial)
	w.u16(uint16(len(s.retired)))
	for i := range s.retired {
		c := &s.retired[i]
		w.key(&c.hk)
		w.u32(c.length)
		w.u32(c.discarded)
	}
	w.u16(uint16(len(s.skipped)))
	for i := range s.skipped {
		k := &s.skipped[i]
		w.key(&k.hk)
		w.u32(k.n)
		w.key(&k.mk)
		w.u64(k.stored)
	}
}

// UnmarshalSessionSet strictly decodes a set encoded by MarshalBinary.
func UnmarshalSessionSet(data []byte) (*SessionSet, error) {
	r := reader{b: data}
	if err := stateHeader(&r, stateTagSet); err != nil {
		return nil, err
	}
	localPID := bytes.Clone(r.vec16(1, maxPeerIDSize, "local peer id"))
	remotePID := bytes.Clone(r.vec16(1, maxPeerIDSize, "remote peer id"))
	local := ed25519.PublicKey(bytes.Clone(r.take(ed25519.PublicKeySize, "local identity")))
	remote := ed25519.PublicKey(bytes.Clone(r.take(ed25519.PublicKeySize, "remote identity")))
	s := &SessionSet{parties: newParties(localPID, remotePID, local, remote)}
	n := r.count(MaxSessionsPerPeer, "sessions")
	for i := range n {
		x := unmarshalSession(&r)
		if r.err != nil {
			break
		}
		if i > 0 && bytes.Compare(s.sessions[i-1].id[:], x.id[:]) >= 0 {
			r.fail("session order")
		}
		s.sessions = append(s.sessions, x)
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	return s, nil
}

func unmarshalSession(r *reader) *session {
	s := &session{chains: &chains{}}
	copy(s.id[:], r.take(sessionIDSize, "session id"))
	s.lastUsed = r.u64("last used")
	s.rk = r.key("root key")
	s.dhs = x25519Private(r, "ratchet key")
	flags := r.u8("flags")
	if flags&^(stateHasCKs|stateHasCKr) != 0 || flags == stateHasCKr {
		r.fail("session flags")
	}
	s.hasCKs, s.hasCKr = flags&stateHasCKs != 0, flags&stateHasCKr != 0
	if s.hasCKs {
		s.cks, s.hks = r.key("sending chain"), r.key("sending header key")
	}
	if s.hasCKr {
		s.ckr, s.hkr = r.key("receiving chain"), r.key("receiving header key")
	}
	s.nhks, s.nhkr = r.key("next header key"), r.key("next header key")
	s.ns, s.nr, s.pn, s.discarded = r.u32("ns"), r.u32("nr"), r.u32("pn"), r.u32("discarded")
	if s.discarded > s.nr {
		r.fail("discard mark")
	}
	if init := r.vec16(0, initialFixedSize+4, "initial part"); len(init) > 0 {
		s.initial = bytes.Clone(init)
		ir := reader{b: init}
		parseInitial(&ir)
		if ir.done() != nil {
			r.fail("initial part")
		}
	}
	m := r.count(MaxRetiredChains, "retired chains")
	for range m {
		s.retired = append(s.retired, chainRecord{hk: r.key("header key"), length: r.u32("length"), discarded: r.u32("discarded")})
	}
	unmarshalSkipped(r, s)
	return s
}

// unmarshalSkipped reads the skipped keys and checks each belongs to a
// known chain, below its end, and appears once.
func unmarshalSkipped(r *reader, s *session) {
	type slot struct {
		chain int // -1: the current receiving chain, else an index in retired
		n     uint32
	}
	m := r.count(MaxSkippedKeys, "skipped keys")
	seen := make(map[slot]bool, m)
	for range m {
		k := skippedKey{hk: r.key("header key"), n: r.u32("n"), mk: r.key("message key"), stored: r.u64("stored")}
		if r.err != nil {
			return
		}
		chain, end, ok := s.chainOf(&k.hk)
		if !ok || k.n >= end || seen[slot{chain, k.n}] {
			r.fail(fmt.Sprintf("skipped key %d", len(s.skipped)))
			return
		}
		seen[slot{chain, k.n}] = true
		s.skipped = append(s.skipped, k)
	}
}

// chainOf finds the receiving chain with header key hk (-1: the current
// one, else its index in retired) and the number of messages known in it.
func (s *session) chainOf(hk *[32]byte) (chain int, end uint32, ok bool) {
	if s.hasCKr && sameKey(hk, &s.hkr) {
		return -1, s.nr, true
	}
	for i := range s.retired {
		if sameKey(hk, &s.retired[i].hk) {
			return i, s.retired[i].length, true
		}
	}
	return 0, 0, false
}
