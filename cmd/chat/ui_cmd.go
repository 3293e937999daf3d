package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/logcap"
	"github.com/certchat/certchat/ui"
	"golang.org/x/term"
)

// openChat opens the chat window for the home's identity: it loads the
// identity (asking for the passphrase before the window takes the
// terminal), starts the node with the command's flags and runs the window
// until /quit, Ctrl+C or SIGTERM. Logs go to --log or home/chat.log, never
// to the terminal the window draws on.
func openChat(c *ctx, h identity.Home) error {
	// Said before the window takes the terminal; it is there again after.
	warning := c.warnReadableHome(h.Dir)
	notify, err := notifyOptions(h, c.opts.notify)
	if err != nil {
		return err
	}
	logger, closeLog, err := openUILog(c, h)
	if err != nil {
		return err
	}
	defer closeLog()
	if warning != "" {
		logger.Warn(warning)
	}
	// Subscribed before the node starts: the window shows what Start
	// emits too (startSubscribed).
	n, sub, home, err := c.startSubscribed(logger, !c.opts.node.noMDNS)
	if err != nil {
		return err
	}
	w := ui.New(n, ui.Options{LAN: !c.opts.node.noMDNS, Logger: logger, Notify: notify, Events: sub,
		SaveIndications: func(s e2e.Settings) error { return saveIndications(home, s) }})
	restore := saveTerminal()
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	closed := make(chan struct{})
	go func() {
		<-sig.Done()
		w.Quit()
		forceQuitAfter(closed, quitGrace, func() {
			logger.Error("the window did not close after a signal; exiting", "waited", quitGrace)
			n.Close()
			restore()
		})
	}()
	runErr := w.Run()
	close(closed)
	closeErr := n.Close()
	if runErr != nil {
		return fmt.Errorf("chat window: %w (it needs a terminal; `chat daemon` runs without one)", runErr)
	}
	return closeErr
}

// openUILog opens the window's log file and sends every library's logs
// there too: libp2p's, the standard logger's (quic-go warns through it)
// and slog's default, so nothing writes over the window. The file rotates
// at logcap.DefaultMaxSize to chat.log.1, and repeated lines are dropped
// (logcap): a peer must not fill the disk through our log.
func openUILog(c *ctx, h identity.Home) (*slog.Logger, func(), error) {
	path := c.opts.node.logFile
	if path == "" {
		if err := h.Ensure(); err != nil {
			return nil, nil, err
		}
		path = h.Path("chat.log")
	}
	f, err := logcap.OpenFile(path, logcap.DefaultMaxSize)
	if err != nil {
		return nil, nil, err
	}
	ours := logcap.NewHandler(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}), logcap.DefaultLimits)
	libs := logcap.NewHandler(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}), logcap.DefaultLimits)
	logger := slog.New(ours)
	stopGoLog := libLogsTo(libs)
	slog.SetDefault(logger)
	// The standard logger's lines become records of libs (no date of its
	// own: the handler writes the time).
	flags := log.Flags()
	log.SetFlags(0)
	log.SetOutput(slog.NewLogLogger(libs, slog.LevelWarn).Writer())
	return logger, func() {
		stopGoLog()
		log.SetOutput(io.Discard)
		log.SetFlags(flags)
		ours.Close()
		libs.Close()
		f.Close()
	}, nil
}

// quitGrace is how long the window may take to close after SIGTERM or
// SIGHUP. tview's Stop holds the application lock while tcell's Fini
// waits for its input loop, which can be blocked handing a key to the
// event loop that waits for that lock (a long paste arriving as keys):
// then the process would hang for ever, holding the home.
const quitGrace = 5 * time.Second

// forceQuitAfter exits the process unless closed closes within d; cleanup
// runs first (closing the node: every commit is already on disk).
func forceQuitAfter(closed <-chan struct{}, d time.Duration, cleanup func()) {
	select {
	case <-closed:
	case <-time.After(d):
		cleanup()
		os.Exit(1)
	}
}

// saveTerminal records the terminal's state so that a forced exit can
// give it back: out of raw mode, the alternate screen left, the cursor
// shown. Without a terminal it does nothing.
func saveTerminal() func() {
	fd := int(os.Stdin.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return func() {}
	}
	return func() {
		term.Restore(fd, state)
		os.Stdout.WriteString("\x1b[?1049l\x1b[?25h\n")
	}
}
