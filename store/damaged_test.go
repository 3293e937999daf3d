package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/internal/boltfile/bolttest"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A damaged chat.db (truncated, or with flipped bytes in the pages bbolt
// reads) is refused by Open with a *store.DamagedError naming the file and
// the remedy: never a panic or a fault, never a silent fresh start, and
// the file is left byte for byte as it was.

// damagedSource is a healthy store with enough messages to have branch
// pages, closed; it returns the file and the peer talked to.
func damagedSource(t *testing.T, key []byte, n int) (string, peer.ID) {
	t.Helper()
	path := filepath.Join(t.TempDir(), store.FileName)
	s, err := store.Open(path, key)
	if err != nil {
		t.Fatal(err)
	}
	p := randomPeer(t)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var ms []*store.Message
	for i := range n {
		ms = append(ms, &store.Message{ID: e2e.NewMessageID(), Peer: p, Direction: store.Incoming,
			SentAt: at, StoredAt: at.Add(time.Duration(i) * time.Second), Body: fmt.Sprintf("message %d %s", i, strings.Repeat("x", 100))})
	}
	if err := s.Import(ms); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, p
}

// guarded runs f, turning a panic or a memory fault into an error, so that
// a case that crashes bbolt fails alone rather than ending the test binary
// (a fault in another goroutine or a stack overflow still ends it).
func guarded(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return f()
}

func TestOpenDamaged(t *testing.T) {
	key := storeKey(t)
	src, p := damagedSource(t, key, 400)
	t.Log(bolttest.Inspect(t, src))
	for _, c := range bolttest.Damages(t, src) {
		t.Run(c.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), store.FileName)
			bolttest.Write(t, path, c)
			var s *store.Store
			err := guarded(func() error {
				var err error
				if s, err = store.Open(path, key); err != nil {
					return err
				}
				// What the node and `chat history` read first.
				if _, err := s.Conversations(); err != nil {
					return err
				}
				_, err = s.History(p, 0, 1000)
				return err
			})
			if s != nil {
				s.Close()
			}
			if !c.Damaged {
				if err != nil {
					t.Fatalf("a consistent file is refused: %v", err)
				}
				return
			}
			if strings.HasPrefix(fmt.Sprint(err), "panic: ") {
				t.Fatalf("bbolt panicked: %v", err)
			}
			var de *store.DamagedError
			if !errors.As(err, &de) {
				t.Fatalf("Open: got %v, want a *store.DamagedError", err)
			}
			t.Log(err)
			if de.Path != path {
				t.Errorf("the error names %q, want %q", de.Path, path)
			}
			for _, want := range []string{path, "damaged", "restore it from a backup", "move it away"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error %q does not say %q", err, want)
				}
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !bytes.Equal(got, c.Data) {
				t.Errorf("Open changed the damaged file (%d bytes, was %d)", len(got), len(c.Data))
			}
		})
	}
}

// A store that is healthy still opens, and a missing file is created.
func TestOpenHealthyAfterCheck(t *testing.T) {
	key := storeKey(t)
	src, p := damagedSource(t, key, 50)
	s := openStore(t, src, key)
	ms, err := s.History(p, 0, 100)
	if err != nil || len(ms) != 50 {
		t.Fatalf("History: %d messages, %v", len(ms), err)
	}
}
