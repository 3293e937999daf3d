package transfer_test

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/transfer"
)

// TestKilledReceiverResumes: a receiver process writing a file is killed
// (SIGKILL) halfway; the next run resumes from what was durable and
// needs again at most SyncEvery chunks beyond those it never had.
func TestKilledReceiverResumes(t *testing.T) {
	if os.Getenv("TRANSFER_CHILD") != "" {
		receiveHalf(t)
		return
	}
	killedReceiver(t, "TestKilledReceiverResumes", 0)
}

// TestKilledCheckpointingReceiverResumes: the same with a receiver that
// checkpoints every SyncEvery chunks as the node's does, while blocks
// are still being written past the page cache (a checkpoint does not
// wait for them): what the state lists is on disk and right, and the
// next run needs again at most SyncEvery chunks and the blocks that were
// being written at the last checkpoint.
func TestKilledCheckpointingReceiverResumes(t *testing.T) {
	if os.Getenv("TRANSFER_CHILD") != "" {
		receiveHalf(t)
		return
	}
	killedReceiver(t, "TestKilledCheckpointingReceiverResumes", transfer.BlocksUnlisted)
}

// killedReceiver runs test's child, which receives half a file, kills
// it, and resumes; the child checkpoints if unlisted (the chunks a
// checkpoint may leave to the next) is not zero.
func killedReceiver(t *testing.T, test string, unlisted int) {
	path, data, o := sent(t, "big.bin", (3*transfer.SyncEvery)*transfer.ChunkSize+5)
	downloads := t.TempDir()
	half := o.Chunks() / 2
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), "TRANSFER_CHILD=1", "TRANSFER_SRC="+path, "TRANSFER_DL="+downloads,
		"TRANSFER_OFFER="+hex.EncodeToString(o.Marshal()), fmt.Sprintf("TRANSFER_UPTO=%d", half),
		fmt.Sprintf("TRANSFER_CHECKPOINT=%v", unlisted != 0))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() && sc.Text() != "written" {
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the receiver was not killed")
	}

	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	need := 0
	for _, r := range p.Missing() {
		need += r[1] - r[0]
	}
	if p.Held() < int64(transfer.SyncEvery-unlisted)*transfer.ChunkSize {
		t.Errorf("after the kill, %d bytes kept; the state saved at %d chunks was lost", p.Held(), transfer.SyncEvery)
	}
	if lost := need - (o.Chunks() - half); lost < 0 || lost > transfer.SyncEvery+unlisted {
		t.Fatalf("after the kill, %d chunks are needed again beyond the %d never sent (at most %d)", lost, o.Chunks()-half, transfer.SyncEvery+unlisted)
	}
	t.Logf("killed after %d of %d chunks: %d needed again", half, o.Chunks(), need-(o.Chunks()-half))
	cs := chunks(t, path, o)
	finishMissing(t, p, cs, downloads, data)
}

// receiveHalf is the child: it writes the first chunks, says so, and
// waits to be killed.
func receiveHalf(t *testing.T) {
	raw, _ := hex.DecodeString(os.Getenv("TRANSFER_OFFER"))
	o, err := transfer.ParseOffer(raw)
	if err != nil {
		t.Fatal(err)
	}
	var upto int
	fmt.Sscan(os.Getenv("TRANSFER_UPTO"), &upto)
	cs := chunks(t, os.Getenv("TRANSFER_SRC"), o)
	p, err := transfer.OpenPartial(os.Getenv("TRANSFER_DL"), o)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint := os.Getenv("TRANSFER_CHECKPOINT") == "true"
	for i := range upto {
		if err := p.Write(i, cs[i]); err != nil {
			t.Fatal(err)
		}
		if checkpoint && (i+1)%transfer.SyncEvery == 0 {
			commit, _, err := p.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			if err := commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	fmt.Println("written")
	select {}
}

// TestDiskFull: a downloads folder on a small file system fills up: the
// error says so, what arrived stays, and the transfer finishes once
// there is room.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		testproc.SkipUnlessCI(t, "mounting a small file system needs root")
	}
	downloads := t.TempDir()
	mount := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			testproc.SkipUnlessCI(t, fmt.Sprintf("mount %s: %v: %s", strings.Join(args, " "), err, out))
		}
	}
	mount("-t", "tmpfs", "-o", "size=512k", "tmpfs", downloads)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", downloads).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})

	path, data, o := sent(t, "big.bin", 1<<20)
	cs := chunks(t, path, o)
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	var full error
	for i, c := range cs {
		if err := p.Write(i, c); err != nil {
			full = err
			break
		}
	}
	if !errors.Is(full, transfer.ErrDiskFull) || !strings.Contains(full.Error(), "kept for a later resume") {
		t.Fatalf("writing 1 MiB into 512 KiB: %v, want ErrDiskFull saying what is kept", full)
	}
	held := p.Held()
	if held == 0 {
		t.Fatal("nothing was kept")
	}
	if err := p.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	mount("-o", "remount,size=4m", downloads)
	p, err = transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Held() == 0 || p.Held() > held {
		t.Fatalf("after making room: %d bytes held, had %d before", p.Held(), held)
	}
	got := finishMissing(t, p, cs, downloads, data)
	if got != filepath.Join(downloads, "big.bin") {
		t.Errorf("placed at %s", got)
	}
}
