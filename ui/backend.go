package ui

import (
	"context"
	"crypto/x509"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Backend is what the window needs from a running node. *node.Node
// satisfies it; tests use real nodes too.
type Backend interface {
	// Identity is the user's own identity.
	Identity() *identity.Identity
	// Addrs are the node's full multiaddrs, to share.
	Addrs() []string
	// Subscribe streams the node's events.
	Subscribe() *node.Subscription
	// Peers lists contacts, peers with conversations and peers seen.
	Peers() []node.PeerInfo
	// PeerInfo describes one peer now.
	PeerInfo(p peer.ID) node.PeerInfo
	// Send stores and queues a message; it may wait for the disk.
	Send(p peer.ID, text string) (store.Message, error)
	// History is a page of a conversation before a sequence number.
	History(p peer.ID, before uint64, limit int) ([]store.Message, error)
	// Conversations lists conversations, most recent first.
	Conversations() ([]store.Conversation, error)
	// MarkRead clears a conversation's unread count.
	MarkRead(p peer.ID) error
	// Search finds messages across conversations, newest first.
	Search(text string, limit int) ([]store.Message, error)
	// TrustPeer pins a key (trust on first use) or marks it verified.
	TrustPeer(p peer.ID, verified bool) error
	// TrustNewPeer pins an unknown key, never accepting a key change
	// (node.ErrKeyChanged).
	TrustNewPeer(p peer.ID) error
	// TrustAsOther pins a key that claims a contact's name as a new
	// contact with its own label, which it returns.
	TrustAsOther(p peer.ID, base string) (string, error)
	// Block rejects a key.
	Block(p peer.ID) error
	// Connect reaches a peer by multiaddr or peer ID and runs the handshake.
	Connect(ctx context.Context, target string) (node.PeerInfo, error)
	// Session describes the live end-to-end session with a peer.
	Session(p peer.ID) (node.LiveSession, bool)
	// Certificate is the peer's last seen certificate.
	Certificate(p peer.ID) (*x509.Certificate, bool)
	// Relays reports the configured relays and their reservations.
	Relays() []node.RelayInfo
	// SendFile offers a file to a peer; it reads the whole file once.
	SendFile(p peer.ID, path string) (node.FileInfo, error)
	// AcceptFile receives an offered file.
	AcceptFile(id transfer.ID) error
	// CancelFile declines an offer or cancels a transfer.
	CancelFile(id transfer.ID) error
	// Files lists the transfers.
	Files() ([]node.FileInfo, error)
}

var _ Backend = (*node.Node)(nil)
