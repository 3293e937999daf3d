package boltfile

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certchat/certchat/internal/boltfile/bolttest"
	bolt "go.etcd.io/bbolt"
)

// Every shape bbolt writes passes the check: nested and inline buckets,
// values spanning overflow pages, deletes (a freelist with pages), files
// without a synced freelist. A false alarm would lock a user out of a
// healthy database, so this runs many random transactions, checking after
// each against bbolt's own tx.Check.
func TestCheckAcceptsHealthy(t *testing.T) {
	for _, noFreelistSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoFreelistSync=%v", noFreelistSync), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			rng := rand.New(rand.NewPCG(1, 2))
			for round := range 40 {
				db, err := Open(path, 0o600, &bolt.Options{NoFreelistSync: noFreelistSync})
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				err = db.Update(func(tx *bolt.Tx) error {
					top, err := tx.CreateBucketIfNotExists([]byte(fmt.Sprintf("b%d", rng.IntN(4))))
					if err != nil {
						return err
					}
					for range rng.IntN(200) {
						k := []byte(fmt.Sprintf("k%05d", rng.IntN(3000)))
						switch rng.IntN(6) {
						case 0:
							top.Delete(k)
						case 1: // a small nested bucket stays inline
							nb, err := top.CreateBucketIfNotExists(append([]byte("n"), k...))
							if err != nil {
								return err
							}
							nb.Put([]byte("x"), []byte("y"))
						case 2: // a value over several pages
							top.Put(k, make([]byte, 4096*(1+rng.IntN(3))))
						default:
							top.Put(k, []byte(strings.Repeat("v", rng.IntN(300))))
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				db.View(func(tx *bolt.Tx) error {
					for err := range tx.Check() {
						t.Fatalf("round %d: bbolt's own check: %v", round, err)
					}
					return nil
				})
				db.Close()
				if err := Check(path, 0); err != nil {
					t.Fatalf("round %d: a healthy file is refused: %v", round, err)
				}
			}
			l := bolttest.Inspect(t, path)
			t.Log(l)
			if l.Branch < 0 {
				t.Error("the file never grew a branch page")
			}
		})
	}
}

// The damage cases on a plain bbolt file: Check refuses the damaged ones
// and accepts the others; Open leaves the file as it was.
func TestCheckDamages(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src.db")
	db, err := Open(src, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("b"))
		for i := range 1000 {
			b.Put([]byte(fmt.Sprintf("key %d", i)), []byte(strings.Repeat("v", 50)))
		}
		b.Delete([]byte("key 7"))
		return nil
	})
	db.Close()
	for _, c := range bolttest.Damages(t, src) {
		t.Run(c.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			bolttest.Write(t, path, c)
			err := Check(path, 0)
			var de *DamagedError
			if c.Damaged != errors.As(err, &de) {
				t.Fatalf("damaged %v, Check: %v", c.Damaged, err)
			}
			if !c.Damaged {
				return
			}
			if db, err := Open(path, 0o600, nil); err == nil || !errors.As(err, &de) || de.Path != path {
				if db != nil {
					db.Close()
				}
				t.Fatalf("Open: %v", err)
			}
			if got, _ := os.ReadFile(path); string(got) != string(c.Data) {
				t.Error("Open changed the file")
			}
		})
	}
}

// Guard turns a panic and a memory fault into a *DamagedError naming the
// file.
func TestGuard(t *testing.T) {
	err := Guard("f.db", func() error { panic("invalid page type") })
	var de *DamagedError
	if !errors.As(err, &de) || de.Path != "f.db" || !strings.Contains(err.Error(), "invalid page type") {
		t.Errorf("panic: got %v", err)
	}
	if err := Guard("f.db", func() error { return os.ErrClosed }); err != os.ErrClosed {
		t.Errorf("an error: got %v", err)
	}
}
