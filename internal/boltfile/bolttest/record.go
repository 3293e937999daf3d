package bolttest

import (
	"testing"

	bolt "go.etcd.io/bbolt"
)

// PutRecord writes value under key in bucket (made if missing) of the
// closed database file at path: a record its owner did not write, as a
// careless hand, or another version of the program, leaves.
func PutRecord(t testing.TB, path, bucket string, key, value []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put(key, value)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}
