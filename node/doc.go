// Package node turns an identity and the e2e channel into a messenger: a
// libp2p host built from the identity key (TCP and QUIC, identify, ping, a
// connection manager that protects chat peers, the resource manager), LAN
// discovery with mDNS, relay reservations, the chat protocol with message
// IDs, receipts and a persistent outbox retried with backoff, and the
// message store on disk with bodies encrypted at rest.
//
// A Node is used by the terminal UI, the headless daemon and one-shot
// commands alike; they see it through its methods and its event stream.
package node
