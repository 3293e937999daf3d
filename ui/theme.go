package ui

import "github.com/gdamore/tcell/v2"

// theme is the styles the window draws with. It sticks to the 16 basic
// colours and the terminal's own background, so it reads on dark and light
// terminals alike.
type theme struct {
	text     tcell.Style // conversation text
	dim      tcell.Style // timestamps, hints, dividers
	me       tcell.Style // own name in the conversation
	them     tcell.Style // peer's name in the conversation
	bar      tcell.Style // title bar
	barDim   tcell.Style // secondary text on the title bar
	status   tcell.Style // status bar
	selected tcell.Style // the open chat in the chat list
	unread   tcell.Style // unread counts
	good     tcell.Style // verified, delivered, online
	warn     tcell.Style // unverified, queued, expiring
	bad      tcell.Style // key changed, failed, expired
	banner   tcell.Style // warning banner (changed key)
	notice   tcell.Style // banner for decisions to make
	info     tcell.Style // informational notices
	errStyle tcell.Style // error notices
}

func defaultTheme() theme {
	base := tcell.StyleDefault
	return theme{
		text:     base,
		dim:      base.Foreground(tcell.ColorGray),
		me:       base.Foreground(tcell.ColorTeal).Bold(true),
		them:     base.Foreground(tcell.ColorPurple).Bold(true),
		bar:      base.Background(tcell.ColorNavy).Foreground(tcell.ColorWhite),
		barDim:   base.Background(tcell.ColorNavy).Foreground(tcell.ColorSilver),
		status:   base.Background(tcell.ColorSilver).Foreground(tcell.ColorBlack),
		selected: base.Background(tcell.ColorNavy).Foreground(tcell.ColorWhite),
		unread:   base.Foreground(tcell.ColorYellow).Bold(true),
		good:     base.Foreground(tcell.ColorGreen),
		warn:     base.Foreground(tcell.ColorOlive),
		bad:      base.Foreground(tcell.ColorRed).Bold(true),
		banner:   base.Background(tcell.ColorMaroon).Foreground(tcell.ColorWhite).Bold(true),
		notice:   base.Background(tcell.ColorOlive).Foreground(tcell.ColorBlack),
		info:     base.Foreground(tcell.ColorTeal),
		errStyle: base.Foreground(tcell.ColorRed),
	}
}

// onBar keeps a style's foreground and attributes but puts it on bg's
// background, for coloured words on a bar.
func onBar(s, bg tcell.Style) tcell.Style {
	_, b, _ := bg.Decompose()
	return s.Background(b)
}
