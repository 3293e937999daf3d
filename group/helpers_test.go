package group_test

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// person is a test member: a key and its peer ID.
type person struct {
	name string
	key  ed25519.PrivateKey
	id   peer.ID
}

func newPerson(t testing.TB, name string) person {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return person{name, key, id}
}

func people(t testing.TB, names ...string) map[string]person {
	out := map[string]person{}
	for _, n := range names {
		out[n] = newPerson(t, n)
	}
	return out
}

// newGroup creates a group by creator with members, and its log.
func newGroup(t testing.TB, creator person, members ...person) (*group.Change, *group.Log) {
	t.Helper()
	var ids []peer.ID
	for _, m := range members {
		ids = append(ids, m.id)
	}
	c, err := group.Create(creator.key, "team", ids, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := group.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, l
}

// propose makes a change by who on l and adds it there.
func propose(t testing.TB, l *group.Log, who person, op group.Op, p person, name string) *group.Change {
	t.Helper()
	c, err := l.Propose(who.key, op, p.id, name, t0)
	if err != nil {
		t.Fatalf("%s's %s: %v", who.name, op, err)
	}
	if err := l.Add(c); err != nil {
		t.Fatalf("add %s's own %s: %v", who.name, op, err)
	}
	return c
}

// replay gives every change to a fresh log in the order given and
// returns it.
func replay(t testing.TB, create *group.Change, cs ...*group.Change) *group.Log {
	t.Helper()
	l, err := group.New(create)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := l.Add(c); err != nil {
			t.Fatalf("replay %s by %s: %v", c.Op, identity.ShortID(c.Author), err)
		}
	}
	return l
}

// deal gives every change, through its encoding, to a fresh log in the
// order given, as a member receives them, and returns it: a change held
// for its parents, kept out of the log (ErrNotMember) or refused as a
// junior admin's removal of a senior (ErrJuniorAdmin) is no failure.
func deal(t testing.TB, create *group.Change, cs []*group.Change) *group.Log {
	t.Helper()
	l, err := group.New(create)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if err := l.Add(reparse(t, c)); !dealt(err) {
			t.Fatal(err)
		}
	}
	return l
}

// dealt says whether err, from Add, is one deal takes in its stride.
func dealt(err error) bool {
	return err == nil || errors.Is(err, group.ErrMissingParents) || errors.Is(err, group.ErrNotMember) || errors.Is(err, group.ErrJuniorAdmin)
}

// redeal gives m every change of cs again while it lacks some (a
// group-want), as deal does.
func redeal(t testing.TB, m *group.Log, cs []*group.Change) {
	t.Helper()
	for len(m.Missing()) > 0 {
		for _, c := range cs {
			if err := m.Add(reparse(t, c)); !dealt(err) {
				t.Fatal(err)
			}
		}
	}
}

// reparse sends a change through its encoding, as a member receives it.
func reparse(t testing.TB, c *group.Change) *group.Change {
	t.Helper()
	p, err := group.Parse(c.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func names(ps map[string]person, ids []peer.ID) []string {
	by := map[peer.ID]string{}
	for n, p := range ps {
		by[p.id] = n
	}
	var out []string
	for _, id := range ids {
		out = append(out, by[id])
	}
	return out
}

// ed25519Sign signs a change's body as who, the way Parse checks it.
func ed25519Sign(who person, raw []byte) []byte {
	body := raw[:len(raw)-ed25519.SignatureSize]
	return ed25519.Sign(who.key, append([]byte("certchat group change v1\x00"), body...))
}
