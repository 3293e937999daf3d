package e2e

import (
	"container/list"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"strings"
	"sync"
	"time"
)

// Resumption policy (docs/PROTOCOL.md, "Resumption").
//
// Clients keep one TLS 1.3 ticket per peer, keyed by the peer they dial,
// for at most MaxTicketAge; responders stamp the issue time into each
// ticket and refuse older ones. crypto/tls resumes with psk_dhe_ke only, so
// a resumed session still runs a fresh (hybrid) key exchange and keeps
// forward secrecy. Every resumed handshake runs the same VerifyConnection
// checks against the certificate stored with the ticket: trust is decided
// now, not when the ticket was issued.

// ticketCache is an LRU tls.ClientSessionCache that forgets old tickets.
type ticketCache struct {
	mu     sync.Mutex
	max    int
	maxAge time.Duration
	now    func() time.Time
	order  *list.List // of *ticketEntry, most recent first
	byKey  map[string]*list.Element
}

type ticketEntry struct {
	key     string
	state   *tls.ClientSessionState
	created time.Time
}

func newTicketCache(max int, maxAge time.Duration, now func() time.Time) *ticketCache {
	return &ticketCache{max: max, maxAge: maxAge, now: now, order: list.New(), byKey: map[string]*list.Element{}}
}

func (c *ticketCache) Get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	ent := el.Value.(*ticketEntry)
	if c.now().Sub(ent.created) > c.maxAge {
		c.order.Remove(el)
		delete(c.byKey, key)
		return nil, false
	}
	c.order.MoveToFront(el)
	return ent.state, true
}

func (c *ticketCache) Put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		if cs == nil {
			c.order.Remove(el)
			delete(c.byKey, key)
			return
		}
		el.Value = &ticketEntry{key: key, state: cs, created: c.now()}
		c.order.MoveToFront(el)
		return
	}
	if cs == nil {
		return
	}
	c.byKey[key] = c.order.PushFront(&ticketEntry{key: key, state: cs, created: c.now()})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byKey, last.Value.(*ticketEntry).key)
	}
}

// ticketKeys are the responder's session-ticket keys, newest first: the
// newest seals, all open. mu guards keys and their installation in the
// endpoint's server configuration (which crypto/tls guards itself); it is
// held while a ticket is sealed or opened, memory work only.
type ticketKeys struct {
	mu   sync.Mutex
	keys []ticketKey
}

type ticketKey struct {
	key     [32]byte
	created time.Time
}

// rotateTicketKeys brings the ticket keys up to now, on the endpoint's
// clock: a new key once the newest is TicketKeyRotation old (or from the
// future: the clock went back), so that no key seals tickets for longer;
// and older keys dropped once every ticket they can have sealed is past
// MaxTicketAge, so that a ticket resumes across a rotation but a key is
// not kept for tickets nobody may use. Callers hold e.tickets.mu, or are
// NewEndpoint.
func (e *Endpoint) rotateTicketKeys(now time.Time) error {
	t := &e.tickets
	changed := false
	if n := len(t.keys); n == 0 || now.Sub(t.keys[0].created) >= TicketKeyRotation || now.Before(t.keys[0].created) {
		k := ticketKey{created: now}
		if _, err := rand.Read(k.key[:]); err != nil {
			return err
		}
		t.keys = append([]ticketKey{k}, t.keys...)
		changed = true
	}
	// A key sealed tickets until TicketKeyRotation after it was made;
	// the last of them may resume until MaxTicketAge after that.
	keep := TicketKeyRotation + e.cfg.Policy.MaxTicketAge
	for i := len(t.keys) - 1; i > 0 && now.Sub(t.keys[i].created) >= keep; i-- {
		t.keys[i] = ticketKey{} // forget the bytes, not just the slot
		t.keys = t.keys[:i]
		changed = true
	}
	if changed {
		raw := make([][32]byte, len(t.keys))
		for i, k := range t.keys {
			raw[i] = k.key
		}
		e.server.SetSessionTicketKeys(raw)
	}
	return nil
}

// wrapSession stamps the issue time into a ticket the responder sends,
// sealed under the current ticket key.
func (e *Endpoint) wrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	e.tickets.mu.Lock()
	defer e.tickets.mu.Unlock()
	now := e.now()
	if err := e.rotateTicketKeys(now); err != nil {
		return nil, err
	}
	var stamp [8]byte
	binary.BigEndian.PutUint64(stamp[:], uint64(now.Unix()))
	ss.Extra = append(ss.Extra, append([]byte(ticketExtraTag), stamp[:]...))
	return e.server.EncryptTicket(cs, ss)
}

// openTicket opens a ticket with the keys kept now: nil if none opens it
// (sealed under a key since dropped, or not ours).
func (e *Endpoint) openTicket(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	e.tickets.mu.Lock()
	defer e.tickets.mu.Unlock()
	if err := e.rotateTicketKeys(e.now()); err != nil {
		return nil, err
	}
	return e.server.DecryptTicket(identity, cs)
}

// unwrapSession refuses tickets that no kept key opens, without our stamp
// or older than MaxTicketAge; refusing means a full handshake, not a
// failure.
func (e *Endpoint) unwrapSession(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, err := e.openTicket(identity, cs)
	if err != nil || ss == nil {
		return nil, err
	}
	for _, x := range ss.Extra {
		rest, ok := strings.CutPrefix(string(x), ticketExtraTag)
		if !ok || len(rest) != 8 {
			continue
		}
		issued := time.Unix(int64(binary.BigEndian.Uint64([]byte(rest))), 0)
		if age := e.now().Sub(issued); age >= 0 && age <= e.cfg.Policy.MaxTicketAge {
			return ss, nil
		}
	}
	return nil, nil
}
