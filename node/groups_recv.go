package node

import (
	"errors"
	"fmt"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// What an envelope of a group carried (PROTOCOL §14.5).
type groupOpened struct {
	ack     e2e.MessageID       // what to acknowledge
	msg     *store.GroupMessage // a group message from a member
	isNew   bool
	refused error             // a group message that was not accepted, and why
	held    bool              // msg's sender is not known as a member yet: hold it
	changes *e2e.GroupChanges // membership changes
	want    *e2e.GroupWant    // a member asks for changes it lacks (groups_want.go)
	// live is the envelope's size when it came on a live session: its
	// receipt is then held to go with others (receipts_hold.go); 0 when
	// it came through a mailbox, whose receipts go at once.
	live int
}

// commitGroupMessage stores, with the new ratchet state, a group message
// from p if p is a member of the group as we hold it; otherwise only the
// state moves on, and the refusal is reported (and acknowledged: the
// sender's outbox must not retry it forever). Called with rk.mu held.
func (rk *ratchetKeys) commitGroupMessage(p peer.ID, w store.Ratchet, wm e2e.Message, res *opened) error {
	res.grp = &groupOpened{ack: wm.ID}
	if rk.groupOK == nil {
		res.grp.refused = ErrUnknownGroup
		return rk.saveState(w, res)
	}
	gm := groupFromWire(wm, p)
	okErr := rk.groupOK(p, wm.Group)
	if okErr != nil && !errors.Is(okErr, errNotYetMember) {
		res.grp.refused = okErr
		return rk.saveState(w, res)
	}
	// A message that could not be kept is not held either (it would take
	// the hold's room for nothing): neither stored nor acknowledged, its
	// sender keeps it.
	if rk.groupKeepOK != nil {
		if err := rk.groupKeepOK(wm.Group); err != nil {
			return err
		}
	}
	if okErr != nil {
		res.grp.msg, res.grp.held = gm, true
		return rk.saveState(w, res)
	}
	isNew, err := rk.store.Ratchets().SaveRatchetWithGroupIncoming(w, gm, rk.now())
	if errors.Is(err, store.ErrIDTaken) {
		// Its ID names another sender's message (or one of another
		// conversation): refused and acknowledged, not taken for a copy
		// already stored, nor left to be sent again forever.
		res.grp.refused = err
		return rk.saveState(w, res)
	}
	if err != nil {
		return err
	}
	res.grp.msg, res.grp.isNew = gm, isNew
	return nil
}

// commitGroupChanges commits the new state; the changes are applied by
// groupDelivered, before the receipt goes out (a crash between the two
// makes the sender send them again). Called with rk.mu held.
func (rk *ratchetKeys) commitGroupChanges(p peer.ID, w store.Ratchet, f *e2e.Frame, res *opened) error {
	gc, err := e2e.ParseGroupChanges(f.Payload)
	if err != nil {
		return err
	}
	res.grp = &groupOpened{ack: gc.ID, changes: &gc}
	return rk.saveState(w, res)
}

// groupDelivered reports what a group envelope carried, applies changes,
// and acknowledges it: held on cs with the receipts of other group
// envelopes if it came on cs, else at once.
func (t *sessions) groupDelivered(p peer.ID, g *groupOpened, cs *chatSession) {
	switch {
	case g.want != nil:
		t.groups.wants.answer(p, *g.want)
		return // nothing kept: no receipt
	case g.changes != nil:
		t.groups.receive(p, *g.changes)
	case g.held:
		// Not acknowledged until it is stored (holds.admit): the sender
		// keeps it in its outbox, so a crash while it is held loses
		// nothing, and its next try is taken as it comes.
		t.groups.held.hold(p, *g.msg)
		return
	case g.refused != nil:
		t.emitError(p, fmt.Errorf("a group message from %s was refused: %w", identity.ShortID(p), g.refused))
	case g.msg != nil && g.isNew:
		t.groups.reportIncoming(p, g.msg)
	}
	// A copy stored before came again: its sender missed our receipt
	// (it was held on a session that ended, or lost with it), so this one
	// is written at once rather than held again.
	if g.live > 0 && cs != nil && (g.msg == nil || g.isNew) {
		t.held.hold(cs, g.ack, g.live)
		return
	}
	t.mail.sendReceipt(p, g.ack, cs)
}

// groupFromWire is a received group message (or action) from p.
func groupFromWire(wm e2e.Message, p peer.ID) *store.GroupMessage {
	gm := &store.GroupMessage{Group: wm.Group, ID: wm.ID, From: p, SentAt: wm.SentAt, Body: wm.Body,
		Stream: wm.Stream, Number: wm.Number, ReplyTo: wm.ReplyTo, Target: wm.Target()}
	switch wm.Kind() {
	case e2e.KindEdit:
		gm.Kind = store.KindEdit
	case e2e.KindDelete:
		gm.Kind = store.KindDelete
	case e2e.KindReact:
		gm.Kind, gm.Emoji = store.KindReact, wm.Emoji
	}
	return gm
}

// reportIncoming tells subscribers what a new group message from p did:
// a text arrived (with the actions that waited for it applied: each then
// reported as a live one is, with the text as it now stands; those
// refused are reported as errors), an action changed its target, or was
// refused. An action kept until its target arrives shows nothing yet.
func (g *Groups) reportIncoming(p peer.ID, gm *store.GroupMessage) {
	m := gm.AsMessage()
	switch {
	case gm.Kind == store.KindText:
		g.emit(Event{Kind: EventMessage, Message: &m})
		for _, a := range gm.Waited {
			if a.Refused == "" {
				am := a.AsMessage()
				g.emit(Event{Kind: EventUpdate, Message: &m, Action: &am})
			} else {
				g.emitError(a.From, fmt.Errorf("%s sent %s in group %x that was refused when the message it names arrived: %s",
					identity.ShortID(a.From), actionName(a.Kind), a.Group[:4], a.Refused))
			}
		}
	case gm.Refused != "":
		g.emitError(p, fmt.Errorf("%s sent %s in group %x that was refused: %s", identity.ShortID(p), actionName(gm.Kind), gm.Group[:4], gm.Refused))
	case gm.Applied != nil:
		t := gm.Applied.AsMessage()
		g.emit(Event{Kind: EventUpdate, Message: &t, Action: &m})
	}
}
