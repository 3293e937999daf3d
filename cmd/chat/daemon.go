package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/invite"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxCommandLine bounds one JSON command line.
const maxCommandLine = 1 << 20

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) write(v any) {
	if v == nil {
		return
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.w.Write(mustJSON(v))
}

// eventStream writes node events as JSON lines, leaving out a peer event
// that says exactly what the last one about that peer said (connections
// come and go in bursts, and a bot wants changes).
type eventStream struct {
	w    *lineWriter
	name func(store.Message) string
	self string            // our peer ID, the author of our edits and reactions
	last map[string]string // peer ID → its last peer line
	// delivery reads a group message's delivery to every member, for the
	// counts of a group copy's status line (nil: left out).
	delivery func(e2e.MessageID) (store.GroupMessage, error)
}

func newEventStream(w *lineWriter, name func(store.Message) string, self string) *eventStream {
	return &eventStream{w: w, name: name, self: self, last: map[string]string{}}
}

func (es *eventStream) event(e node.Event) {
	v := eventJSON(e, es.name, es.self)
	if p, ok := v.(evPeer); ok {
		line := string(mustJSON(p))
		if es.last[p.PeerID] == line {
			return
		}
		es.last[p.PeerID] = line
	}
	if st, ok := v.(evStatus); ok && st.Group != "" && es.delivery != nil {
		if d, err := es.delivery(e.Message.ID); err == nil && d.Changes == nil {
			n := d.Delivered()
			st.Delivered, st.Members, st.Waiting = &n, len(d.Members), peerStrings(d.Waiting())
			v = st
		}
	}
	es.w.write(v)
}

// handler runs daemon commands against a node.
type handler struct {
	n    *node.Node
	quit func()
}

// serve reads command lines from r and writes answers and, with events,
// every node event to w, until r ends or the node stops.
func (h *handler) serve(r io.Reader, w *lineWriter, events bool) {
	if events {
		sub := h.n.Subscribe()
		defer sub.Close()
		go func() {
			es := newEventStream(w, h.name, h.n.ID().String())
			es.delivery = h.n.Groups().Delivery
			for e := range sub.C {
				es.event(e)
			}
		}()
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br, maxCommandLine)
		if len(bytes.TrimSpace(line)) > 0 { // blank lines are ignored
			h.handle(line, w)
		}
		if errors.Is(err, errLineTooLong) {
			w.write(evError{Event: "error", Error: fmt.Sprintf("command line longer than %d bytes; ignored", maxCommandLine)})
			continue
		}
		if err != nil {
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line without its newline, at most max bytes; a longer
// line is skipped whole and reported.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		}
		return line, err
	}
}

// missingField names the first field a command needs and lacks.
func missingField(c request) string {
	switch {
	case c.Cmd == "send" && c.To == "" && c.ReplyTo == "":
		return "to"
	case c.Cmd == "send" && c.Text == "":
		return "text"
	case (c.Cmd == "connect" || c.Cmd == "add") && c.Addr == "":
		return "addr"
	case (c.Cmd == "trust" || c.Cmd == "block" || c.Cmd == "history" || c.Cmd == "mark_seen" || c.Cmd == "typing") && c.Peer == "":
		return "peer"
	case (c.Cmd == "edit" || c.Cmd == "delete" || c.Cmd == "react") && c.ID == "":
		return "id"
	case c.Cmd == "edit" && c.Text == "":
		return "text"
	case c.Cmd == "react" && c.Emoji == nil:
		return "emoji"
	case c.Cmd == "typing" && c.Typing == nil:
		return "typing"
	}
	if f := missingGroupField(c); f != "" {
		return f
	}
	return missingFileField(c)
}

// name is a peer's display name for message events.
func (h *handler) name(m store.Message) string { return h.n.PeerInfo(m.Peer).Name }

func (h *handler) handle(line []byte, w *lineWriter) {
	var c request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		w.write(evError{Event: "error", Error: "bad command: " + oneLine(err.Error())})
		return
	}
	// One command per line: anything after the object is refused, not
	// dropped (a second object would otherwise be lost silently).
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		w.write(evError{Event: "error", Ref: c.Ref, Error: "bad command: more than one JSON object on the line (or text after it); send one command per line; nothing was done"})
		return
	}
	fail := func(err error) { w.write(evError{Event: "error", Ref: c.Ref, Error: oneLine(err.Error())}) }
	if missing := missingField(c); missing != "" {
		fail(fmt.Errorf("%s needs %q", c.Cmd, missing))
		return
	}
	switch c.Cmd {
	case "send":
		h.send(c, w, fail)
	case "edit", "delete", "react":
		h.act(c, w, fail)
	case "mark_seen", "typing":
		h.indicate(c, w, fail)
	case "connect", "add":
		go h.connect(c, w, fail)
	case "trust", "block":
		p, err := identity.ParsePeerID(c.Peer)
		if err != nil { // a decision about a key names the key, never a name
			fail(fmt.Errorf("%s takes a peer ID (a peer event's peer_id; `peers` lists them), not a name: %w", c.Cmd, err))
			return
		}
		if c.Cmd == "trust" {
			err = h.n.Contacts().Trust(p, c.Verified)
		} else {
			err = h.n.Contacts().Block(p)
		}
		if err != nil {
			fail(err)
			return
		}
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
	case "peers":
		for _, p := range h.n.Peers() {
			w.write(peerEvent(p, c.Ref))
		}
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
	case "history":
		h.history(c, w, fail)
	case "id":
		id := h.n.Identity()
		w.write(evID{Event: "id", Ref: c.Ref, PeerID: id.PeerID().String(), Name: id.Name(), Fingerprint: id.Fingerprint().String(), Addrs: h.n.Addrs()})
	case "invite":
		text, err := h.n.Invitation()
		if err != nil {
			fail(err)
			return
		}
		w.write(evInvite{Event: "invite", Ref: c.Ref, Text: text, PeerID: h.n.ID().String()})
	case "send_file", "file_accept", "file_cancel", "files":
		h.fileCommand(c, w, fail)
	case "group_create", "group_add", "group_remove", "group_admin", "group_keep", "group_rename", "group_leave", "groups":
		h.groupCmd(c, w, fail)
	case "quit":
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
		h.quit()
	default:
		fail(fmt.Errorf("unknown command %q (%s)", c.Cmd, strings.Join(daemonCommands, ", ")))
	}
}

