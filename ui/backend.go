package ui

import (
	"context"
	"crypto/x509"

	"github.com/certchat/certchat/e2e"
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
	// Reply stores and queues a reply to a message, in its conversation.
	Reply(replyTo e2e.MessageID, text string) (store.Message, error)
	// Edit, Delete and React act on a message (edit and delete: our
	// own, within store.EditWindow); they return the action and the
	// message as it now stands.
	Edit(id e2e.MessageID, text string) (action, target store.Message, err error)
	Delete(id e2e.MessageID) (action, target store.Message, err error)
	React(id e2e.MessageID, emoji string) (action, target store.Message, err error)
	// Indications is the node's part for read markers and typing: its
	// MarkSeen tells the peer our window showed its messages, its Typing
	// that we type or stopped (each when both take part); Settings and
	// Set read and change whether we take part.
	Indications() *node.Indications
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
	// Rename gives a contact a new label, refusing one that reads the
	// same as another contact's (identity.ErrNameTaken).
	Rename(p peer.ID, name string) error
	// Remove forgets a contact; the conversation stays.
	Remove(p peer.ID) error
	// Connect reaches a peer by invitation, multiaddr or peer ID and runs
	// the handshake.
	Connect(ctx context.Context, target string) (node.PeerInfo, error)
	// Add makes an invitation, multiaddr or peer ID a contact and connects
	// (node.ErrIsRelay for a relay's address).
	Add(ctx context.Context, target, name string) (node.PeerInfo, error)
	// Invitation is the node's invitation now, to share.
	Invitation() (string, error)
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
