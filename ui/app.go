package ui

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/node"
)

// Options adjust the window.
type Options struct {
	// Screen to draw on; nil means the terminal.
	Screen tcell.Screen
	// LAN says LAN discovery runs, for the status bar.
	LAN bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Location is the time zone for timestamps; nil means time.Local.
	Location *time.Location
	// PageSize is how many messages a history page holds; 0 means 200.
	PageSize int
	// Logger receives what is worth a log line; nil discards.
	Logger *slog.Logger
	// DialogDelay is how long after opening, and after each key, a dialog
	// with buttons waits before keys act on it (keys typed meanwhile go to
	// the input line); 0 means DefaultDialogDelay, negative none.
	DialogDelay time.Duration
	// Notify says how the window calls for attention when a message
	// arrives while the user looks elsewhere.
	Notify NotifyOptions
	// Terminal receives the bell, title and desktop notification
	// sequences; nil means the terminal's tty (none with Screen set).
	Terminal io.Writer
	// SaveIndications keeps /seen and /typing for the next runs; nil:
	// they last for this run.
	SaveIndications func(e2e.Settings) error
	// Events is a subscription to the node's events made before the node
	// started (between node.New and Start): what Start emits before it
	// returns (the error "some groups could not be read", a resumed
	// file's notice, messages fetched from a mailbox) reaches the window
	// only so. Run reads it and closes it. Nil: Run subscribes, and the
	// window sees the events published from then on.
	Events *node.Subscription
}

// DefaultDialogDelay keeps a dialog that opens while the user types from
// taking the next letters as answers.
const DefaultDialogDelay = time.Second

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.PageSize <= 0 {
		o.PageSize = 200
	}
	if o.DialogDelay == 0 {
		o.DialogDelay = DefaultDialogDelay
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Notify.Env == nil {
		o.Notify.Env = os.Getenv
	}
}

// UI is the chat window. Create it with New and run it with Run; all its
// fields belong to the tview event loop, except those under mu.
type UI struct {
	b    Backend
	opts Options
	th   *theme
	log  *slog.Logger

	app    *tview.Application
	pages  *tview.Pages
	body   *tview.Flex // chat list | right column
	right  *tview.Flex // title, banner, conversation, notice, input
	list   *peerList
	title  *rowsView
	banner *rowsView
	note   *rowsView
	status *rowsView
	conv   *convView
	in     *input
	scr    *termScreen

	roster  *roster
	open    peer.ID
	myID    peer.ID
	myName  string
	myFP    string
	settled bool          // the first state is loaded
	ready   chan struct{} // closed after the first complete draw
	drawn   bool

	// The parts: each owns its state and the methods on it (doc.go).
	act   *actions    // selection, edit and reply, seen and typing (actions.go)
	dlg   *dialogs    // dialogs, trust prompts, the quit question (dialog.go, prompts.go, quit.go)
	xfer  *transfers  // files (transfers.go, preview.go)
	att   *attention  // bell, title, notifications, focus, muted chats (attention.go)
	notes *notices    // the notice line above the input (notice.go)
	cmds  *commands   // the /commands, Tab completion (commands.go)
	find  *finder     // the divider key, /search and its hits (findplace.go)
	stat  *statusLine // how the node is reachable, for the status bar (status.go)
	gc    *groupChats // group chats in the list and the pane (groupchat.go)

	ctx      context.Context // canceled on quit: ends pending node calls
	cancel   context.CancelFunc
	mu       sync.Mutex
	quitting bool
	quit     chan struct{}
	workers  sync.WaitGroup // goroutines that post to the event loop
	quitOnce sync.Once
}

// New builds the window for a node.
func New(b Backend, opts Options) *UI {
	opts.defaults()
	th := defaultTheme()
	id := b.Identity()
	u := &UI{
		b: b, opts: opts, th: &th, log: opts.Logger,
		roster: newRoster(),
		myID:   id.PeerID(), myName: oneLine(id.Name()), myFP: id.Fingerprint().Short(),
		ready: make(chan struct{}), quit: make(chan struct{}),
	}
	u.act = &actions{UI: u}
	u.dlg = &dialogs{UI: u, prompted: map[peer.ID]bool{}}
	u.xfer = &transfers{UI: u}
	u.att = &attention{UI: u, focused: true, muted: map[string]bool{}}
	u.notes = &notices{UI: u}
	u.cmds = &commands{UI: u}
	u.find = &finder{UI: u}
	u.stat = &statusLine{UI: u}
	for _, m := range opts.Notify.Muted {
		u.att.muted[m] = true
	}
	u.att.notify = newNotifier(opts.Terminal, opts.Notify, opts.Notify.Env, opts.Now, opts.Logger)
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.gc = &groupChats{UI: u}
	u.build()
	return u
}

