package ui

import (
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// maxHistory bounds the input history.
const maxHistory = 500

// input is the line the user types in. Enter submits; Up and Down recall
// what was typed before (the unsent draft is kept while browsing).
type input struct {
	*tview.InputField
	history []string
	pos     int    // position while browsing; len(history) is the draft
	draft   string // what was typed before browsing
	// submit handles a line; false keeps it in the input (refused).
	submit func(text string) bool
}

func newInput(th *theme, submit func(string) bool) *input {
	in := &input{InputField: tview.NewInputField(), submit: submit}
	in.SetLabel("› ").
		SetLabelStyle(th.me).
		SetFieldStyle(tcell.StyleDefault).
		SetPlaceholderStyle(th.dim)
	in.SetDoneFunc(func(key tcell.Key) {
		if key == tcell.KeyEnter {
			in.enter()
		}
	})
	in.SetInputCapture(in.capture)
	return in
}

// PasteHandler drops the line break a pasted line usually ends with:
// kept, it hid the pasted text in the one-row field and added a blank line
// to the message. Breaks inside the paste stay (messages may have lines).
func (in *input) PasteHandler() func(string, func(tview.Primitive)) {
	paste := in.InputField.PasteHandler()
	return func(text string, setFocus func(tview.Primitive)) {
		paste(strings.TrimRight(text, "\r\n"), setFocus)
	}
}

func (in *input) capture(ev *tcell.EventKey) *tcell.EventKey {
	switch ev.Key() {
	case tcell.KeyUp:
		in.recall(-1)
		return nil
	case tcell.KeyDown:
		in.recall(1)
		return nil
	}
	return ev
}

// enter submits the line and records it in the history.
func (in *input) enter() {
	text := in.GetText()
	if strings.TrimSpace(text) == "" {
		return
	}
	if n := len(in.history); n == 0 || in.history[n-1] != text {
		in.history = append(in.history, text)
		if len(in.history) > maxHistory {
			in.history = in.history[len(in.history)-maxHistory:]
		}
	}
	in.pos, in.draft = len(in.history), ""
	if in.submit(text) {
		in.SetText("")
	}
}

// recall moves through the history: d < 0 older, d > 0 newer.
func (in *input) recall(d int) {
	if len(in.history) == 0 {
		return
	}
	if in.pos == len(in.history) {
		in.draft = in.GetText()
	}
	in.pos = max(0, min(len(in.history), in.pos+d))
	if in.pos == len(in.history) {
		in.SetText(in.draft)
		return
	}
	in.SetText(in.history[in.pos])
}
