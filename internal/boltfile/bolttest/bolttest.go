// Package bolttest damages bbolt files the way disks, crashes and careless
// copies do, for the tests of the packages that open one, or run what
// does (store, relay, cmd/chat, node, ui). It is imported only from
// _test.go files.
//
// [Damages] takes a healthy database file's bytes and returns the cases:
// truncations at several sizes and flipped bytes in the pages bbolt reads
// first (the meta pages, the freelist, branch and leaf pages). Each case
// says whether a careful opener must refuse it (Damaged) or may open it
// (bbolt's own fallback to the previous meta page, a cut of unused space).
//
// [FreePages], [WrittenBytes] and [CommitBytes] are for tests of what a
// commit writes in a database that has freed many pages (freed.go).
//
// [PutRecord] writes a record its owner did not write into a closed file
// (record.go).
package bolttest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// Case is one way of damaging a file.
type Case struct {
	Name    string
	Data    []byte // the damaged file
	Damaged bool   // false: the file is still a consistent database
}

// The page layout of bbolt v1 files (go.etcd.io/bbolt/internal/common).
const (
	pageHeader   = 16 // id u64, flags u16, count u16, overflow u32
	elemSize     = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	metaOffset   = pageHeader
	metaTxid     = 48 // offset of txid within the meta
	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagFreelist = 0x10
)

// Layout is what the cases are built from: the page size, the high-water
// mark (pages in use) and a page of each kind.
type Layout struct {
	PageSize  int
	HWM       int // pages below it are in use
	Newest    int // the meta page (0 or 1) with the higher txid
	Freelist  int // -1: none
	Branch    int // -1: none
	Leaf      int
	FileBytes int
}

// Inspect reads the layout of the healthy database at path.
func Inspect(t testing.TB, path string) Layout {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := Layout{PageSize: db.Info().PageSize, Freelist: -1, Branch: -1, Leaf: -1}
	err = db.View(func(tx *bolt.Tx) error {
		l.HWM = int(tx.Size()) / l.PageSize
		for id := 2; id < l.HWM; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			switch {
			case p.Type == "freelist" && l.Freelist < 0:
				l.Freelist = id
			case p.Type == "branch" && l.Branch < 0:
				l.Branch = id
			case p.Type == "leaf" && l.Leaf < 0:
				l.Leaf = id
			}
			id += p.OverflowCount
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l.FileBytes = len(data)
	txid := func(i int) uint64 {
		return binary.LittleEndian.Uint64(data[i*l.PageSize+metaOffset+metaTxid:])
	}
	if txid(1) > txid(0) {
		l.Newest = 1
	}
	return l
}

// Damages returns the cases for the healthy database at path. The file
// should be large enough to have a branch page (a few hundred records);
// the branch cases are left out otherwise.
func Damages(t testing.TB, path string) []Case {
	t.Helper()
	l := Inspect(t, path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, used := l.PageSize, l.HWM*l.PageSize
	cut := func(n int) []byte { return append([]byte(nil), data[:n]...) }
	edit := func(f func(b []byte)) []byte {
		b := append([]byte(nil), data...)
		f(b)
		return b
	}
	page := func(b []byte, id int) []byte { return b[id*p : (id+1)*p] }
	cs := []Case{
		{"empty (0 bytes)", cut(0), true},
		{"half a page", cut(p / 2), true},
		{"one page", cut(p), true},
		{"the two meta pages only", cut(2 * p), true},
		{"mid-file", cut(used/2 + 123), true},
		{"last page cut", cut(used - p/2), true},
		{"last byte cut", cut(used - 1), true},
		{"newest meta page flipped (bbolt falls back to the previous one)", edit(func(b []byte) {
			page(b, l.Newest)[metaOffset+metaTxid] ^= 0x40
		}), false},
		{"both meta pages flipped", edit(func(b []byte) {
			page(b, 0)[metaOffset+metaTxid] ^= 0x40
			page(b, 1)[metaOffset+metaTxid] ^= 0x40
		}), true},
	}
	if l.FileBytes > used {
		cs = append(cs, Case{"unused space at the end cut", cut(used), false})
	}
	if l.Freelist >= 0 {
		cs = append(cs,
			Case{"freelist page type flipped", edit(func(b []byte) {
				page(b, l.Freelist)[8] = flagLeaf
			}), true},
			Case{"freelist lists a page past the end", edit(func(b []byte) {
				fl := page(b, l.Freelist)
				binary.LittleEndian.PutUint16(fl[10:], 1)
				binary.LittleEndian.PutUint64(fl[pageHeader:], uint64(l.HWM+1000))
			}), true},
		)
	}
	if l.Branch >= 0 {
		cs = append(cs,
			Case{"branch page type flipped", edit(func(b []byte) {
				page(b, l.Branch)[8] = 0x20
			}), true},
			Case{"branch page id flipped", edit(func(b []byte) {
				page(b, l.Branch)[0] ^= 0x01
			}), true},
			Case{"branch page points past the end", edit(func(b []byte) {
				binary.LittleEndian.PutUint64(page(b, l.Branch)[pageHeader+8:], uint64(l.HWM+100000))
			}), true},
			Case{"branch page points to itself", edit(func(b []byte) {
				binary.LittleEndian.PutUint64(page(b, l.Branch)[pageHeader+8:], uint64(l.Branch))
			}), true},
			Case{"branch page count too large", edit(func(b []byte) {
				binary.LittleEndian.PutUint16(page(b, l.Branch)[10:], 0xfff0)
			}), true},
		)
	}
	if l.Leaf >= 0 {
		cs = append(cs,
			Case{"leaf element points outside its page", edit(func(b []byte) {
				binary.LittleEndian.PutUint32(page(b, l.Leaf)[pageHeader+4:], 0x7fffff00)
			}), true},
			Case{"leaf page type flipped", edit(func(b []byte) {
				page(b, l.Leaf)[8] = flagBranch | flagLeaf
			}), true},
		)
	}
	return cs
}

// Write writes c's file at path (creating its folder), replacing what is
// there.
func Write(t testing.TB, path string, c Case) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, c.Data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// String is a line about l for test logs.
func (l Layout) String() string {
	return fmt.Sprintf("page size %d, %d pages in use, file %d bytes, newest meta %d, freelist page %d, branch page %d, leaf page %d",
		l.PageSize, l.HWM, l.FileBytes, l.Newest, l.Freelist, l.Branch, l.Leaf)
}