// build lays out the widgets.
func (u *UI) build() {
	u.list = newPeerList(u.th, u.roster, func() peer.ID { return u.open }, u.openChat, u.gc.groupLine)
	u.title = newRowsView(u.th.bar, u.titleRows)
	u.banner = newRowsView(tcell.StyleDefault, u.bannerRows)
	u.note = newRowsView(tcell.StyleDefault, u.notes.noticeRows)
	u.status = newRowsView(u.th.status, u.stat.statusRows)
	u.conv = newConvView(u.th, u.opts.Location, u.opts.Now)
	u.xfer.initFiles()
	u.conv.needOlder = func() { u.loadPage(u.open, u.conv.oldestSeq()) }
	u.conv.senderName = u.dlg.nameOf
	u.conv.waitReason = u.dlg.waitReason
	u.conv.changes.text = u.gc.changeText
	u.conv.welcome = u.welcomeRows
	u.in = newInput(u.th, u.submit)
	u.in.emptied = u.att.inputEmptied
	u.right = tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.banner, 0, 0, false).
		AddItem(u.conv, 0, 1, false).
		AddItem(u.note, 0, 0, false).
		AddItem(u.in, 1, 0, true)
	u.body = tview.NewFlex().
		AddItem(u.list, 0, 0, false).
		AddItem(u.right, 0, 1, true)
	main := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(u.title, 1, 0, false).
		AddItem(u.body, 0, 1, true).
		AddItem(u.status, 1, 0, false)
	u.pages = tview.NewPages().AddPage("main", main, true, true)
	u.app = tview.NewApplication().EnableMouse(true).EnablePaste(true)
	if u.opts.Screen != nil {
		u.scr = &termScreen{Screen: u.opts.Screen, onFocus: u.att.focusChanged}
		u.app.SetScreen(u.scr)
	}
	u.app.SetRoot(u.pages, true).SetFocus(u.in)
	u.app.SetInputCapture(u.onKey)
	u.app.SetBeforeDrawFunc(u.layout)
	u.app.SetAfterDrawFunc(u.afterDraw)
	u.updatePlaceholder()
}

// layout sizes the parts for the screen before each draw: the chat list
// only where there is room, the banner and notice as tall as their text
// but never squeezing out the conversation.
func (u *UI) layout(scr tcell.Screen) bool {
	w, h := scr.Size()
	listW := 0
	if w >= 60 {
		listW = max(27, min(36, w/4))
	}
	u.body.ResizeItem(u.list, listW, 0)
	rw := w - listW
	room := max(0, h-4) // status, title, input and one conversation row stay
	bh := min(len(u.bannerRows(rw)), room)
	u.notes.noticeCap = max(1, min(maxNoticeRows, room-bh))
	nh := min(len(u.notes.noticeRows(rw)), room-bh)
	u.right.ResizeItem(u.banner, bh, 0)
	u.right.ResizeItem(u.note, nh, 0)
	u.right.ResizeItem(u.in, min(u.in.height(rw), 1+max(0, room-bh-nh)), 0)
	return false
}

// afterDraw closes ready after the first draw that shows the loaded state.
func (u *UI) afterDraw(tcell.Screen) {
	u.att.updateTitle()
	if !u.drawn && u.settled && (u.open == "" || u.conv.loaded) {
		u.drawn = true
		close(u.ready)
	}
}

// Run shows the window until the user quits (/quit, Ctrl+C) or Quit is
// called.
func (u *UI) Run() error {
	sub := u.opts.Events
	if sub == nil {
		sub = u.b.Subscribe()
	}
	defer sub.Close()
	if u.scr == nil {
		if err := u.att.openTerminal(); err != nil {
			return err
		}
	}
	u.spawn(func() { u.pump(sub) })
	err := u.app.Run()
	u.Quit()
	return err
}

// Quit closes the window. It may be called from any goroutine. Pending
// node calls are canceled; the window stays until the goroutines that
// report to it are done, so none of them is left waiting.
func (u *UI) Quit() {
	u.quitOnce.Do(func() {
		u.mu.Lock()
		u.quitting = true
		close(u.quit)
		u.mu.Unlock()
		u.cancel()
		go func() {
			u.workers.Wait()
			u.att.notify.close()
			u.app.Stop()
		}()
	})
}

// spawn runs f on its own goroutine unless the window is closing. f may
// use post to change what is shown.
func (u *UI) spawn(f func()) {
	u.mu.Lock()
	if u.quitting {
		u.mu.Unlock()
		return
	}
	u.workers.Add(1)
	u.mu.Unlock()
	go func() {
		defer u.workers.Done()
		f()
	}()
}

// post runs f on the event loop and redraws, unless the window is
// closing. It must be called from a spawned goroutine; it waits for f.
func (u *UI) post(f func()) bool {
	select {
	case <-u.quit:
		return false
	default:
	}
	u.app.QueueUpdateDraw(f)
	return true
}

