// Package identity holds what a certchat user is and whom they trust: the
// Ed25519 identity key (also the libp2p host key, so the peer ID derives from
// it), the X.509 certificate binding that key and its peer ID to a display
// name, certificate authorities for groups, the encrypted on-disk home,
// human-comparable fingerprints and safety numbers, and the trust store that
// answers "how far do I trust this certificate for this peer ID, and why".
//
// The package has no networking. It uses libp2p's crypto and peer packages
// only to derive peer IDs.
package identity
