// Package logcap bounds what certchat's logs can cost: a peer that makes
// the node log the same warning in a loop must not fill the disk.
//
// Handler wraps a slog.Handler and, per (level, message), lets a burst of
// lines through in each window and drops the rest, writing one line "N
// similar lines suppressed" when the window ends. The number of pairs it
// tracks is capped; lines of pairs beyond the cap share one budget.
//
// File is a log file that rotates at a size: PATH and PATH.1 together
// never hold more than twice the cap.
//
// The chat window, the daemon and the relay (cmd/chat) log through both.
package logcap
