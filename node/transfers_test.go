package node_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
)

// writeFile writes size random bytes to dir/name.
func writeFile(t testing.TB, dir, name string, size int) (string, []byte) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// fileNodes starts a sender and a receiver that trust each other, the
// receiver's downloads in a folder of its own, connected.
func fileNodes(t *testing.T, change func(*node.Config)) (alice, bob *testNode, downloads string) {
	t.Helper()
	downloads = t.TempDir()
	alice = startNode(t, newHome(t, "alice"))
	bob = startNodeWith(t, newHome(t, "bob"), func(c *node.Config) {
		c.Downloads = downloads
		if change != nil {
			change(c)
		}
	})
	trustEachOther(t, alice, bob)
	if _, err := connect(t, alice, bob); err != nil {
		t.Fatal(err)
	}
	return alice, bob, downloads
}

// sendAccepted has from send the file at path to to, waits up to d for
// to's offer event and accepts it: the transfer's first steps.
func sendAccepted(t *testing.T, from, to *testNode, path string, d time.Duration) node.FileInfo {
	t.Helper()
	fi, err := from.Files().Send(to.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	to.waitFile(node.EventFileOffer, fi.ID, d)
	if err := to.Files().Accept(fi.ID); err != nil {
		t.Fatal(err)
	}
	return fi
}

// waitFile waits for a file event of kind about id, for up to d.
func (tn *testNode) waitFile(kind node.EventKind, id transfer.ID, d time.Duration) node.FileInfo {
	tn.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case e, ok := <-tn.sub.C:
			if !ok {
				tn.t.Fatalf("events closed while waiting for %s", kind)
			}
			if debugFiles {
				tn.t.Logf("event %s %+v %+v %s", e.Kind, e.File, e.Message, e.Err)
			}
			if e.File != nil && e.File.ID == id && e.Kind == kind {
				return *e.File
			}
			if e.File != nil && e.File.ID == id && e.Kind == node.EventFileFailed && kind != node.EventFileFailed {
				tn.t.Fatalf("%s: transfer failed while waiting for %s: %s", tn.ID(), kind, e.File.Error)
			}
		case <-timeout:
			tn.t.Fatalf("%s: timed out waiting for %s of %s", tn.ID(), kind, id)
		}
	}
}

// fileSize is the big file of the tests: 50 MiB, less under the race
// detector (which makes hashing and sealing some ten times slower).
func fileSize() int {
	if raceEnabled {
		return 6<<20 + 12345
	}
	return 50<<20 + 12345
}

func checkReceived(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes differ from the %d sent", path, len(got), len(want))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, not 0600", path, st.Mode().Perm())
	}
}