// onKey handles the window's keys before the focused widget sees them.
func (u *UI) onKey(ev *tcell.EventKey) *tcell.EventKey {
	if ev.Key() == tcell.KeyCtrlC {
		u.dlg.ctrlC()
		return nil
	}
	if u.dlg.dialog != nil || u.dlg.asking != nil {
		return ev
	}
	if u.act.moveKey(ev) || u.conv.sel != (e2e.MessageID{}) && u.act.selectionKey(ev) {
		return nil
	}
	if ev.Key() == tcell.KeyEscape && u.act.compose != nil {
		u.act.compose = nil
		u.in.SetText("")
	}
	u.act.typed(ev)
	switch ev.Key() {
	case tcell.KeyTab, tcell.KeyCtrlN:
		if ev.Key() == tcell.KeyTab && u.xfer.completeSend() {
			return nil
		}
		if ev.Key() == tcell.KeyTab && u.cmds.tabComplete() {
			break
		}
		u.cycle(1)
	case tcell.KeyBacktab, tcell.KeyCtrlP:
		u.cycle(-1)
	case tcell.KeyPgUp:
		u.conv.scroll(u.conv.pageSize())
	case tcell.KeyPgDn:
		u.conv.scroll(-u.conv.pageSize())
	case tcell.KeyEscape:
		u.notes.notice = notice{}
		u.conv.find.highlight(0, "")
	case tcell.KeyF1:
		u.showHelp()
	case tcell.KeyRune:
		if ev.Modifiers()&tcell.ModAlt != 0 && (ev.Rune() == 'a' || ev.Rune() == 'A') {
			u.nextUnread()
			return nil
		}
		if ev.Modifiers()&tcell.ModAlt != 0 && u.find.findKey(ev.Rune()) {
			return nil
		}
		return ev
	default:
		return ev
	}
	return nil
}

// cycle opens the chat d places away in the list.
func (u *UI) cycle(d int) {
	if p, ok := u.roster.step(u.open, d); ok {
		u.openChat(p)
	}
}

// nextUnread opens the next chat with unread messages.
func (u *UI) nextUnread() {
	if p, ok := u.roster.nextUnread(u.open); ok {
		u.openChat(p)
		return
	}
	u.notes.inform("No unread messages.")
}

// openChat shows p's conversation, reading its newest page.
func (u *UI) openChat(p peer.ID) {
	c := u.roster.get(p)
	if c == nil || p == u.open {
		return
	}
	u.open = p
	u.notes.leaveNotice(p)
	u.act.stopTyping()
	u.act.compose = nil
	c.pinned = true
	u.roster.sort()
	u.conv.reset(c)
	u.loadPage(p, 0)
	if c.unread > 0 {
		c.unread = 0
		u.markRead(p)
	}
	if c.grp != nil {
		// The open group's senders' trust is what the title shows.
		u.gc.refreshMembers(c.grp.info)
		u.gc.loadChanges(c)
	}
	u.updatePlaceholder()
	u.app.SetFocus(u.in)
	u.dlg.maybeFirstContact(c)
}

// loadPage reads a page of p's history before seq (0: the newest).
func (u *UI) loadPage(p peer.ID, before uint64) {
	if c := u.roster.get(p); c != nil && c.grp != nil {
		u.gc.loadGroupPage(c, before)
		return
	}
	gen, limit := u.conv.gen, u.opts.PageSize
	u.conv.loading = true
	u.spawn(func() {
		page, err := u.b.History(p, before, limit)
		u.post(func() {
			if err != nil {
				u.conv.addPage(gen, nil, limit)
				u.notes.failAbout(p, "Could not read the conversation", err)
				return
			}
			if u.conv.addPage(gen, page, limit) {
				u.act.pageLoaded()
			}
		})
	})
}

// markRead clears p's unread count in the store.
func (u *UI) markRead(p peer.ID) {
	if c := u.roster.get(p); c != nil && c.grp != nil {
		u.gc.markGroupRead(c.grp.info.ID)
		return
	}
	u.spawn(func() {
		if err := u.b.MarkRead(p); err != nil {
			u.log.Warn("mark read", "peer", p, "err", err)
		}
	})
}

func (u *UI) updatePlaceholder() {
	if u.open == "" {
		u.in.setHints("/add INVITATION to start a chat; /id shows yours; /help",
			"/add INVITATION starts a chat; /id, /help", "/add, /id, /help", "/help")
		return
	}
	c := u.roster.get(u.open)
	if c.grp != nil {
		u.in.setHints("Message the group "+c.name()+" (Enter sends; /members, /help)",
			"Message the group "+c.name()+" (/members, /help)", "Message "+c.name()+" (/help)", "Message "+c.name(), "/help")
		return
	}
	u.in.setHints("Message "+c.name()+" (Enter sends; /help)", "Message "+c.name()+" (/help)", "Message "+c.name(), "/help")
}
