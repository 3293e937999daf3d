package ui

import (
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// ctrlC quits, but asks first when quitting would lose something: text
// in the input, or an open dialog's undecided question. A second Ctrl+C
// (or y) answers yes.
func (u *dialogs) ctrlC() {
	if u.asking != nil || (u.in.GetTextLength() == 0 && u.dialog == nil) {
		u.Quit()
		return
	}
	u.askQuit()
}

// askQuit asks whether to quit, over whatever is open; Stay has the focus
// first, so a stray Enter keeps the window.
func (u *dialogs) askQuit() {
	text := "Quit certchat?\n\n"
	switch {
	case u.in.GetTextLength() > 0:
		text += "What you typed is not sent, and is lost."
	default:
		text += "The open dialog closes undecided."
	}
	m := tview.NewModal().SetText(text + "\n\nCtrl+C or y quits; n or Esc stays.").
		AddButtons([]string{"Quit", "Stay"}).
		SetDoneFunc(func(i int, label string) {
			if label == "Quit" {
				u.Quit()
				return
			}
			u.closeAsk()
		})
	m.SetFocus(1)
	m.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		if ev.Key() == tcell.KeyRune {
			switch ev.Rune() {
			case 'y', 'Y':
				u.Quit()
			case 'n', 'N':
				u.closeAsk()
			}
			return nil
		}
		return ev
	})
	u.asking = m
	u.pages.AddPage("quit", m, true, true)
	u.app.SetFocus(m)
}

// closeAsk closes the quit question and gives the focus back.
func (u *dialogs) closeAsk() {
	if u.asking == nil {
		return
	}
	u.asking = nil
	u.pages.RemovePage("quit")
	if u.dialog != nil {
		u.app.SetFocus(u.dialog)
		return
	}
	u.app.SetFocus(u.in)
}