func TestFileDirect(t *testing.T) {
	alice, bob, downloads := fileNodes(t, nil)
	path, data := writeFile(t, t.TempDir(), "big.bin", fileSize())
	fi, err := alice.Files().Send(bob.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	offer := bob.waitFile(node.EventFileOffer, fi.ID, 15*time.Second)
	if offer.Name != "big.bin" || offer.Size != int64(len(data)) || offer.Peer != alice.ID() || offer.Trust == "" {
		t.Fatalf("offer %+v", offer)
	}
	if err := bob.Files().Accept(fi.ID); err != nil {
		t.Fatal(err)
	}
	done := bob.waitFile(node.EventFileDone, fi.ID, 2*time.Minute)
	if done.Path != filepath.Join(downloads, "big.bin") {
		t.Errorf("placed at %s", done.Path)
	}
	checkReceived(t, done.Path, data)
	// A file this big is offered without its SHA-256, which comes sealed
	// at the end; both sides then report it.
	sum := sha256.Sum256(data)
	if fi.SHA256 != ([32]byte{}) || done.SHA256 != sum {
		t.Errorf("SHA-256 %x when offered, %x when received; want none, then %x", fi.SHA256, done.SHA256, sum)
	}
	if sent := alice.waitFile(node.EventFileDone, fi.ID, 15*time.Second); sent.SHA256 != sum {
		t.Errorf("the sender reports SHA-256 %x, want %x", sent.SHA256, sum)
	}
	// The offer is in both histories, and survives.
	for _, tn := range []*testNode{alice, bob} {
		other := bob.ID()
		if tn == bob {
			other = alice.ID()
		}
		eventually(t, "the history shows the file", func() bool {
			return slices.ContainsFunc(historyBodies(t, tn, other), func(b string) bool { return strings.HasPrefix(b, "[file] big.bin") })
		})
	}
	files, err := alice.Files().List()
	if err != nil || len(files) != 1 || files[0].State != store.TransferDone {
		t.Fatalf("alice's files: %+v, %v", files, err)
	}
}

// TestFileTamperedChunk changes a byte of some chunks on the way: each is
// refused, fetched again, and the file still ends right.
func TestFileTamperedChunk(t *testing.T) {
	alice, bob, _ := fileNodes(t, nil)
	var mu sync.Mutex
	tampered := map[int]bool{}
	alice.TamperFilesForTest(func(i int, sealed []byte) {
		mu.Lock()
		defer mu.Unlock()
		if (i == 0 || i == 5) && !tampered[i] {
			tampered[i] = true
			sealed[len(sealed)/2] ^= 1
		}
	})
	path, data := writeFile(t, t.TempDir(), "t.bin", 9*transfer.ChunkSize+7)
	fi := sendAccepted(t, alice, bob, path, 15*time.Second)
	done := bob.waitFile(node.EventFileDone, fi.ID, time.Minute)
	checkReceived(t, done.Path, data)
	mu.Lock()
	defer mu.Unlock()
	if len(tampered) != 2 {
		t.Fatalf("tampered with %d chunks", len(tampered))
	}
}

// TestFileTamperedSum changes the sealed SHA-256 at the end of a file
// offered without it: the receiver refuses it, asks again, and the file
// ends right.
func TestFileTamperedSum(t *testing.T) {
	alice, bob, _ := fileNodes(t, func(c *node.Config) { c.AutoAcceptFiles = 1 << 30 })
	if err := bob.Contacts().Trust(alice.ID(), true); err != nil {
		t.Fatal(err)
	}
	size := int(node.MailboxFileMax) + 3*transfer.ChunkSize + 11
	chunks := (size + transfer.ChunkSize - 1) / transfer.ChunkSize
	var sums atomic.Int32
	alice.TamperFilesForTest(func(i int, sealed []byte) {
		if i == chunks && sums.Add(1) == 1 {
			sealed[7] ^= 1
		}
	})
	path, data := writeFile(t, t.TempDir(), "sum.bin", size)
	fi, err := alice.Files().Send(bob.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	done := bob.waitFile(node.EventFileDone, fi.ID, time.Minute)
	checkReceived(t, done.Path, data)
	if n := sums.Load(); n < 2 {
		t.Fatalf("the sealed sum was sent %d times: the tampered one was taken", n)
	}
	if done.SHA256 != sha256.Sum256(data) {
		t.Errorf("SHA-256 %x", done.SHA256)
	}
}

// TestFileHostileNames: the name an offer carries never leaves the
// downloads folder, hides, or shows control characters.
func TestFileHostileNames(t *testing.T) {
	alice, bob, downloads := fileNodes(t, func(c *node.Config) { c.AutoAcceptFiles = 1 << 20 })
	if err := bob.Contacts().Trust(alice.ID(), true); err != nil {
		t.Fatal(err)
	}
	path, data := writeFile(t, t.TempDir(), "x", 100)
	for _, tc := range []struct{ name, want string }{
		{"../../.bashrc", "bashrc"},
		{"evil\x1b[2J\u202egpj.exe", "evil[2Jgpj.exe"},
		{"..", "file"},
		{"/etc/passwd", "passwd"},
	} {
		fi, err := alice.SendFileNamedForTest(bob.ID(), path, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		done := bob.waitFile(node.EventFileDone, fi.ID, 30*time.Second)
		if done.Path != filepath.Join(downloads, tc.want) {
			t.Errorf("%q placed at %q, want %q", tc.name, done.Path, tc.want)
		}
		checkReceived(t, done.Path, data)
	}
}

func TestFileDeclined(t *testing.T) {
	alice, bob, downloads := fileNodes(t, nil)
	path, _ := writeFile(t, t.TempDir(), "no.bin", 1000)
	fi, err := alice.Files().Send(bob.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	bob.waitFile(node.EventFileOffer, fi.ID, 15*time.Second)
	if err := bob.Files().Cancel(fi.ID); err != nil {
		t.Fatal(err)
	}
	failed := alice.waitFile(node.EventFileFailed, fi.ID, 15*time.Second)
	if failed.State != store.TransferDeclined {
		t.Errorf("alice sees %s (%s)", failed.State, failed.Error)
	}
	if err := bob.Files().Accept(fi.ID); !errors.Is(err, node.ErrTransferOver) {
		t.Errorf("accepting a declined file: %v", err)
	}
	if left, _ := os.ReadDir(downloads); len(left) > 1 {
		t.Errorf("downloads holds %d entries", len(left))
	}
}

// TestFileCancelledBySender: the sender cancels after the receiver
// accepted; the receiver hears, stops and keeps nothing.
func TestFileCancelledBySender(t *testing.T) {
	alice, bob, downloads := fileNodes(t, nil)
	path, _ := writeFile(t, t.TempDir(), "c.bin", 1000)
	fi, err := alice.Files().Send(bob.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	bob.waitFile(node.EventFileOffer, fi.ID, 15*time.Second)
	if err := alice.Files().Cancel(fi.ID); err != nil {
		t.Fatal(err)
	}
	failed := bob.waitFile(node.EventFileFailed, fi.ID, 15*time.Second)
	if failed.State != store.TransferCancelled {
		t.Errorf("bob sees %s (%s)", failed.State, failed.Error)
	}
	if err := bob.Files().Accept(fi.ID); !errors.Is(err, node.ErrTransferOver) {
		t.Errorf("accepting a cancelled file: %v", err)
	}
	part, _ := os.ReadDir(filepath.Join(downloads, transfer.PartialDir))
	if len(part) != 0 {
		t.Errorf("the partial folder holds %d files", len(part))
	}
}

const debugFiles = false

// slowFile has alice send bob, connected, a 40 MiB file named name at 8
// MiB/s, which he accepts into downloads.
func slowFile(t *testing.T, name string) (alice, bob *testNode, fi node.FileInfo, downloads string) {
	t.Helper()
	downloads = t.TempDir()
	alice = startNodeWith(t, newHome(t, "alice"), func(c *node.Config) { c.FileRate = 8 << 20 })
	bob = startNodeWith(t, newHome(t, "bob"), func(c *node.Config) { c.Downloads = downloads })
	trustEachOther(t, alice, bob)
	if _, err := connect(t, alice, bob); err != nil {
		t.Fatal(err)
	}
	path, _ := writeFile(t, t.TempDir(), name, 40<<20)
	return alice, bob, sendAccepted(t, alice, bob, path, 15*time.Second), downloads
}

// TestFileCancelledWhileMoving: the sender cancels half-way; the receiver
// stops, keeps nothing, and a new offer of the same file still arrives.
func TestFileCancelledWhileMoving(t *testing.T) {
	alice, bob, fi, downloads := slowFile(t, "slow.bin")
	alice.waitFor("the transfer moving", func(e node.Event) bool {
		return e.Kind == node.EventFileProgress && e.File.ID == fi.ID && e.File.State == store.TransferActive
	})
	if err := alice.Files().Cancel(fi.ID); err != nil {
		t.Fatal(err)
	}
	failed := bob.waitFile(node.EventFileFailed, fi.ID, 15*time.Second)
	if failed.State != store.TransferCancelled {
		t.Errorf("bob sees %s (%s)", failed.State, failed.Error)
	}
	eventually(t, "the partial file is gone", func() bool {
		part, _ := os.ReadDir(filepath.Join(downloads, transfer.PartialDir))
		return len(part) == 0
	})
	if left, _ := os.ReadDir(downloads); len(left) > 1 {
		t.Errorf("downloads holds %d entries", len(left))
	}
}

// TestFileToEach offers one file to two peers (what a group send does):
// each gets its own transfer and the whole file; an empty file too.
func TestFileToEach(t *testing.T) {
	alice := startNode(t, newHome(t, "alice"))
	var peers []*testNode
	for _, name := range []string{"bob", "carol"} {
		peers = append(peers, startNodeWith(t, newHome(t, name), func(c *node.Config) {
			c.Downloads = t.TempDir()
			c.AutoAcceptFiles = 1 << 20
		}))
	}
	trustEachOther(t, alice, peers[0], peers[1])
	for _, p := range peers {
		if err := p.Contacts().Trust(alice.ID(), true); err != nil {
			t.Fatal(err)
		}
	}
	for _, size := range []int{300 << 10, 0} {
		path, data := writeFile(t, t.TempDir(), fmt.Sprintf("shared-%d.bin", size), size)
		fis, err := alice.Files().SendToEach([]peer.ID{peers[0].ID(), peers[1].ID()}, path)
		if err != nil {
			t.Fatal(err)
		}
		if len(fis) != 2 || fis[0].ID == fis[1].ID || fis[0].SHA256 != fis[1].SHA256 {
			t.Fatalf("offers %+v", fis)
		}
		for i, p := range peers {
			done := p.waitFile(node.EventFileDone, fis[i].ID, 30*time.Second)
			checkReceived(t, done.Path, data)
		}
	}
}
