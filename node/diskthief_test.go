package node_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDiskThiefReadsNoNames is the thief of the disk (docs/SECURITY.md):
// two real nodes chat, alice names her contact, makes a group and
// talks in it; then alice's chat.db is read as a thief would, byte for
// byte, without the key. No name (the contact's certificate name, the
// label alice gave it, her own name, the group's), no message, and none
// of the records' field names is in it: chat.db seals them (issue 11,
// finding 10). What stays readable is what docs/SECURITY.md says: the
// peer IDs one has conversations with, in chat.db's keys, and the
// contact list in trust.json.
func TestDiskThiefReadsNoNames(t *testing.T) {
	const (
		aliceName = "Aurelia Quincefield"
		bobName   = "Barnaby Fennimore"
		label     = "Marmot Cousin"
		groupName = "Kestrel Project"
		toBob     = "ZEBRA-to-bob-7f3a"
		toAlice   = "QUOKKA-to-alice-91bc"
		inGroup   = "OCELOT-in-group-5c2e"
	)
	start := time.Now()
	aliceHome := newHome(t, aliceName)
	alice := startNode(t, aliceHome)
	bob := startNode(t, newHome(t, bobName))
	trustEachOther(t, alice, bob)

	alice.waitDelivered(alice.send(bob.ID(), toBob))
	alice.waitMessage(bob.send(alice.ID(), toAlice))
	if err := alice.Contacts().Rename(bob.ID(), label); err != nil {
		t.Fatal(err)
	}
	gi, err := alice.Groups().Create(groupName, []peer.ID{bob.ID()})
	if err != nil {
		t.Fatal(err)
	}
	alice.waitGroupDelivered(alice.groupSend(gi.ID, inGroup))
	alice.Close()
	end := time.Now()

	db, err := os.ReadFile(aliceHome.Path("chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	lower := bytes.ToLower(db)
	for _, secret := range []string{aliceName, bobName, "Fennimore", label, "Marmot", groupName, "Kestrel",
		toBob, toAlice, inGroup, "ZEBRA", "QUOKKA", "OCELOT",
		`"name"`, `"body"`, `"status"`, `"members"`, `"last_seen"`, `"unread"`} {
		if bytes.Contains(lower, bytes.ToLower([]byte(secret))) {
			t.Errorf("chat.db holds %q in the clear", secret)
		}
	}
	// Nor is any time of this conversation: no 8-byte count of seconds,
	// milliseconds or nanoseconds since 1970 from the test's run, either
	// byte order, as a delivery time would be stored.
	if at, unit := clearTime(db, start, end); at >= 0 {
		t.Errorf("chat.db holds a time of the conversation in the clear (Unix %s) at offset %d", unit, at)
	}
	// The scan is not blind: bob's peer ID, a key in the clear, is found.
	if !bytes.Contains(db, []byte(bob.ID())) {
		t.Fatal("bob's peer ID is not found in chat.db: the scan proves nothing")
	}

	// trust.json is the contact list, readable by design
	// (docs/SECURITY.md, "A thief of the disk"): keep the page true.
	trust, err := os.ReadFile(aliceHome.TrustPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{label, bobName, bob.ID().String(), string(identity.StateTOFU)} {
		if !bytes.Contains(trust, []byte(clear)) {
			t.Errorf("trust.json no longer holds %q in the clear: update docs/SECURITY.md and this test", clear)
		}
	}
}

// clearTime finds in b an 8-byte big- or little-endian count of Unix
// seconds, milliseconds or nanoseconds between from and to: its offset
// and unit, or -1.
func clearTime(b []byte, from, to time.Time) (int, string) {
	units := []struct {
		name   string
		lo, hi uint64
	}{
		{"seconds", uint64(from.Unix()), uint64(to.Unix())},
		{"milliseconds", uint64(from.UnixMilli()), uint64(to.UnixMilli())},
		{"nanoseconds", uint64(from.UnixNano()), uint64(to.UnixNano())},
	}
	for i := 0; i+8 <= len(b); i++ {
		for _, v := range []uint64{binary.BigEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i:])} {
			for _, u := range units {
				if v >= u.lo && v <= u.hi {
					return i, u.name
				}
			}
		}
	}
	return -1, ""
}
