package ui

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/rivo/tview"
)

// command is a /command of the input line.
type command struct {
	name, args, help string
	run              func(u *UI, arg string)
}

// connectTimeout bounds /add's dial and handshake.
const connectTimeout = 30 * time.Second

// searchLimit bounds /search results.
const searchLimit = 100

func commandList() []command {
	return []command{
		{"help", "", "commands and keys", (*UI).cmdHelp},
		{"add", "MULTIADDR|PEERID", "add a contact (pins the key) and connect", (*UI).cmdAdd},
		{"verify", "", "compare safety numbers (QR code too); mark verified", (*UI).cmdVerify},
		{"trust", "", "accept or reject the open chat's key", (*UI).cmdTrust},
		{"block", "", "reject the open chat's key", (*UI).cmdBlock},
		{"whois", "", "certificate and live session of the open chat", (*UI).cmdWhois},
		{"relay", "", "relays and reservations", (*UI).cmdRelay},
		{"search", "TEXT", "find messages in every chat", (*UI).cmdSearch},
		{"id", "", "your peer ID, fingerprint and addresses to share", (*UI).cmdID},
		{"quit", "", "close the chat (Ctrl+C too)", (*UI).cmdQuit},
	}
}

// runCommand runs "/name args".
func (u *UI) runCommand(text string) {
	name, arg, _ := strings.Cut(strings.TrimPrefix(text, "/"), " ")
	name = strings.ToLower(strings.TrimSpace(name))
	for _, c := range commandList() {
		if c.name == name {
			c.run(u, strings.TrimSpace(arg))
			return
		}
	}
	u.showError("Unknown command /" + truncate(oneLine(name), 20) + ": /help lists the commands.")
}

// openChatOrSay returns the open chat, or says one is needed.
func (u *UI) openChatOrSay(cmd string) *chat {
	c := u.roster.get(u.open)
	if c == nil {
		u.showError("/" + cmd + " works on the open chat: open one first (Tab).")
	}
	return c
}

func (u *UI) cmdHelp(string) { u.showHelp() }
func (u *UI) cmdQuit(string) { u.Quit() }

func (u *UI) cmdVerify(string) {
	if c := u.openChatOrSay("verify"); c != nil {
		u.verify(c.info.ID)
	}
}

func (u *UI) cmdTrust(string) {
	if c := u.openChatOrSay("trust"); c != nil {
		u.promptTrust(c)
	}
}

func (u *UI) cmdBlock(string) {
	if c := u.openChatOrSay("block"); c != nil {
		u.reject(c.info.ID)
	}
}

// targetPeer reads the peer ID of a /add target.
func targetPeer(target string) (peer.ID, error) {
	if !strings.HasPrefix(target, "/") {
		if _, err := peer.Decode(target); err != nil {
			return "", errors.New("that is neither a peer ID (12D3KooW…) nor an address (/ip4/…/tcp/…/p2p/PEERID)")
		}
		return identity.ParsePeerID(target)
	}
	addr, err := ma.NewMultiaddr(target)
	if err != nil {
		return "", errors.New("that is not a valid address; it looks like /ip4/192.168.1.5/tcp/4001/p2p/12D3KooW…")
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return "", errors.New("the address must end with /p2p/ and the peer ID")
	}
	if _, err := identity.KeyFromPeerID(info.ID); err != nil {
		return "", err
	}
	return info.ID, nil
}

// cmdAdd pins the peer's key (the peer ID embeds it) unless the user
// already decided about it, opens its chat, and connects.
func (u *UI) cmdAdd(target string) {
	if target == "" {
		u.showError("Usage: /add MULTIADDR (ending in /p2p/PEERID) or /add PEERID.")
		return
	}
	p, err := targetPeer(target)
	if err != nil {
		u.fail("Cannot add "+truncate(oneLine(target), 40), err)
		return
	}
	if p == u.myID {
		u.showError("That is your own peer ID.")
		return
	}
	c := u.roster.ensure(unknownPeer(p))
	u.openChat(p)
	u.inform("Adding " + c.name() + "…")
	u.spawn(func() { u.addPeer(p, target) })
}

