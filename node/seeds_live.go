package node

import (
	"errors"
	"fmt"
	"time"
)

// The ratchet seeds a peer causes on a live session (PROTOCOL §12.8).
// Each seed is a new ratchet session committed under the ratchet keys'
// lock, with a write to the store; a peer that asked for one without end
// (empty ratchet-init frames), offered one without end, or wrote
// envelopes for sessions we do not have without end would have us commit
// a seed for each. So:
//
//   - a seed under way on a session (we offered one, or asked for one)
//     is not followed by another for the envelopes that arrive before
//     the peer answers it: they were sealed before the peer had the seed,
//     and the peer writes them again on it (seeding, reseedFor);
//   - a peer may cause at most maxPeerSeeds seeds on a session in
//     peerSeedWindow: asks and offers it writes, and envelopes it writes
//     that we cannot open in their session. Past that the session is
//     closed as broken, with one event. What we start ourselves (a
//     session's first seed, a reseed for messages without receipts) does
//     not count: an honest sender whose messages we do not acknowledge
//     (a stranger past its bound) reseeds every Config.ResendAfter.
const (
	maxPeerSeeds   = 8
	peerSeedWindow = time.Minute
)

// errTooManySeeds closes a session past maxPeerSeeds.
var errTooManySeeds = errors.New("too many new encryption sessions asked for")

// peerSeed counts a seed the peer caused on cs, and reports whether it
// is within maxPeerSeeds in peerSeedWindow.
func (cs *chatSession) peerSeed(now time.Time) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if now.Sub(cs.seedsSince) >= peerSeedWindow {
		cs.seeds, cs.seedsSince = 0, now
	}
	cs.seeds++
	if cs.seeds > maxPeerSeeds {
		return fmt.Errorf("%w (%d within %v on this session)", errTooManySeeds, cs.seeds, peerSeedWindow)
	}
	return nil
}

// setSeeding records whether a seed is under way on cs (we offered one,
// or asked for one) and reports whether one was.
func (cs *chatSession) setSeeding(on bool) (was bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	was, cs.seeding = cs.seeding, on
	return was
}

// reseedFor starts a new ratchet session for an envelope from the peer
// that cannot be opened in its session, unless a seed is under way on
// cs already (the peer sealed it before it had the seed, and writes it
// again on it), within the peer's budget.
func (t *sessions) reseedFor(cs *chatSession, err error) error {
	cs.mu.Lock()
	seeding := cs.seeding
	cs.mu.Unlock()
	if seeding {
		t.log.Debug("envelope from before the seed under way dropped; the peer writes it again", "peer", cs.peer, "err", err)
		return nil
	}
	if err := cs.peerSeed(time.Now()); err != nil {
		return err
	}
	t.log.Warn("envelope cannot be opened in its session; seeding a new one", "peer", cs.peer, "err", err)
	t.reseed(cs)
	return nil
}
