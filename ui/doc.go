// Package ui is certchat's chat window: a terminal UI built on tview and
// tcell that shows whom you talk to and how sure that is.
//
// The window has a list of chats on the left (name, trust badge, unread
// count, online state and path), the open conversation on the right (with
// timestamps, date dividers and each own message's delivery state), an
// input that grows with its lines and keeps a history, a title bar that spells out the open chat's
// trust state and fingerprint, and a status bar with the user's identity
// and how the node is reachable. Groups are chats of the list too
// (groupchat.go): a group's title sums up its members' trust, its
// messages show their senders and, on our own, how many members have
// them; replies, edits, deletions and reactions work in them as in a
// 1:1 chat (actions.go). Trust decisions — a first contact, a
// changed key, comparing safety numbers — are prompts, never silent.
//
// The UI sees the node only through [Backend], which *node.Node satisfies.
// History is read a page at a time, newest first, so a store with a
// hundred thousand messages opens at once.
//
// Text from peers — names and messages — is untrusted: control and format
// characters are removed before anything is drawn, and the UI draws it cell
// by cell, never through tview's tag parser (where tview widgets parse
// tags, the text is escaped with tview.Escape). The same holds for what
// reaches the terminal outside the screen: the bell, the title with the
// unread count and desktop notifications (notify.go) carry no byte a peer
// chose but printable text.
//
// # Parts
//
// [UI] is a coordinator: it lays out the widgets, runs the event loop,
// routes keys and the node's events, opens chats and loads their pages
// (app.go, events.go, send.go, the title and banner in bars.go). What
// the window does besides is done by parts, each a type that owns its
// state and the methods on it:
//
//   - actions (actions.go): the selected message and what is done to it
//     (edit, delete, reply, react), read markers sent, typing told.
//   - dialogs (dialog.go, prompts.go, quit.go): the open dialog, the
//     trust prompts and which first contacts were asked about, the quit
//     question.
//   - transfers (transfers.go, preview.go): what the window knows of each
//     file transfer, /send, /accept, /decline, /cancel, /files.
//   - attention (attention.go, with notify.go's notifier): the terminal's
//     focus, the bell, title and desktop notifications, muted chats.
//   - notices (notice.go): the notice line above the input.
//   - commands (commands.go, contacts.go, invite.go, groups.go,
//     complete.go): the table of /commands and the commands themselves,
//     Tab completion.
//   - finder (findplace.go, /search in commands.go): the key to the
//     "new messages" divider, the last /search and stepping through its
//     hits.
//   - statusLine (status.go, statusRows in bars.go, refreshRelays in
//     events.go): how the node is reachable (addresses, relay
//     reservations, LAN discovery), for the status bar.
//   - groupChats (groupchat.go, timeline.go): group chats in the list
//     and the pane: a group's history and sending to it, who changed its
//     membership (read from the node for the pane's timeline), its
//     members' trust (title, banner, what stops sending) and each
//     member's delivery of our messages; its group commands are the
//     commands part's (groups.go).
//
// The conversation view, convView (conversation.go), has parts too:
// placeFinder (findplace.go), the "new messages" divider, where to scroll
// once a page is loaded, and the search hit; timeline (timeline.go), the
// open group's membership changes and above which message each is shown.
//
// Each part embeds the *UI it belongs to (placeFinder the *convView): the
// coordinator's widgets and the node are shared, and a part reaches
// another part through the coordinator's field for it (u.notes, u.dlg,
// ...). A part's state is its own fields, changed by its methods; the
// coordinator wires the parts up and feeds them the node's events (it
// sets the status line's addresses and relays, and hides a notice in the
// chat it warns about), and a part reads another's state only to ask a
// question of it (is a dialog open, what are our addresses; /relay also
// keeps the reservations it read for the status line).
//
// # Goroutines
//
// Everything drawn, the coordinator's fields (but the ones under mu) and
// all the parts' state belong to tview's event-loop goroutine (the one in
// Application.Run): keys, mouse, draws, and every function handed to
// Application.QueueUpdateDraw run there, one at a time, so none of it
// is locked. Other goroutines touch none of it:
//
//   - the pump (events.go: pump, snapshot, nextBatch, prefetch, and
//     transfers.loadFiles) reads the node and hands each batch to the
//     event loop with post (QueueUpdateDraw), waiting for it to be
//     applied; its events come from Options.Events, a subscription
//     made before the node started, so what Start emitted is shown
//     too, or else from one Run makes;
//   - workers started with spawn (node calls that may block: connecting,
//     storing, a page of history, a search, a file call) use what was
//     copied for them before they start and the node, and hand their
//     results back with post;
//   - the screen's reader (screen.go) calls attention.focusChanged,
//     which only queues the change with QueueUpdateDraw;
//   - Quit may be called from any goroutine: it takes mu for the quitting
//     state, and the notifier has a mutex of its own for its close.
package ui
