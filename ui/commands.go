package ui

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/rivo/tview"
)

// commands is the part of the window that runs the /commands of the
// input line (their table is commandList), with what they keep between
// runs: Tab completion (complete.go).
// Contacts (contacts.go, invite.go) and groups (groups.go) are commands
// too. It belongs to the event loop.
type commands struct {
	*UI

	completer completer // Tab completion of the input line
}

// command is a /command of the input line.
type command struct {
	name, args, help string
	run              func(u *UI, arg string)
}

// The commands' methods live on the part of the window that owns what
// they work on; these make them entries of the table.
func inCommands(run func(*commands, string)) func(*UI, string) {
	return func(u *UI, arg string) { run(u.cmds, arg) }
}
func inActions(run func(*actions, string)) func(*UI, string) {
	return func(u *UI, arg string) { run(u.act, arg) }
}
func inTransfers(run func(*transfers, string)) func(*UI, string) {
	return func(u *UI, arg string) { run(u.xfer, arg) }
}
func inFinder(run func(*finder, string)) func(*UI, string) {
	return func(u *UI, arg string) { run(u.find, arg) }
}
func inAttention(run func(*attention, string)) func(*UI, string) {
	return func(u *UI, arg string) { run(u.att, arg) }
}

// searchLimit bounds /search results.
const searchLimit = 100

func commandList() []command {
	return append([]command{
		{"help", "", "commands and keys", inCommands((*commands).cmdHelp)},
		{"add", "INVITATION", "add a contact by invitation, address or peer ID", inCommands((*commands).cmdAdd)},
		{"verify", "[CONTACT]", "compare safety numbers (QR code too); mark verified", inCommands((*commands).cmdVerify)},
		{"trust", "[CONTACT]", "accept or reject the open chat's key", inCommands((*commands).cmdTrust)},
		{"rename", "[CONTACT] NAME", "give the open chat (or CONTACT) another name", inCommands((*commands).cmdRename)},
		{"remove", "[CONTACT]", "forget a contact's key (asks first); the chat stays", inCommands((*commands).cmdRemove)},
		{"block", "[CONTACT]", "reject the open chat's (or CONTACT's) key", inCommands((*commands).cmdBlock)},
		{"unblock", "[CONTACT]", "accept a blocked key again", inCommands((*commands).cmdUnblock)},
		{"whois", "[CONTACT]", "certificate and live session of the open chat", inCommands((*commands).cmdWhois)},
		{"relay", "", "relays and reservations", inCommands((*commands).cmdRelay)},
		{"search", "TEXT", "find messages in every chat", inFinder((*finder).cmdSearch)},
		{"send", "PATH", "send a file to the open chat (Tab: complete)", inTransfers((*transfers).cmdSend)},
		{"accept", "", "receive the file offered in the open chat", inTransfers((*transfers).cmdAccept)},
		{"decline", "", "refuse the file offered in the open chat", inTransfers((*transfers).cmdDecline)},
		{"cancel", "", "stop the open chat's file (or /cancel ID)", inTransfers((*transfers).cmdCancel)},
		{"files", "", "files sent and received", inTransfers((*transfers).cmdFiles)},
		{"reply", "[TEXT]", "reply to the selected message, or their last", inActions((*actions).cmdReply)},
		{"edit", "[TEXT]", "edit the selected or your last message (24 h)", inActions((*actions).cmdEdit)},
		{"delete", "", "delete the selected or your last message (24 h)", inActions((*actions).cmdDelete)},
		{"react", "[EMOJI|-]", "react to the selected or last message; - undoes", inActions((*actions).cmdReact)},
		{"seen", "on|off", "read markers (\"seen\"), both ways", indicationCmd("seen")},
		{"typing", "on|off", "\"typing…\", both ways", indicationCmd("typing")},
		{"id", "", "your invitation (c copies it) and fingerprint", inCommands((*commands).cmdID)},
		{"mute", "", "no bell or notifications for the open chat", inAttention((*attention).cmdMute)},
		{"unmute", "", "bell and notifications for the open chat again", inAttention((*attention).cmdUnmute)},
		{"quit", "", "close the chat (Ctrl+C too; asks if you typed)", inCommands((*commands).cmdQuit)},
	}, groupCommands()...)
}

