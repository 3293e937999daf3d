// Package relay is certchat's relay server: a libp2p host with its own
// persistent key running the circuit relay v2 service, with limits chosen
// for chat (go-libp2p's defaults cut every relayed connection after two
// minutes or 128 KiB), so that peers behind NATs can reach each other.
//
// A relay forwards bytes it cannot read: every chat stream it carries is
// secured end to end, by libp2p's Noise or TLS between the two peers and,
// inside that, by certchat's TLS 1.3 channel. It learns which peers hold
// reservations, which peers talk to which and when, and how much; never
// what they say or any key. An operator can check that with --record-dir,
// which writes every byte the relay forwards to files.
package relay
