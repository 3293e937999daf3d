package e2e

import (
	"container/list"
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

// wrapSession stamps the issue time into a ticket the responder sends.
func (e *Endpoint) wrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	var stamp [8]byte
	binary.BigEndian.PutUint64(stamp[:], uint64(e.now().Unix()))
	ss.Extra = append(ss.Extra, append([]byte(ticketExtraTag), stamp[:]...))
	return e.server.EncryptTicket(cs, ss)
}

// unwrapSession refuses tickets without our stamp or older than
// MaxTicketAge; refusing means a full handshake, not a failure.
func (e *Endpoint) unwrapSession(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	ss, err := e.server.DecryptTicket(identity, cs)
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
