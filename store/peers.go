package store

import (
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// PeerRecord is what we remember of a peer between runs.
type PeerRecord struct {
	Name     string    `json:"name,omitempty"`
	Addrs    []string  `json:"addrs,omitempty"`
	LastSeen time.Time `json:"last_seen,omitempty"`
	CertDER  []byte    `json:"cert,omitempty"`
	// Intermediates are the rest of the chain the peer presented with
	// CertDER, so that its trust can be evaluated again at any time
	// against the CAs trusted then. (No verdict is stored: trust is never
	// taken from a flag written when other CAs were trusted.)
	Intermediates [][]byte `json:"intermediates,omitempty"`
}

func peerRecord(p peer.ID) string { return fmt.Sprintf("peers/%s", p) }

// peerAD binds a sealed peer record to its peer.
func peerAD(p peer.ID) []byte { return append([]byte("peers/"), p...) }

// Peer reads one peer record; false if there is none.
func (s *Store) Peer(p peer.ID) (PeerRecord, bool, error) {
	var r PeerRecord
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktPeers).Get([]byte(p))
		if v == nil {
			return nil
		}
		found = true
		if err := s.openJSON(v, peerAD(p), &r); err != nil {
			return corrupt(peerRecord(p), err)
		}
		return nil
	})
	if err != nil {
		return PeerRecord{}, false, err
	}
	return r, found, nil
}

// PutPeer stores a peer record.
func (s *Store) PutPeer(p peer.ID, r PeerRecord) error {
	v, err := s.sealJSON(r, peerAD(p))
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bktPeers).Put([]byte(p), v) })
}

// Peers lists the stored peer records. A record that does not parse is
// left out and reported in the error (a *CorruptError for each, joined)
// beside the readable ones.
func (s *Store) Peers() (map[peer.ID]PeerRecord, error) {
	out := map[peer.ID]PeerRecord{}
	var bad []error
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktPeers).ForEach(func(k, v []byte) error {
			var r PeerRecord
			if err := s.openJSON(v, peerAD(peer.ID(k)), &r); err != nil {
				bad = append(bad, corrupt(peerRecord(peer.ID(k)), err))
				return nil
			}
			out[peer.ID(k)] = r
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, errors.Join(bad...)
}
