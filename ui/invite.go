package ui

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rivo/tview"
)

// Sharing who you are (/id: the invitation, its QR code, a key that
// copies it) and adding others (/add INVITATION|MULTIADDR|PEERID).

// connectTimeout bounds /add's dial and handshake.
const connectTimeout = 30 * time.Second

// inviteWidth is the column at which /id breaks the invitation and long
// addresses: the dialog stays within 80 columns, QR code included, and
// the pieces copied together read the same (white space is ignored).
const inviteWidth = 64

// isInvitation reports whether an /add target is an invitation.
func isInvitation(target string) bool {
	return len(target) >= len("certchat:") && strings.EqualFold(target[:len("certchat:")], "certchat:")
}

// targetPeer reads the peer ID of a /add target, and the name an
// invitation suggests.
func targetPeer(target string) (peer.ID, string, error) {
	if isInvitation(target) {
		return node.ParseTarget(target)
	}
	if !strings.HasPrefix(target, "/") {
		if _, err := peer.Decode(target); err != nil {
			return "", "", errors.New("that is neither an invitation (CERTCHAT:…), a peer ID (12D3KooW…) nor an address (/ip4/…/tcp/…/p2p/PEERID)")
		}
		p, err := identity.ParsePeerID(target)
		return p, "", err
	}
	addr, err := ma.NewMultiaddr(target)
	if err != nil {
		return "", "", errors.New("that is not a valid address; it looks like /ip4/192.168.1.5/tcp/4001/p2p/12D3KooW…")
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return "", "", errors.New("the address must end with /p2p/ and the peer ID")
	}
	if _, err := identity.KeyFromPeerID(info.ID); err != nil {
		return "", "", err
	}
	return info.ID, "", nil
}

// cmdAdd adds a contact by invitation, address or peer ID (node.Add:
// pins the key unless the user already decided about it, remembers the
// addresses, connects). A peer ID alone opens its chat at once; with
// addresses the chat opens once the node knows it is not a relay's.
func (u *commands) cmdAdd(target string) {
	if target == "" {
		u.notes.showError("Usage: /add INVITATION, /add MULTIADDR (ending in /p2p/PEERID) or /add PEERID.")
		return
	}
	p, suggested, err := targetPeer(target)
	if err != nil {
		what := truncate(oneLine(target), 40)
		if isInvitation(target) {
			what = "this invitation"
		}
		u.notes.fail("Cannot add "+what, err)
		return
	}
	if p == u.myID {
		u.notes.showError("That is your own peer ID.")
		return
	}
	name := unknownPeer(p).Name
	if c := u.roster.get(p); c != nil {
		name = c.name()
	} else if suggested != "" {
		name = identity.SanitizeName(suggested)
	}
	if target == p.String() {
		u.roster.ensure(unknownPeer(p))
		u.openChat(p)
	}
	u.notes.inform("Adding " + name + "…")
	u.spawn(func() { u.addPeer(p, target) })
}

// addPeer runs off the event loop.
func (u *commands) addPeer(p peer.ID, target string) {
	ctx, cancel := context.WithTimeout(u.ctx, connectTimeout)
	defer cancel()
	info, err := u.b.Add(ctx, target, "")
	if info.ID == "" && !errors.Is(err, node.ErrIsRelay) {
		info = u.b.PeerInfo(p)
	}
	u.post(func() {
		if errors.Is(err, node.ErrIsRelay) {
			u.notes.showError("That is a relay, not a person: start chat with --relay " + truncate(oneLine(target), 60) + " to use it (it is remembered; /relay shows it), and add people by their invitation.")
			return
		}
		c := u.roster.setInfo(info)
		if u.open != p {
			u.openChat(p)
		}
		switch {
		case info.Changed != nil || errors.Is(err, node.ErrKeyChanged):
			u.notes.showErrorAbout(p, "KEY CHANGED: "+c.name()+" answered with a key that claims a contact's name. /trust decides.")
		case errors.Is(err, node.ErrNoAddress):
			u.notes.informAbout(p, c.name()+" is in your contacts. No address is known yet: they connect when on your LAN or through a relay, or /add their invitation.")
		case err != nil && !info.Trust.Trusted():
			u.notes.failAbout(p, "Could not add "+c.name(), err)
		case err != nil:
			u.notes.showErrorAbout(p, c.name()+" is in your contacts but could not be reached: "+describe(err))
		default:
			t, _ := trustTitle(info)
			u.notes.informAbout(p, "Connected to "+c.name()+" ("+t+").")
		}
	})
}

