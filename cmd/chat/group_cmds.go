package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The daemon's group commands (docs/DAEMON.md): group_create, group_add,
// group_remove, group_admin, group_rename, group_leave, groups; send and
// history to a group.

// evGroup describes a group: on every change, and in answers.
type evGroup struct {
	Event   string   `json:"event"`
	Ref     string   `json:"ref,omitempty"`
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Admins  []string `json:"admins"`
	Version uint64   `json:"version"`
	Member  bool     `json:"member"`            // this node is a member
	CA      string   `json:"ca,omitempty"`      // the required CA (hex SHA-256 of its SubjectPublicKeyInfo)
	CAName  string   `json:"ca_name,omitempty"` // its name, while it is among the CAs this node trusts
	Unread  int      `json:"unread,omitempty"`  // unread messages
	// Undone: members whose removal a leave of their remover's key undid
	// (node.GroupInfo.Undone): send waits until they are removed again or
	// kept (group_keep).
	Undone []evUndone `json:"undone,omitempty"`
}

// evUndone is a removal undone by its remover's own leave: who is a
// member again, and who had removed them.
type evUndone struct {
	Member string `json:"member"`
	By     string `json:"by"`
}

func groupEvent(g node.GroupInfo, ref string) evGroup {
	ev := evGroup{Event: "group", Ref: ref, ID: g.ID.String(), Name: g.Name, Version: g.Version, Member: g.Member,
		Members: peerStrings(g.Members), Admins: peerStrings(g.Admins), Unread: g.Unread}
	if g.CA != nil {
		ev.CA, ev.CAName = fmt.Sprintf("%x", g.CA), g.CAName
	}
	for _, u := range g.Undone {
		ev.Undone = append(ev.Undone, evUndone{Member: u.Target.String(), By: u.Author.String()})
	}
	return ev
}

func peerStrings(ps []peer.ID) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// groupID is a message's group for its line ("" for a private message).
func groupID(id store.GroupID) string {
	if id == (store.GroupID{}) {
		return ""
	}
	return fmt.Sprintf("%x", id[:])
}

// missingGroupField names the first field a group command needs and lacks.
func missingGroupField(c request) string {
	switch {
	case c.Cmd == "group_create" && c.Name == "":
		return "name"
	case (c.Cmd == "group_add" || c.Cmd == "group_remove" || c.Cmd == "group_admin" || c.Cmd == "group_keep" || c.Cmd == "group_rename" || c.Cmd == "group_leave") && c.Group == "":
		return "group"
	case c.Cmd == "group_rename" && c.Name == "":
		return "name"
	case (c.Cmd == "group_add" || c.Cmd == "group_remove" || c.Cmd == "group_admin" || c.Cmd == "group_keep") && c.Peer == "":
		return "peer"
	}
	return ""
}

func (h *handler) groupCmd(c request, w *lineWriter, fail func(error)) {
	if c.Cmd == "groups" {
		for _, g := range h.n.Groups().List() {
			w.write(groupEvent(g, c.Ref))
		}
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
		return
	}
	if c.Cmd == "group_create" {
		var members []peer.ID
		for _, s := range c.Members {
			ct, err := h.n.Trust().Resolve(s)
			if err != nil {
				fail(fmt.Errorf("group_create: member %q: %w", s, err))
				return
			}
			members = append(members, ct.PeerID)
		}
		var ca []byte
		if c.CA != "" {
			var err error
			if ca, err = h.n.Groups().TrustedCA(c.CA); err != nil {
				fail(fmt.Errorf("group_create: %w", err))
				return
			}
		}
		g, err := h.n.Groups().CreateCA(c.Name, members, ca)
		if err != nil {
			fail(err)
			return
		}
		w.write(groupEvent(g, c.Ref))
		return
	}
	g, err := h.n.Groups().Find(c.Group)
	if err != nil {
		fail(err)
		return
	}
	var p peer.ID
	if c.Peer != "" {
		// A member need not be a contact: a peer ID (an Ed25519 one)
		// resolves to itself. The error says why c.Peer names no one: no
		// contact is called so (and what makes it no peer ID), or several.
		ct, err := h.n.Trust().Resolve(c.Peer)
		if err != nil {
			fail(fmt.Errorf("%s: %w", c.Cmd, err))
			return
		}
		p = ct.PeerID
	}
	switch c.Cmd {
	case "group_add":
		g, err = h.n.Groups().Add(g.ID, p)
	case "group_remove":
		g, err = h.n.Groups().Remove(g.ID, p)
	case "group_admin":
		g, err = h.n.Groups().Admin(g.ID, p)
	case "group_keep":
		g, err = h.n.Groups().Keep(g.ID, p)
	case "group_rename":
		g, err = h.n.Groups().Rename(g.ID, c.Name)
	case "group_leave":
		g, err = h.n.Groups().Leave(g.ID)
	}
	if err != nil {
		fail(err)
		return
	}
	w.write(groupEvent(g, c.Ref))
}

