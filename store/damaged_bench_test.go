package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certchat/certchat/internal/boltfile"
	"github.com/certchat/certchat/store"
	bolt "go.etcd.io/bbolt"
)

// BenchmarkOpenCheck measures what checking chat.db at open costs on a
// store of 100,000 messages: boltfile.Check (what Open runs), a whole
// store.Open, and bbolt's own tx.Check for comparison (which Open does not
// run: it walks the pages through the mapping in a goroutine of its own,
// where a fault or a panic on a damaged page cannot be recovered).
func BenchmarkOpenCheck(b *testing.B) {
	key := make([]byte, 32)
	dir := b.TempDir()
	path := filepath.Join(dir, store.FileName)
	s, err := store.Open(path, key)
	if err != nil {
		b.Fatal(err)
	}
	p := randomPeer(b)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for chunk := range 10 {
		var ms []*store.Message
		for i := range 10000 {
			ms = append(ms, &store.Message{Peer: p, Direction: store.Incoming, SentAt: at,
				StoredAt: at.Add(time.Duration(chunk*10000+i) * time.Second), Body: "a message of ordinary length, some forty to eighty characters"})
			ms[len(ms)-1].ID[0], ms[len(ms)-1].ID[1], ms[len(ms)-1].ID[2] = byte(chunk), byte(i>>8), byte(i)
		}
		if err := s.Import(ms); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	b.Run("boltfile.Check", func(b *testing.B) {
		for b.Loop() {
			if err := boltfile.Check(path, time.Second); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store.Open", func(b *testing.B) {
		for b.Loop() {
			s, err := store.Open(path, key)
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("bbolt.tx.Check", func(b *testing.B) {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		for b.Loop() {
			db.View(func(tx *bolt.Tx) error {
				for err := range tx.Check() {
					b.Fatal(err)
				}
				return nil
			})
		}
	})
	st, _ := filepathStat(path)
	b.Logf("chat.db: %d bytes", st)
}

func filepathStat(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