// addPeer runs off the event loop: trust, then connect.
func (u *UI) addPeer(p peer.ID, target string) {
	info := u.b.PeerInfo(p)
	var trustErr error
	if !info.Trust.Trusted() && info.Changed == nil {
		trustErr = u.b.TrustPeer(p, false)
	}
	ctx, cancel := context.WithTimeout(u.ctx, connectTimeout)
	defer cancel()
	info, err := u.b.Connect(ctx, target)
	if info.ID == "" {
		info = u.b.PeerInfo(p)
	}
	u.post(func() {
		c := u.roster.setInfo(info)
		switch {
		case trustErr != nil:
			u.fail("Could not add "+c.name(), trustErr)
		case info.Changed != nil:
			u.showError("KEY CHANGED: " + c.name() + " answered with a key that claims a contact's name. /trust decides.")
		case errors.Is(err, node.ErrNoAddress):
			u.inform(c.name() + " is in your contacts. No address is known yet: they connect when on your LAN or through a relay, or /add their full address.")
		case err != nil:
			u.showError(c.name() + " is in your contacts but could not be reached: " + describe(err))
		default:
			t, _ := trustTitle(info)
			u.inform("Connected to " + c.name() + " (" + t + ").")
		}
	})
}

func (u *UI) cmdWhois(string) {
	c := u.openChatOrSay("whois")
	if c == nil {
		return
	}
	p := c.info.ID
	u.spawn(func() {
		info := u.b.PeerInfo(p)
		cert, hasCert := u.b.Certificate(p)
		sess, live := u.b.Session(p)
		u.post(func() {
			var b strings.Builder
			u.whoisPeer(&b, info)
			if hasCert {
				u.whoisCert(&b, cert.Subject.CommonName, issuerText(identity.IssuerName(cert), info.IssuerTrusted), cert.NotBefore, cert.NotAfter)
			} else {
				b.WriteString("\nNo certificate seen yet: it comes with the first connection.\n")
			}
			whoisSession(&b, sess, live, info)
			u.show(u.textDialog("Who is "+displayName(info), strings.TrimRight(b.String(), "\n"), true, button{"Close (Esc)", nil}))
		})
	})
}

func (u *UI) whoisPeer(b *strings.Builder, info node.PeerInfo) {
	t, _ := trustTitle(info)
	fmt.Fprintf(b, "Name:         %s\nPeer ID:      %s\nTrust:        %s\nFingerprint:  %s\n",
		tview.Escape(displayName(info)), info.ID, tview.Escape(t), info.Fingerprint)
}

// issuerText is the certificate's issuer line for /whois. Only a chain
// that verified to a CA the user trusts reads "Issued by": any issuer
// name is otherwise just what the certificate claims, since anyone can
// make a CA called "Acme Root".
func issuerText(issuer string, trusted bool) string {
	issuer = oneLine(issuer)
	switch {
	case issuer == "self-signed":
		return "Issuer:     self-signed"
	case trusted:
		return "Issued by:  " + tview.Escape(issuer) + " (a CA you trust)"
	}
	return "Issuer:     " + tview.Escape(strconv.Quote(issuer)) + " [::d](not a CA you trust)[::-]"
}

func (u *UI) whoisCert(b *strings.Builder, subject, issuerLine string, from, until time.Time) {
	valid := from.In(u.opts.Location).Format("2 Jan 2006") + " to " + until.In(u.opts.Location).Format("2 Jan 2006")
	if note, _ := expiryNote(until, u.now()); note != "" {
		valid += " [red::b](" + note + ")[-::-]"
	}
	fmt.Fprintf(b, "\nCertificate\n  Subject:    CN=%s\n  %s\n  Valid:      %s\n",
		tview.Escape(identity.SanitizeName(subject)), issuerLine, valid)
}

