package node

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
)

// Replies, edits, deletions and reactions (docs/PROTOCOL.md §10, "Editing,
// deleting, reacting"). Each is a message of its own: stored with its
// effect on its target in one transaction, queued in the outbox, sealed
// into the ratchet like a text, live or through the mailbox, and
// acknowledged by a receipt. The receiver accepts an edit or deletion only
// from the author of its target, as its session (or mailbox sender)
// authenticated them, never from what the message says.

// Messages is the node's part that stores outgoing texts, replies, edits,
// deletions and reactions and queues them (Node.Messages; Node.Send
// too). It has no state of its own: the store, the peer book's verdicts
// and the outbox hold it. Its methods run on the API's callers.
type Messages struct {
	*core
	book   *peerBook
	out    *outbox
	groups *Groups // a group message's replies and actions (groups_actions.go)
}

// Messages is the node's part for replies, edits, deletions and
// reactions.
func (n *Node) Messages() *Messages { return n.msgs }

// Reply stores a reply to message replyTo, in replyTo's conversation, and
// queues it as Send does.
func (ms *Messages) Reply(replyTo e2e.MessageID, text string) (store.Message, error) {
	if gt, ok, err := ms.groups.target(replyTo); ok || err != nil {
		if err != nil {
			return store.Message{}, fmt.Errorf("reply: %w", err)
		}
		return ms.groups.reply(gt, text)
	}
	t, err := ms.target(replyTo)
	if err != nil {
		return store.Message{}, fmt.Errorf("reply: %w", err)
	}
	return ms.send(store.Message{Peer: t.Peer, Body: text, ReplyTo: replyTo})
}

// Edit replaces the text of one of our messages, within store.EditWindow
// of sending it. It returns the edit (its ID is what the receipt
// acknowledges) and the message as it now stands.
func (ms *Messages) Edit(id e2e.MessageID, text string) (action, target store.Message, err error) {
	return ms.act(id, store.KindEdit, text, "")
}

// Delete deletes one of our messages for both sides, within
// store.EditWindow: its text is removed from the store and a tombstone
// remains.
func (ms *Messages) Delete(id e2e.MessageID) (action, target store.Message, err error) {
	return ms.act(id, store.KindDelete, "", "")
}

// React reacts to a message of the conversation (anyone's) with an emoji;
// an empty emoji takes our reaction back. One reaction per person: a new
// one replaces ours.
func (ms *Messages) React(id e2e.MessageID, emoji string) (action, target store.Message, err error) {
	if err := checkEmoji(emoji); err != nil {
		return store.Message{}, store.Message{}, err
	}
	return ms.act(id, store.KindReact, "", emoji)
}

// errBadEmoji refuses a reaction that is not one short printable symbol.
var errBadEmoji = fmt.Errorf("a reaction is one emoji or symbol (at most %d bytes, no spaces)", e2e.MaxEmojiBytes)

func checkEmoji(emoji string) error {
	if len(emoji) > e2e.MaxEmojiBytes || strings.ContainsAny(emoji, " \t\r\n") || identity.SanitizeText(emoji, false) != emoji {
		return errBadEmoji
	}
	return nil
}

// target reads a text to reply to or act on.
func (ms *Messages) target(id e2e.MessageID) (store.Message, error) {
	t, err := ms.store.Message(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Message{}, fmt.Errorf("message %s: %w", id, store.ErrNoTarget)
	case err != nil:
		return store.Message{}, err
	case t.Kind != store.KindText:
		return store.Message{}, fmt.Errorf("message %s: %w", id, store.ErrNoTarget)
	}
	return t, nil
}

func (ms *Messages) act(id e2e.MessageID, kind store.Kind, body, emoji string) (store.Message, store.Message, error) {
	if gt, ok, err := ms.groups.target(id); ok || err != nil {
		if err != nil {
			return store.Message{}, store.Message{}, fmt.Errorf("%s: %w", kind, err)
		}
		return ms.groups.act(gt, kind, body, emoji)
	}
	t, err := ms.target(id)
	if err != nil {
		return store.Message{}, store.Message{}, fmt.Errorf("%s: %w", kind, err)
	}
	if err := ms.book.mayMessage(t.Peer); err != nil {
		return store.Message{}, store.Message{}, err
	}
	now := ms.cfg.Now()
	a := store.Message{ID: e2e.NewMessageID(), Peer: t.Peer, Kind: kind, Target: id, Body: body, Emoji: emoji, SentAt: now, StoredAt: now}
	if _, err := textPlaintext(a); err != nil { // refused now rather than failed later
		return store.Message{}, store.Message{}, fmt.Errorf("%s: %w", kind, err)
	}
	target, err := ms.store.Actions().AddOutgoingAction(&a, now)
	if err != nil {
		return store.Message{}, store.Message{}, fmt.Errorf("%s: %w", kind, err)
	}
	ms.emit(Event{Kind: EventStatus, Message: &a})
	ms.emit(Event{Kind: EventUpdate, Message: &target, Action: &a})
	ms.out.kick(t.Peer)
	return a, target, nil
}
