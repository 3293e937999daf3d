package store

import (
	"encoding/json"

	bolt "go.etcd.io/bbolt"
)

// ListenPorts reads the remembered listen ports: listen address as
// configured (with port 0) → the port it got.
func (s *Store) ListenPorts() (map[string]int, error) {
	ports := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktMeta).Get(keyListenPorts)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &ports); err != nil {
			return corrupt("meta/listen-ports", err)
		}
		return nil
	})
	return ports, err
}

// PutListenPorts remembers listen ports (ListenPorts).
func (s *Store) PutListenPorts(ports map[string]int) error {
	v, err := json.Marshal(ports)
	if err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error { return tx.Bucket(bktMeta).Put(keyListenPorts, v) })
}
