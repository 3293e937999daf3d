package ui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

// The trust prompts. Every decision about a key is the user's: a first
// contact asks to accept (pin the key, trust on first use) or reject
// (block); a changed key blocks sending until the user compares
// fingerprints and accepts or rejects the new key; /verify shows the
// safety number and its QR code and can mark the peer verified.

// maybeFirstContact asks once per run about an unknown peer who wrote,
// when their chat is open. The question waits while the input holds
// text (the banner says how to answer meanwhile): a dialog that took the
// focus mid-sentence would take keys meant for the input; it opens when
// the input is empty again (sent or cleared).
func (u *dialogs) maybeFirstContact(c *chat) {
	if c.grp != nil || c.info.ID != u.open || c.info.Trust != identity.StateUnknown || c.info.Changed != nil ||
		!c.hasConv || u.prompted[c.info.ID] || u.dialog != nil || u.in.GetTextLength() > 0 {
		return
	}
	u.prompted[c.info.ID] = true
	u.firstContactPrompt(c)
}

// promptTrust opens the decision that fits c's trust state. It acts on
// c's own key only: in a contact's chat it never decides about another
// key that claims the contact's name (that is decided in that key's chat).
func (u *dialogs) promptTrust(c *chat) {
	switch {
	case c.info.Changed != nil:
		u.keyChangedPrompt(c)
	case c.info.Trust == identity.StateUnknown:
		u.firstContactPrompt(c)
	case c.info.Trust == identity.StateUntrusted:
		u.unblockPrompt(c)
	case c.info.Trust == identity.StateTOFU:
		u.notes.informAbout(c.info.ID, c.name()+" is trusted on first use; /verify compares safety numbers to make sure.")
	default:
		t, _ := trustTitle(c.info)
		u.notes.informAbout(c.info.ID, c.name()+" is "+t+".")
	}
}

// claimed is the label of the contact whose name a changed key claims.
func claimed(info node.PeerInfo) string {
	if ch := info.Changed; ch != nil && ch.Previous != nil {
		return oneLine(ch.Previous.Label())
	}
	return displayName(info)
}

// trustWarning is the banner text for the open chat; bad marks danger.
// A changed key is warned of in its own chat only: the chat of the
// contact it claims to be shows nothing of it, since nothing about that
// contact's key changed.
func (u *dialogs) trustWarning(c *chat) (string, bool) {
	name := c.name()
	switch {
	case c.info.Changed != nil:
		return "KEY CHANGED: this is not the key you trusted for " + claimed(c.info) + ". Nothing is sent to it. " +
			"Compare fingerprints (/verify), then accept or reject it (/trust).", true
	case c.info.Trust == identity.StateUnknown:
		return name + " is not in your contacts. /trust accepts (trust on first use) or rejects; " +
			"/verify compares safety numbers.", false
	case c.info.Trust == identity.StateUntrusted:
		return "You rejected this key: nothing is exchanged with it. /trust accepts it again.", true
	case c.info.CertName != "":
		return name + ", whose certificate now says \u201c" + oneLine(c.info.CertName) + "\u201d: the same key, " +
			"so the name you know stays. /whois shows the certificate.", false
	}
	return "", false
}

func (u *dialogs) firstContactPrompt(c *chat) {
	name := tview.Escape(c.name())
	text := fmt.Sprintf("[::b]%s[::-] is not in your contacts.\n\nFingerprint: %s\nPeer ID: %s\n\n"+
		"Accept pins this key (trust on first use); /verify compares safety numbers later. "+
		"Reject blocks it: nothing more is exchanged.",
		name, c.info.Fingerprint.String(), c.info.ID.String())
	p := c.info.ID
	d := u.trustDialog("First contact: "+c.name(), text,
		button{"Accept", func() { u.acceptFirst(p) }},
		button{"Reject", func() { u.reject(p) }},
		button{"Later (Esc)", nil})
	d.firstContact = p
	u.show(d)
}

// trustDialog is a dialog that decides trust: its text ends by saying how
// to choose, since letters do not.
func (u *dialogs) trustDialog(title, text string, buttons ...button) *dialog {
	return u.textDialog(title, text+"\n[::d]Tab or ←/→: move between buttons; Enter: choose.[::-]", true, buttons...)
}

// acceptFirst pins a first contact's key, unless it turned out meanwhile
// to claim a contact's name (its certificate arrives with the handshake,
// which may come after a message left at a relay): then accepting it
// would replace that contact, so the key-changed decision opens instead.
func (u *dialogs) acceptFirst(p peer.ID) {
	name := u.nameOf(p)
	u.spawn(func() {
		err := u.b.Contacts().TrustNew(p)
		info := u.b.PeerInfo(p)
		u.post(func() {
			c := u.roster.setInfo(info)
			switch {
			case errors.Is(err, node.ErrKeyChanged):
				u.notes.showErrorAbout(p, "Not accepted: "+c.name()+"'s key claims the name of a contact you trust. Compare before deciding.")
				if info.Changed != nil {
					u.keyChangedPrompt(c)
				}
			case err != nil:
				u.notes.failAbout(p, "Could not trust "+name, err)
			default:
				u.notes.informAbout(p, c.name()+" is in your contacts: trusted on first use. /verify compares safety numbers.")
			}
		})
	})
}

