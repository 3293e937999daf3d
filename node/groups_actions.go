package node

import (
	"errors"
	"fmt"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/store"
)

// Replies, edits, deletions and reactions in groups (PROTOCOL §14.5).
// Reply, Edit, Delete and React take a group message's ID as they take a
// private one's: the action is a group message of its own, stored once
// with its effect on the target and sent to every member like a text.
// The store checks who may (store/groups_actions.go); a receiver accepts
// it only from a member, as for a text.

// target reads the group message id, if it is one.
func (g *Groups) target(id e2e.MessageID) (store.GroupMessage, bool, error) {
	gm, err := g.store.Groups().GroupMessageByID(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.GroupMessage{}, false, nil
	case err != nil:
		return store.GroupMessage{}, false, err
	case gm.Changes != nil || gm.Kind != store.KindText:
		return store.GroupMessage{}, true, fmt.Errorf("message %s: %w", id, store.ErrNoTarget)
	}
	return gm, true, nil
}

// reply sends a reply to t in its group.
func (g *Groups) reply(t store.GroupMessage, text string) (store.Message, error) {
	m, err := g.post(group.ID(t.Group), store.GroupMessage{Body: text, ReplyTo: t.ID})
	if err != nil {
		return store.Message{}, fmt.Errorf("reply: %w", err)
	}
	return m.AsMessage(), nil
}

// act sends an action on t in its group.
func (g *Groups) act(t store.GroupMessage, kind store.Kind, body, emoji string) (store.Message, store.Message, error) {
	m, err := g.post(group.ID(t.Group), store.GroupMessage{Kind: kind, Target: t.ID, Body: body, Emoji: emoji})
	if err != nil {
		return store.Message{}, store.Message{}, fmt.Errorf("%s: %w", kind, err)
	}
	a := m.AsMessage()
	var target store.Message
	if m.Applied != nil {
		target = m.Applied.AsMessage()
	}
	g.emit(Event{Kind: EventUpdate, Message: &target, Action: &a})
	return a, target, nil
}
