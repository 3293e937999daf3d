package transfer_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/transfer"
)

// TestDirectWrites: a large file's chunks, written past the page cache
// in blocks, in order, out of order, again, and one tampered in the
// middle of a block: each is held only once written, the state saved
// lists only what is on disk, and the file ends whole.
func TestDirectWrites(t *testing.T) {
	path, data, o := sent(t, "large.bin", (transfer.SyncEvery+40)*transfer.ChunkSize+9)
	cs := chunks(t, path, o)
	downloads := t.TempDir()
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && !p.DirectForTest() {
		t.Log("the file system does not allow O_DIRECT: the page cache path is tested")
	}
	var order []int
	for i := range 20 {
		order = append(order, i)
	}
	order = append(order, 40, 41, 30, 31, 32, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 33, 34, 35, 36, 37, 38, 39, 3, 31)
	for _, i := range order {
		if err := p.Write(i, cs[i]); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	bad := append([]byte(nil), cs[42]...)
	bad[100] ^= 1
	if err := p.Write(42, bad); !errors.Is(err, transfer.ErrTampered) {
		t.Fatalf("a tampered chunk: %v", err)
	}
	if got := p.Held(); got != 42*transfer.ChunkSize {
		t.Fatalf("held %d bytes, want %d", got, 42*transfer.ChunkSize)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Held(); got != 42*transfer.ChunkSize {
		t.Fatalf("after reopening: held %d bytes, want %d", got, 42*transfer.ChunkSize)
	}
	finishMissing(t, p, cs, downloads, data)
}

// TestDiskFullDirect: TestDiskFull for a file written past the page
// cache: a block that does not fit is written chunk by chunk, what fits
// is kept, and the rest comes after room is made.
func TestDiskFullDirect(t *testing.T) {
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
	mount("-t", "tmpfs", "-o", "size=6m", "tmpfs", downloads)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", downloads).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	path, data, o := sent(t, "big.bin", transfer.SyncEvery*transfer.ChunkSize+3*transfer.ChunkSize)
	cs := chunks(t, path, o)
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	if !p.DirectForTest() {
		t.Log("tmpfs does not allow O_DIRECT here: the page cache path is tested")
	}
	var full error
	for i, c := range cs {
		if err := p.Write(i, c); err != nil {
			full = err
			break
		}
	}
	if full == nil {
		full = p.Close()
	}
	if !errors.Is(full, transfer.ErrDiskFull) || !strings.Contains(full.Error(), "kept for a later resume") {
		t.Fatalf("writing 16 MiB into 6 MiB: %v, want ErrDiskFull saying what is kept", full)
	}
	if err := p.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, transfer.ErrDiskFull) {
		t.Fatal(err)
	}
	mount("-o", "remount,size=40m", downloads)
	p, err = transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	held := p.Held()
	if held < 2<<20 {
		t.Fatalf("after making room: %d bytes kept, want most of 6 MiB", held)
	}
	finishMissing(t, p, cs, downloads, data)
}

// TestCheckpointedWriteDoesNotSync: once the caller checkpoints, Write
// leaves the fsync to the next checkpoint (which runs beside the stream)
// instead of syncing in line on the very chunk the caller checkpoints
// at; a caller that never checkpoints still gets a sync every SyncEvery
// chunks. Both through the page cache and past it.
func TestCheckpointedWriteDoesNotSync(t *testing.T) {
	path, _, o := sent(t, "cp.bin", (transfer.SyncEvery+10)*transfer.ChunkSize)
	cs := chunks(t, path, o)
	for _, direct := range []bool{true, false} {
		transfer.SetDirectForTest(direct)
		for _, checkpoint := range []bool{true, false} {
			downloads := t.TempDir()
			p, err := transfer.OpenPartial(downloads, o)
			if err != nil {
				t.Fatal(err)
			}
			if checkpoint {
				commit, _, err := p.Checkpoint()
				if err != nil {
					t.Fatal(err)
				}
				if err := commit(); err != nil {
					t.Fatal(err)
				}
			}
			statePath := filepath.Join(downloads, transfer.PartialDir, o.ID.String()+".state")
			before, err := os.ReadFile(statePath)
			if err != nil {
				t.Fatal(err)
			}
			for i := range transfer.SyncEvery {
				if err := p.Write(i, cs[i]); err != nil {
					t.Fatal(err)
				}
			}
			after, err := os.ReadFile(statePath)
			if err != nil {
				t.Fatal(err)
			}
			if synced := !bytes.Equal(before, after); synced == checkpoint {
				t.Errorf("direct %v, checkpointed %v: Write synced by itself: %v", direct, checkpoint, synced)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	transfer.SetDirectForTest(true)
}

// TestDirectWriteFails: a block write past the page cache that fails for
// another reason than a full disk (a file system that opens with
// O_DIRECT but will not write so) is written through the page cache, and
// so is the rest of the file.
func TestDirectWriteFails(t *testing.T) {
	path, data, o := sent(t, "refused.bin", (transfer.SyncEvery+40)*transfer.ChunkSize+3)
	cs := chunks(t, path, o)
	downloads := t.TempDir()
	p, err := transfer.OpenPartial(downloads, o)
	if err != nil {
		t.Fatal(err)
	}
	if !p.DirectForTest() {
		t.Skip("the file system does not allow O_DIRECT")
	}
	p.BreakDirectForTest()
	for i, c := range cs {
		if err := p.Write(i, c); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	got, err := p.Finish(downloads)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, got, data)
}