func (h *handler) send(c request, w *lineWriter, fail func(error)) {
	if c.ReplyTo != "" {
		h.reply(c, w, fail)
		return
	}
	ct, gi, isGroup, err := contactOrGroup(h.n, c.To)
	switch {
	case err != nil:
		fail(err)
		return
	case isGroup:
		h.groupSend(c, gi, w, fail)
		return
	}
	m, err := h.n.Send(ct.PeerID, c.Text)
	if err != nil {
		fail(fmt.Errorf("send to %s: %w", identity.ShortID(ct.PeerID), err))
		return
	}
	w.write(evStatus{Event: "accepted", Ref: c.Ref, ID: m.ID.String(), To: m.Peer.String()})
}

// reply sends a reply into the conversation of the message replied to;
// "to", if given, must name that conversation's peer, or its group.
func (h *handler) reply(c request, w *lineWriter, fail func(error)) {
	target, err := e2e.ParseMessageID(c.ReplyTo)
	if err != nil {
		fail(fmt.Errorf("reply_to: %w", err))
		return
	}
	if c.To != "" {
		ct, gi, isGroup, err := contactOrGroup(h.n, c.To)
		if err != nil {
			fail(err)
			return
		}
		if isGroup {
			if gm, err := h.n.Groups().Delivery(target); err == nil && group.ID(gm.Group) != gi.ID {
				fail(fmt.Errorf("message %s is not in the group %s", target, c.To))
				return
			}
		} else if t, err := h.n.Store().Message(target); err == nil && t.Peer != ct.PeerID {
			fail(fmt.Errorf("message %s is not in the conversation with %s", target, c.To))
			return
		}
	}
	m, err := h.n.Messages().Reply(target, c.Text)
	if err != nil {
		fail(err)
		return
	}
	w.write(acceptedJSON(c.Ref, m))
}