// contactOrGroup resolves what send and history take: a contact (its
// peer ID or name) or else a group (its ID or name); isGroup says which.
// When s names neither, the error says so for both; a name that two
// groups share is refused with their IDs, rather than as no contact.
func contactOrGroup(n *node.Node, s string) (ct identity.Contact, g node.GroupInfo, isGroup bool, err error) {
	ct, err = n.Trust().Resolve(s)
	if err == nil {
		return ct, g, false, nil
	}
	g, gerr := n.Groups().Find(s)
	switch {
	case gerr == nil:
		return ct, g, true, nil
	case !errors.Is(gerr, node.ErrUnknownGroup):
		return ct, g, false, gerr
	case errors.Is(err, identity.ErrUnknownContact):
		return ct, g, false, fmt.Errorf("%w; and no group is called %q", err, s)
	}
	return ct, g, false, err
}

// groupSend sends a text to a group: answered "accepted" with the group's
// ID in "to" and "group"; each member's copy then has its own status lines.
func (h *handler) groupSend(c request, g node.GroupInfo, w *lineWriter, fail func(error)) {
	m, err := h.n.Groups().Send(g.ID, c.Text)
	if err != nil {
		fail(err)
		return
	}
	w.write(evStatus{Event: "accepted", Ref: c.Ref, ID: m.ID.String(), To: g.ID.String(), Group: g.ID.String()})
}

func (h *handler) groupHistory(c request, g node.GroupInfo, w *lineWriter, fail func(error)) {
	limit := c.Limit
	if limit <= 0 {
		limit = historyDefault
	}
	msgs, err := h.n.Groups().History(g.ID, 0, min(limit, historyMax))
	if err != nil {
		fail(err)
		return
	}
	ev := evHistory{Event: "history", Ref: c.Ref, Group: g.ID.String(), Messages: []jsonMessage{}}
	for _, gm := range msgs {
		j := messageJSON(gm.AsMessage())
		if gm.Direction == store.Outgoing {
			j.Peer = ""
			j.Delivered, j.Members, j.Waiting = gm.Delivered(), len(gm.Members), peerStrings(gm.Waiting())
		}
		ev.Messages = append(ev.Messages, j)
	}
	w.write(ev)
}

// sendGroupDirect sends to a group from a node run just for it, and waits
// until every member has the message (or the wait ends: the copies not
// delivered stay in the outbox, exit status 3).
func sendGroupDirect(c *ctx, n *node.Node, g node.GroupInfo, text string) error {
	sub := n.Subscribe()
	defer sub.Close()
	m, err := n.Groups().Send(g.ID, text)
	if err != nil {
		return err
	}
	timeout := time.After(c.opts.node.wait)
	for {
		d, err := n.Groups().Delivery(m.ID)
		if err != nil {
			return err
		}
		if d.Delivered() == len(d.Members) {
			c.printf("delivered %s to %d of %d members of %s\n", m.ID, d.Delivered(), len(d.Members), g.Name)
			return nil
		}
		select {
		case <-sub.C:
		case <-timeout:
			c.printf("queued %s: delivered to %d of %d members of %s\n", m.ID, d.Delivered(), len(d.Members), g.Name)
			return exitStatus{exitQueued, fmt.Sprintf("%s not stored the message yet%s; it stays in the outbox for them (exit status 3: queued)", notYet(len(d.Waiting()), g.Name), c.waitingFor(peerStrings(d.Waiting())))}
		}
	}
}

