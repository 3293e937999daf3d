package ui

import (
	"fmt"
	"strings"

	"github.com/rivo/tview"
)

// keyHelp lists the keys, for /help and the README.
func keyHelp() [][2]string {
	return [][2]string{
		{"Enter", "send the message, or run the /command"},
		{"Alt+Enter, Ctrl+J", "new line in the message (a paste keeps its lines)"},
		{"Up / Down", "recall what you typed before (on the first / last line)"},
		{"Tab / Shift+Tab", "next / previous chat (Ctrl+N / Ctrl+P too)"},
		{"Tab after / or @", "complete a command or contact name; again: the next"},
		{"Alt+A", "next chat with unread messages"},
		{"Alt+U", "jump to the first new message of this chat"},
		{"Alt+N / Alt+P", "next / previous /search result"},
		{"PgUp / PgDn", "scroll the conversation; older pages load as you go"},
		{"Alt+Up / Alt+Down", "select a message (Ctrl+Up / Ctrl+Down too), then:"},
		{"  e d r +", "edit, delete, reply, react to it"},
		{"  Enter, Esc", "go to the message it quotes; leave the selection"},
		{"Mouse", "click a chat to open it; the wheel scrolls"},
		{"Esc", "close a dialog; clear the notice line"},
		{"F1", "this help"},
		{"Ctrl+C", "quit (asks first if you typed or a dialog is open)"},
	}
}

// helpText is the /help dialog.
func helpText() string {
	var b strings.Builder
	b.WriteString("[::b]Commands[::-]\n")
	for _, c := range commandList() {
		// Arguments such as [CONTACT] are not tags: escaped after padding.
		fmt.Fprintf(&b, "  %s %s\n", tview.Escape(fmt.Sprintf("%-24s", "/"+c.name+" "+c.args)), c.help)
	}
	b.WriteString("\n[::b]Keys[::-]\n")
	for _, k := range keyHelp() {
		fmt.Fprintf(&b, "  %-18s %s\n", k[0], k[1])
	}
	return strings.TrimRight(b.String(), "\n")
}

func (u *UI) showHelp() {
	u.dlg.show(u.dlg.textDialog("Help: ↑↓ PgUp PgDn scroll", helpText(), true, button{"Close (Esc)", nil}))
}

// welcomeRows fill the conversation pane while no chat is open.
func (u *UI) welcomeRows(w int) []line {
	th := u.th
	var rows []line
	para := func(text string, dim bool) {
		st := th.text
		if dim {
			st = th.dim
		}
		rows = append(rows, wrapLine(line{{text, st}}, w)...)
	}
	rows = append(rows, line{{"Welcome to certchat, ", th.text}, {u.myName, th.me}, {".", th.text}}, nil)
	para("Your fingerprint: "+u.b.Identity().Fingerprint().Short()+" (/id shows all of it and your invitation to share).", false)
	rows = append(rows, nil)
	para("To start a chat, /add a peer's invitation (or address, or peer ID). Messages from peers open their chat here.", false)
	para("Tab and Ctrl+N/Ctrl+P switch chats, Alt+A jumps to unread messages, /help lists everything.", true)
	return rows
}
