package store

import (
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// Group records: one sealed JSON record per group in the groups
// bucket, holding its log, its local name and settings (storedGroup).

// groupRecords reads and writes the groups' records.
type groupRecords struct{ Groups }

func (s Groups) records() groupRecords { return groupRecords{s} }

// get reads group id's record; found is false if it has none.
func (s groupRecords) get(tx *bolt.Tx, id GroupID) (storedGroup, bool, error) {
	var g storedGroup
	b := tx.Bucket(bktGroups)
	if b == nil {
		return g, false, nil
	}
	v := b.Get(id[:])
	if v == nil {
		return g, false, nil
	}
	if err := s.openJSON(v, groupAD(id), &g); err != nil {
		return g, false, corrupt(groupRecord(id), err)
	}
	return g, true, nil
}

// put seals and writes group id's record.
func (s groupRecords) put(tx *bolt.Tx, id GroupID, g storedGroup) error {
	v, err := s.sealJSON(g, groupAD(id))
	if err != nil {
		return err
	}
	return tx.Bucket(bktGroups).Put(id[:], v)
}

// update changes group id's record with f, in a transaction of its
// own; a group with no record is ErrNotFound.
func (s groupRecords) update(id GroupID, f func(*storedGroup)) error {
	return s.Groups.update(func(tx *bolt.Tx) error {
		g, ok, err := s.get(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("group %x: %w", id[:4], ErrNotFound)
		}
		f(&g)
		return s.put(tx, id, g)
	})
}

// GroupDoubt is a removal of a member that a leave its remover's key
// signed beside it undid (group.Undone), as the node noted it, and the
// user's decision on it.
type GroupDoubt struct {
	Removal []byte  `json:"removal"`        // the removal's hash
	Target  peer.ID `json:"target"`         // a member again
	Author  peer.ID `json:"author"`         // the remover
	Kept    bool    `json:"kept,omitempty"` // the user writes to Target anyway
}

// UpdateGroupDoubts replaces a group's doubts with what f makes of them,
// in one transaction; f returns false to leave the record as it is.
func (s Groups) UpdateGroupDoubts(id GroupID, f func([]GroupDoubt) ([]GroupDoubt, bool)) error {
	return s.update(func(tx *bolt.Tx) error {
		g, ok, err := s.records().get(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("group %x: %w", id[:4], ErrNotFound)
		}
		ds, changed := f(slices.Clone(g.Doubts))
		if !changed {
			return nil
		}
		g.Doubts = ds
		return s.records().put(tx, id, g)
	})
}
