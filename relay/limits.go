package relay

import (
	"fmt"
	"time"

	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// Limits are the relay's resource limits. The zero value of a field means
// its default (DefaultLimits).
type Limits struct {
	// CircuitDuration cuts a relayed connection after this long; peers
	// then open a new one (or upgrade to a direct connection).
	CircuitDuration time.Duration
	// CircuitData cuts a relayed connection after this many bytes in
	// either direction.
	CircuitData int64
	// ReservationTTL is how long a reservation lasts unless refreshed.
	ReservationTTL time.Duration
	// MaxReservations caps reservations in all.
	MaxReservations int
	// MaxCircuits caps relayed connections per peer.
	MaxCircuits int
	// MaxReservationsPerIP and MaxReservationsPerASN cap reservations
	// from one IP address and one autonomous system.
	MaxReservationsPerIP  int
	MaxReservationsPerASN int
	// BufferSize is the copy buffer per direction of a relayed connection.
	BufferSize int
}

// DefaultLimits suit a relay for a group's chat: long-lived circuits with
// generous data (text chat is small), and caps against abuse.
var DefaultLimits = Limits{
	CircuitDuration:       6 * time.Hour,
	CircuitData:           64 << 20,
	ReservationTTL:        time.Hour,
	MaxReservations:       4096,
	MaxCircuits:           32,
	MaxReservationsPerIP:  64,
	MaxReservationsPerASN: 1024,
	BufferSize:            4096,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	if l.CircuitDuration == 0 {
		l.CircuitDuration = d.CircuitDuration
	}
	if l.CircuitData == 0 {
		l.CircuitData = d.CircuitData
	}
	if l.ReservationTTL == 0 {
		l.ReservationTTL = d.ReservationTTL
	}
	set(&l.MaxReservations, d.MaxReservations)
	set(&l.MaxCircuits, d.MaxCircuits)
	set(&l.MaxReservationsPerIP, d.MaxReservationsPerIP)
	set(&l.MaxReservationsPerASN, d.MaxReservationsPerASN)
	set(&l.BufferSize, d.BufferSize)
	return l
}

func (l Limits) check() error {
	switch {
	case l.CircuitDuration < 0, l.CircuitData < 0, l.ReservationTTL < 0:
		return fmt.Errorf("relay limits must not be negative")
	case l.ReservationTTL > 0 && l.ReservationTTL < time.Minute:
		return fmt.Errorf("reservation TTL %s is too short (at least 1m)", l.ReservationTTL)
	case l.MaxReservations < 0, l.MaxCircuits < 0, l.MaxReservationsPerIP < 0, l.MaxReservationsPerASN < 0, l.BufferSize < 0:
		return fmt.Errorf("relay limits must not be negative")
	}
	return nil
}

// resources builds the whole circuit relay configuration. relay.WithResources
// replaces every field, including the per-circuit limit, so every field is
// set here deliberately.
func (l Limits) resources() circuit.Resources {
	return circuit.Resources{
		Limit: &circuit.RelayLimit{
			Duration: l.CircuitDuration,
			Data:     l.CircuitData,
		},
		ReservationTTL:         l.ReservationTTL,
		MaxReservations:        l.MaxReservations,
		MaxCircuits:            l.MaxCircuits,
		BufferSize:             l.BufferSize,
		MaxReservationsPerPeer: 1,
		MaxReservationsPerIP:   l.MaxReservationsPerIP,
		MaxReservationsPerASN:  l.MaxReservationsPerASN,
	}
}
