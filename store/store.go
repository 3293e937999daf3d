package store

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/boltfile"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/crypto/chacha20poly1305"
)

var (
	bktMeta    = []byte("meta")
	bktConvs   = []byte("convs")
	bktMsgs    = []byte("msgs")
	bktIDs     = []byte("ids")
	bktOutbox  = []byte("outbox")
	bktPeers   = []byte("peers")
	bktRatchet = []byte("ratchet")
	bktPending = []byte("pending")

	keyVersion     = []byte("version")
	keyKeyCheck    = []byte("keycheck")
	keyListenPorts = []byte("listen-ports")
	// keyDelivSealed marks a database whose group deliveries are sealed
	// (sealDeliveries).
	keyDelivSealed = []byte("gdeliv-sealed")
)

// version 5 keeps the group outbox by message (groups_queue.go).
// Version 4 keeps a group's counts apart from its record, under blinded
// keys (groups_counts.go). Version 3 added edits, deletions, reactions
// and replies (actions.go): new fields in message records and the
// pending bucket. Version 2 sealed conversation and peer records and
// messages whole; version 1 sealed message bodies only (migrate.go).
const version = 5

// FileName is the message database's name in a home.
const FileName = "chat.db"

// Store is the message database. Its methods are safe for concurrent use:
// bbolt serialises writers and lets readers run beside them.
type Store struct {
	db *bolt.DB
	sealer
	// blind blinds the keys that must not show what they name (a
	// group's counts), under a key derived from the storage key.
	blind *blinder
	// migrated: init updated a version 1 database (migrate.go); Open
	// then rewrites the file, so no page keeps what version 1 left
	// readable.
	migrated bool

	// wmu makes the write transactions of update, which bbolt runs one
	// at a time anyway, apply their changes to qindex in the order they
	// commit; qtx is the running one's queue changes (groups_queue.go).
	wmu    sync.Mutex
	qtx    atomic.Pointer[queueTx]
	qindex *queueIndex
}

// update runs fn in a write transaction and, once it is committed,
// applies what it changed in the group outbox to the index of it.
func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var qt *queueTx
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		qt, err = s.Groups().queue().inTx(tx, fn)
		return err
	})
	if err == nil && len(qt.sets) > 0 {
		s.qindex.apply(qt)
	}
	return err
}

// OpenIdentity opens the store at path with the key the identity derives
// for it: the one way both the node and one-shot commands open it.
func OpenIdentity(path string, id *identity.Identity) (*Store, error) {
	key, err := id.DeriveKey("storage")
	if err != nil {
		return nil, err
	}
	return Open(path, key)
}

// boltOptions are the options chat.db is opened with.
func boltOptions() *bolt.Options { return &bolt.Options{Timeout: time.Second, NoFreelistSync: true} }

// Open opens (creating if needed) the database at path with the storage
// key. ErrBusy: another process has it open; ErrWrongKey: it was written
// under another key; *DamagedError: the file is not a whole database
// (truncated, an empty file included, or bytes flipped in its structure),
// and it is left as it is.
func Open(path string, key []byte) (*Store, error) {
	// The freelist is not kept in the file (NoFreelistSync, as etcd and
	// containerd open theirs): bbolt would rewrite all of it at every
	// commit, and a database that freed many pages (a history deleted,
	// deliveries settled, a queue drained) then writes it with each small
	// change (TestSmallWriteAfterFreedPages). Open rebuilds it by walking
	// the file's pages, which boltfile reads anyway.
	db, err := boltfile.Open(path, 0o600, boltOptions())
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, ErrBusy
	}
	if err != nil {
		if err = damaged(path, err); !errors.As(err, new(*DamagedError)) {
			err = fmt.Errorf("open message database %s: %w", path, err)
		}
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		db.Close()
		return nil, err
	}
	blind, err := hkdf.Key(sha256.New, key, nil, "certchat store: blinded keys", 32)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, sealer: sealer{aead}, blind: &blinder{key: blind}, qindex: newQueueIndex()}
	if err := boltfile.Guard(path, s.init); err != nil {
		db.Close()
		return nil, damaged(path, err)
	}
	if s.migrated {
		if err := (migration{s}).compact(path); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("rewrite message database %s: %w", path, err)
		}
	}
	return s, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktMeta, bktConvs, bktMsgs, bktIDs, bktOutbox, bktPeers, bktRatchet, bktPending} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bktMeta)
		if err := s.checkKey(meta); err != nil {
			return err
		}
		switch v := meta.Get(keyVersion); {
		case v == nil, bytes.Equal(v, []byte{version}):
		case bytes.Equal(v, []byte{3}), bytes.Equal(v, []byte{2}):
			// Version 3 only added to version 2: the pending bucket
			// (made above) and fields version 2 records leave out. The
			// number changed so that an older program refuses the file
			// rather than showing edits and reactions as empty messages.
			// Version 4 moves the groups' counts out of their records.
			if err := s.Groups().counts().migrate(tx); err != nil {
				return fmt.Errorf("update the message database to version %d: %w", version, err)
			}
		case bytes.Equal(v, []byte{1}):
			if err := (migration{s}).migrate1(tx); err != nil {
				return fmt.Errorf("update the message database to version %d: %w", version, err)
			}
			s.migrated = true
		case bytes.Equal(v, []byte{4}):
			// Version 5 keeps the group outbox by message (gqueue),
			// moved below.
		default:
			return fmt.Errorf("message database version %v is newer than this program understands", v)
		}
		// Group deliveries were kept in the clear by the first programs
		// with groups, at version 3: sealed once, then marked.
		if meta.Get(keyDelivSealed) == nil {
			if err := s.Groups().sealDeliveries(tx); err != nil {
				return fmt.Errorf("seal the group deliveries: %w", err)
			}
			if err := meta.Put(keyDelivSealed, []byte{1}); err != nil {
				return err
			}
		}
		if err := s.Groups().queue().migrateGOutbox(tx); err != nil {
			return fmt.Errorf("update the message database to version %d: %w", version, err)
		}
		if err := meta.Put(keyVersion, []byte{version}); err != nil {
			return err
		}
		return s.qindex.load(s.Groups().queue(), tx)
	})
}

// checkKey makes sure the database was written with this key, marking a
// new one as such.
func (s *Store) checkKey(meta *bolt.Bucket) error {
	check := meta.Get(keyKeyCheck)
	if check == nil {
		return meta.Put(keyKeyCheck, s.seal([]byte("certchat"), []byte("keycheck")))
	}
	if _, err := s.open(check, []byte("keycheck")); err != nil {
		return ErrWrongKey
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// sealer seals the store's values under its key, each bound to where
// it is kept (its AD).
type sealer struct{ aead cipher.AEAD }

func (s sealer) seal(plain, ad []byte) []byte {
	// One allocation: nonce || plain, sealed in place (plain is copied
	// in, so a caller's buffer for it can stay on its stack).
	n := s.aead.NonceSize()
	out := make([]byte, n+len(plain), n+len(plain)+s.aead.Overhead())
	rand.Read(out[:n])
	copy(out[n:], plain)
	return s.aead.Seal(out[:n], out[:n], out[n:], ad)
}

func (s sealer) open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], ad)
}

// sealJSON seals v's JSON, bound to ad.
func (s sealer) sealJSON(v any, ad []byte) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.seal(plain, ad), nil
}

// openJSON opens a value sealed by sealJSON into v.
func (s sealer) openJSON(sealed, ad []byte, v any) error {
	plain, err := s.open(sealed, ad)
	if err != nil {
		return errors.New("it does not decrypt")
	}
	return json.Unmarshal(plain, v)
}
