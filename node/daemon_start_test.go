package node_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/boltfile/bolttest"
	"github.com/certchat/certchat/store"
)

// What the node says while it starts is on the daemon's event stream:
// Node.Start sets going the puller of a file it resumes, the mailbox
// loops, the outbox, and reads the groups, and any of them may emit
// before Start returns. The daemon subscribes before Start; a daemon
// that subscribed after it lost those events for good.

// A receiver restarted half-way through a file whose sender is gone says
// that the file waits for the sender. The puller that resumes the file
// starts inside Start and tells it at once (the sender's address refuses
// the dial); its retries find the same notice and show nothing, so a
// notice missed then is never shown. (Subscribed after Start, the daemon
// lost it in 7 of 16 runs here: the puller and the daemon race.)
func TestDaemonRestartedShowsFileWaiting(t *testing.T) {
	dir := shortDir(t)
	path, _ := writeFile(t, dir, "slides.pdf", 24<<20+5)
	bFlags := []string{"--downloads", filepath.Join(dir, "dl")}
	p := startPair(t, dir, pairOpts{aFlags: []string{"--file-rate", "2MiB"}, bFlags: bFlags, bFixedPort: true, verified: true})
	a, b := p.a, p.b
	id := a.do("f1", map[string]any{"cmd": "send_file", "to": "bob", "path": path}).str("id")
	b.waitEvent("file_offer", func(e event) bool { return e.str("event") == "file_offer" && e.str("id") == id })
	b.do("a1", map[string]any{"cmd": "file_accept", "id": id})
	b.waitEvent("progress", func(e event) bool {
		bytes, _ := e["bytes"].(float64)
		return e.str("event") == "file_progress" && e.str("id") == id && bytes > 0
	})
	a.kill9()
	b.kill9()
	b = startDaemon(t, "bob", p.bHome, p.bPort, bFlags...)
	notice := fileNotice(b, id)
	if !strings.Contains(notice, "to come online to finish slides.pdf") || strings.Contains(notice, "\n") {
		t.Fatalf("files says the file waits with %q", notice)
	}
	shown := func() bool {
		for _, e := range b.eventsOf("file_progress") {
			if e.str("id") == id && e.str("notice") == notice {
				return true
			}
		}
		return false
	}
	for end := time.Now().Add(5 * time.Second); !shown(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("files says the file waits (%q), but the event stream never said so", notice)
		}
	}
	b.quit()
}

// fileNotice asks the daemon's files until the transfer id has a notice,
// and returns it.
func fileNotice(d *daemon, id string) string {
	d.t.Helper()
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		d.send(map[string]any{"cmd": "files", "ref": "files"})
		var notice string
		for e := d.answer("files"); e.str("event") == "file"; e = d.answer("files") {
			if e.str("id") == id {
				notice = e.str("notice")
			}
		}
		if notice != "" {
			return notice
		}
	}
	d.t.Fatalf("%s: transfer %s got no notice", d.name, id)
	return ""
}

// A group record that cannot be read is reported while the node starts
// (it reads the groups in Start): the daemon's stream says so with an
// error line. Subscribed after Start, the daemon lost it every time.
func TestDaemonShowsUnreadableGroupAtStart(t *testing.T) {
	dir := shortDir(t)
	home, _ := procHome(t, dir, "bob")
	startDaemon(t, "bob", home, 0).quit() // the database and its buckets
	bolttest.PutRecord(t, filepath.Join(home, store.FileName), "groups", []byte("not a group ID"), []byte("{}"))
	b := startDaemon(t, "bob", home, 0)
	e := b.waitEvent("the error about the groups", func(e event) bool { return e.str("event") == "error" })
	if !strings.Contains(e.str("error"), "some groups could not be read") {
		t.Errorf("the error reads %q", e.str("error"))
	}
	b.quit()
}
