package ui

import (
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
	"github.com/rivo/uniseg"
)

// maxHistory bounds the input history.
const maxHistory = 500

// maxInputRows is how tall the input grows before it scrolls.
const maxInputRows = 8

// inputLabel starts the input's first row.
const inputLabel = "› "

// input is where the user composes. It grows with its text up to
// maxInputRows rows, then scrolls; long lines wrap. Enter submits;
// Alt+Enter (ESC CR, what most terminals send) and Ctrl+J (LF) insert a
// line break, as does a bracketed paste with line breaks. Up on the first
// row and Down on the last recall what was typed before (the unsent draft
// is kept while browsing); elsewhere they move between rows.
type input struct {
	*tview.TextArea
	history []string
	pos     int    // position while browsing; len(history) is the draft
	draft   string // what was typed before browsing
	// submit handles the text; false keeps it in the input (refused).
	submit func(text string) bool
	// emptied is called when the input becomes empty.
	emptied func()

	// The row count for a width, kept until the text changes.
	rowsW, rows int
	empty       bool
	inner       bool // a key passed on by the input itself

	// hints are what the empty input shows, longest first: Draw shows
	// the first that fits, so that a narrow window still says /help.
	hints []string
}

func newInput(th *theme, submit func(string) bool) *input {
	in := &input{TextArea: tview.NewTextArea(), submit: submit, rowsW: -1, empty: true}
	in.SetLabel(inputLabel)
	in.SetLabelStyle(th.me)
	in.SetTextStyle(tcell.StyleDefault)
	in.SetPlaceholderStyle(th.dim)
	in.SetBackgroundColor(tcell.ColorDefault)
	in.SetWrap(true).SetWordWrap(true)
	in.SetChangedFunc(in.changed)
	in.SetInputCapture(in.capture)
	return in
}

// setHints sets what the empty input shows: the first of hints that
// fits its width, else the last, cut.
func (in *input) setHints(hints ...string) {
	in.hints = hints
	in.SetPlaceholder(hints[0])
}

// Draw shows the longest hint that fits, then the text area.
func (in *input) Draw(screen tcell.Screen) {
	_, _, w, _ := in.GetInnerRect()
	w -= textWidth(inputLabel)
	for i, h := range in.hints {
		if textWidth(h) <= w || i == len(in.hints)-1 {
			in.SetPlaceholder(h)
			break
		}
	}
	in.TextArea.Draw(screen)
}

// SetText replaces the text, with the cursor at its end.
func (in *input) SetText(text string) { in.TextArea.SetText(text, true) }

func (in *input) changed() {
	in.rowsW = -1
	was := in.empty
	in.empty = in.GetTextLength() == 0
	if in.empty && !was && in.emptied != nil {
		in.emptied()
	}
}

// PasteHandler drops the line break a pasted text usually ends with:
// kept, it added a blank line to the message. Breaks inside the paste
// stay (messages may have lines).
func (in *input) PasteHandler() func(string, func(tview.Primitive)) {
	paste := in.TextArea.PasteHandler()
	return func(text string, setFocus func(tview.Primitive)) {
		text = strings.ReplaceAll(strings.TrimRight(text, "\r\n"), "\r\n", "\n")
		paste(text, setFocus)
	}
}

// insertNewline inserts a line break at the cursor.
func (in *input) insertNewline() { in.TextArea.PasteHandler()("\n", func(tview.Primitive) {}) }

// handle passes a key to the text area itself, past capture.
func (in *input) handle(ev *tcell.EventKey) {
	in.inner = true
	defer func() { in.inner = false }()
	in.TextArea.InputHandler()(ev, func(tview.Primitive) {})
}

func (in *input) capture(ev *tcell.EventKey) *tcell.EventKey {
	if in.inner {
		return ev
	}
	switch ev.Key() {
	case tcell.KeyEnter:
		if ev.Modifiers()&(tcell.ModAlt|tcell.ModShift|tcell.ModCtrl) != 0 {
			in.insertNewline()
			return nil
		}
		in.enter()
		return nil
	case tcell.KeyCtrlJ:
		in.insertNewline()
		return nil
	case tcell.KeyUp:
		if row, _, _, _ := in.GetCursor(); row <= 0 && ev.Modifiers() == tcell.ModNone {
			in.recall(-1)
			return nil
		}
	case tcell.KeyDown:
		if ev.Modifiers() != tcell.ModNone {
			return ev
		}
		// Down on the last row recalls; elsewhere it moves a row down.
		before, _, _, _ := in.GetCursor()
		in.handle(ev)
		if after, _, _, _ := in.GetCursor(); after == before {
			in.recall(1)
		}
		return nil
	case tcell.KeyTab, tcell.KeyBacktab, tcell.KeyEscape:
		return nil // the window's keys, never a tab character
	}
	return ev
}

// enter submits the text and records it in the history.
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

// height is how many rows the input wants at width w (its label
// included): one per wrapped row of its text, at most maxInputRows.
func (in *input) height(w int) int {
	if in.rowsW != w {
		in.rowsW, in.rows = w, wrappedRows(in.GetText(), w-textWidth(inputLabel), maxInputRows+1)
		if in.rows <= maxInputRows {
			// All of it fits: from its first row. (Text that came while
			// the input was shorter scrolled it.)
			in.SetOffset(0, 0)
		}
	}
	return min(in.rows, maxInputRows)
}

// wrappedRows counts the rows text takes at width w, wrapped as TextArea
// wraps with word wrapping (at line-break opportunities, inside words
// where it must), counting no further than limit.
func wrappedRows(text string, w, limit int) int {
	if w <= 0 {
		return 1
	}
	rows, lineW, sinceBreak, state := 1, 0, 0, -1
	canBreak, anyOnLine := false, false
	for text != "" && rows < limit {
		var cluster string
		var boundaries int
		cluster, text, boundaries, state = uniseg.StepString(text, state)
		cw := boundaries >> uniseg.ShiftWidth
		if cluster == "\t" {
			cw = tview.TabSize
		}
		lineW += cw
		sinceBreak += cw
		if lineW <= w {
			if boundaries&uniseg.MaskLine == uniseg.LineMustBreak && (text != "" || uniseg.HasTrailingLineBreakInString(cluster)) {
				rows++
				lineW, sinceBreak, canBreak, anyOnLine = 0, 0, false, false
				continue
			}
		} else if !canBreak {
			if anyOnLine {
				rows++
				lineW = cw
			}
		} else {
			rows++
			lineW, canBreak = sinceBreak, false
		}
		if boundaries&uniseg.MaskLine == uniseg.LineCanBreak {
			canBreak, sinceBreak = true, 0
		}
		anyOnLine = true
	}
	if text == "" && lineW >= w {
		rows++ // a full last row: the cursor after it takes the next
	}
	return min(rows, limit)
}
