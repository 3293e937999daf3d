package node_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// testSeed is CERTCHAT_TEST_SEED if set, else a fresh one; tests log it
// so a failing run can be replayed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CERTCHAT_TEST_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CERTCHAT_TEST_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with CERTCHAT_TEST_SEED=%d)", seed, seed)
	return seed
}

// TestKill9Durability: what `send` accepted survives SIGKILL of the sender
// or of the receiver at any moment, and is delivered exactly once, in
// order, after restarts.
func TestKill9Durability(t *testing.T) {
	const (
		total  = 200
		window = 16 // send commands in flight
		aKills = 4
	)
	rng := rand.New(rand.NewPCG(testSeed(t), 0x6b696c6c))
	p := procContacts(t, shortDir(t))
	p.start(pairOpts{aFixedPort: true, bFixedPort: true})
	a, b := p.a, p.b
	aHome, bHome, aPort, bPort := p.aHome, p.bHome, p.aPort, p.bPort
	a.do("connect", map[string]any{"cmd": "connect", "addr": b.addr()})

	// Where alice dies: after k accepted sends plus a few milliseconds,
	// with up to window sends queued behind. Where bob dies: after he has
	// shown k messages in this run of the test.
	var killAt []int
	for len(killAt) < aKills {
		if k := 10 + rng.IntN(total-20); !slices.Contains(killAt, k) {
			killAt = append(killAt, k)
		}
	}
	slices.Sort(killAt)
	bobKillAt := 40 + rng.IntN(total-80)
	t.Logf("alice is killed after %v accepted sends, bob after %d messages", killAt, bobKillAt)

	var (
		accepted   []string              // message IDs, in the order accepted
		acceptedBy = map[string]string{} // ID → text
		bobEvents  []event               // message events of bob's earlier runs
		bobKilled  bool
		next       int // index of the next text to write
		inflight   int
	)
	text := func(i int) string { return fmt.Sprintf("m%03d", i) }
	handleA := func(e event) {
		switch e.str("event") {
		case "accepted":
			id := e.str("id")
			if _, dup := acceptedBy[id]; dup {
				t.Fatalf("message %s accepted twice", id)
			}
			if e.str("ref") != text(len(accepted)) {
				t.Fatalf("accepted %q, expected %q next", e.str("ref"), text(len(accepted)))
			}
			accepted = append(accepted, id)
			acceptedBy[id] = e.str("ref")
			inflight--
		case "error":
			if e.str("ref") != "" {
				t.Fatalf("send %s failed: %s", e.str("ref"), e.str("error"))
			}
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(accepted) < total {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d sends accepted in time", len(accepted), total)
		}
		for next < total && inflight < window {
			a.send(map[string]any{"cmd": "send", "ref": text(next), "to": "bob", "text": text(next)})
			next++
			inflight++
		}
		select {
		case e, ok := <-a.events:
			if !ok {
				t.Fatalf("alice exited: %v\n%s", a.exit, a.log())
			}
			handleA(e)
		case <-time.After(20 * time.Millisecond):
		}
		if len(killAt) > 0 && len(accepted) >= killAt[0] {
			killAt = killAt[1:]
			time.Sleep(time.Duration(rng.IntN(25)) * time.Millisecond)
			a.kill9()
			a.checkOutput()
			for e := range a.events { // printed before the kill: accepted
				handleA(e)
			}
			t.Logf("killed alice with %d accepted, %d queued in her stdin", len(accepted), inflight)
			next, inflight = len(accepted), 0 // resend what was not accepted
			a = startDaemon(t, "alice", aHome, aPort)
		}
		if !bobKilled && len(b.eventsOf("message")) >= bobKillAt {
			bobKilled = true
			b.kill9()
			b.checkOutput()
			bobEvents = append(bobEvents, b.eventsOf("message")...)
			t.Logf("killed bob after %d messages", len(bobEvents))
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
			b = startDaemon(t, "bob", bHome, bPort)
		}
	}
	if !bobKilled {
		b.kill9()
		bobEvents = append(bobEvents, b.eventsOf("message")...)
		t.Logf("killed bob after all sends, %d messages shown", len(bobEvents))
		b = startDaemon(t, "bob", bHome, bPort)
	}

	// Wait until alice's outbox is empty.
	for i := 0; ; i++ {
		h := a.do(fmt.Sprintf("h%d", i), map[string]any{"cmd": "history", "peer": "bob", "limit": 1000})
		var hist struct{ Messages historyJSON }
		remarshal(t, h, &hist)
		pending := 0
		for _, m := range hist.Messages {
			if m.Status != "delivered" {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still not delivered", pending)
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.quit()
	b.quit()
	bobEvents = append(bobEvents, b.eventsOf("message")...)

	out := chatHistory(t, aHome, "bob")
	in := chatHistory(t, bHome, "alice")
	var outIDs, inIDs []string
	for _, m := range out {
		if m.Dir != "out" || m.Status != "delivered" {
			t.Fatalf("alice's %s: %s %s", m.Text, m.Dir, m.Status)
		}
		outIDs = append(outIDs, m.ID)
	}
	for _, m := range in {
		inIDs = append(inIDs, m.ID)
	}
	// Bob has each of alice's messages exactly once, in her order. (Alice
	// may have stored a send whose "accepted" line the kill swallowed; it
	// is delivered like the others.)
	if !slices.Equal(inIDs, outIDs) {
		t.Fatalf("bob's history (%d) differs from alice's outbox order (%d)\n bob %v\nalice %v", len(inIDs), len(outIDs), inIDs, outIDs)
	}
	// Every accepted message is there, in the order accepted.
	pos := -1
	for i, id := range accepted {
		j := slices.Index(inIDs, id)
		if j < 0 {
			t.Fatalf("accepted message %s (%s) is not in bob's history", id, text(i))
		}
		if j <= pos {
			t.Fatalf("accepted message %s (%s) is out of order in bob's history", id, text(i))
		}
		pos = j
		if in[j].Text != text(i) {
			t.Fatalf("message %s has text %q, want %q", id, in[j].Text, text(i))
		}
	}
	if len(accepted) != total {
		t.Fatalf("%d accepted, want %d", len(accepted), total)
	}
	// Bob never announced a message twice, across all his runs.
	shown := map[string]int{}
	for _, e := range bobEvents {
		shown[e.str("id")]++
		if shown[e.str("id")] > 1 {
			t.Fatalf("bob emitted two message events for %s", e.str("id"))
		}
		if !slices.Contains(inIDs, e.str("id")) {
			t.Fatalf("bob announced %s, which is not in his history", e.str("id"))
		}
	}
	t.Logf("%d accepted, %d stored at alice, %d at bob, %d message events at bob", len(accepted), len(outIDs), len(inIDs), len(shown))
}
