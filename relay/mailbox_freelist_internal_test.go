package relay

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/boltfile/bolttest"
	bolt "go.etcd.io/bbolt"
)

// TestMailboxSmallWriteAfterFreedPages: a mailbox that freed many pages
// (envelopes fetched, an owner's mail swept) still commits a deposit-sized
// change in a few pages: bbolt keeps no freelist in the file
// (NoFreelistSync), which it would rewrite whole at every commit (48 KiB
// for 5,000 free pages), and rebuilds it at open.
func TestMailboxSmallWriteAfterFreedPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.db")
	m := mbOpen(t, path, MailboxLimits{}, &mbClock{t: time.Now()})
	bolttest.FreePages(t, m.db)
	n := bolttest.CommitBytes(t, func() error {
		return m.db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("freelist-test"))
			if err != nil {
				return err
			}
			return b.Put([]byte("k"), make([]byte, 500))
		})
	})
	if n > 6*4096 {
		t.Fatalf("a small change wrote %d bytes beside %d free pages, want at most 6 pages", n, m.db.Stats().FreePageN)
	}
	if err := m.close(); err != nil {
		t.Fatal(err)
	}
	m = mbOpen(t, path, MailboxLimits{}, &mbClock{t: time.Now()})
	defer m.close()
	if free := m.db.Stats().FreePageN; free < bolttest.FreedPages {
		t.Fatalf("opened again: %d free pages, want the %d freed", free, bolttest.FreedPages)
	}
}
