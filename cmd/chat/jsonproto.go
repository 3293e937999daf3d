package main

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
)

// The daemon's JSON-lines protocol, on stdin/stdout (`chat daemon --json`)
// and on the control socket (home/run/control.sock) that one-shot commands use
// while a daemon runs. Each line is one JSON object. docs/DAEMON.md
// describes every command, event and field; daemon_doc_test.go checks that
// it and the tables below agree with the code.

// daemonCommands are the commands handler.handle answers, in the order
// docs/DAEMON.md lists them.
var daemonCommands = []string{"send", "edit", "delete", "react", "mark_seen", "typing", "connect", "add", "trust", "block", "peers", "history", "id", "invite", "send_file", "file_accept", "file_cancel", "files", "group_create", "group_add", "group_remove", "group_admin", "group_keep", "group_rename", "group_leave", "groups", "quit"}

// daemonEvents are the values of "event" on the lines the daemon writes:
// answers and node events. sent, queued, delivered and failed are the
// outgoing statuses of node messages (sending is answered by accepted).
var daemonEvents = []string{"listening", "lan", "peer", "message", "accepted", "sent", "queued", "delivered", "seen", "failed",
	"edited", "deleted", "reaction", "typing", "ok", "history", "group", "id", "invite",
	"file_offer", "file_progress", "file_done", "file_failed", "file", "error"}

type request struct {
	Cmd      string   `json:"cmd"`
	Ref      string   `json:"ref,omitempty"`
	To       string   `json:"to,omitempty"`
	Text     string   `json:"text,omitempty"`
	Addr     string   `json:"addr,omitempty"`
	Name     string   `json:"name,omitempty"`
	Peer     string   `json:"peer,omitempty"`
	Verified bool     `json:"verified,omitempty"`
	Limit    int      `json:"limit,omitempty"`
	ID       string   `json:"id,omitempty"`       // edit, delete, react: the message; file_accept, file_cancel: the transfer
	Path     string   `json:"path,omitempty"`     // send_file
	ReplyTo  string   `json:"reply_to,omitempty"` // send: the message replied to
	Emoji    *string  `json:"emoji,omitempty"`    // react: the emoji; "" takes ours back
	IDs      []string `json:"ids,omitempty"`      // mark_seen: the messages shown
	Typing   *bool    `json:"typing,omitempty"`   // typing: started or stopped
	Members  []string `json:"members,omitempty"`  // group_create: peer IDs or contact names
	CA       string   `json:"ca,omitempty"`       // group_create: the trusted CA members need (name or fingerprint)
	Group    string   `json:"group,omitempty"`    // group_add, group_remove, group_admin, group_keep, group_rename, group_leave: ID or name
}

type evListening struct {
	Event string   `json:"event"`
	Addrs []string `json:"addrs"`
}

type evLAN struct {
	Event  string `json:"event"`
	On     bool   `json:"on"`
	Reason string `json:"reason,omitempty"`
}

type evInvite struct {
	Event  string `json:"event"`
	Ref    string `json:"ref,omitempty"`
	Text   string `json:"text"`
	PeerID string `json:"peer_id"`
}

type evPeer struct {
	Event       string `json:"event"`
	Ref         string `json:"ref,omitempty"`
	PeerID      string `json:"peer_id"`
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Trust       string `json:"trust"`
	Reason      string `json:"reason,omitempty"`
	Path        string `json:"path"`
	Online      bool   `json:"online"`
	PostQuantum bool   `json:"post_quantum"` // the live session's key exchange is hybrid
	Discovered  bool   `json:"discovered,omitempty"`
	Previous    string `json:"previous,omitempty"` // the contact a changed key claims
	Error       string `json:"error,omitempty"`    // add: added, but not reached
}

type evMessage struct {
	Event   string `json:"event"`
	ID      string `json:"id"`
	From    string `json:"from"`
	Name    string `json:"name,omitempty"`
	Text    string `json:"text"`
	TS      string `json:"ts"`
	Late    bool   `json:"late,omitempty"`    // arrived after later messages of the peer
	Missing int    `json:"missing,omitempty"` // earlier messages of the peer not yet arrived
	ReplyTo string `json:"reply_to,omitempty"`
	Edited  string `json:"edited,omitempty"`  // its edits arrived before it: when the shown text was written
	Deleted bool   `json:"deleted,omitempty"` // its deletion arrived before it
	Group   string `json:"group,omitempty"`   // a group message: the group's ID
}

// evEdited, evDeleted and evReaction report an edit, deletion or reaction
// applied to the message id of the conversation with peer, by from (a
// peer ID: ours for our own), at ts by its clock; action is its own ID.
type evEdited struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Peer   string `json:"peer"`
	From   string `json:"from"`
	Text   string `json:"text"` // the text now
	TS     string `json:"ts"`
	Action string `json:"action"`
	Group  string `json:"group,omitempty"` // the target is a group message: its group
}

