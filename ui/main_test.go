package ui

import (
	"os"
	"testing"

	"github.com/certchat/certchat/internal/testproc"
)

// TestMain removes the chat binary the tmux tests build (testproc).
func TestMain(m *testing.M) { os.Exit(testproc.Run(m)) }
