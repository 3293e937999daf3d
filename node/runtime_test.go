package node_test

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/certchat/certchat/node"
)

// TestSetGCPercent: the collector's target becomes GCPercent, unless the
// user set GOGC (which the runtime applied at start).
func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	t.Setenv("GOGC", "50")
	node.SetGCPercent()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: target %d, want it left at 100", got)
	}
	os.Unsetenv("GOGC") // t.Setenv puts it back after the test
	node.SetGCPercent()
	if got := debug.SetGCPercent(100); got != node.GCPercent {
		t.Errorf("without GOGC: target %d, want %d", got, node.GCPercent)
	}
}
