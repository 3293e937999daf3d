package store

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	bolt "go.etcd.io/bbolt"
)

// blindKey is what blinder.blinded must give, from a fresh HMAC.
func blindKey(key, place []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(place)
	return h.Sum(nil)
}

// TestReceiveGroupMakesMissingBuckets: a received message looks the
// group buckets up without opening them (haveBuckets) and makes them
// when one is missing, as it always did: a database whose counts bucket,
// or any one of the others, is gone (one of an older version that had
// no such bucket yet) stores the message, and has every bucket after.
func TestReceiveGroupMakesMissingBuckets(t *testing.T) {
	for _, gone := range append(append([][]byte(nil), groupBucketNames[1:]...), countBucketNames...) {
		t.Run(string(gone), func(t *testing.T) {
			s := testStore(t)
			id := testGroup(t, s)
			from := testPeer(t)
			at := time.UnixMilli(time.Now().UnixMilli())
			first := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: from, SentAt: at, Body: "1", Stream: 3, Number: 1}
			if _, err := s.Groups().ReceiveGroup(first, at); err != nil {
				t.Fatal(err)
			}
			if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(gone) }); err != nil {
				t.Fatal(err)
			}
			second := &GroupMessage{Group: id, ID: e2e.NewMessageID(), From: from, SentAt: at, Body: "2", Stream: 3, Number: 2}
			if isNew, err := s.Groups().ReceiveGroup(second, at); err != nil || !isNew {
				t.Fatalf("a message with %s gone: new %v, %v", gone, isNew, err)
			}
			if err := s.db.View(func(tx *bolt.Tx) error {
				if !haveBuckets(tx, groupBucketNames, countBucketNames) {
					return fmt.Errorf("%s was not made again", gone)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if m, err := s.Groups().GroupMessageByID(second.ID); err != nil || m.Body != "2" {
				t.Fatalf("the message stored: %+v, %v", m, err)
			}
		})
	}
}

// TestHaveBuckets: every name of every list must be a bucket at the
// root; a missing one, or one that is only a prefix of a bucket's name,
// is not.
func TestHaveBuckets(t *testing.T) {
	s := testStore(t)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists([]byte("hb-a")); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists([]byte("hb-c"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, c := range []struct {
			lists [][][]byte
			want  bool
		}{
			{[][][]byte{{[]byte("hb-a")}, {[]byte("hb-c")}}, true},
			{[][][]byte{{[]byte("hb-a"), []byte("hb-b")}}, false},
			{[][][]byte{{[]byte("hb-c")}, {[]byte("hb")}}, false},
			{[][][]byte{{[]byte("hb-c"), []byte("hb-a")}}, true}, // not in order
			{nil, true},
		} {
			if got := haveBuckets(tx, c.lists...); got != c.want {
				return fmt.Errorf("haveBuckets(%q) = %v, want %v", c.lists, got, c.want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestBlindKeyPooled: the store's pooled HMACs give each place the key
// blindKey gives it, used again and again and from many goroutines at
// once (an HMAC put back unreset would hash the next place after the
// last one).
func TestBlindKeyPooled(t *testing.T) {
	s := testStore(t)
	places := [][]byte{countsPlace(GroupID{1}), recvPlace(GroupID{1}, testPeer(t)), countsPlace(GroupID{2}), {}}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := range 200 {
				p := places[i%len(places)]
				if got, want := s.blind.blinded(p), blindKey(s.blind.key, p); !bytes.Equal(got, want) {
					errs <- fmt.Errorf("place %q, use %d: %x, want %x", p, i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
