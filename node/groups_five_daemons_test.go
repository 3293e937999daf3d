package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/testproc"
)

// members reads a group event's members.
func members(e event) []string {
	var out []string
	for _, m := range e["members"].([]any) {
		out = append(out, m.(string))
	}
	slices.Sort(out)
	return out
}

// answers waits for the answers to the commands with refs, in any order.
func answers(d *daemon, refs ...string) map[string]event {
	d.t.Helper()
	got := map[string]event{}
	d.waitEvent(fmt.Sprintf("answers %q", refs), func(e event) bool {
		if r := e.str("ref"); slices.Contains(refs, r) {
			got[r] = e
		}
		return len(got) == len(refs)
	})
	return got
}

// groupOf asks d for the group gid and returns its event.
func groupOf(d *daemon, gid, ref string) event {
	d.t.Helper()
	d.send(map[string]any{"cmd": "groups", "ref": ref})
	var got event
	for {
		e := d.answer(ref)
		if e.str("event") == "ok" {
			break
		}
		if e.str("id") == gid {
			got = e
		}
	}
	if got == nil {
		d.t.Fatalf("%s does not hold the group", d.name)
	}
	return got
}

// Five real daemons on loopback (issue 13, point 7): carol reachable only
// through a real `chat relay`, dave offline for a while (what was sent
// meanwhile reaches him through his relay mailbox). Create, talk, make an
// admin, concurrent changes by two admins (converging on every member),
// a non-admin's add refused, a removed member who keeps sending refused,
// an impostor (not a member) refused, add, leave.
func TestGroupFiveDaemons(t *testing.T) {
	start := time.Now()
	r := testproc.StartRelay(t, testproc.RelayOptions{Args: []string{"--no-dht"}})
	dir := shortDir(t)
	names := []string{"alice", "bob", "carol", "dave", "erin"}
	homes, ids := map[string]string{}, map[string]string{}
	for _, n := range names {
		homes[n], ids[n] = procHome(t, dir, n)
	}
	flags := []string{"--relay", r.Addr, "--no-dht"}
	ds := map[string]*daemon{}
	for _, n := range names {
		if n == "carol" {
			ds[n] = spawnDaemon(t, n, homes[n], -1, append([]string{"--no-mdns", "--listen", "none"}, flags...)...)
		} else {
			ds[n] = spawnDaemon(t, n, homes[n], 0, append([]string{"--no-mdns"}, flags...)...)
		}
	}
	for _, n := range names {
		ds[n].waitListening()
	}
	alice, bob, carol, dave, erin := ds["alice"], ds["bob"], ds["carol"], ds["dave"], ds["erin"]
	if !strings.Contains(carol.addr(), "/p2p-circuit") { // listening at first on no address
		carol.waitEvent("carol's address through the relay", func(e event) bool {
			a, _ := e["addrs"].([]any)
			return e.str("event") == "listening" && len(a) > 0 && strings.Contains(fmt.Sprint(a[0]), "/p2p-circuit")
		})
	}
	ls := carol.eventsOf("listening")
	for _, a := range ls[len(ls)-1]["addrs"].([]any) {
		if !strings.Contains(fmt.Sprint(a), "/p2p-circuit") {
			t.Fatalf("carol is reachable otherwise than through the relay: %s", a)
		}
	}
	// Every command of this setup is sent at once, then the answers read.
	for _, a := range names {
		for _, b := range names {
			if a != b {
				ds[a].send(map[string]any{"cmd": "trust", "ref": "t" + b, "peer": ids[b]})
			}
		}
	}
	for _, a := range names {
		var refs []string
		for _, b := range names {
			if a != b {
				refs = append(refs, "t"+b)
			}
		}
		for r, e := range answers(ds[a], refs...) {
			if e.str("event") != "ok" {
				t.Fatalf("%s: %s: %v", a, r, e)
			}
		}
	}
	for i, a := range names {
		for _, b := range names[i+1:] {
			ds[a].send(map[string]any{"cmd": "connect", "ref": "c" + b, "addr": ds[b].addr()})
		}
	}
	for i, a := range names[:len(names)-1] {
		var refs []string
		for _, b := range names[i+1:] {
			refs = append(refs, "c"+b)
		}
		for r, e := range answers(ds[a], refs...) {
			if e.str("event") != "peer" {
				t.Fatalf("%s: %s: %v", a, r, e)
			}
		}
	}
	t.Logf("%d daemons up and connected after %s", len(ds), time.Since(start).Round(time.Millisecond))

	// Create and talk.
	g := alice.do("g", map[string]any{"cmd": "group_create", "name": "team", "members": []string{"bob", "carol", "dave"}})
	gid := g.str("id")
	for _, d := range []*daemon{bob, carol, dave} {
		d.waitEvent("the group", func(e event) bool { return e.str("event") == "group" && e.str("id") == gid && e["member"] == true })
	}
	hello := alice.do("s", map[string]any{"cmd": "send", "to": gid, "text": "hello team"}).str("id")
	for _, d := range []*daemon{bob, carol, dave} {
		m := d.waitEvent("hello", func(e event) bool { return e.str("event") == "message" && e.str("id") == hello })
		if m.str("from") != ids["alice"] || m.str("group") != gid {
			t.Fatalf("%s got %v", d.name, m)
		}
	}
	alice.waitEvent("hello delivered to all 3", func(e event) bool {
		return e.str("event") == "delivered" && e.str("id") == hello && e["delivered"] == 3.0 && e["members"] == 3.0
	})
	fromCarol := carol.do("s", map[string]any{"cmd": "send", "to": "team", "text": "carol, through the relay"}).str("id")
	for _, d := range []*daemon{alice, bob, dave} {
		d.waitEvent("carol's message", func(e event) bool { return e.str("event") == "message" && e.str("id") == fromCarol })
	}

	// An impostor: erin is not a member; her daemon does not know the
	// group, and nothing reaches the members.
	erin.send(map[string]any{"cmd": "send", "ref": "imp", "to": gid, "text": "I am in the team"})
	if e := erin.answer("imp"); e.str("event") != "error" {
		t.Fatalf("the impostor's send: %v", e)
	}

	// Bob becomes an admin. Dave goes offline.
	alice.do("a", map[string]any{"cmd": "group_admin", "group": gid, "peer": "bob"})
	for _, d := range []*daemon{bob, carol, dave} {
		d.waitEvent("bob an admin", func(e event) bool {
			return e.str("event") == "group" && e.str("id") == gid && len(e["admins"].([]any)) == 2
		})
	}
	dave.quit()
	away := bob.do("s", map[string]any{"cmd": "send", "to": gid, "text": "while dave is away"}).str("id")
	bob.waitEvent("queued for dave", func(e event) bool {
		return e.str("event") == "queued" && e.str("id") == away && e.str("to") == ids["dave"]
	})

	// Two admins change the group at once: alice adds erin, bob removes
	// carol. Every member ends with the same membership.
	alice.send(map[string]any{"cmd": "group_add", "ref": "x1", "group": gid, "peer": "erin"})
	bob.send(map[string]any{"cmd": "group_remove", "ref": "x2", "group": gid, "peer": "carol"})
	for _, x := range []struct {
		d   *daemon
		ref string
	}{{alice, "x1"}, {bob, "x2"}} {
		if e := x.d.answer(x.ref); e.str("event") != "group" {
			t.Fatalf("%s's change: %v", x.d.name, e)
		}
	}
	want := []string{ids["alice"], ids["bob"], ids["dave"], ids["erin"]}
	slices.Sort(want)
	converged := func(e event) bool {
		return e.str("event") == "group" && e.str("id") == gid && slices.Equal(members(e), want)
	}
	for _, d := range []*daemon{alice, bob, erin} {
		d.waitEvent("the merged membership", converged)
	}
	carol.waitEvent("her removal", func(e event) bool { return e.str("event") == "group" && e.str("id") == gid && e["member"] == false })
	version := groupOf(alice, gid, "v")["version"]
	for _, d := range []*daemon{bob, erin} {
		if e := groupOf(d, gid, "v"); !slices.Equal(members(e), want) || e["version"] != version {
			t.Fatalf("%s holds %v, alice %v at version %v", d.name, e, want, version)
		}
	}

	// The removed member keeps sending: refused.
	carol.send(map[string]any{"cmd": "send", "ref": "rm", "to": gid, "text": "still here"})
	if e := carol.answer("rm"); e.str("event") != "error" || !strings.Contains(e.str("error"), "not a member") {
		t.Fatalf("the removed member's send: %v", e)
	}
	// A non-admin tries to add: refused.
	erin.send(map[string]any{"cmd": "group_add", "ref": "na", "group": gid, "peer": "carol"})
	if e := erin.answer("na"); e.str("event") != "error" || !strings.Contains(e.str("error"), "admin") {
		t.Fatalf("erin's add: %v", e)
	}
	welcome := erin.do("s", map[string]any{"cmd": "send", "to": gid, "text": "hi, erin here"}).str("id")
	for _, d := range []*daemon{alice, bob} {
		d.waitEvent("erin's message", func(e event) bool { return e.str("event") == "message" && e.str("id") == welcome })
	}

	// Dave comes back: the changes and messages of his absence arrive
	// through his mailbox, and he holds the same membership.
	dave = startDaemon(t, "dave", homes["dave"], 0, flags...)
	var gotAway, gotWelcome, gotGroup bool
	dave.waitEvent("the messages and changes of his absence", func(e event) bool {
		gotAway = gotAway || e.str("event") == "message" && e.str("id") == away
		gotWelcome = gotWelcome || e.str("event") == "message" && e.str("id") == welcome
		gotGroup = gotGroup || converged(e)
		return gotAway && gotWelcome && gotGroup
	})
	bob.waitEvent("delivered to dave", func(e event) bool {
		return e.str("event") == "delivered" && e.str("id") == away && e.str("to") == ids["dave"]
	})

	// Erin leaves.
	erin.do("l", map[string]any{"cmd": "group_leave", "group": gid})
	for _, d := range []*daemon{alice, bob, dave} {
		d.waitEvent("erin's leave", func(e event) bool {
			return e.str("event") == "group" && e.str("id") == gid && len(e["members"].([]any)) == 3
		})
	}
	h := alice.do("h", map[string]any{"cmd": "history", "peer": gid})
	var bodies []string
	for _, m := range h["messages"].([]any) {
		bodies = append(bodies, fmt.Sprint(m.(map[string]any)["text"]))
	}
	if !slices.Contains(bodies, "hello team") || !slices.Contains(bodies, "while dave is away") || slices.Contains(bodies, "still here") || slices.Contains(bodies, "I am in the team") {
		t.Fatalf("alice's history: %q", bodies)
	}
	t.Logf("five daemons: %s", time.Since(start).Round(time.Millisecond))
}
