package relay_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
)

// syncBuffer collects a node's TLS key log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRelaySeesOnlyCiphertext runs `chat relay --record-dir` as its own
// process, lets two peers that have no direct listener chat through it,
// and searches every byte the relay forwarded for the messages, the
// identity keys, the storage keys and every TLS secret of the e2e
// sessions.
func TestRelaySeesOnlyCiphertext(t *testing.T) {
	rec := t.TempDir()
	rp := testproc.StartRelay(t, testproc.RelayOptions{Args: []string{"--record-dir", rec}})
	relayAddr := rp.Addr

	var alog, blog syncBuffer
	alice, asub := keyLoggedNode(t, "alice", relayAddr, &alog)
	bob, bsub := keyLoggedNode(t, "bob", relayAddr, &blog)
	alice.Contacts().Trust(bob.ID(), false)
	bob.Contacts().Trust(alice.ID(), false)

	secret := make([]byte, 12)
	rand.Read(secret)
	texts := []string{
		"meet at the north gate " + hex.EncodeToString(secret),
		"PLAINTEXT-CANARY-" + hex.EncodeToString(secret[:6]),
	}
	exchange(t, alice, asub, bob, bsub, texts[0])
	exchange(t, bob, bsub, alice, asub, texts[1])
	if p := alice.PeerInfo(bob.ID()).Path; p != node.PathRelay {
		t.Fatalf("path %q: the chat did not go through the relay", p)
	}

	rp.Stop()
	forwarded := readRecordings(t, rec)

	// The recording must hold what the relay really forwarded: the relay
	// protocol names the destination peer in cleartext protobuf, and the
	// forwarded volume exceeds the messages themselves.
	if !bytes.Contains(forwarded, []byte(bob.ID())) && !bytes.Contains(forwarded, []byte(alice.ID())) {
		t.Fatal("the recording does not contain the relay protocol's peer IDs: it recorded nothing useful")
	}
	if len(forwarded) < 4*len(texts[0]) {
		t.Fatalf("only %d bytes recorded", len(forwarded))
	}

	secrets := map[string][]byte{}
	for i, txt := range texts {
		secrets[fmt.Sprintf("message %d", i)] = []byte(txt)
		secrets[fmt.Sprintf("message %d (hex marker)", i)] = secret
	}
	for _, n := range []*node.Node{alice, bob} {
		secrets["identity seed of "+n.Identity().Name()] = n.Identity().Signer().Seed()
		k, _ := n.Identity().DeriveKey("storage")
		secrets["storage key of "+n.Identity().Name()] = k
	}
	for i, s := range keyLogSecrets(t, alog.String()+blog.String()) {
		secrets[fmt.Sprintf("TLS secret %d", i)] = s
	}
	if len(secrets) < 10 {
		t.Fatalf("only %d secrets to look for: the key logs are empty", len(secrets))
	}
	for what, s := range secrets {
		if bytes.Contains(forwarded, s) {
			t.Errorf("the relay forwarded %s in the clear", what)
		}
	}
	t.Logf("searched %d recorded bytes for %d secrets", len(forwarded), len(secrets))
}

func keyLoggedNode(t *testing.T, name, relayAddr string, keylog *syncBuffer) (*node.Node, *node.Subscription) {
	t.Helper()
	h := identity.Home{Dir: t.TempDir()}
	id, err := h.Init(name, nil, identity.DefaultKDF, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := h.TrustStore()
	n, err := node.New(node.Config{Home: h, Identity: id, Trust: ts, Listen: []string{"none"},
		Relays: []string{relayAddr}, KeyLogWriter: keylog, RetryMin: 50 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sub := n.Subscribe()
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	waitEvent(t, sub, name+"'s relay reservation", func(e node.Event) bool {
		return e.Kind == node.EventListening && strings.Contains(strings.Join(e.Addrs, " "), "p2p-circuit")
	})
	return n, sub
}

// exchange sends text from a to b and waits for both ends.
func exchange(t *testing.T, a *node.Node, asub *node.Subscription, b *node.Node, bsub *node.Subscription, text string) {
	t.Helper()
	m, err := a.Send(b.ID(), text)
	if err != nil {
		t.Fatal(err)
	}
	got := waitEvent(t, bsub, "message", func(e node.Event) bool { return e.Kind == node.EventMessage && e.Message.ID == m.ID })
	if got.Message.Body != text {
		t.Fatalf("received %q, sent %q", got.Message.Body, text)
	}
	waitEvent(t, asub, "delivered", func(e node.Event) bool {
		return e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered
	})
}

// readRecordings concatenates the bytes of every record the relay wrote.
func readRecordings(t *testing.T, dir string) []byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings in %s", dir)
	}
	var all []byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for len(data) >= 5 {
			n := int(binary.BigEndian.Uint32(data[1:5]))
			if data[0] != '<' && data[0] != '>' || 5+n > len(data) {
				t.Fatalf("%s: malformed record", f)
			}
			all = append(all, data[5:5+n]...)
			data = data[5+n:]
		}
	}
	return all
}

// keyLogSecrets extracts the secrets of NSS key log lines.
func keyLogSecrets(t *testing.T, log string) [][]byte {
	var out [][]byte
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		b, err := hex.DecodeString(f[2])
		if err != nil || len(b) < 16 {
			t.Fatalf("bad key log line %q", line)
		}
		out = append(out, b)
	}
	return out
}
