package e2e

import (
	"crypto/tls"
	"time"
)

// TicketKeyCreated reports when the responder's ticket key that opens
// ticket was made, on the endpoint's clock; false when no key it keeps
// now opens it.
func (e *Endpoint) TicketKeyCreated(ticket []byte) (time.Time, bool) {
	e.tickets.mu.Lock()
	defer e.tickets.mu.Unlock()
	if err := e.rotateTicketKeys(e.now()); err != nil {
		return time.Time{}, false
	}
	for _, k := range e.tickets.keys {
		c := &tls.Config{}
		c.SetSessionTicketKeys([][32]byte{k.key})
		if ss, err := c.DecryptTicket(ticket, tls.ConnectionState{}); err == nil && ss != nil {
			return k.created, true
		}
	}
	return time.Time{}, false
}

// TicketKeys is how many ticket keys the responder keeps now.
func (e *Endpoint) TicketKeys() int {
	e.tickets.mu.Lock()
	defer e.tickets.mu.Unlock()
	e.rotateTicketKeys(e.now())
	return len(e.tickets.keys)
}
