package ui

import (
	"context"
	"crypto/x509"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
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
	// Messages is the node's part for replies, edits, deletions and
	// reactions: Reply stores and queues a reply in its conversation;
	// Edit, Delete and React act on a message (edit and delete: our own,
	// within store.EditWindow) and return the action and the message as
	// it now stands.
	Messages() *node.Messages
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
	// Contacts is the node's part for trust decisions: Trust pins a key
	// (trust on first use) or marks it verified; TrustNew pins an unknown
	// key, never accepting a key change (node.ErrKeyChanged); TrustAsOther
	// pins a key that claims a contact's name as a new contact with its
	// own label; Block rejects a key; Rename gives a contact a new label,
	// refusing one that reads the same as another contact's
	// (identity.ErrNameTaken); Remove forgets a contact (the conversation
	// stays).
	Contacts() *node.Contacts
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
	// Files is the node's file API: Send offers a file to a peer (it
	// reads the whole file once), Accept receives an offered file, Cancel
	// declines an offer or cancels a transfer, List lists the transfers.
	Files() node.Files
}

var _ Backend = (*node.Node)(nil)
