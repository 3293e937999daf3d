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
// them. Trust decisions — a first contact, a
// changed key, comparing safety numbers — are prompts, never silent.
//
// The UI sees the node only through [Backend], which *node.Node satisfies.
// Everything the UI draws is owned by the tview event loop goroutine; node
// calls that may block (connecting, storing a message, reading a page of
// history, searching) run on their own goroutines and hand their results
// back with Application.QueueUpdateDraw. History is read a page at a time,
// newest first, so a store with a hundred thousand messages opens at once.
//
// Text from peers — names and messages — is untrusted: control and format
// characters are removed before anything is drawn, and the UI draws it cell
// by cell, never through tview's tag parser (where tview widgets parse
// tags, the text is escaped with tview.Escape). The same holds for what
// reaches the terminal outside the screen: the bell, the title with the
// unread count and desktop notifications (notify.go) carry no byte a peer
// chose but printable text.
package ui
