package ui

import (
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

// dialogs is the part of the window that asks: the dialog box, the trust
// prompts (prompts.go) and the quit question (quit.go). It belongs to the
// event loop.
type dialogs struct {
	*UI

	prompted map[peer.ID]bool // first-contact prompt already shown
	dialog   *dialog          // the open dialog, if any
	asking   *tview.Modal     // the quit question, while open
}

// button is one choice of a dialog; run is called after the dialog closes
// (nil: just close). Buttons have no letter shortcuts: dialogs decide
// trust, and a letter typed for the input line must never choose (Tab or
// the arrows and Enter do, or the mouse). The last button, the one that
// changes nothing, has the focus first.
type button struct {
	label string
	run   func()
}

// dialog is a modal box in the middle of the screen: a scrollable body
// and a row of buttons. It covers the screen so clicks outside it do
// nothing; Esc closes it. Its size follows its content and the screen.
type dialog struct {
	*tview.Box
	frame    *tview.Flex
	body     tview.Primitive
	form     *tview.Form // nil without buttons
	wantW    int
	wide     bool // no wrapping: as wide as the screen allows
	bodyRows func(w int) int
	close    func()
	// firstContact is the peer a first-contact question is about: it turns
	// into the key-changed question when the peer's key claims a contact.
	firstContact peer.ID

	// Typing guard: a dialog with buttons opens while the user may be
	// typing (a message arrived, Enter was just pressed). Text keys always
	// go on to the input line, so nothing typed is lost; other keys act
	// only once delay has passed since the dialog opened and since the
	// last text key, so an Enter meant for the input line does not choose
	// a button.
	delay   time.Duration
	armAt   time.Time
	forward func(*tcell.EventKey)
	// typing reports whether the input line holds text: then Enter sends
	// it, as it would without the dialog, instead of choosing a button.
	typing func() bool
	// paste puts pasted text (or a burst of typed characters) in the
	// input line: a dialog takes no text.
	paste func(string)
}

// textDialog shows text (tview tags allowed; untrusted parts escaped).
// With wrap false, lines are kept as they are (for QR codes).
func (u *dialogs) textDialog(title, text string, wrap bool, buttons ...button) *dialog {
	tv := tview.NewTextView().SetDynamicColors(true).SetWrap(wrap).SetWordWrap(true).SetScrollable(true)
	tv.SetText(text)
	lines := strings.Split(text, "\n")
	wantW := 0
	for _, l := range lines {
		wantW = max(wantW, tview.TaggedStringWidth(l))
	}
	rows := func(w int) int {
		if !wrap {
			return len(lines)
		}
		return len(tview.WordWrap(text, max(1, w)))
	}
	d := u.newDialog(title, tv, max(wantW+4, 34), rows, buttons)
	d.wide = !wrap
	return d
}

// listDialog offers items to choose from; choosing one runs choose(i).
func (u *dialogs) listDialog(title string, items []string, choose func(i int)) *dialog {
	l := tview.NewList().ShowSecondaryText(false).SetHighlightFullLine(true).SetWrapAround(false)
	wantW := 0
	for _, it := range items {
		l.AddItem(tview.Escape(it), "", 0, nil)
		wantW = max(wantW, textWidth(it))
	}
	var d *dialog
	l.SetSelectedFunc(func(i int, _, _ string, _ rune) {
		d.close()
		choose(i)
	})
	d = u.newDialog(title, l, wantW+4, func(int) int { return len(items) }, nil)
	return d
}

func (u *dialogs) newDialog(title string, body tview.Primitive, wantW int, rows func(int) int, buttons []button) *dialog {
	d := &dialog{Box: tview.NewBox(), body: body, wantW: wantW, bodyRows: rows}
	if len(buttons) > 0 {
		d.delay, d.armAt = max(u.opts.DialogDelay, 0), time.Now().Add(u.opts.DialogDelay)
		d.forward = func(ev *tcell.EventKey) { u.in.InputHandler()(ev, func(tview.Primitive) {}) }
		d.typing = func() bool { return u.in.GetTextLength() > 0 }
	}
	d.paste = func(text string) { u.in.PasteHandler()(text, func(tview.Primitive) {}) }
	d.close = func() { u.closeDialog(d) }
	d.frame = tview.NewFlex().SetDirection(tview.FlexRow).AddItem(body, 0, 1, len(buttons) == 0)
	// Titles name peers, and tview reads [tags] in titles: escape.
	d.frame.SetBorder(true).SetTitle(" " + tview.Escape(title) + " ")
	if len(buttons) > 0 {
		d.form = tview.NewForm().SetButtonsAlign(tview.AlignCenter)
		d.form.SetBorderPadding(0, 0, 1, 1)
		d.form.SetCancelFunc(d.close)
		for _, b := range buttons {
			d.form.AddButton(b.label, d.action(b))
		}
		d.form.SetFocus(len(buttons) - 1)
		d.frame.AddItem(d.form, 1, 0, true)
	}
	return d
}

// action closes the dialog, then runs the button's function.
func (d *dialog) action(b button) func() {
	return func() {
		d.close()
		if b.run != nil {
			b.run()
		}
	}
}

// show opens the dialog over the window, replacing any other.
func (u *dialogs) show(d *dialog) {
	if u.dialog != nil {
		u.pages.RemovePage("dialog")
	}
	u.dialog = d
	u.pages.AddPage("dialog", d, true, true)
	if u.asking != nil { // the quit question stays in front
		u.pages.SendToFront("quit")
		return
	}
	u.app.SetFocus(d)
}

// closeDialog closes d if it is the open dialog.
func (u *dialogs) closeDialog(d *dialog) {
	if u.dialog != d {
		return
	}
	u.dialog = nil
	u.pages.RemovePage("dialog")
	if u.asking != nil {
		u.app.SetFocus(u.asking)
		return
	}
	u.app.SetFocus(u.in)
}

func (d *dialog) Draw(scr tcell.Screen) {
	sw, sh := scr.Size()
	limit := 80
	if d.wide {
		limit = sw
	}
	w := min(sw, max(d.wantW, 34), limit)
	extra := 2 // border
	if d.form != nil {
		extra++
	}
	h := min(sh, d.bodyRows(w-2)+extra)
	d.frame.SetRect((sw-w)/2, (sh-h)/2, w, h)
	d.frame.Draw(scr)
}

func (d *dialog) Focus(delegate func(tview.Primitive)) {
	if d.form != nil {
		delegate(d.form)
		return
	}
	delegate(d.body)
}

func (d *dialog) HasFocus() bool { return d.frame.HasFocus() }

// InputHandler: Esc closes; with buttons, text keys go to the input line,
// and so does Enter while the input holds text (it sends it: an Enter
// typed for the input never chooses a button); other keys wait for the
// typing guard; up, down and page keys scroll the body; the rest goes to
// the buttons (Tab, arrows, Enter).
func (d *dialog) InputHandler() func(*tcell.EventKey, func(tview.Primitive)) {
	return func(ev *tcell.EventKey, setFocus func(tview.Primitive)) {
		if ev.Key() == tcell.KeyEscape {
			d.close()
			return
		}
		if d.form != nil && (d.textKey(ev) || ev.Key() == tcell.KeyEnter && d.typing()) {
			d.forward(ev)
			return
		}
		if d.typedAhead() {
			return
		}
		// tview's buttons move on Tab and Shift+Tab only; the arrows do too.
		if d.form != nil {
			switch ev.Key() {
			case tcell.KeyRight:
				ev = tcell.NewEventKey(tcell.KeyTab, 0, tcell.ModNone)
			case tcell.KeyLeft:
				ev = tcell.NewEventKey(tcell.KeyBacktab, 0, tcell.ModNone)
			}
		}
		switch ev.Key() {
		case tcell.KeyUp, tcell.KeyDown, tcell.KeyPgUp, tcell.KeyPgDn, tcell.KeyHome, tcell.KeyEnd:
			if d.form != nil {
				d.body.InputHandler()(ev, func(tview.Primitive) {})
				return
			}
		}
		if h := d.frame.InputHandler(); h != nil {
			h(ev, setFocus)
		}
	}
}

// textKey reports whether ev edits text (and so belongs to the input
// line); it also restarts the typing guard.
func (d *dialog) textKey(ev *tcell.EventKey) bool {
	switch {
	case ev.Key() == tcell.KeyRune, ev.Key() == tcell.KeyBackspace, ev.Key() == tcell.KeyBackspace2,
		ev.Key() == tcell.KeyDelete, ev.Key() == tcell.KeyCtrlJ,
		ev.Key() == tcell.KeyEnter && ev.Modifiers()&(tcell.ModAlt|tcell.ModShift|tcell.ModCtrl) != 0:
		d.armAt = time.Now().Add(d.delay)
		return true
	}
	return false
}

// PasteHandler puts pasted text in the input line (restarting the typing
// guard): a dialog has no text to paste into, and nothing is lost.
func (d *dialog) PasteHandler() func(string, func(tview.Primitive)) {
	return func(text string, _ func(tview.Primitive)) {
		d.armAt = time.Now().Add(d.delay)
		d.paste(text)
	}
}

// typedAhead reports whether a key came too soon after the dialog opened
// or after the last text key: it was typed for the input line.
func (d *dialog) typedAhead() bool {
	return d.delay > 0 && time.Now().Before(d.armAt)
}

// MouseHandler passes clicks to the box and swallows the rest: the
// dialog is modal.
func (d *dialog) MouseHandler() func(tview.MouseAction, *tcell.EventMouse, func(tview.Primitive)) (bool, tview.Primitive) {
	return func(action tview.MouseAction, ev *tcell.EventMouse, setFocus func(tview.Primitive)) (bool, tview.Primitive) {
		if consumed, capture := d.frame.MouseHandler()(action, ev, setFocus); consumed {
			return true, capture
		}
		return true, nil
	}
}
