package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/internal/boltfile"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Version 1 of the database sealed only message bodies: conversation and
// peer records, and each message's times, status and numbering, were
// readable JSON. migrate1 seals them as version 2 does, in the one
// transaction that opens the database, so a crash leaves version 1 whole.

// migration is the store's part that turns an older database into the
// current version; Open uses it, once.
type migration struct{ *Store }

// storedMessageV1 is a message record of version 1.
type storedMessageV1 struct {
	storedMessage
	Sealed []byte `json:"body"` // the body, sealed under bodyADv1
}

func bodyADv1(id e2e.MessageID, p peer.ID) []byte { return append(id[:], p...) }

func (s migration) migrate1(tx *bolt.Tx) error {
	for _, b := range []struct {
		name []byte
		ad   func(peer.ID) []byte
	}{{bktConvs, convAD}, {bktPeers, peerAD}} {
		if err := rewrite(tx.Bucket(b.name), func(k, v []byte) ([]byte, error) {
			return s.seal(v, b.ad(peer.ID(k))), nil
		}); err != nil {
			return err
		}
	}
	return tx.Bucket(bktMsgs).ForEachBucket(func(k []byte) error {
		p := peer.ID(k)
		return rewrite(tx.Bucket(bktMsgs).Bucket(k), func(sk, v []byte) ([]byte, error) {
			return s.migrateMessage(p, binary.BigEndian.Uint64(sk), v)
		})
	})
}

// migrateMessage turns a version 1 message record into version 2.
func (s migration) migrateMessage(p peer.ID, seq uint64, v []byte) ([]byte, error) {
	var old storedMessageV1
	if err := json.Unmarshal(v, &old); err != nil {
		return nil, corrupt(msgRecord(p, seq), err)
	}
	id, err := e2e.ParseMessageID(old.ID)
	if err != nil {
		return nil, corrupt(msgRecord(p, seq), err)
	}
	body, err := s.open(old.Sealed, bodyADv1(id, p))
	if err != nil {
		return nil, corrupt(msgRecord(p, seq), errors.New("the body does not decrypt"))
	}
	sm := old.storedMessage
	sm.Body = string(body)
	return s.sealMessage(p, seq, sm)
}

// rewrite replaces each value of b with f's (f returns nil: the value
// stays as it is): read first, then written, since a bucket may not
// change while it is iterated.
func rewrite(b *bolt.Bucket, f func(k, v []byte) ([]byte, error)) error {
	type kv struct{ k, v []byte }
	var all []kv
	err := b.ForEach(func(k, v []byte) error {
		if v == nil {
			return nil // a nested bucket
		}
		nv, err := f(k, v)
		if nv != nil {
			all = append(all, kv{append([]byte(nil), k...), nv})
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, e := range all {
		if err := b.Put(e.k, e.v); err != nil {
			return err
		}
	}
	return nil
}

// compact rewrites the database into a new file and puts it in place of
// the old one: bbolt leaves freed pages as they were, and after migrate1
// those still hold what version 1 kept readable. The copy is made while
// the old file is open and locked, then renamed over it, then opened.
// One window remains, once per home: a process that opened the old file
// while we held it and waited for its lock (Open waits a second) gets the
// old, unlinked file when we close it. Both processes of one home starting
// within that second of the update is what it takes.
func (s migration) compact(path string) error {
	tmp := path + ".rewrite"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dst, err := bolt.Open(tmp, 0o600, nil)
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, s.db, 0); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := s.db.Close(); err != nil {
		return err
	}
	s.db, err = boltfile.Open(path, 0o600, boltOptions())
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) { // some systems cannot sync a folder
		return err
	}
	return nil
}