// keyChangedPrompt asks about a key that claims the name of a contact
// with another key: it says what is known of both keys, and what each
// button does to which of them.
func (u *dialogs) keyChangedPrompt(c *chat) {
	ch := c.info.Changed
	who := tview.Escape(claimed(c.info))
	known, knownState := "(unknown)", ""
	if ch.Previous != nil {
		if pub, err := identity.KeyFromPeerID(ch.Previous.PeerID); err == nil {
			known = identity.FingerprintOf(pub).String()
		}
		knownState = "offline"
		if kc := u.roster.get(ch.Previous.PeerID); kc != nil {
			knownState = knownKeyState(kc.info)
		}
		knownState = "\n  " + who + "'s key: " + tview.Escape(knownState)
	}
	says := ""
	if n := oneLine(identity.SanitizeName(ch.Name)); n != claimed(c.info) {
		says = " Its certificate says \u201c" + tview.Escape(n) + "\u201d, which reads like " + who + "."
	}
	text := fmt.Sprintf("[red::b]KEY CHANGED[-::-]\n\nA new key claims to be your contact [::b]%s[::-].%s "+
		"That happens when %s set up certchat again, or when someone pretends to be %s.\n\n"+
		"Known key: %s%s\nNew key:   %s\n  %s\n\n"+
		"Compare the new key with %s in person or over a channel you trust (Compare shows the safety number).\n\n"+
		"[::b]Accept new key[::-]: %s's old key is blocked and the new key becomes %s.\n"+
		"[::b]Someone else[::-]: keep %s, add this key as %s.\n"+
		"[::b]Reject[::-]: block the new key; %s keeps the known key.",
		who, says, who, who,
		known, knownState, c.info.Fingerprint.String(), tview.Escape(newKeyState(ch)),
		who, who, who, who, tview.Escape(u.freeLabel(claimed(c.info))), who)
	p, base := c.info.ID, claimed(c.info)
	u.show(u.trustDialog("KEY CHANGED: "+base, text,
		button{"Compare", func() { u.verify(p) }},
		button{"Accept new key", func() { u.accept(p, false) }},
		button{"Someone else", func() { u.acceptAsOther(p, base) }},
		button{"Reject", func() { u.reject(p) }},
		button{"Later (Esc)", nil}))
}

// knownKeyState says whether a contact's key is online now and whether a
// CA the user trusts vouches for it.
func knownKeyState(info node.PeerInfo) string {
	online := "offline"
	if info.Online {
		online = "online now"
	}
	t, _ := trustTitle(info)
	if info.Trust != identity.StateCAVerified {
		t += ", not CA-verified"
	}
	return online + "; " + t
}

// newKeyState says whether a CA the user trusts issued the new key's
// certificate; a CA can issue any name, so that does not settle it.
func newKeyState(v *identity.Verdict) string {
	switch {
	case v.IssuerTrusted:
		return "CA-verified: issued by " + oneLine(v.Issuer) + ", a CA you trust (a CA can issue any name)"
	case v.Issuer == "" || v.Issuer == "self-signed":
		return "not CA-verified: self-signed"
	}
	return "not CA-verified: issued by " + oneLine(identity.SanitizeName(v.Issuer)) + ", not a CA you trust"
}

// freeLabel is the label Someone else would give: base, or base with the
// first suffix " (2)", " (3)", ... that no chat reads as (the node picks
// the same way, under the trust store's lock).
func (u *dialogs) freeLabel(base string) string {
	taken := func(label string) bool {
		for _, c := range u.roster.chats {
			if c.info.Changed == nil && c.info.Trust != identity.StateUnknown && identity.SameName(c.name(), label) {
				return true
			}
		}
		return false
	}
	label := base
	for i := 2; taken(label); i++ {
		label = fmt.Sprintf("%s (%d)", base, i)
	}
	return label
}

func (u *dialogs) unblockPrompt(c *chat) {
	p := c.info.ID
	why := ""
	if r := oneLine(c.info.Reason); r != "" && !strings.Contains(r, "you rejected") {
		why = " (" + tview.Escape(r) + ")"
	}
	text := fmt.Sprintf("You rejected [::b]%s[::-]'s key%s. Accept it again?\n\nFingerprint: %s",
		tview.Escape(c.name()), why, c.info.Fingerprint.String())
	u.show(u.trustDialog("Rejected key", text,
		button{"Accept", func() { u.accept(p, false) }},
		button{"Keep rejected (Esc)", nil}))
}