type evDeleted struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Peer   string `json:"peer"`
	From   string `json:"from"`
	TS     string `json:"ts"`
	Action string `json:"action"`
	Group  string `json:"group,omitempty"` // the target is a group message: its group
}

type evReaction struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Peer   string `json:"peer"`
	From   string `json:"from"`
	Emoji  string `json:"emoji,omitempty"` // left out: taken back
	TS     string `json:"ts"`
	Action string `json:"action"`
	Group  string `json:"group,omitempty"` // the target is a group message: its group
}

type evTyping struct {
	Event  string `json:"event"`
	PeerID string `json:"peer_id"`
	Typing bool   `json:"typing"`
}

type evStatus struct {
	Event string `json:"event"`
	Ref   string `json:"ref,omitempty"`
	ID    string `json:"id"`
	To    string `json:"to"`
	Error string `json:"error,omitempty"`
	Group string `json:"group,omitempty"` // a group message's copy to member to
	// A group copy's status: how many members have the message, of how
	// many, and who does not yet.
	Delivered *int     `json:"delivered,omitempty"`
	Members   int      `json:"members,omitempty"`
	Waiting   []string `json:"waiting,omitempty"`
}

type evError struct {
	Event  string `json:"event"`
	Ref    string `json:"ref,omitempty"`
	Error  string `json:"error"`
	PeerID string `json:"peer_id,omitempty"`
	Group  string `json:"group,omitempty"`  // a removal undone: the group
	Member string `json:"member,omitempty"` // a removal undone: who is a member again
}

type evOK struct {
	Event string `json:"event"`
	Ref   string `json:"ref,omitempty"`
	Cmd   string `json:"cmd"`
}

type evID struct {
	Event       string   `json:"event"`
	Ref         string   `json:"ref,omitempty"`
	PeerID      string   `json:"peer_id"`
	Name        string   `json:"name"`
	Fingerprint string   `json:"fingerprint"`
	Addrs       []string `json:"addrs"`
}

type jsonMessage struct {
	ID        string         `json:"id"`
	Direction string         `json:"dir"`
	Peer      string         `json:"peer"`
	Text      string         `json:"text"`
	TS        string         `json:"ts"`
	Stored    string         `json:"stored"`
	Status    string         `json:"status"`
	Error     string         `json:"error,omitempty"`
	Late      bool           `json:"late,omitempty"`
	Missing   int            `json:"missing,omitempty"`
	ReplyTo   string         `json:"reply_to,omitempty"`
	Quote     string         `json:"quote,omitempty"`      // the first line of the message replied to
	QuoteFrom string         `json:"quote_from,omitempty"` // its author: a peer ID, or "me"
	Edited    string         `json:"edited,omitempty"`
	Deleted   bool           `json:"deleted,omitempty"`
	Reactions []jsonReaction `json:"reactions,omitempty"`
	Seen      string         `json:"seen,omitempty"`
	Group     string         `json:"group,omitempty"`     // a group message: the group's ID
	Delivered int            `json:"delivered,omitempty"` // an outgoing group message: members that have it
	Members   int            `json:"members,omitempty"`   // an outgoing group message: members it was sent to
	Waiting   []string       `json:"waiting,omitempty"`   // an outgoing group message: members that do not have it yet
}

type jsonReaction struct {
	From  string `json:"from"` // a peer ID, or "me"
	Emoji string `json:"emoji"`
}

type evHistory struct {
	Event    string        `json:"event"`
	Ref      string        `json:"ref,omitempty"`
	Peer     string        `json:"peer"`
	Messages []jsonMessage `json:"messages"`
	Group    string        `json:"group,omitempty"` // the history of a group: its ID (peer is empty)
}

