package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/logcap"
)

// The handshake-lockout finding: an attacker made certchat write about
// 42 MB of log in 25 s, and the chat window's log was never rotated. The
// loggers of the window, the daemon and the relay now drop repeated lines
// and rotate their file at logcap.DefaultMaxSize.
func TestLogsBounded(t *testing.T) {
	for _, which := range []string{"window", "daemon --log"} {
		t.Run(which, func(t *testing.T) {
			h := identity.Home{Dir: t.TempDir()}
			path := h.Path("chat.log")
			c := &ctx{io: stdio{in: strings.NewReader(""), out: &bytes.Buffer{}, err: &bytes.Buffer{}}}
			open := func() (*slog.Logger, func()) {
				var log *slog.Logger
				var closeLog func()
				var err error
				if which == "window" {
					log, closeLog, err = openUILog(c, h)
				} else {
					c.opts.node.logFile = path
					log, closeLog, err = c.logger(os.Stderr)
				}
				if err != nil {
					t.Fatal(err)
				}
				return log, closeLog
			}

			log, closeLog := open()
			for range 100_000 {
				log.Warn("e2e handshake failed", "peer", "12D3KooWattacker")
			}
			closeLog()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			burst := logcap.DefaultLimits.Burst
			if n := strings.Count(string(data), "\n"); n != burst+1 || len(data) > (burst+1)*300 {
				t.Fatalf("%d lines, %d bytes for the flood", n, len(data))
			}
			if want := fmt.Sprintf(logcap.SuppressedFormat, 100_000-burst); !strings.Contains(string(data), want) {
				t.Errorf("no %q:\n%s", want, data)
			}

			// A full log file moves to chat.log.1 at the next line.
			if err := os.WriteFile(path, bytes.Repeat([]byte("old line\n"), logcap.DefaultMaxSize/9), 0o600); err != nil {
				t.Fatal(err)
			}
			log, closeLog = open()
			log.Info("after the rotation")
			closeLog()
			cur, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			old, err := os.Stat(path + ".1")
			if err != nil || old.Size() > logcap.DefaultMaxSize || !strings.Contains(string(cur), "after the rotation") || len(cur) > 1000 {
				t.Errorf("after a full file: %s is %d bytes, %s.1: %v", filepath.Base(path), len(cur), filepath.Base(path), err)
			}
		})
	}
}
