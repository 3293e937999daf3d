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

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/ui"
	"github.com/libp2p/go-libp2p/gologshim"
)

// openChat opens the chat window for the home's identity: it loads the
// identity (asking for the passphrase before the window takes the
// terminal), starts the node with the command's flags and runs the window
// until /quit, Ctrl+C or SIGTERM. Logs go to --log or home/chat.log, never
// to the terminal the window draws on.
func openChat(c *ctx, h identity.Home) error {
	logger, closeLog, err := openUILog(c, h)
	if err != nil {
		return err
	}
	defer closeLog()
	n, _, err := c.startNode(logger, !c.opts.node.noMDNS)
	if err != nil {
		return err
	}
	w := ui.New(n, ui.Options{LAN: !c.opts.node.noMDNS, Logger: logger})
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	go func() {
		<-sig.Done()
		w.Quit()
	}()
	runErr := w.Run()
	closeErr := n.Close()
	if runErr != nil {
		return fmt.Errorf("chat window: %w (it needs a terminal; `chat daemon` runs without one)", runErr)
	}
	return closeErr
}

// openUILog opens the window's log file and sends every library's logs
// there too: libp2p's, the standard logger's (quic-go warns through it)
// and slog's default, so nothing writes over the window.
func openUILog(c *ctx, h identity.Home) (*slog.Logger, func(), error) {
	path := c.opts.node.logFile
	if path == "" {
		if err := h.Ensure(); err != nil {
			return nil, nil, err
		}
		path = h.Path("chat.log")
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gologshim.SetDefaultHandler(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelWarn}))
	slog.SetDefault(logger)
	log.SetOutput(f)
	return logger, func() {
		log.SetOutput(io.Discard)
		f.Close()
	}, nil
}