// waitGroupVia waits, once the daemon accepted a message to a group, until
// every member has it (exit status 0) or --wait ends (3: the daemon keeps
// trying), as sendGroupDirect does without a daemon; it said "accepted"
// and exit status 0 at once. The group's history says how far the message
// got when it was accepted, the daemon's "delivered" lines how far it gets.
func waitGroupVia(c *ctx, conn io.Writer, lines <-chan map[string]any, accepted map[string]any, timeout <-chan time.Time) error {
	id, _ := accepted["id"].(string)
	req, _ := json.Marshal(request{Cmd: "history", Ref: "status", Peer: fmt.Sprint(accepted["group"]), Limit: 50})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	name := c.opts.node.to
	delivered, members := 0, -1 // -1: not known yet
	var waiting []any           // the members without it, as last said
	for members < 0 || delivered < members {
		select {
		case ev, ok := <-lines:
			if !ok {
				return errors.New("the daemon closed the connection")
			}
			switch {
			case ev["event"] == "history" && ev["ref"] == "status":
				if d, m, w, ok := groupProgress(ev, id); ok && d >= delivered {
					delivered, members, waiting = d, m, w
				}
			case ev["event"] == "delivered" && ev["id"] == id:
				d, _ := ev["delivered"].(float64)
				m, _ := ev["members"].(float64)
				if int(d) >= delivered {
					delivered, members = int(d), int(m)
					waiting, _ = ev["waiting"].([]any)
				}
			}
		case <-timeout:
			if members < 0 {
				c.printf("queued %s\n", id)
				return exitStatus{exitQueued, fmt.Sprintf("the members of %s have not all stored the message yet; the running daemon keeps trying (exit status 3: queued)", name)}
			}
			c.printf("queued %s: delivered to %d of %d members of %s\n", id, delivered, members, name)
			ids := make([]string, 0, len(waiting))
			for _, w := range waiting {
				if s, ok := w.(string); ok {
					ids = append(ids, s)
				}
			}
			return exitStatus{exitQueued, fmt.Sprintf("%s not stored the message yet%s; the running daemon keeps trying (exit status 3: queued)", notYet(members-delivered, name), c.waitingFor(ids))}
		}
	}
	c.printf("delivered %s to %d of %d members of %s\n", id, delivered, members, name)
	return nil
}

// notYet is "1 member of team has", "2 members of team have".
func notYet(n int, group string) string {
	if n == 1 {
		return "1 member of " + group + " has"
	}
	return fmt.Sprintf("%d members of %s have", n, group)
}

// groupProgress finds message id in a group's history answer: how many
// members have it, of how many, and which do not yet.
func groupProgress(history map[string]any, id string) (delivered, members int, waiting []any, ok bool) {
	msgs, _ := history["messages"].([]any)
	for _, m := range msgs {
		if m, _ := m.(map[string]any); m != nil && m["id"] == id {
			d, _ := m["delivered"].(float64)
			n, _ := m["members"].(float64)
			w, _ := m["waiting"].([]any)
			return int(d), int(n), w, true
		}
	}
	return 0, 0, nil, false
}