// act edits, deletes or reacts to a message: answered accepted with the
// action's own ID (its sent, queued, delivered or failed follow), and the
// edited, deleted or reaction event.
func (h *handler) act(c request, w *lineWriter, fail func(error)) {
	id, err := e2e.ParseMessageID(c.ID)
	if err != nil {
		fail(err)
		return
	}
	var a store.Message
	switch c.Cmd {
	case "edit":
		a, _, err = h.n.Messages().Edit(id, c.Text)
	case "delete":
		a, _, err = h.n.Messages().Delete(id)
	default:
		a, _, err = h.n.Messages().React(id, *c.Emoji)
	}
	if err != nil {
		fail(err)
		return
	}
	w.write(acceptedJSON(c.Ref, a))
}

// acceptedJSON answers a reply or action: "to" is the peer, or for a
// group message the group's ID (also in "group").
func acceptedJSON(ref string, m store.Message) evStatus {
	if g := groupID(m.Group); g != "" {
		return evStatus{Event: "accepted", Ref: ref, ID: m.ID.String(), To: g, Group: g}
	}
	return evStatus{Event: "accepted", Ref: ref, ID: m.ID.String(), To: m.Peer.String()}
}

// indicate marks a conversation seen (read markers) or says we type.
func (h *handler) indicate(c request, w *lineWriter, fail func(error)) {
	ct, err := h.n.Trust().Resolve(c.Peer)
	if err != nil {
		fail(err)
		return
	}
	if c.Cmd == "typing" {
		h.n.Indications().Typing(ct.PeerID, *c.Typing)
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
		return
	}
	var ids []e2e.MessageID
	for _, s := range c.IDs {
		id, err := e2e.ParseMessageID(s)
		if err != nil {
			fail(err)
			return
		}
		ids = append(ids, id)
	}
	if len(c.IDs) == 0 {
		if ids, err = h.latestIncoming(ct.PeerID); err != nil {
			fail(err)
			return
		}
	}
	if err := h.n.MarkRead(ct.PeerID); err != nil {
		fail(err)
		return
	}
	h.n.Indications().MarkSeen(ct.PeerID, ids)
	w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
}

// markSeenLatest is how many of the latest messages mark_seen without ids
// marks.
const markSeenLatest = 50

// latestIncoming are the IDs of the peer's latest messages.
func (h *handler) latestIncoming(p peer.ID) ([]e2e.MessageID, error) {
	msgs, err := h.n.History(p, 0, markSeenLatest)
	if err != nil {
		return nil, err
	}
	var ids []e2e.MessageID
	for _, m := range msgs {
		if m.Direction == store.Incoming {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// connect runs connect (reach the peer) and add (also pin its key and
// remember it): the answer is the peer once the handshake is done. An
// add whose peer is not reachable now still added it: the answer is its
// peer line (online false) with the error.
func (h *handler) connect(c request, w *lineWriter, fail func(error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var info node.PeerInfo
	var err error
	if c.Cmd == "add" {
		info, err = h.n.Add(ctx, c.Addr, c.Name)
	} else {
		info, err = h.n.Connect(ctx, c.Addr)
	}
	if err != nil && (c.Cmd != "add" || info.ID == "") {
		fail(fmt.Errorf("%s %s: %w", c.Cmd, shortTarget(c.Addr), err))
		return
	}
	ev := peerEvent(info, c.Ref)
	if err != nil {
		ev.Error = oneLine(err.Error())
	}
	w.write(ev)
}

// shortTarget is an address or invitation for an error line: an
// invitation is long and says nothing to a reader.
func shortTarget(s string) string {
	if invite.IsInvitation(s) {
		return "invitation"
	}
	return s
}

// historyLimit is the default and maximum of messages a history answer holds.
const (
	historyDefault = 100
	historyMax     = 10000
)

func (h *handler) history(c request, w *lineWriter, fail func(error)) {
	ct, gi, isGroup, err := contactOrGroup(h.n, c.Peer)
	switch {
	case err != nil:
		fail(err)
		return
	case isGroup:
		h.groupHistory(c, gi, w, fail)
		return
	}
	limit := c.Limit
	if limit <= 0 {
		limit = historyDefault
	}
	msgs, err := h.n.History(ct.PeerID, 0, min(limit, historyMax))
	if err != nil {
		fail(err)
		return
	}
	ev := evHistory{Event: "history", Ref: c.Ref, Peer: ct.PeerID.String(), Messages: []jsonMessage{}}
	for _, m := range msgs {
		ev.Messages = append(ev.Messages, messageJSON(m))
	}
	w.write(ev)
}
