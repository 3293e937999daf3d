// Package e2e is certchat's end-to-end secure channel: a TLS 1.3 handshake
// with certificates both ways (crypto/tls, hybrid X25519MLKEM768 key
// exchange by default) run inside any libp2p stream, direct, on the LAN or
// through a relay, followed by typed, length-prefixed frames inside the
// encrypted channel.
//
// crypto/tls does the handshake and the record layer. This package owns
// what TLS leaves to the application: the trust decision (through
// identity.TrustStore), the binding between the certificate's key and the
// libp2p peer ID of the stream and of the peer the dialer meant, refusing
// self-connections and reflections, the resumption policy, limits on
// half-open handshakes, framing, key export for later layers, and errors a
// person can act on. docs/PROTOCOL.md is the specification.
//
// The package has no libp2p host code: a stream is any byte stream with
// deadlines plus the remote peer ID its transport authenticated.
package e2e
