package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
)

// fastKDF keeps Argon2id cheap in tests.
var fastKDF = identity.KDFParams{Time: 1, Memory: 64, Threads: 1}

// scriptedTTY is a terminal whose person types the lines of a reader:
// one line per passphrase or answer. It records the prompts.
type scriptedTTY struct {
	in      *bufio.Reader
	prompts []string
}

func newScriptedTTY(lines ...string) *scriptedTTY {
	return &scriptedTTY{in: bufio.NewReader(strings.NewReader(strings.Join(lines, "\n") + "\n"))}
}

func (s *scriptedTTY) read(prompt string) (string, error) {
	s.prompts = append(s.prompts, prompt)
	line, err := s.in.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("the test typed nothing more at %q: %w", prompt, err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func (s *scriptedTTY) secret(prompt string) ([]byte, error) {
	l, err := s.read(prompt)
	return []byte(l), err
}

func (s *scriptedTTY) line(prompt string) (string, error) { return s.read(prompt) }

// noPassphraseEnv clears the passphrase variables for the test.
func noPassphraseEnv(t *testing.T) {
	for _, v := range []string{envPassphrase, envCAPassphrase} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
}

// testCtx is a ctx for cmd with stderr in the returned buffer.
func testCtx(t *testing.T, cmd string, tty prompter) (*ctx, *bytes.Buffer) {
	t.Helper()
	var errb bytes.Buffer
	var found *command
	for _, c := range commands() {
		if c.name == cmd {
			found = c
		}
	}
	if found == nil {
		t.Fatalf("no command %q", cmd)
	}
	c := &ctx{cmd: found, io: stdio{in: strings.NewReader(""), out: discard, err: &errb}, now: time.Now, tty: tty}
	return c, &errb
}

// encryptedHome makes a home whose identity "Alice" has passphrase "right".
func encryptedHome(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	if _, err := (identity.Home{Dir: dir}).Init("Alice", []byte("right"), fastKDF, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestUnlockIdentityRetries(t *testing.T) {
	noPassphraseEnv(t)
	dir := encryptedHome(t)
	wantPrompt := "Passphrase for Alice's key (" + dir + "): "
	for _, tc := range []struct {
		name    string
		typed   []string
		err     error // nil: unlocked
		prompts int
		notices []string
	}{
		{"right at once", []string{"right"}, nil, 1, nil},
		{"right the third time", []string{"wrong", "Right", "right"}, nil, 3,
			[]string{"wrong passphrase, try again", "wrong passphrase, try again"}},
		{"empty, then right", []string{"", "right"}, nil, 2,
			[]string{"the key is encrypted: type its passphrase"}},
		{"three wrong", []string{"a", "b", "c", "right"}, identity.ErrWrongPassphrase, 3,
			[]string{"wrong passphrase, try again", "wrong passphrase, try again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tty := newScriptedTTY(tc.typed...)
			c, errb := testCtx(t, "csr", tty)
			c.opts.home = dir
			id, _, err := c.loadIdentity()
			switch {
			case tc.err == nil && (err != nil || id == nil || id.Name() != "Alice"):
				t.Fatalf("not unlocked: %v", err)
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("err = %v, want %v", err, tc.err)
			case tc.err != nil && !strings.Contains(err.Error(), filepath.Join(dir, "identity.key")):
				t.Errorf("error does not name the key file: %v", err)
			}
			if len(tty.prompts) != tc.prompts {
				t.Errorf("asked %d times, want %d: %q", len(tty.prompts), tc.prompts, tty.prompts)
			}
			for _, p := range tty.prompts {
				if p != wantPrompt {
					t.Errorf("prompt %q, want %q", p, wantPrompt)
				}
			}
			if got := lines(errb.String()); !slices.Equal(got, tc.notices) {
				t.Errorf("stderr %q, want %q", got, tc.notices)
			}
		})
	}
}

// A passphrase from the environment or a file is tried once, even at a
// terminal: a script must not hang on a prompt.
func TestUnlockNonInteractiveIsOneShot(t *testing.T) {
	noPassphraseEnv(t)
	dir := encryptedHome(t)
	wrongFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(wrongFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  string
		file string
	}{
		{"environment", "wrong", ""},
		{"file", "", wrongFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(envPassphrase, tc.env)
			}
			tty := newScriptedTTY("right")
			c, errb := testCtx(t, "csr", tty)
			c.opts.home, c.opts.passphraseFile = dir, tc.file
			_, _, err := c.loadIdentity()
			if !errors.Is(err, identity.ErrWrongPassphrase) {
				t.Fatalf("err = %v, want wrong passphrase", err)
			}
			if len(tty.prompts) != 0 || errb.Len() != 0 {
				t.Errorf("prompted %q, stderr %q", tty.prompts, errb.String())
			}
		})
	}
	t.Run("no terminal", func(t *testing.T) {
		c, _ := testCtx(t, "csr", nil)
		c.opts.home = dir
		if _, _, err := c.loadIdentity(); !errors.Is(err, identity.ErrPassphraseRequired) {
			t.Fatalf("err = %v, want passphrase required", err)
		}
	})
}

func TestNewSecretRetries(t *testing.T) {
	noPassphraseEnv(t)
	const choose = "Choose a passphrase to protect the identity key: "
	const again = "Type it again: "
	const empty = "Empty passphrase: store the key unencrypted? [y/N] "
	for _, tc := range []struct {
		name    string
		typed   []string
		want    string // "" with err "": stored unencrypted
		err     string
		prompts []string
		notices []string
	}{
		{"match", []string{"s3cret", "s3cret"}, "s3cret", "", []string{choose, again}, nil},
		{"mismatch, then match", []string{"s3cret", "s3cert", "s3cret", "s3cret"}, "s3cret", "",
			[]string{choose, again, choose, again}, []string{"the passphrases do not match, try again"}},
		{"three mismatches", []string{"a", "b", "a", "b", "a", "b", "a", "a"}, "", "the passphrases do not match; nothing was created",
			[]string{choose, again, choose, again, choose, again},
			[]string{"the passphrases do not match, try again", "the passphrases do not match, try again"}},
		{"empty refused, then chosen", []string{"", "n", "x", "x"}, "x", "",
			[]string{choose, empty, choose, again}, []string{"then choose a passphrase"}},
		{"empty confirmed", []string{"", "y"}, "", "", []string{choose, empty}, nil},
		{"empty refused three times", []string{"", "", "", "N", "", "no"}, "", "the passphrase is empty: choose one, or pass --no-passphrase; nothing was created",
			[]string{choose, empty, choose, empty, choose, empty},
			[]string{"then choose a passphrase", "then choose a passphrase"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tty := newScriptedTTY(tc.typed...)
			c, errb := testCtx(t, "init", tty)
			p, err := c.newSecret(c.identitySecret(), false)
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("err = %v, want %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case string(p) != tc.want || (tc.want == "" && p != nil):
				t.Errorf("passphrase %q, want %q", p, tc.want)
			}
			if !slices.Equal(tty.prompts, tc.prompts) {
				t.Errorf("prompts %q, want %q", tty.prompts, tc.prompts)
			}
			if got := lines(errb.String()); !slices.Equal(got, tc.notices) {
				t.Errorf("stderr %q, want %q", got, tc.notices)
			}
		})
	}
}

func TestNewSecretNonInteractive(t *testing.T) {
	noPassphraseEnv(t)
	// An empty passphrase from the environment fails at once, even at a
	// terminal; so does no passphrase without a terminal.
	t.Setenv(envPassphrase, "")
	tty := newScriptedTTY("y")
	c, _ := testCtx(t, "init", tty)
	if _, err := c.newSecret(c.identitySecret(), false); err == nil || !strings.Contains(err.Error(), "the passphrase is empty") {
		t.Errorf("empty variable: %v", err)
	}
	if len(tty.prompts) != 0 {
		t.Errorf("prompted %q", tty.prompts)
	}
	os.Unsetenv(envPassphrase)
	c, _ = testCtx(t, "init", nil)
	if _, err := c.newSecret(c.identitySecret(), false); err == nil || !strings.Contains(err.Error(), "a passphrase is needed to protect the identity key") {
		t.Errorf("no terminal: %v", err)
	}
	// --no-passphrase asks nothing.
	c, _ = testCtx(t, "init", tty)
	if p, err := c.newSecret(c.identitySecret(), true); p != nil || err != nil || len(tty.prompts) != 0 {
		t.Errorf("--no-passphrase: %q %v, prompts %q", p, err, tty.prompts)
	}
}

// The CA key has its own passphrase and prompt; the identity's variable
// is not used for it.
func TestCAPassphrase(t *testing.T) {
	noPassphraseEnv(t)
	t.Setenv(envPassphrase, "identity-secret")
	tty := newScriptedTTY("ca", "ca")
	c, _ := testCtx(t, "ca init", tty)
	p, err := c.newSecret(c.caSecret(), false)
	if err != nil || string(p) != "ca" {
		t.Fatalf("%q %v", p, err)
	}
	if want := []string{"Choose a passphrase to protect the CA key: ", "Type it again: "}; !slices.Equal(tty.prompts, want) {
		t.Errorf("prompts %q, want %q", tty.prompts, want)
	}

	dir := t.TempDir()
	ca, err := identity.NewCA("Acme Root", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := identity.EncodePrivateKey(ca.Key, []byte("ca-secret"), fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "ca.pem"), identity.EncodeCertificatesPEM(ca.Cert), 0o644)

	tty = newScriptedTTY("identity-secret", "ca-secret")
	c, errb := testCtx(t, "ca sign", tty)
	if _, err := c.loadCA(dir); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Passphrase for the CA key of %q (%s): ", "Acme Root", filepath.Join(dir, "ca.key"))
	if !slices.Equal(tty.prompts, []string{want, want}) {
		t.Errorf("prompts %q, want twice %q", tty.prompts, want)
	}
	if errb.String() != "wrong passphrase, try again\n" {
		t.Errorf("stderr %q", errb.String())
	}

	t.Setenv(envCAPassphrase, "ca-secret")
	tty = newScriptedTTY()
	c, _ = testCtx(t, "ca sign", tty)
	if _, err := c.loadCA(dir); err != nil || len(tty.prompts) != 0 {
		t.Errorf("with %s: %v, prompts %q", envCAPassphrase, err, tty.prompts)
	}
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// The name asked on first run: a refused one (too long, unprintable) is
// asked again, as a passphrase is, instead of ending the first run.
func TestAskNameRetries(t *testing.T) {
	const ask = "Your name as peers will see it ["
	long := strings.Repeat("N", identity.MaxNameLength+1)
	tooLong := fmt.Sprintf("name is longer than %d characters", identity.MaxNameLength)
	for _, tc := range []struct {
		name    string
		typed   []string
		want    string // "": defaultName()
		err     string
		asked   int
		notices []string
	}{
		{"typed", []string{"alice"}, "alice", "", 1, nil},
		{"default", []string{"  "}, "", "", 1, nil},
		{"too long, then right", []string{long, "alice"}, "alice", "", 2, []string{tooLong + ", try again"}},
		{"unprintable, then right", []string{"al\u200bice", "alice"}, "alice", "", 2, []string{"name contains the unprintable character U+200B, try again"}},
		{"three refused", []string{long, long, long, "alice"}, "", tooLong + "; nothing was created", 3,
			[]string{tooLong + ", try again", tooLong + ", try again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tty := newScriptedTTY(tc.typed...)
			c, errb := testCtx(t, "", tty)
			got, err := c.askName(identity.Home{Dir: t.TempDir()})
			want := tc.want
			if want == "" {
				want = defaultName()
			}
			switch {
			case tc.err != "" && (err == nil || err.Error() != tc.err):
				t.Fatalf("err = %v, want %q", err, tc.err)
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err == "" && got != want:
				t.Errorf("name %q, want %q", got, want)
			}
			if len(tty.prompts) != tc.asked || !strings.HasPrefix(tty.prompts[0], ask) {
				t.Errorf("prompts %q, want %d of %q", tty.prompts, tc.asked, ask)
			}
			if got := lines(errb.String()); !slices.Equal(got, tc.notices) {
				t.Errorf("stderr %q, want %q", got, tc.notices)
			}
		})
	}
}
