// The relay's limits: Limits for the circuit relay service and the
// resource manager under it, MailboxLimits for the mailbox's quotas and
// rates, and their defaults.

package relay

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/x/rate"
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
	orDefault(&l.CircuitDuration, d.CircuitDuration)
	orDefault(&l.CircuitData, d.CircuitData)
	orDefault(&l.ReservationTTL, d.ReservationTTL)
	orDefault(&l.MaxReservations, d.MaxReservations)
	orDefault(&l.MaxCircuits, d.MaxCircuits)
	orDefault(&l.MaxReservationsPerIP, d.MaxReservationsPerIP)
	orDefault(&l.MaxReservationsPerASN, d.MaxReservationsPerASN)
	orDefault(&l.BufferSize, d.BufferSize)
	return l
}

// orDefault sets *v to def unless *v is positive: zero means the default
// (Limits.check refuses negative limits; MailboxLimits takes them as zero).
func orDefault[T int | int64 | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
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
		ReservationTTL:        l.ReservationTTL,
		MaxReservations:       l.MaxReservations,
		MaxCircuits:           l.MaxCircuits,
		BufferSize:            l.BufferSize,
		MaxReservationsPerIP:  l.MaxReservationsPerIP,
		MaxReservationsPerASN: l.MaxReservationsPerASN,
	}
}

// circuitStreamLimits sizes go-libp2p's limits on relayed connections for
// the relay's stream budget. Each relayed connection holds two streams
// (hop from the source, stop to the destination) in the relay service's
// scope and the circuit protocols' scopes, whose go-libp2p defaults grow
// with the machine's memory, not with the reservation cap: 256 relay
// streams plus 256 per GiB of RAM/8, so 128 relayed connections on a 1 GiB
// machine, 192 on 4 GiB, 504 on 24 GiB (docs/BENCHMARKS.md, "Relay").
func circuitStreamLimits(p *rcmgr.PartialLimitConfig, streams rcmgr.LimitVal) {
	relayed := rcmgr.ResourceLimits{Streams: streams, StreamsInbound: streams, StreamsOutbound: streams}
	p.Service = map[string]rcmgr.ResourceLimits{circuit.ServiceName: relayed}
	p.Protocol = map[protocol.ID]rcmgr.ResourceLimits{proto.ProtoIDv2Hop: relayed, proto.ProtoIDv2Stop: relayed}
}

// perIPOptions let one IP address (a NAT) hold MaxReservationsPerIP
// reservations. go-libp2p's resource manager otherwise allows 8
// connections per IPv4 address or IPv6 /56 and 0.2 new ones per second
// (burst 16), so a group behind one NAT could hold only 8 reservations
// whatever MaxReservationsPerIP says. The limits keep go-libp2p's shape,
// scaled by MaxReservationsPerIP/8; loopback stays unlimited.
func (l Limits) perIPOptions() []rcmgr.Option {
	perIP := l.MaxReservationsPerIP + l.MaxReservationsPerIP/4 + 8
	k := float64(perIP) / 8
	return []rcmgr.Option{
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: perIP}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: perIP}, {PrefixLength: 48, ConnCount: 8 * perIP}}),
		rcmgr.WithConnRateLimiters(&rate.Limiter{
			NetworkPrefixLimits: []rate.PrefixLimit{
				{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
				{Prefix: netip.MustParsePrefix("::1/128")},
			},
			SubnetRateLimiter: rate.SubnetLimiter{
				IPv4SubnetLimits: []rate.SubnetLimit{{PrefixLength: 32, Limit: rate.Limit{RPS: 0.2 * k, Burst: 2 * perIP}}},
				IPv6SubnetLimits: []rate.SubnetLimit{
					{PrefixLength: 56, Limit: rate.Limit{RPS: 0.2 * k, Burst: 2 * perIP}},
					{PrefixLength: 48, Limit: rate.Limit{RPS: 0.5 * k, Burst: 10 * perIP}},
				},
				GracePeriod: time.Minute,
			},
		}),
	}
}