func whoisSession(b *strings.Builder, s node.LiveSession, live bool, info node.PeerInfo) {
	if !live {
		b.WriteString("\nNo live session: the peer is offline.\n")
		return
	}
	resumed := "no (full handshake)"
	if s.Info.Resumed {
		resumed = "yes"
	}
	fmt.Fprintf(b, "\nLive session (%s)\n  TLS:        %s\n  Suite:      %s\n  Key group:  %s\n  Resumed:    %s\n  Session ID: %s\n",
		pathText(info), s.Info.VersionName(), s.Info.SuiteName(), groupText(s), resumed, tview.Escape(s.Info.SessionID))
}

// groupText is the key exchange group, marked when it is not hybrid
// post-quantum.
func groupText(s node.LiveSession) string {
	if s.PostQuantum {
		return s.Info.GroupName()
	}
	return s.Info.GroupName() + " [olive](" + notPostQuantum + ")[-]"
}

func (u *UI) cmdRelay(arg string) {
	if arg != "" {
		u.showError("/relay only shows the relays. To use another relay, start chat with --relay MULTIADDR (it is remembered for later starts).")
		return
	}
	u.spawn(func() {
		rs := u.b.Relays()
		u.post(func() {
			u.relays = rs
			u.show(u.textDialog("Relays", u.relayReport(rs), true, button{"Close (Esc)", nil}))
		})
	})
}

func (u *UI) relayReport(rs []node.RelayInfo) string {
	if len(rs) == 0 {
		return "No relay configured. Peers reach you directly or on the LAN; start with --relay MULTIADDR to be reachable through a relay as well."
	}
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%s\n", tview.Escape(oneLine(r.Addr)))
		if r.Discovered {
			b.WriteString("  found in the DHT\n")
		}
		switch {
		case r.Reserved:
			fmt.Fprintf(&b, "  [green]reserved[-] until %s\n", r.Expires.In(u.opts.Location).Format("15:04"))
		case r.Err != "":
			fmt.Fprintf(&b, "  [red]not reserved[-]: %s\n", tview.Escape(finish(r.Err)))
		default:
			b.WriteString("  not reserved yet\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func (u *UI) cmdSearch(text string) {
	if text == "" {
		u.showError("Usage: /search TEXT")
		return
	}
	u.inform("Searching…")
	u.spawn(func() {
		found, err := u.b.Search(text, searchLimit)
		u.post(func() { u.showResults(text, found, err) })
	})
}

func (u *UI) showResults(text string, found []store.Message, err error) {
	quoted := "“" + truncate(oneLine(text), 30) + "”"
	switch {
	case err != nil:
		u.fail("Search failed", err)
		return
	case len(found) == 0:
		u.inform("No message contains " + quoted + ".")
		return
	}
	if len(found) == 1 {
		u.inform("1 message contains " + quoted + ".")
	} else {
		u.inform(fmt.Sprintf("%d messages contain %s.", len(found), quoted))
	}
	items := make([]string, len(found))
	for i, m := range found {
		who := u.nameOf(m.Peer)
		if m.Direction == store.Outgoing {
			who = "me → " + who
		}
		items[i] = fmt.Sprintf("%s  %s: %s", m.StoredAt.In(u.opts.Location).Format("2 Jan 15:04"),
			truncate(who, 20), truncate(oneLine(m.Body), 60))
	}
	u.show(u.listDialog("Search "+quoted+": Enter opens, Esc closes", items, func(i int) {
		u.roster.ensure(unknownPeer(found[i].Peer))
		u.openChat(found[i].Peer)
	}))
}

func (u *UI) cmdID(string) {
	var b strings.Builder
	fmt.Fprintf(&b, "You are [::b]%s[::-]\nPeer ID:     %s\nFingerprint: %s\n\n",
		tview.Escape(u.myName), u.myID, u.b.Identity().Fingerprint())
	if len(u.addrs) == 0 {
		b.WriteString("Not listening on any address yet.")
	} else {
		b.WriteString("Peers add you with /add and one of these addresses:\n")
		for _, a := range u.addrs {
			b.WriteString("\n" + tview.Escape(a))
		}
	}
	u.show(u.textDialog("Your identity", b.String(), false, button{"Close (Esc)", nil}))
}