// waitingFor is " (bob, dan)": the members who do not have a message
// yet, by their contacts' names (else short peer IDs), at most five and
// how many more; "" if none is known.
func (c *ctx) waitingFor(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	t, _ := c.trustStore() // without it, short peer IDs
	names := make([]string, 0, len(ids))
	for _, s := range ids {
		p, err := identity.ParsePeerID(s)
		if err != nil {
			continue
		}
		names = append(names, memberLabel(t, p))
	}
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("%d more", len(names)-5))
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// memberLabel is a group member as the user knows it: its contact's
// label, else its short peer ID (t nil: the trust store was not read).
func memberLabel(t *identity.TrustStore, p peer.ID) string {
	if t != nil {
		if ct, ok, _ := t.Contact(p); ok {
			return identity.SanitizeName(ct.Label())
		}
	}
	return identity.ShortID(p)
}

// runGroupHistory prints a group's history: arg is not a contact, and
// notContact says why; if no group is called arg either, that is the error.
func runGroupHistory(c *ctx, h identity.Home, t *identity.TrustStore, arg string, notContact error) error {
	var (
		msgs []jsonMessage
		name string
	)
	if conn, err := dialControl(h); err == nil {
		defer conn.Close()
		// The daemon's answer says why arg is neither a contact nor a group.
		if msgs, err = historyVia(conn, arg, c.opts.node.limit); err != nil {
			return err
		}
		name = arg
	} else if err := databaseFree(h); err != nil {
		return err
	} else if msgs, name, err = groupHistoryDirect(c, h, arg); errors.Is(err, errNoGroup) {
		return fmt.Errorf("%w; and %w", notContact, err)
	} else if err != nil {
		return err
	}
	if c.opts.json {
		enc := json.NewEncoder(c.io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(msgs)
	}
	fmt.Fprintf(c.io.out, "group %s\n", identity.SanitizeText(name, false))
	for _, m := range msgs {
		who := m.Peer
		if p, err := identity.ParsePeerID(m.Peer); err == nil {
			who = memberLabel(t, p)
		}
		printHistoryLine(c.io.out, m, who)
	}
	return nil
}

// errNoGroup: no group has that name or ID.
var errNoGroup = errors.New("no group is called")

// groupHistoryDirect reads a group's history from the database itself
// (no daemon running): the group by ID, ID prefix or name.
func groupHistoryDirect(c *ctx, h identity.Home, arg string) ([]jsonMessage, string, error) {
	id, _, err := c.loadIdentity()
	if err != nil {
		return nil, "", err
	}
	db, err := store.OpenIdentity(h.Path(store.FileName), id)
	if err != nil {
		return nil, "", err
	}
	defer db.Close()
	gs, err := db.Groups().List()
	if err != nil {
		return nil, "", err
	}
	var found []store.Group
	names := map[store.GroupID]string{}
	for _, g := range gs {
		l, err := group.Restore(g.Changes)
		if err != nil {
			continue
		}
		name := l.State().Name
		if g.Name != "" {
			name = g.Name
		}
		names[g.ID] = name
		hexID := l.ID().String()
		if arg == name || arg == hexID || (len(arg) >= 8 && strings.HasPrefix(hexID, arg)) {
			found = append(found, g)
		}
	}
	switch {
	case len(found) == 0:
		return nil, "", fmt.Errorf("%w %q", errNoGroup, arg)
	case len(found) > 1:
		ids := make([]string, len(found))
		for i, g := range found {
			ids[i] = fmt.Sprintf("%x", g.ID[:4])
		}
		return nil, "", fmt.Errorf("%d groups are called %q: name one by its ID (%s)", len(found), arg, strings.Join(ids, ", "))
	}
	ms, err := db.Groups().GroupHistory(found[0].ID, 0, min(max(c.opts.node.limit, 1), historyMax))
	if err != nil {
		return nil, "", err
	}
	out := []jsonMessage{}
	for _, gm := range ms {
		j := messageJSON(gm.AsMessage())
		if gm.Direction == store.Outgoing {
			j.Peer = ""
			j.Delivered, j.Members, j.Waiting = gm.Delivered(), len(gm.Members), peerStrings(gm.Waiting())
		}
		out = append(out, j)
	}
	return out, names[found[0].ID], nil
}
