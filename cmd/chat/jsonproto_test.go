package main

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// An error event for a removal undone by a crossing change names the
// group and who is a member again, for scripts; any other error event
// has neither field.
func TestErrorEventNamesUndoneRemoval(t *testing.T) {
	carol, bob := peer.ID("carol's id"), peer.ID("bob's id")
	undone := &node.RemovalUndoneError{Group: group.ID{0xab}, Name: "team", Target: carol, Author: bob, Cause: errors.New("signed beside its author's leave")}
	for _, tc := range []struct {
		name          string
		cause         error
		group, member string
	}{
		{"removal undone", undone, undone.Group.String(), carol.String()},
		{"other", errors.New("record tampered"), "", ""},
	} {
		line := mustJSON(eventJSON(node.Event{Kind: node.EventError, PeerID: carol, Err: tc.cause.Error(), Cause: tc.cause}, nil, ""))
		var got map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatal(err)
		}
		g, _ := got["group"].(string)
		m, _ := got["member"].(string)
		if g != tc.group || m != tc.member || got["event"] != "error" {
			t.Errorf("%s: %s", tc.name, line)
		}
	}
}
