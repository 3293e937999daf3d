package relay_test

import (
	"os"
	"testing"

	"github.com/certchat/certchat/internal/testproc"
)

// TestMain removes the chat binary that the process tests (`chat relay`
// run by testproc.StartRelay) build.
func TestMain(m *testing.M) { os.Exit(testproc.Run(m)) }
