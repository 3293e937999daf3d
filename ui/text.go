package ui

import (
	"strings"

	"github.com/certchat/certchat/identity"
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/uniseg"
)

// span is a run of text in one style.
type span struct {
	text  string
	style tcell.Style
}

// line is one row of styled text.
type line []span

func (l line) width() int {
	w := 0
	for _, s := range l {
		w += textWidth(s.text)
	}
	return w
}

// oneLine is untrusted text cleaned for a single row.
func oneLine(s string) string { return identity.SanitizeText(s, false) }

// textWidth is the number of cells s takes.
func textWidth(s string) int { return uniseg.StringWidth(s) }

// truncate cuts s to at most w cells, ending it with "…" when cut.
func truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if textWidth(s) <= w {
		return s
	}
	var b strings.Builder
	used, state := 0, -1
	for s != "" {
		var cl string
		var cw int
		cl, s, cw, state = uniseg.FirstGraphemeClusterInString(s, state)
		if used+cw > w-1 {
			break
		}
		b.WriteString(cl)
		used += cw
	}
	b.WriteString("…")
	return b.String()
}

// wrap breaks s (no newlines) into rows of at most w cells, at spaces
// where it can and inside words where it must.
func wrap(s string, w int) []string {
	w = max(w, 1)
	var rows []string
	for {
		cut, lastSpace := fitPrefix(s, w)
		if cut == len(s) {
			return append(rows, s)
		}
		if lastSpace > 0 && s[cut] != ' ' { // a word ending at the edge fits whole
			cut = lastSpace
		}
		rows = append(rows, strings.TrimRight(s[:cut], " "))
		s = strings.TrimLeft(s[cut:], " ")
		if s == "" {
			return rows
		}
	}
}

// fitPrefix returns how many bytes of s fit in w cells (at least one
// grapheme cluster, so wrapping always advances) and the byte offset just
// after the last space among them (0 if none).
func fitPrefix(s string, w int) (cut, lastSpace int) {
	width, state, rest := 0, -1, s
	for rest != "" {
		var cl string
		var cw int
		cl, rest, cw, state = uniseg.FirstGraphemeClusterInString(rest, state)
		if width+cw > w && cut > 0 {
			break
		}
		width += cw
		cut += len(cl)
		if cl == " " {
			lastSpace = cut
		}
	}
	return cut, lastSpace
}

// wrapText wraps text with newlines: each paragraph separately.
func wrapText(s string, w int) []string {
	var rows []string
	for _, par := range strings.Split(s, "\n") {
		rows = append(rows, wrap(par, w)...)
	}
	return rows
}

// drawText draws s at (x, y), at most maxW cells, and returns the cells
// used. Text is drawn as it is: no tags are interpreted.
func drawText(scr tcell.Screen, x, y, maxW int, s string, st tcell.Style) int {
	used, state := 0, -1
	for s != "" && used < maxW {
		var cl string
		var cw int
		cl, s, cw, state = uniseg.FirstGraphemeClusterInString(s, state)
		if cw == 0 {
			continue
		}
		if used+cw > maxW {
			break
		}
		runes := []rune(cl)
		for i := 1; i < cw; i++ {
			scr.SetContent(x+used+i, y, ' ', nil, st)
		}
		scr.SetContent(x+used, y, runes[0], runes[1:], st)
		used += cw
	}
	return used
}

// drawLine draws styled spans at (x, y) within maxW cells.
func drawLine(scr tcell.Screen, x, y, maxW int, l line) int {
	used := 0
	for _, s := range l {
		used += drawText(scr, x+used, y, maxW-used, s.text, s.style)
	}
	return used
}

// fill paints w cells from (x, y) with spaces in style st.
func fill(scr tcell.Screen, x, y, w int, st tcell.Style) {
	for i := 0; i < w; i++ {
		scr.SetContent(x+i, y, ' ', nil, st)
	}
}

// wrapLine wraps styled spans to rows of w cells, keeping styles.
// Wrapping happens at spaces inside spans where possible.
func wrapLine(l line, w int) []line {
	var rows []line
	var cur line
	used := 0
	for _, s := range l {
		text := s.text
		for text != "" {
			room := w - used
			if textWidth(text) <= room {
				cur = append(cur, span{text, s.style})
				used += textWidth(text)
				break
			}
			cut, lastSpace := fitPrefix(text, max(room, 1))
			if lastSpace > 0 {
				cut = lastSpace
			} else if used > 0 {
				cut = 0 // start the word on a fresh row
			}
			if cut > 0 {
				cur = append(cur, span{strings.TrimRight(text[:cut], " "), s.style})
			}
			rows = append(rows, cur)
			cur, used = nil, 0
			text = strings.TrimLeft(text[cut:], " ")
		}
	}
	if len(cur) > 0 || len(rows) == 0 {
		rows = append(rows, cur)
	}
	return rows
}