// cmdID shows the invitation, wrapped, with its QR code; c copies it.
func (u *commands) cmdID(string) {
	u.spawn(func() {
		text, err := u.b.Invitation()
		u.post(func() {
			if err != nil {
				u.notes.fail("No invitation", err)
				return
			}
			u.showInvitation(text)
		})
	})
}

func (u *commands) showInvitation(text string) {
	var b strings.Builder
	fmt.Fprintf(&b, "You are [::b]%s[::-]\nFingerprint: %s\nPeer ID: %s\n\n",
		tview.Escape(u.myName), u.b.Identity().Fingerprint(), u.myID)
	b.WriteString("Share this invitation: the other side adds you with\n/add INVITATION or `chat contacts add INVITATION`.\n")
	b.WriteString("[::b]c[::-] copies it to the clipboard; ↑ ↓ scroll; Esc closes.\n\n")
	for _, l := range chunks(text, inviteWidth) {
		b.WriteString(l + "\n")
	}
	if qr, err := identity.QRCodeCompact(text); err == nil {
		b.WriteString("\n" + qr)
	}
	if len(u.stat.addrs) == 0 {
		b.WriteString("\nNot listening on any address yet.")
	} else {
		b.WriteString("\nThe invitation carries these addresses:")
		for _, a := range u.stat.addrs {
			for i, l := range chunks(a, inviteWidth) {
				if i > 0 {
					l = "  " + l
				}
				b.WriteString("\n" + tview.Escape(l))
			}
		}
	}
	body := b.String()
	tv := tview.NewTextView().SetDynamicColors(true).SetWrap(false).SetScrollable(true)
	tv.SetText(body)
	lines := strings.Split(body, "\n")
	wantW := 0
	for _, l := range lines {
		wantW = max(wantW, tview.TaggedStringWidth(l))
	}
	var d *dialog
	v := &inviteView{TextView: tv, text: text, copied: func(ok bool) {
		if !ok {
			u.notes.showError("Cannot copy: the screen is not drawn yet.")
			return
		}
		// Said in the title: the dialog may cover the notice line.
		d.frame.SetTitle(" Your invitation: copied to the clipboard ")
		u.notes.inform("Invitation copied to the clipboard with OSC 52 (in tmux it needs `set -g set-clipboard on`; some terminals refuse it).")
	}}
	d = u.dlg.newDialog("Your invitation", v, wantW+4, func(int) int { return len(lines) }, nil)
	d.wide = true
	u.dlg.show(d)
}

// chunks cuts s into pieces of at most n bytes (s is ASCII: base32,
// multiaddrs).
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	return append(out, s)
}

// copyOSC52 puts text on the clipboard with OSC 52, written to the
// terminal itself: tcell's SetClipboard writes it only for terminals it
// knows as xterm-like, not inside tmux or screen, whose TERM it reads.
// tmux takes the sequence when its set-clipboard option is on (and then
// passes it to the outer terminal). It runs on the event loop, which is
// also where tcell writes, so the sequence never splits one of tcell's.
// A screen without a terminal (the tests' simulation) gets SetClipboard.
func copyOSC52(scr tcell.Screen, text string) {
	if tty, ok := scr.Tty(); ok {
		fmt.Fprintf(tty, "\x1b]52;c;%s\x07", base64.StdEncoding.EncodeToString([]byte(text)))
		return
	}
	scr.SetClipboard([]byte(text))
}

// inviteView is /id's body: the text view, and c copies the invitation
// with OSC 52 (tcell's SetClipboard, on the screen it draws on).
type inviteView struct {
	*tview.TextView
	text   string
	scr    tcell.Screen
	copied func(ok bool)
}

func (v *inviteView) Draw(scr tcell.Screen) {
	v.scr = scr
	v.TextView.Draw(scr)
}

func (v *inviteView) InputHandler() func(*tcell.EventKey, func(tview.Primitive)) {
	return func(ev *tcell.EventKey, setFocus func(tview.Primitive)) {
		if ev.Key() == tcell.KeyRune && (ev.Rune() == 'c' || ev.Rune() == 'C') {
			if v.scr != nil {
				copyOSC52(v.scr, v.text)
			}
			v.copied(v.scr != nil)
			return
		}
		v.TextView.InputHandler()(ev, setFocus)
	}
}
