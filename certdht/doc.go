// Package certdht is the certchat DHT (docs/PROTOCOL.md §16): a private
// Kademlia DHT (go-libp2p-kad-dht under its own protocol prefix) in which
// every relay is a server and a bootstrap node and clients take part in
// client mode. It holds what relays and nodes share: the DHT's options,
// the signed peer record a node publishes so that anyone can find it by
// peer ID (its key, which rotates daily, and the validator DHT servers
// run on it), and the key relays provide under so that clients find them.
//
// The DHT carries addresses only: no messages, names or certificates.
package certdht
