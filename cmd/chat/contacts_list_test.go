package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A contact pinned on first use whose stored certificate a trusted CA
// issued reads "ca-verified" in `chat contacts list`, as the chat window
// shows it; without a trusted CA it reads "tofu".
func TestContactsListCAVerified(t *testing.T) {
	noPassphraseEnv(t)
	base := t.TempDir()
	aDir, bDir, caDir := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "ca")
	aHome, _ := newHome(t, aDir, "alice")
	_, bobID := newHome(t, bDir, "bob")
	mustRun(t, "ca", "init", "--name", "Org", "--out", caDir, "--no-passphrase")
	caPEM := filepath.Join(caDir, "ca.pem")
	csr, _ := mustRun(t, "--home", bDir, "csr")
	csrFile, crtFile := filepath.Join(base, "bob.csr"), filepath.Join(base, "bob.crt")
	os.WriteFile(csrFile, []byte(csr), 0o600)
	crt, _ := mustRun(t, "ca", "sign", "--ca", caDir, csrFile)
	os.WriteFile(crtFile, []byte(crt), 0o600)
	mustRun(t, "--home", aDir, "contacts", "add", bobID, "--name", "bob")

	// Alice's node met bob: his chain is in her database.
	chain, err := identity.ParseCertificatesPEM([]byte(crt))
	if err != nil {
		t.Fatal(err)
	}
	db, release := holdDatabase(t, aHome)
	p, _ := peer.Decode(bobID)
	if err := db.PutPeer(p, store.PeerRecord{Name: "bob", CertDER: chain[0].Raw}); err != nil {
		t.Fatal(err)
	}
	release()

	trustOf := func() string {
		t.Helper()
		out, _ := mustRun(t, "--home", aDir, "contacts", "list", "--json")
		var cs []contactJSON
		if err := json.Unmarshal([]byte(out), &cs); err != nil || len(cs) != 1 {
			t.Fatalf("contacts list: %q %v", out, err)
		}
		return cs[0].Trust
	}
	if got := trustOf(); got != "tofu" {
		t.Fatalf("no CA trusted: bob reads %q, want tofu", got)
	}
	mustRun(t, "--home", aDir, "trust", "add-ca", caPEM)
	if got := trustOf(); got != "ca-verified" {
		t.Fatalf("bob's certificate from a trusted CA: bob reads %q, want ca-verified", got)
	}
	out, _ := mustRun(t, "--home", aDir, "contacts", "list")
	if !regexpMatch(`(?m)^bob\s+ca-verified\s`, out) {
		t.Fatalf("contacts list:\n%s", out)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
