package node_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certchat/certchat/transfer"
)

// Two real `chat daemon --json` processes send a file; the receiver is
// killed with SIGKILL half-way and started again: the transfer resumes
// from what it had made durable and the file ends right.
func TestFileDaemonsReceiverKilled(t *testing.T) {
	dir := shortDir(t)
	downloads := filepath.Join(dir, "dl")
	size, rate := 50<<20+777, "25MiB"
	if raceEnabled {
		size, rate = 36<<20+777, "12MiB"
	}
	path, data := writeFile(t, dir, "movie.mkv", size)
	bFlags := []string{"--downloads", downloads, "--auto-accept", "0"}
	// The sender is slowed down so that the kill lands half-way.
	p := startPair(t, dir, pairOpts{aFlags: []string{"--file-rate", rate}, bFlags: bFlags, bFixedPort: true})
	a, b := p.a, p.b

	acc := a.do("f1", map[string]any{"cmd": "send_file", "to": "bob", "path": path})
	id := acc.str("id")
	if acc.str("event") != "accepted" || len(id) != 32 || acc.str("to") != p.bID {
		t.Fatalf("send_file answer: %v", acc)
	}
	msg := b.waitEvent("the offer as a message", func(e event) bool { return e.str("event") == "message" && e.str("id") == id })
	if msg.str("text") != "[file] movie.mkv ("+fmtMiB(size)+")" {
		t.Errorf("the offer reads %q", msg.str("text"))
	}
	offer := b.waitEvent("file_offer", func(e event) bool { return e.str("event") == "file_offer" && e.str("id") == id })
	if offer.str("name") != "movie.mkv" || offer["size"] != float64(size) || offer.str("from") != p.aID || offer.str("trust") != "tofu" {
		t.Fatalf("offer: %v", offer)
	}
	b.do("a1", map[string]any{"cmd": "file_accept", "id": id})
	// Progress counts what the receiver made durable: every 16 MiB.
	durable := float64(transfer.SyncEvery * transfer.ChunkSize)
	b.waitEvent("16 MiB durable", func(e event) bool {
		bytes, _ := e["bytes"].(float64)
		return e.str("event") == "file_progress" && e.str("id") == id && bytes >= durable
	})
	b.kill9()
	if len(b.eventsOf("file_done")) != 0 {
		t.Fatal("the file was done before the kill")
	}
	b = startDaemon(t, "bob", p.bHome, p.bPort, bFlags...)
	// It resumes from what was durable, not from the start.
	resumed := b.waitEvent("progress after the restart", func(e event) bool { return e.str("event") == "file_progress" && e.str("id") == id })
	if bytes, _ := resumed["bytes"].(float64); bytes < durable {
		t.Errorf("resumed at %v bytes, not at the %v made durable", bytes, durable)
	}
	done := b.waitEvent("file_done", func(e event) bool { return e.str("event") == "file_done" && e.str("id") == id })
	if done.str("path") != filepath.Join(downloads, "movie.mkv") || done["size"] != float64(size) || len(done.str("sha256")) != 64 {
		t.Fatalf("file_done: %v", done)
	}
	got, err := os.ReadFile(done.str("path"))
	if err != nil || string(got) != string(data) {
		t.Fatalf("the received file differs (%d bytes, %v)", len(got), err)
	}
	a.waitEvent("file_done at the sender", func(e event) bool { return e.str("event") == "file_done" && e.str("id") == id })
	if left, _ := os.ReadDir(filepath.Join(downloads, transfer.PartialDir)); len(left) != 0 {
		t.Errorf("the partial folder still holds %d files", len(left))
	}
	// files lists it on both sides.
	for _, d := range []*daemon{a, b} {
		d.send(map[string]any{"cmd": "files", "ref": "l"})
		f := d.answer("l")
		if f.str("event") != "file" || f.str("id") != id || f.str("state") != "done" {
			t.Errorf("%s: files: %v", d.name, f)
		}
		if ok := d.answer("l"); ok.str("event") != "ok" {
			t.Errorf("%s: end of files: %v", d.name, ok)
		}
	}
	// Errors are answered.
	for _, tc := range []struct{ cmd map[string]any }{
		{map[string]any{"cmd": "file_accept", "id": "zz"}},
		{map[string]any{"cmd": "file_cancel", "id": id}}, // over
		{map[string]any{"cmd": "send_file", "to": "bob", "path": "relative.txt"}},
	} {
		tc.cmd["ref"] = "e"
		a.send(tc.cmd)
		if e := a.answer("e"); e.str("event") != "error" {
			t.Errorf("%v: %v", tc.cmd, e)
		}
	}
	// chat send --file goes through the running daemon and waits until
	// the peer has the file.
	note, _ := writeFile(t, dir, "note.txt", 1234)
	res := make(chan result, 1)
	go func() { res <- chat(t, "send", "--home", p.aHome, "--to", "bob", "--file", note, "--wait", "30s") }()
	offer = b.waitEvent("the second offer", func(e event) bool { return e.str("event") == "file_offer" && e.str("name") == "note.txt" })
	b.do("a2", map[string]any{"cmd": "file_accept", "id": offer.str("id")})
	if r := <-res; r.code != 0 || !strings.HasPrefix(r.stdout, "sent "+offer.str("id")) {
		t.Fatalf("chat send --file: %d %q %q", r.code, r.stdout, r.stderr)
	}
	a.quit()
	b.quit()
}

func fmtMiB(n int) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// The sender is killed with SIGKILL half-way and started again: the
// receiver goes on asking, and the file ends right.
func TestFileDaemonsSenderKilled(t *testing.T) {
	dir := shortDir(t)
	size := 40<<20 + 99
	path, data := writeFile(t, dir, "backup.tar", size)
	p := startPair(t, dir, pairOpts{
		aFlags: []string{"--file-rate", "16MiB"}, aFixedPort: true,
		bFlags: []string{"--downloads", filepath.Join(dir, "dl")}, verified: true,
	})
	a, b := p.a, p.b
	id := a.do("f1", map[string]any{"cmd": "send_file", "to": "bob", "path": path}).str("id")
	b.waitEvent("file_offer", func(e event) bool { return e.str("event") == "file_offer" && e.str("id") == id })
	b.do("a1", map[string]any{"cmd": "file_accept", "id": id})
	durable := float64(transfer.SyncEvery * transfer.ChunkSize)
	a.waitEvent("16 MiB acknowledged", func(e event) bool {
		bytes, _ := e["bytes"].(float64)
		return e.str("event") == "file_progress" && e.str("id") == id && bytes >= durable
	})
	a.kill9()
	a = startDaemon(t, "alice", p.aHome, p.aPort)
	done := b.waitEvent("file_done", func(e event) bool { return e.str("event") == "file_done" && e.str("id") == id })
	got, err := os.ReadFile(done.str("path"))
	if err != nil || string(got) != string(data) {
		t.Fatalf("the received file differs (%d bytes, %v)", len(got), err)
	}
	a.waitEvent("file_done at the sender", func(e event) bool { return e.str("event") == "file_done" && e.str("id") == id })
	a.quit()
	b.quit()
}