// MailboxLimits bound what the mailbox stores and serves. Zero fields
// take DefaultMailboxLimits.
//
// Peer IDs are free to make, so every per-peer limit has a per-source
// twin: a source is the requester's IP address (IPv6: its /64) and its
// network prefix (IPv4 /24, IPv6 /48), as the relay's connection sees it.
type MailboxLimits struct {
	MaxItems    int           // envelopes kept per recipient
	MaxPerPeer  int           // of those, from any one sender
	MaxBytes    int64         // bytes kept per recipient
	TTL         time.Duration // an envelope not fetched in this time is deleted
	DepositRate float64       // deposits per second per sender (burst: 10 s of it, at least 1)
	BundleRate  float64       // bundle fetches per second per requester (burst 10)
	MaxPrekeys  int           // one-time prekeys kept per kind per peer
	MaxMailbox  int           // mailboxes registered in all
	PublishRate float64       // publishes per second per peer (burst 5)
	Idle        time.Duration // a mailbox its owner has not used in this time is removed (at least TTL)

	// MaxMailboxPerIP and MaxMailboxPerPrefix cap the mailboxes
	// registered from one IP address and from one network prefix.
	MaxMailboxPerIP     int
	MaxMailboxPerPrefix int
	// MaxPerIP and MaxPerPrefix are the shares of each recipient's
	// mailbox (items, and the same fraction of MaxBytes) that deposits
	// from one IP address and from one network prefix may hold.
	MaxPerIP     int
	MaxPerPrefix int
	// BundleRatePerIP is the bundle fetches per second from one IP
	// address (burst 20); a network prefix gets four times as many (burst 80).
	BundleRatePerIP float64
	// OneTimePerIP is how many one-time prekeys of one peer the relay
	// hands to one IP address per day (a network prefix gets four times
	// as many; one requesting peer ID gets one). Past that, and when the
	// peer has PrekeyFloor or fewer left and the requester's prefix has
	// had one already, the bundle goes without: the last-resort prekeys
	// still start a session (PROTOCOL §12.6), and nobody drains the pool
	// for everyone.
	OneTimePerIP int
	PrekeyFloor  int
}

// DefaultMailboxLimits suit a group's relay.
var DefaultMailboxLimits = MailboxLimits{
	MaxItems:    1000,
	MaxPerPeer:  200,
	MaxBytes:    32 << 20,
	TTL:         14 * 24 * time.Hour,
	DepositRate: 5,
	BundleRate:  0.2,
	MaxPrekeys:  200,
	MaxMailbox:  4096,
	PublishRate: 0.1,
	Idle:        30 * 24 * time.Hour,

	MaxMailboxPerIP:     16,
	MaxMailboxPerPrefix: 64,
	MaxPerIP:            250,
	MaxPerPrefix:        500,
	BundleRatePerIP:     1,
	OneTimePerIP:        4,
	PrekeyFloor:         10,
}

func (l MailboxLimits) withDefaults() MailboxLimits {
	d := DefaultMailboxLimits
	orDefault(&l.MaxItems, d.MaxItems)
	orDefault(&l.MaxPerPeer, min(d.MaxPerPeer, l.MaxItems))
	orDefault(&l.MaxBytes, d.MaxBytes)
	orDefault(&l.TTL, d.TTL)
	orDefault(&l.DepositRate, d.DepositRate)
	orDefault(&l.BundleRate, d.BundleRate)
	orDefault(&l.MaxPrekeys, d.MaxPrekeys)
	orDefault(&l.MaxMailbox, d.MaxMailbox)
	orDefault(&l.PublishRate, d.PublishRate)
	orDefault(&l.Idle, d.Idle)
	l.Idle = max(l.Idle, l.TTL)
	orDefault(&l.MaxMailboxPerIP, d.MaxMailboxPerIP)
	orDefault(&l.MaxMailboxPerPrefix, d.MaxMailboxPerPrefix)
	orDefault(&l.MaxPerIP, min(d.MaxPerIP, l.MaxItems))
	orDefault(&l.MaxPerPrefix, min(d.MaxPerPrefix, l.MaxItems))
	orDefault(&l.BundleRatePerIP, d.BundleRatePerIP)
	orDefault(&l.OneTimePerIP, d.OneTimePerIP)
	orDefault(&l.PrekeyFloor, d.PrekeyFloor)
	return l
}

// shareBytes is the part of MaxBytes that n of MaxItems items may hold.
func (l MailboxLimits) shareBytes(n int) int64 {
	return l.MaxBytes / int64(l.MaxItems) * int64(n)
}