// wrapList joins items with ", " in lines of at most width columns, the
// first of which starts at column col.
func wrapList(items []string, col, width int) string {
	var b strings.Builder
	for i, it := range items {
		if i > 0 {
			b.WriteString(",")
			col++
			if col+1+len(it)+1 > width {
				b.WriteString("\n")
				col = 0
			} else {
				b.WriteString(" ")
				col++
			}
		}
		b.WriteString(it)
		col += len(it)
	}
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func peerEvent(p node.PeerInfo, ref string) evPeer {
	ev := evPeer{Event: "peer", Ref: ref, PeerID: p.ID.String(), Name: p.Name, Fingerprint: p.Fingerprint.String(),
		Trust: string(p.Trust), Reason: p.Reason, Path: string(p.Path), Online: p.Online, PostQuantum: p.PostQuantum, Discovered: p.Discovered}
	if ev.Path == "" {
		ev.Path = "none"
	}
	if p.Changed != nil && p.Changed.Previous != nil {
		ev.Previous = p.Changed.Previous.PeerID.String()
	}
	return ev
}

func messageJSON(m store.Message) jsonMessage {
	j := jsonMessage{ID: m.ID.String(), Direction: string(m.Direction), Peer: m.Peer.String(), Text: m.Body,
		TS: stamp(m.SentAt), Stored: stamp(m.StoredAt), Status: string(m.Status), Error: m.Error, Late: m.Late, Missing: m.Missing,
		ReplyTo: optID(m.ReplyTo), Edited: optStamp(m.Edited), Deleted: m.Deleted, Seen: optStamp(m.Seen), Group: groupID(m.Group)}
	if q := m.Quote; q != nil {
		j.Quote, j.QuoteFrom = firstLine(q.Body), "me"
		if q.Direction == store.Incoming {
			j.QuoteFrom = m.Peer.String()
		}
	}
	for _, r := range m.Reactions {
		from := "me"
		if r.From != "" {
			from = r.From.String()
		}
		j.Reactions = append(j.Reactions, jsonReaction{From: from, Emoji: r.Emoji})
	}
	return j
}

func optID(id e2e.MessageID) string {
	if id == (e2e.MessageID{}) {
		return ""
	}
	return id.String()
}

func optStamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return stamp(t)
}

// firstLine is the first line of a text, for quotes.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// updateJSON is the line of an edit, deletion or reaction applied; self
// is our own peer ID, for ours.
func updateJSON(e node.Event, self string) any {
	m, a := e.Message, e.Action
	if a == nil {
		return nil
	}
	from := self
	if a.Direction == store.Incoming {
		from = a.Peer.String()
	}
	id, peer, ts, action, group := m.ID.String(), m.Peer.String(), stamp(a.SentAt), a.ID.String(), groupID(a.Group)
	if group != "" && m.Direction == store.Outgoing {
		peer = "" // our own group message: no one peer
	}
	switch a.Kind {
	case store.KindEdit:
		return evEdited{Event: "edited", ID: id, Peer: peer, From: from, Text: m.Body, TS: ts, Action: action, Group: group}
	case store.KindDelete:
		return evDeleted{Event: "deleted", ID: id, Peer: peer, From: from, TS: ts, Action: action, Group: group}
	case store.KindReact:
		return evReaction{Event: "reaction", ID: id, Peer: peer, From: from, Emoji: a.Emoji, TS: ts, Action: action, Group: group}
	}
	return nil
}

// eventJSON maps a node event to its JSON line; nil means not shown.
func eventJSON(e node.Event, names func(store.Message) string, self string) any {
	switch e.Kind {
	case node.EventListening:
		return evListening{Event: "listening", Addrs: e.Addrs}
	case node.EventLAN:
		return evLAN{Event: "lan", On: e.LAN.On, Reason: e.LAN.Reason}
	case node.EventPeer:
		return peerEvent(*e.Peer, "")
	case node.EventMessage:
		m := e.Message
		return evMessage{Event: "message", ID: m.ID.String(), From: m.Peer.String(), Name: names(*m), Text: m.Body, TS: stamp(m.SentAt),
			Late: m.Late, Missing: m.Missing, ReplyTo: optID(m.ReplyTo), Edited: optStamp(m.Edited), Deleted: m.Deleted, Group: groupID(m.Group)}
	case node.EventUpdate:
		return updateJSON(e, self)
	case node.EventSeen:
		return evStatus{Event: "seen", ID: e.Message.ID.String(), To: e.Message.Peer.String()}
	case node.EventTyping:
		return evTyping{Event: "typing", PeerID: e.PeerID.String(), Typing: e.Typing}
	case node.EventStatus:
		m := e.Message
		if m.Status == store.StatusSending {
			return nil // the answer to send says "accepted"
		}
		if m.GroupChanges != nil {
			return nil // a membership change's copy: its "group" event said it
		}
		return evStatus{Event: string(m.Status), ID: m.ID.String(), To: m.Peer.String(), Error: m.Error, Group: groupID(m.Group)}
	case node.EventGroup:
		return groupEvent(*e.Group, "")
	case node.EventFileOffer, node.EventFileProgress, node.EventFileDone, node.EventFileFailed:
		return fileEventJSON(e)
	case node.EventError:
		ev := evError{Event: "error", Error: e.Err}
		if e.PeerID != "" {
			ev.PeerID = e.PeerID.String()
		}
		var undone *node.RemovalUndoneError
		if errors.As(e.Cause, &undone) {
			ev.Group, ev.Member = undone.Group.String(), undone.Target.String()
		}
		return ev
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(evError{Event: "error", Error: "encode event: " + err.Error()})
	}
	return append(b, '\n')
}
