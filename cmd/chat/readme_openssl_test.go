package main

import (
	"os"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// TestREADMEOpenSSLMember: the README's openssl command for signing a
// member's request (its member.cnf and command blocks) is, byte for byte,
// what testdata/script/openssl_member.txtar runs, so the command people
// copy is the tested one.
func TestREADMEOpenSSLMember(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]bool{}
	for i, part := range strings.Split(string(readme), "```") {
		if i%2 == 1 {
			blocks[strings.TrimPrefix(part, "\n")] = true
		}
	}
	ar, err := txtar.ParseFile("testdata/script/openssl_member.txtar")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"member.cnf": true, "sign.sh": true}
	for _, f := range ar.Files {
		if !want[f.Name] {
			continue
		}
		delete(want, f.Name)
		if !blocks[string(f.Data)] {
			t.Errorf("README.md has no code block reading exactly as %s in openssl_member.txtar:\n%s", f.Name, f.Data)
		}
	}
	for name := range want {
		t.Errorf("openssl_member.txtar has no file %s", name)
	}
	if strings.Contains(string(readme), "-copy_extensions copy -out") {
		t.Error("README.md still signs with -copy_extensions copy")
	}
}