// runCommand runs "/name args".
func (u *commands) runCommand(text string) {
	name, arg, _ := strings.Cut(strings.TrimPrefix(text, "/"), " ")
	name = strings.ToLower(strings.TrimSpace(name))
	for _, c := range commandList() {
		if c.name == name {
			c.run(u.UI, strings.TrimSpace(arg))
			return
		}
	}
	u.notes.showError("Unknown command /" + truncate(oneLine(name), 20) + ": /help lists the commands.")
}

// openChatOrSay returns the open chat, or says one is needed.
func (u *commands) openChatOrSay(cmd string) *chat {
	c := u.roster.get(u.open)
	if c == nil {
		u.notes.showError("/" + cmd + " works on the open chat: open one first (Tab).")
	}
	return c
}

func (u *commands) cmdHelp(string) { u.showHelp() }
func (u *commands) cmdQuit(string) { u.Quit() }

func (u *commands) cmdVerify(arg string) {
	if c := u.chatArg("verify", arg); c != nil {
		u.dlg.verify(c.info.ID)
	}
}

func (u *commands) cmdTrust(arg string) {
	if c := u.chatArg("trust", arg); c != nil {
		u.dlg.promptTrust(c)
	}
}

func (u *commands) cmdWhois(arg string) {
	c := u.chatArg("whois", arg)
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
			u.dlg.show(u.dlg.textDialog("Who is "+displayName(info), strings.TrimRight(b.String(), "\n"), true, button{"Close (Esc)", nil}))
		})
	})
}

func (u *commands) whoisPeer(b *strings.Builder, info node.PeerInfo) {
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

func (u *commands) whoisCert(b *strings.Builder, subject, issuerLine string, from, until time.Time) {
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

func (u *commands) cmdRelay(arg string) {
	if arg != "" {
		u.notes.showError("/relay only shows the relays. To use another relay, start chat with --relay MULTIADDR (it is remembered for later starts).")
		return
	}
	u.spawn(func() {
		rs := u.b.Relays()
		u.post(func() {
			u.stat.relays = rs
			u.dlg.show(u.dlg.textDialog("Relays", u.relayReport(rs), true, button{"Close (Esc)", nil}))
		})
	})
}

func (u *commands) relayReport(rs []node.RelayInfo) string {
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

func (u *finder) cmdSearch(text string) {
	if text == "" {
		u.notes.showError("Usage: /search TEXT")
		return
	}
	u.notes.inform("Searching…")
	u.spawn(func() {
		found, err := u.b.Search(text, searchLimit)
		u.post(func() { u.showResults(text, found, err) })
	})
}

func (u *finder) showResults(text string, found []store.Message, err error) {
	quoted := "“" + truncate(oneLine(text), 30) + "”"
	switch {
	case err != nil:
		u.notes.fail("Search failed", err)
		return
	case len(found) == 0:
		u.notes.inform("No message contains " + quoted + ".")
		return
	}
	if len(found) == 1 {
		u.notes.inform("1 message contains " + quoted + ".")
	} else {
		u.notes.inform(fmt.Sprintf("%d messages contain %s.", len(found), quoted))
	}
	items := make([]string, len(found))
	for i, m := range found {
		who := u.dlg.nameOf(m.Peer)
		if m.Direction == store.Outgoing {
			who = "me → " + who
		}
		items[i] = fmt.Sprintf("%s  %s: %s", m.StoredAt.In(u.opts.Location).Format("2 Jan 15:04"),
			truncate(who, 20), truncate(oneLine(m.Body), 60))
	}
	u.search = searchState{text: text, found: found}
	u.dlg.show(u.dlg.listDialog("Search "+quoted+": Enter shows it, Esc closes", items, u.showHit))
}