// verify computes the safety number with p (off the event loop: it
// hashes 10,400 times) and shows it with its QR code.
func (u *dialogs) verify(p peer.ID) {
	mine := u.b.Identity().PublicKey()
	u.spawn(func() {
		theirs, err := identity.KeyFromPeerID(p)
		var number, qr string
		if err == nil {
			number, err = identity.SafetyNumber(mine, theirs)
		}
		if err == nil {
			qr, err = identity.QRCode(identity.SafetyNumberQR(number))
		}
		u.post(func() {
			if err != nil {
				u.notes.failAbout(p, "Could not compute the safety number", err)
				return
			}
			u.showSafetyNumber(p, number, qr)
		})
	})
}

func (u *dialogs) showSafetyNumber(p peer.ID, number, qr string) {
	c := u.roster.get(p)
	if c == nil {
		return
	}
	groups := strings.Fields(number)
	var rows []string
	for i := 0; i+4 <= len(groups); i += 4 {
		rows = append(rows, "    "+strings.Join(groups[i:i+4], " "))
	}
	// The text is not wrapped (the QR code must not be), so it is laid out
	// here to fit a 40-column terminal: prose at 36, fingerprints on two rows.
	prose := func(s string) string { return tview.Escape(strings.Join(wrap(s, 36), "\n")) }
	name := c.name()
	text := fmt.Sprintf("%s\n\n[::b]%s[::-]\n\n%s\n\nTheir fingerprint:\n%s\nYour fingerprint:\n%s\n\n%s\n\n%s",
		prose(safetyHint(name)), strings.Join(rows, "\n"), prose(safetyMatchHint(name)),
		fingerprintRows(c.info.Fingerprint), fingerprintRows(u.b.Identity().Fingerprint()),
		prose("The code below carries the same digits, for a QR scanner (↓ scrolls):"), strings.TrimRight(qr, "\n"))
	u.show(u.textDialog("Verify "+c.name(), text, false,
		button{"Mark verified", func() { u.accept(p, true) }},
		button{"Close (Esc)", nil}))
}

// safetyHint says how to compare the safety number: aloud, over a channel
// an attacker in the middle cannot fake, not through this chat.
func safetyHint(name string) string {
	return "Read these numbers to " + name + " over a channel you trust, in person or by voice (not by message here). " +
		name + " sees the same numbers in their /verify."
}

// safetyMatchHint says what a match, and a mismatch, means.
func safetyMatchHint(name string) string {
	return "If every group matches, choose Mark verified (Tab, then Enter) to mark " + name +
		" verified. If any group differs, do not: someone may be between you."
}

// fingerprintRows is a fingerprint as two indented rows of four groups.
func fingerprintRows(fp identity.Fingerprint) string {
	g := strings.Split(fp.String(), "-")
	if len(g) != 8 {
		return "  " + fp.String()
	}
	return "  " + strings.Join(g[:4], "-") + "\n  " + strings.Join(g[4:], "-")
}

// accept pins p's key (or marks it verified), accepting a pending change.
func (u *dialogs) accept(p peer.ID, verified bool) {
	name := u.nameOf(p)
	u.spawn(func() {
		err := u.b.Contacts().Trust(p, verified)
		u.post(func() {
			switch {
			case err != nil:
				u.notes.failAbout(p, "Could not trust "+name, err)
			case verified:
				u.notes.informAbout(p, name+" is verified: you compared fingerprints.")
			default:
				u.notes.informAbout(p, name+" is in your contacts: trusted on first use. /verify compares safety numbers.")
			}
		})
	})
}

// acceptAsOther pins p as a new contact, distinct from the one whose name
// it shares.
func (u *dialogs) acceptAsOther(p peer.ID, base string) {
	u.spawn(func() {
		label, err := u.b.Contacts().TrustAsOther(p, base)
		info := u.b.PeerInfo(p)
		u.post(func() {
			u.roster.setInfo(info)
			if err != nil {
				u.notes.failAbout(p, "Could not add "+base, err)
				return
			}
			u.notes.informAbout(p, "Added as a new contact, "+label+" (trusted on first use). /verify compares safety numbers.")
		})
	})
}

// reject blocks p's key.
func (u *dialogs) reject(p peer.ID) {
	name := u.nameOf(p)
	u.spawn(func() {
		err := u.b.Contacts().Block(p)
		u.post(func() {
			if err != nil {
				u.notes.failAbout(p, "Could not reject "+name, err)
				return
			}
			u.notes.informAbout(p, "You rejected "+name+"'s key: nothing more is exchanged with it.")
		})
	})
}

func (u *dialogs) nameOf(p peer.ID) string {
	if c := u.roster.get(p); c != nil {
		return c.name()
	}
	return identity.ShortID(p)
}

// waitReason says why a group message waits for member p when only the
// user can end the wait: p is not a contact, and nothing goes to it until
// the user accepts it ("" otherwise: it is offline or on its way).
func (u *dialogs) waitReason(p peer.ID) string {
	if c := u.roster.get(p); c != nil && c.info.Trust == identity.StateUnknown && c.info.Changed == nil {
		return " (not a contact: /trust " + c.name() + ")"
	}
	return ""
}
