package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The plain daemon says which group a message, a status or an update
// belongs to, and what a group is after each change: without the group,
// "message from ann: hi" read as a private message, and a group's
// changes printed nothing at all. Names come out without their control
// characters. A peer's line is not printed twice in a row: a contact
// added beside the daemon printed "offline" six times in one second.
func TestPlainDaemonLines(t *testing.T) {
	var gid group.ID
	gid[0], gid[1], gid[2], gid[3] = 0xab, 0xcd, 0xef, 0x01
	var other store.GroupID
	other[0] = 0x77
	names := map[peer.ID]string{"ann": "ann", "bob": "bob", "cat": "c\x1b[31mat"}
	out := plainOut{
		name: func(m store.Message) string { return names[m.Peer] },
		peer: func(p peer.ID) string { return names[p] },
		self: "bob",
		last: map[peer.ID]string{},
		group: func(id store.GroupID) string {
			if id == store.GroupID(gid) {
				return "team"
			}
			return ""
		},
	}
	at := time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC)
	msg := func(g store.GroupID, status store.Status) *store.Message {
		return &store.Message{Peer: "ann", Body: "hi", Group: g, Status: status}
	}
	members := &node.GroupInfo{ID: gid, Name: "team", Member: true, Version: 3,
		Members: []peer.ID{"ann", "bob", "cat"}, Admins: []peer.ID{"ann"}}
	for _, tc := range []struct {
		what string
		e    node.Event
		want string
	}{
		{"a private message", node.Event{Kind: node.EventMessage, Message: msg(store.GroupID{}, "")},
			"09:30:00 message from ann: hi\n"},
		{"a group's message", node.Event{Kind: node.EventMessage, Message: msg(store.GroupID(gid), "")},
			"09:30:00 message from ann in team: hi\n"},
		{"a group we do not know by name", node.Event{Kind: node.EventMessage, Message: msg(other, "")},
			"09:30:00 message from ann in group 77000000: hi\n"},
		{"a group copy's status", node.Event{Kind: node.EventStatus, Message: msg(store.GroupID(gid), store.StatusDelivered)},
			"09:30:00 delivered 00000000000000000000000000000000 to " + peer.ID("ann").String() + " in team\n"},
		{"a change's copy says nothing (its group line did)",
			node.Event{Kind: node.EventStatus, Message: &store.Message{Peer: "ann", Group: store.GroupID(gid), Status: store.StatusDelivered, GroupChanges: [][]byte{{1}}}}, ""},
		{"a group after a change", node.Event{Kind: node.EventGroup, Group: members},
			"09:30:00 group team (abcdef01): 3 members: ann, you, c[31mat; admins: ann (version 3)\n"},
		{"a peer online", node.Event{Kind: node.EventPeer, Peer: &node.PeerInfo{ID: "ann", Name: "ann", Trust: identity.StateTOFU, Online: true, Path: "direct"}},
			"09:30:00 peer ann (" + peer.ID("ann").String() + "): tofu, online via direct\n"},
		{"the same again says nothing", node.Event{Kind: node.EventPeer, Peer: &node.PeerInfo{ID: "ann", Name: "ann", Trust: identity.StateTOFU, Online: true, Path: "direct"}}, ""},
		{"then offline", node.Event{Kind: node.EventPeer, Peer: &node.PeerInfo{ID: "ann", Name: "ann", Trust: identity.StateTOFU}},
			"09:30:00 peer ann (" + peer.ID("ann").String() + "): tofu, offline\n"},
		{"listening", node.Event{Kind: node.EventListening, Addrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW"}},
			"09:30:00 listening on /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW\n"},
		{"listening on nothing (--listen none, before a relay's reservation): not on a bare peer ID",
			node.Event{Kind: node.EventListening, Addrs: []string{"/p2p/12D3KooW"}},
			"09:30:00 listening on no address: reachable only through a relay, once it takes a reservation\n"},
		{"a group we left", node.Event{Kind: node.EventGroup, Group: &node.GroupInfo{ID: gid, Name: "team", Version: 4}},
			"09:30:00 group team (abcdef01): you are not a member (version 4)\n"},
	} {
		var b bytes.Buffer
		out.w = &b
		tc.e.Time = at
		out.event(tc.e)
		if b.String() != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.what, b.String(), tc.want)
		}
	}
}
