package certdht

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	ma "github.com/multiformats/go-multiaddr"
)

// The signed peer record (PROTOCOL §16.2). A node in client mode is in no
// routing table, so FindPeer would not find it once it is away from the
// servers that happen to be connected to it. It publishes instead a value:
// libp2p's signed peer record (a record envelope, domain
// "libp2p-peer-record", signed by the node's own key) listing its
// addresses, circuit addresses through its relays included, under
//
//	/certchat-peer/<hex SHA-256("certchat peer record v1" 0x00 epoch peerID)>
//
// where epoch is the UTC day (Unix time / 86400) as 8 bytes big-endian.
// The key changes every day, so the servers that hold a peer's record
// change too; anyone who knows the peer ID computes it.

// PeerRecordNamespace is the DHT namespace of signed peer records.
const PeerRecordNamespace = "certchat-peer"

// Epoch is the length of one record key's life.
const Epoch = 24 * time.Hour

// Limits on a peer record a DHT server accepts.
const (
	MaxRecordSize  = 4096
	MaxRecordAddrs = 32
)

// Errors of a peer record that does not validate.
var (
	ErrRecordKey       = errors.New("certdht: the key is not a certchat peer record key")
	ErrRecordMalformed = errors.New("certdht: malformed peer record")
	ErrRecordSigner    = errors.New("certdht: the peer record is not signed by its peer's key")
	ErrRecordEpoch     = errors.New("certdht: the peer record's key is not the peer's key for this day, the one before or the one after")
)

// EpochOf is the record epoch of t.
func EpochOf(t time.Time) int64 { return t.Unix() / int64(Epoch/time.Second) }

// RecordKey is the DHT key of p's peer record in an epoch.
func RecordKey(p peer.ID, epoch int64) string {
	h := sha256.New()
	h.Write([]byte("certchat peer record v1\x00"))
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], uint64(epoch))
	h.Write(e[:])
	h.Write([]byte(p))
	return "/" + PeerRecordNamespace + "/" + hex.EncodeToString(h.Sum(nil))
}

// SealPeerRecord signs a peer record of the key's peer with these
// addresses (at most MaxRecordAddrs of them) and a sequence number from
// the clock, so a newer record wins.
func SealPeerRecord(key crypto.PrivKey, addrs []ma.Multiaddr) ([]byte, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	rec := peer.PeerRecordFromAddrInfo(peer.AddrInfo{ID: id, Addrs: addrs[:min(len(addrs), MaxRecordAddrs)]})
	env, err := record.Seal(rec, key)
	if err != nil {
		return nil, fmt.Errorf("sign the peer record: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrRecordMalformed, len(b), MaxRecordSize)
	}
	return b, nil
}

// OpenPeerRecord checks a peer record's signature and bounds and returns
// it. It does not check the key it was found under (Validator does).
func OpenPeerRecord(value []byte) (*peer.PeerRecord, error) {
	if len(value) > MaxRecordSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrRecordMalformed, len(value), MaxRecordSize)
	}
	env, rec, err := record.ConsumeEnvelope(value, peer.PeerRecordEnvelopeDomain)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecordMalformed, err)
	}
	pr, ok := rec.(*peer.PeerRecord)
	if !ok {
		return nil, fmt.Errorf("%w: not a peer record", ErrRecordMalformed)
	}
	signer, err := peer.IDFromPublicKey(env.PublicKey)
	if err != nil || signer != pr.PeerID {
		return nil, ErrRecordSigner
	}
	if len(pr.Addrs) > MaxRecordAddrs {
		return nil, fmt.Errorf("%w: %d addresses, at most %d", ErrRecordMalformed, len(pr.Addrs), MaxRecordAddrs)
	}
	return pr, nil
}

// Validator is what DHT servers (and lookups) run on the values of the
// certchat-peer namespace: a value must be a peer record signed by its
// peer's key, stored under that peer's key for the day of Now, the day
// before or the day after (clocks differ; a record lives at most MaxRecordAge).
// Of several, the one with the highest sequence number wins.
type Validator struct {
	Now func() time.Time // nil: time.Now
}

// Validate implements record.Validator.
func (v Validator) Validate(key string, value []byte) error {
	if !strings.HasPrefix(key, "/"+PeerRecordNamespace+"/") {
		return ErrRecordKey
	}
	pr, err := OpenPeerRecord(value)
	if err != nil {
		return err
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	e := EpochOf(now())
	for _, d := range []int64{0, -1, 1} {
		if RecordKey(pr.PeerID, e+d) == key {
			return nil
		}
	}
	return ErrRecordEpoch
}

// Select implements record.Validator: the valid record with the highest
// sequence number (of equals, the smallest bytes, so every server picks
// the same). Values are validated already;
// one that does not open here loses.
func (v Validator) Select(_ string, vals [][]byte) (int, error) {
	best, bestSeq := -1, uint64(0)
	for i, val := range vals {
		pr, err := OpenPeerRecord(val)
		if err != nil {
			continue
		}
		if best < 0 || pr.Seq > bestSeq || pr.Seq == bestSeq && bytes.Compare(val, vals[best]) < 0 {
			best, bestSeq = i, pr.Seq
		}
	}
	if best < 0 {
		return 0, ErrRecordMalformed
	}
	return best, nil
}
