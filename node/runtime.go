package node

import (
	"os"
	"runtime/debug"
)

// GCPercent is the garbage collector's target for the daemon and the chat
// window, in GOGC's terms: a collection starts when the heap has grown by
// this percentage of what the last one left live. Go's default is 100.
//
// A node's live heap is small (the benchmark's sender in a group of 100:
// 7–9 MiB) while hundreds of goroutines (a read loop per session, an
// outbox worker per peer with messages waiting, libp2p's) allocate about
// 390 KiB for each message to that group (seals, frames, store
// transactions). At 100 the collector ran every 20 messages or so, each
// cycle about 10 ms of CPU: 0.7 ms of the sender's 6–9 ms a message. At
// 200 it runs half as often (0.4 ms a message; 400 saved no more CPU).
// What it costs is memory: the heap grows to three times the live heap
// between collections instead of twice, one live heap more; the sender's
// peak resident set went from 60 to 68.5 MiB at 100 members and from 92
// to 115 at 250 (BenchmarkGroupSend; docs/BENCHMARKS.md, "Groups",
// fifteenth round).
const GCPercent = 200

// SetGCPercent sets the garbage collector's target to GCPercent, unless
// the GOGC environment variable is set: then the runtime applied the
// user's setting at start, and it stays. cmd/chat calls it first thing
// for every command but the relay, whose live heap grows with its peers
// (tens of MiB at 1,000) and whose target is its memory.
func SetGCPercent() {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(GCPercent)
}
