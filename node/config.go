package node

import (
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
)

// DefaultListen are the listen addresses when none are configured: TCP and
// QUIC on every interface, IPv4 and IPv6, on ports the system picks.
var DefaultListen = []string{
	"/ip4/0.0.0.0/tcp/0",
	"/ip4/0.0.0.0/udp/0/quic-v1",
	"/ip6/::/tcp/0",
	"/ip6/::/udp/0/quic-v1",
}

// MDNSService is the DNS-SD service certchat nodes announce on the LAN.
// A name of our own keeps us from dialing every libp2p node on the LAN.
const MDNSService = "_certchat._udp"

// Config sets up a Node.
type Config struct {
	Home     identity.Home
	Identity *identity.Identity
	Trust    *identity.TrustStore
	// Listen are multiaddrs to listen on; empty means DefaultListen, with
	// RememberPorts.
	Listen []string
	// RememberPorts keeps the node's addresses across restarts: the port
	// the system picked for each Listen address with port 0 is saved in
	// the store and asked for first at the next start. A port another
	// process holds then falls back to a new one (logged at info level),
	// which is remembered in turn. Set by default; addresses the user
	// chose are used as given.
	RememberPorts bool
	// Relays are circuit relay multiaddrs (with /p2p/) to reserve slots on.
	Relays []string
	// NoDHT keeps the node out of the certchat DHT (dht.go), which it
	// otherwise joins through its relays: no peer record published, no
	// lookups by peer ID. Without relays there is no DHT anyway.
	NoDHT bool
	// RelayCount is how many relays the node keeps reservations on: with
	// the DHT on, while fewer of its relays hold one, it adds relays found
	// in the DHT (dht.go). Zero means DefaultRelayCount; a negative count
	// uses only the configured relays.
	RelayCount int
	// MDNS turns on LAN discovery.
	MDNS bool
	// RequirePostQuantum refuses sessions whose key exchange is not
	// hybrid post-quantum (e2e.Policy.RequirePostQuantum).
	RequirePostQuantum bool
	// DBPath is the message database; empty means chat.db in the home.
	DBPath string
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RetryMin and RetryMax bound the outbox's retry backoff; zero means
	// one second and one minute.
	RetryMin, RetryMax time.Duration
	// ResendAfter is how long a message written on a working session may
	// wait for its receipt before the ratchet session is taken to be out
	// of step and a new one is started (outbox.go); zero means 30 s.
	ResendAfter time.Duration
	// NoReadMarkers and NoTyping keep us out of the live indications:
	// the peer is not told we saw its messages or that we type, and is
	// not shown to us either (indications.go). Indications.Set changes
	// them while the node runs.
	NoReadMarkers, NoTyping bool
	// NoForward keeps us out of forwarded group copies (groups_forward.go,
	// docs/PROTOCOL.md §14.7): we neither write other members' copies
	// onward for a sender nor are sent copies through another member, and
	// our own group messages go to each member directly.
	NoForward bool
	// KeyLogWriter receives the e2e TLS secrets in NSS key log format. For
	// debugging and tests only: it defeats the encryption.
	KeyLogWriter io.Writer
	// Downloads is the folder received files go to; empty means
	// "downloads" in the home.
	Downloads string
	// AutoAcceptFiles is the largest file taken without asking from a
	// verified or CA-verified contact; zero asks for every file.
	AutoAcceptFiles int64
	// FileRate caps the bytes per second each file is sent at; zero
	// does not.
	FileRate int64
	// GroupHoldTTL is how long a group message from a peer not yet known
	// as a member waits for the change that adds it (groups_hold.go);
	// zero means DefaultGroupHoldTTL.
	GroupHoldTTL time.Duration
}

// DefaultRelayCount is Config.RelayCount's default: two relays, so that
// losing one leaves the node reachable and its mailbox served.
const DefaultRelayCount = 2

func (c *Config) defaults() {
	if c.RelayCount == 0 {
		c.RelayCount = DefaultRelayCount
	}
	if len(c.Listen) == 0 {
		c.Listen = slices.Clone(DefaultListen)
		c.RememberPorts = true
	}
	if c.DBPath == "" {
		c.DBPath = c.Home.Path(store.FileName)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RetryMin <= 0 {
		c.RetryMin = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.ResendAfter <= 0 {
		c.ResendAfter = 30 * time.Second
	}
}
