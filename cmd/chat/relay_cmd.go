package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/certchat/certchat/relay"
)

// relayOptions are the flags of `chat relay`.
type relayOptions struct {
	limits    relay.Limits
	mailbox   relay.MailboxLimits
	noMailbox bool
	recordDir string
	bootstrap stringList
	noDHT     bool
}

func relayCommand() *command {
	return &command{
		name:    "relay",
		args:    "[--listen MULTIADDR] [--bootstrap MULTIADDR] [--no-dht] [limits]",
		summary: "run a relay server for peers that cannot reach each other directly",
		help: `Prints the relay's full multiaddrs (with /p2p/<id>), one per line, to give
to clients (` + "`chat --relay ADDR`" + `), then runs until SIGINT or SIGTERM. The
relay's key is home/relay.key, created on first run. The relay forwards only
ciphertext: it learns who talks to whom, when and how much, never what.
It also keeps messages for offline peers as sealed envelopes, which it
cannot open, until they fetch them (the --mailbox-* limits; --no-mailbox
turns this off).

Relays run the certchat DHT, in which clients find each other by peer ID
and find more relays: --bootstrap joins this relay to others (give each
relay one or two others); --no-dht keeps it out.

go-libp2p's defaults would cut every relayed connection after 2 minutes or
128 KiB; these limits are set for chat and can be changed.`,
		flags: func(fs *flag.FlagSet, o *options) {
			d := relay.DefaultLimits
			o.node.listen = fromEnv("CERTCHAT_LISTEN")
			fs.Var(&o.node.listen, "listen", "multiaddr to listen on, repeatable ($CERTCHAT_LISTEN; default TCP and QUIC port 4001)")
			fs.StringVar(&o.node.logFile, "log", os.Getenv("CERTCHAT_LOG"), "write logs to this file, rotated at 10 MiB to FILE.1 ($CERTCHAT_LOG; default: stderr)")
			fs.Var(&o.relay.bootstrap, "bootstrap", "another relay's full multiaddr (with /p2p/) to join in the certchat DHT, repeatable")
			fs.BoolVar(&o.relay.noDHT, "no-dht", false, "do not run the certchat DHT (clients then find peers only through this relay)")
			fs.StringVar(&o.relay.recordDir, "record-dir", "", "audit: write every byte the relay forwards to files in this folder")
			fs.DurationVar(&o.relay.limits.CircuitDuration, "circuit-duration", d.CircuitDuration, "cut a relayed connection after this long")
			fs.Int64Var(&o.relay.limits.CircuitData, "circuit-data", d.CircuitData, "cut a relayed connection after this many bytes each way")
			fs.DurationVar(&o.relay.limits.ReservationTTL, "reservation-ttl", d.ReservationTTL, "how long a reservation lasts unless refreshed")
			fs.IntVar(&o.relay.limits.MaxReservations, "max-reservations", d.MaxReservations, "reservations in all")
			fs.IntVar(&o.relay.limits.MaxCircuits, "max-circuits", d.MaxCircuits, "relayed connections per peer")
			fs.IntVar(&o.relay.limits.MaxReservationsPerIP, "max-per-ip", d.MaxReservationsPerIP, "reservations from one IP address")
			fs.IntVar(&o.relay.limits.MaxReservationsPerASN, "max-per-asn", d.MaxReservationsPerASN, "reservations from one autonomous system")
			m := relay.DefaultMailboxLimits
			fs.BoolVar(&o.relay.noMailbox, "no-mailbox", false, "do not keep messages for offline peers")
			fs.IntVar(&o.relay.mailbox.MaxItems, "mailbox-items", m.MaxItems, "messages kept per offline peer")
			fs.Int64Var(&o.relay.mailbox.MaxBytes, "mailbox-bytes", m.MaxBytes, "bytes kept per offline peer")
			fs.DurationVar(&o.relay.mailbox.TTL, "mailbox-ttl", m.TTL, "delete messages not fetched within this time")
			fs.DurationVar(&o.relay.mailbox.Idle, "mailbox-idle", m.Idle, "remove the mailbox of a peer that has not used it within this time (at least --mailbox-ttl)")
			fs.Float64Var(&o.relay.mailbox.DepositRate, "mailbox-deposit-rate", m.DepositRate, "deposits per second from one sender (burst ×10)")
			fs.IntVar(&o.relay.mailbox.MaxMailboxPerIP, "mailbox-per-ip", m.MaxMailboxPerIP, "mailboxes registered from one IP address (IPv6: one /64)")
			fs.IntVar(&o.relay.mailbox.MaxMailboxPerPrefix, "mailbox-per-prefix", m.MaxMailboxPerPrefix, "mailboxes registered from one network (IPv4 /24, IPv6 /48)")
			fs.IntVar(&o.relay.mailbox.MaxPerIP, "mailbox-share-ip", m.MaxPerIP, "messages from one IP address kept per offline peer (and that share of its bytes)")
			fs.IntVar(&o.relay.mailbox.MaxPerPrefix, "mailbox-share-prefix", m.MaxPerPrefix, "messages from one network kept per offline peer (and that share of its bytes)")
			fs.Float64Var(&o.relay.mailbox.BundleRatePerIP, "mailbox-bundle-rate-ip", m.BundleRatePerIP, "prekey bundle fetches per second from one IP address (burst ×20; a network gets 4×)")
			fs.IntVar(&o.relay.mailbox.OneTimePerIP, "mailbox-prekeys-per-ip", m.OneTimePerIP, "one-time prekeys of one peer handed to one IP address a day (a network gets 4×, a peer ID 1)")
			fs.IntVar(&o.relay.mailbox.PrekeyFloor, "mailbox-prekey-floor", m.PrekeyFloor, "at or below this many one-time prekeys left, hand them only to networks that had none")
		},
		run:             runRelay,
		withoutIdentity: true, // a relay keeps its own key, relay.key
	}
}

func runRelay(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	warning := c.warnReadableHome(h.Dir)
	log, closeLog, err := c.logger(c.io.err)
	if err != nil {
		return err
	}
	defer closeLog()
	if warning != "" {
		log.Warn(warning)
	}
	srv, err := relay.NewServer(relay.Config{
		Home: h, Listen: c.opts.node.listen, Limits: c.opts.relay.limits,
		RecordDir: c.opts.relay.recordDir, Logger: log,
		Mailbox: c.opts.relay.mailbox, NoMailbox: c.opts.relay.noMailbox,
		Bootstrap: c.opts.relay.bootstrap, NoDHT: c.opts.relay.noDHT,
	})
	if err != nil {
		return err
	}
	// Signals are caught before the addresses are printed: a script that
	// stops the relay as soon as it has read them stops it cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, a := range srv.Addrs() {
		c.printf("%s\n", a)
	}
	<-ctx.Done()
	return srv.Close()
}
