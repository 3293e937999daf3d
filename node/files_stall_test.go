//go:build unix

package node_test

import (
	"context"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A transfer cancelled while one of its small file's chunks is on its
// way to a relay that does not answer (stopped, SIGSTOP, until the test
// ends) stops being left at once: Cancel returns, the deposit in flight
// is given up, no chunk is left after the cancellation, and the
// transfer only says it is cancelled. Before, the deposit went on after
// Cancel returned, until the relay answered (the chunk of a cancelled
// transfer left in the mailbox) or the request's own timeout (20 s)
// ended it: the worker was still leaving the chunks when eventually
// gave up (15 s), 3 of 3 runs.
func TestFileMailingCancelledInFlight(t *testing.T) {
	mp := startMailboxPeers(t, nil)
	alice, bob, relay := mp.alice, mp.bob, mp.relay
	bob.Close()

	var left atomic.Int32 // chunks left at the relay
	firstLeft := make(chan struct{})
	alice.MailChunksForTest(func(_ context.Context, i int) {
		left.Add(1)
		if i == 0 { // the relay answers nothing more: the next chunk's deposit stalls
			if err := relay.Cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Error(err)
			}
			close(firstLeft)
		}
	})
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := relay.Cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume) // before the nodes close (cleanups run last first)
	fi, _ := sendSmallUntil(t, alice, bob.ID(), firstLeft)
	eventually(t, "the second chunk is on its way to the relay", func() bool {
		return mailboxStreams(alice, relay.Info.ID) > 0
	})

	cancelled := make(chan error, 1)
	go func() { cancelled <- alice.Files().Cancel(fi.ID) }()
	select {
	case err := <-cancelled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Cancel waits for the deposit in flight")
	}
	eventually(t, "alice stops leaving the chunks, the relay still stalled", func() bool { return !alice.MailingForTest(fi.ID) })
	if n := left.Load(); n != 1 {
		t.Errorf("%d chunks left at the relay, want 1 (the one left before the cancellation)", n)
	}

	resume()
	cancelledOnce(t, mp, fi, &left, nil)
}

// mailboxStreams counts tn's mailbox requests to relay now open.
func mailboxStreams(tn *testNode, relay peer.ID) int {
	n := 0
	for _, c := range tn.Host().Network().ConnsToPeer(relay) {
		for _, s := range c.GetStreams() {
			if s.Protocol() == mailbox.Protocol {
				n++
			}
		}
	}
	return n
}
