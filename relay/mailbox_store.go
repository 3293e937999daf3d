// The mailbox's bbolt layout (home/mailbox.db): the buckets, the records
// they hold and the helpers that read and write them.

package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The mailbox database (home/mailbox.db):
//
//	bundles      peer → its base prekey bundle (registration)
//	usage        peer → u32 items || u64 bytes
//	pairs        recipient || sender → u32 items from that sender
//	otec/<peer>  sequence → bundle carrying one X25519 one-time prekey
//	otkem/<peer> sequence → bundle carrying one ML-KEM one-time prekey
//	mail/<peer>  sequence → u64 deposited (Unix ms) || u32 len || from || envelope
//	seen         peer → u64 last use by its owner (Unix ms): publish, fetch, ack
//	regsrc, srccount, itemsrc: per source address and prefix (mailbox_sources.go)
//
// A mailbox whose owner has not used it for Idle is removed with all it
// holds, so registrations of peers that left do not fill MaxMailbox for
// ever. A client registers again whenever it makes a reservation.
var (
	bktSeen    = []byte("seen")
	bktBundles = []byte("bundles")
	bktUsage   = []byte("usage")
	bktOTEC    = []byte("otec")
	bktOTKEM   = []byte("otkem")
	bktMail    = []byte("mail")
	bktPairs   = []byte("pairs")
)

func decodeItem(id uint64, rec []byte) (mailbox.Item, bool) {
	if len(rec) < 12 {
		return mailbox.Item{}, false
	}
	n := int(binary.BigEndian.Uint32(rec[8:12]))
	if 12+n > len(rec) {
		return mailbox.Item{}, false
	}
	from, err := peer.IDFromBytes(rec[12 : 12+n])
	if err != nil {
		return mailbox.Item{}, false
	}
	return mailbox.Item{ID: id, From: from, Deposited: time.UnixMilli(int64(binary.BigEndian.Uint64(rec))), Envelope: rec[12+n:]}, true
}

func usage(tx *bolt.Tx, p peer.ID) (int, int64) {
	v := tx.Bucket(bktUsage).Get([]byte(p))
	if len(v) != 12 {
		return 0, 0
	}
	return int(binary.BigEndian.Uint32(v)), int64(binary.BigEndian.Uint64(v[4:]))
}

func setUsage(tx *bolt.Tx, p peer.ID, items int, size int64) error {
	v := binary.BigEndian.AppendUint32(nil, uint32(items))
	return tx.Bucket(bktUsage).Put([]byte(p), binary.BigEndian.AppendUint64(v, uint64(size)))
}

// pairKey is recipient || sender, each length-prefixed.
func pairKey(to, from peer.ID) []byte {
	k := append([]byte{byte(len(to))}, to...)
	return append(append(k, byte(len(from))), from...)
}

// pairCount is how many items from sender wait for recipient.
func pairCount(tx *bolt.Tx, to, from peer.ID) int {
	v := tx.Bucket(bktPairs).Get(pairKey(to, from))
	if len(v) != 4 {
		return 0
	}
	return int(binary.BigEndian.Uint32(v))
}

// addPair changes that count by delta, deleting it at zero.
func addPair(tx *bolt.Tx, to, from peer.ID, delta int) error {
	b := tx.Bucket(bktPairs)
	n := max(pairCount(tx, to, from)+delta, 0)
	if n == 0 {
		return b.Delete(pairKey(to, from))
	}
	return b.Put(pairKey(to, from), binary.BigEndian.AppendUint32(nil, uint32(n)))
}

// removeMailbox deletes p's registration and everything it holds.
func removeMailbox(tx *bolt.Tx, p peer.ID) error {
	k := []byte(p)
	if err := unregistered(tx, p); err != nil {
		return err
	}
	for _, b := range [][]byte{bktOTEC, bktOTKEM, bktMail, bktItemSrc} {
		if err := tx.Bucket(b).DeleteBucket(k); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
	}
	for _, b := range [][]byte{bktBundles, bktUsage, bktSeen} {
		if err := tx.Bucket(b).Delete(k); err != nil {
			return err
		}
	}
	prefix := append([]byte{byte(len(p))}, p...)
	c := tx.Bucket(bktPairs).Cursor()
	for pk, _ := c.Seek(prefix); pk != nil && bytes.HasPrefix(pk, prefix); pk, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	shares := shareKey(p, "")
	c = tx.Bucket(bktSrcCount).Cursor()
	for sk, _ := c.Seek(shares); sk != nil && bytes.HasPrefix(sk, shares); sk, _ = c.Seek(shares) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// countKeys counts a bucket's keys. (Bucket.Stats misses keys written in
// the same transaction.)
func countKeys(b *bolt.Bucket) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
