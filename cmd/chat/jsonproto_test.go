package main

import (
	"encoding/json"
	"errors"
	"strings"
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

// TestGroupEventNamesUndone: a group event names each undone removal that
// sending waits on (member, by), and says nothing of undone when there
// is none.
func TestGroupEventNamesUndone(t *testing.T) {
	carol, bob := peer.ID("carol's id"), peer.ID("bob's id")
	for _, tc := range []struct {
		undone []group.Undone
		want   string
	}{
		{nil, ""},
		{[]group.Undone{{Target: carol, Author: bob}}, `"undone":[{"member":"` + carol.String() + `","by":"` + bob.String() + `"}]`},
	} {
		line := string(mustJSON(groupEvent(node.GroupInfo{ID: group.ID{1}, Name: "team", Undone: tc.undone}, "")))
		if tc.want == "" && strings.Contains(line, "undone") || !strings.Contains(line, tc.want) {
			t.Errorf("%v: %s", tc.undone, line)
		}
	}
}
