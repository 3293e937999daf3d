package main

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/certchat/certchat/identity"
)

func caCommands() []*command {
	return []*command{
		{
			name:    "ca init",
			args:    "--name NAME --out DIR [--no-passphrase | --ca-passphrase-file FILE]",
			summary: "create a certificate authority for your group (DIR/ca.pem, DIR/ca.key)",
			help: `The CA key is encrypted with its own passphrase (Argon2id and
XChaCha20-Poly1305) unless --no-passphrase is given. The passphrase comes
from --ca-passphrase-file, $` + envCAPassphrase + ` or, on a terminal, a prompt;
never from your identity's --passphrase-file or $` + envPassphrase + `.
Give DIR/ca.pem to the group: each member runs ` + "`chat trust add-ca ca.pem`" + `.

openssl cannot read an encrypted ca.key (it is certchat's own format): to
sign with ` + "`openssl x509 -req -CAkey ca.key`" + `, create the CA with
--no-passphrase and keep ca.key safe by other means.`,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.StringVar(&o.name, "name", "", "the CA's name, e.g. \"Acme Root\"")
				fs.StringVar(&o.out, "out", "", "folder to write ca.pem and ca.key into")
				fs.BoolVar(&o.noPassphrase, "no-passphrase", false, "store the CA key unencrypted (not recommended)")
				caPassphraseFlag(fs, o)
				fs.IntVar(&o.days, "days", 3650, "validity in days")
			},
			run:             runCAInit,
			withoutIdentity: true,
		},
		{
			name:    "ca sign",
			args:    "--ca DIR CSRFILE",
			summary: "issue a certificate from a member's CSR (PEM on stdout)",
			help: `An encrypted DIR/ca.key is opened with the CA passphrase: from
--ca-passphrase-file, $` + envCAPassphrase + ` or, on a terminal, a prompt
(three tries). Your identity's --passphrase-file and $` + envPassphrase + ` are
not used for it. CSRFILE "-" reads the request from stdin.

The certificate's extensions are chat's own, whatever the request asks:
CA:FALSE, key usage digitalSignature, TLS client and server, and the
libp2p:peer SAN of the request's key. A request asking to be a CA
(CA:TRUE, keyCertSign, cRLSign) is signed without it, with a note.`,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.StringVar(&o.caDir, "ca", "", "the CA folder made by chat ca init")
				caPassphraseFlag(fs, o)
				fs.IntVar(&o.days, "days", 365, "validity in days")
			},
			run:             runCASign,
			withoutIdentity: true,
		},
		{
			name:    "trust add-ca",
			args:    "[--intermediate] FILE",
			summary: "trust a CA: peers with certificates it issued show as CA-verified",
			help: `FILE must hold a self-signed CA root. CA-verified means issued directly
by a CA you trust: a certificate issued through an intermediate is not.
With --intermediate, FILE may hold an intermediate CA (one a root issued),
which you then trust itself: certificates it issues directly are
CA-verified, issued by it; its root is not trusted by that.
A chat window or daemon already running on this home goes on with the
CAs it had until it is restarted.`,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.BoolVar(&o.intermediate, "intermediate", false, "FILE is an intermediate CA to trust itself, not a root")
			},
			run: runTrustAddCA,
		},
		{
			name:    "trust list",
			args:    "",
			summary: "list the CA roots you trust",
			run:     runTrustList,
		},
		{
			name:    "trust remove-ca",
			args:    "FILE",
			summary: "stop trusting a CA root",
			run:     runTrustRemoveCA,
		},
	}
}

func caPassphraseFlag(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.caPassphraseFile, "ca-passphrase-file", "", "read the CA key's passphrase from this file's first line ($"+envCAPassphrase+" gives it directly)")
}

// checkCAPassphraseFlags refuses the identity's passphrase file for a CA
// command: it would be silently ignored.
func (c *ctx) checkCAPassphraseFlags() error {
	if c.opts.passphraseFile != "" {
		return usageErr("--passphrase-file is for your identity key: give the CA key's passphrase with --ca-passphrase-file FILE or $%s", envCAPassphrase)
	}
	return nil
}

func runCAInit(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	if err := c.checkCAPassphraseFlags(); err != nil {
		return err
	}
	if c.opts.name == "" || c.opts.out == "" {
		return usageErr("chat ca init needs --name NAME and --out DIR")
	}
	if c.opts.days <= 0 {
		return usageErr("--days must be positive")
	}
	keyPath, certPath := filepath.Join(c.opts.out, "ca.key"), filepath.Join(c.opts.out, "ca.pem")
	for _, p := range []string{keyPath, certPath} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists; nothing was changed", p)
		}
	}
	ca, err := identity.NewCA(c.opts.name, c.now(), time.Duration(c.opts.days)*24*time.Hour)
	if err != nil {
		return err
	}
	pass, err := c.newSecret(c.caSecret(), c.opts.noPassphrase)
	if err != nil {
		return err
	}
	keyPEM, err := identity.EncodePrivateKey(ca.Key, pass, identity.DefaultKDF)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.opts.out, 0o700); err != nil {
		return err
	}
	if err := identity.WriteFileAtomic(certPath, identity.EncodeCertificatesPEM(ca.Cert), 0o644); err != nil {
		return err
	}
	if err := identity.WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	fp := identity.FingerprintOf(ca.Cert.PublicKey.(ed25519.PublicKey))
	c.printf("Created CA %q in %s.\nfingerprint: %s\nShare %s with the group; keep ca.key safe.\n", c.opts.name, c.opts.out, fp, certPath)
	return nil
}

// loadCA reads a CA folder.
func (c *ctx) loadCA(dir string) (*identity.CA, error) {
	certPEM, err := identity.ReadFileLimited(filepath.Join(dir, "ca.pem"), maxInputFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s holds no ca.pem: create a CA with `chat ca init`", dir)
	}
	if err != nil {
		return nil, err
	}
	certs, err := identity.ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ca.pem: %w", err)
	}
	if err := identity.CheckCA(certs[0]); err != nil {
		return nil, err
	}
	keyPath := filepath.Join(dir, "ca.key")
	keyPEM, err := identity.ReadFileLimited(keyPath, maxKeyFile)
	if err != nil {
		return nil, err
	}
	prompt := func() string {
		return fmt.Sprintf("Passphrase for the CA key of %q (%s): ", identity.DisplayName(certs[0]), keyPath)
	}
	var key ed25519.PrivateKey
	err = c.unlock(c.caSecret(), prompt, func(pass identity.PassphraseFunc) error {
		key, err = identity.DecodePrivateKey(keyPEM, pass)
		return err
	})
	if errors.Is(err, identity.ErrPassphraseRequired) {
		return nil, fmt.Errorf("ca.key is encrypted: give the CA passphrase (a prompt on a terminal, $%s or --ca-passphrase-file)", envCAPassphrase)
	}
	if err != nil {
		return nil, fmt.Errorf("ca.key: %w", err)
	}
	if !key.Public().(ed25519.PublicKey).Equal(certs[0].PublicKey) {
		return nil, errors.New("ca.key does not belong to ca.pem")
	}
	return &identity.CA{Cert: certs[0], Key: key}, nil
}

func runCASign(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	if c.opts.caDir == "" {
		return usageErr("chat ca sign needs --ca DIR")
	}
	if err := c.checkCAPassphraseFlags(); err != nil {
		return err
	}
	if c.opts.days <= 0 {
		return usageErr("--days must be positive")
	}
	data, err := c.readInput(c.args[0])
	if err != nil {
		return err
	}
	csr, err := identity.ParseCSR(data)
	if err != nil {
		return fmt.Errorf("%s: %w", c.args[0], err)
	}
	ca, err := c.loadCA(c.opts.caDir)
	if err != nil {
		return err
	}
	cert, err := ca.Issue(csr, c.now(), time.Duration(c.opts.days)*24*time.Hour)
	if err != nil {
		return err
	}
	id, _ := identity.CertPeerID(cert)
	if asked := identity.RequestedCA(csr); asked != "" {
		fmt.Fprintf(c.io.err, "The request asked for %s: ignored, a member's certificate is never a CA (CA:FALSE, digitalSignature only).\n", asked)
	}
	fmt.Fprintf(c.io.err, "Issued a certificate for %q (%s), valid until %s.\n", identity.DisplayName(cert), id, cert.NotAfter.UTC().Format(time.DateOnly))
	_, err = c.io.out.Write(identity.EncodeCertificatesPEM(cert))
	return err
}

func (c *ctx) trustStore() (*identity.TrustStore, error) {
	h, err := c.home()
	if err != nil {
		return nil, err
	}
	return h.TrustStore()
}

// readCACert reads one CA certificate from file and checks it.
func (c *ctx) readCACert(file string, check func(*x509.Certificate) error) (*identity.CA, error) {
	data, err := c.readInput(file)
	if err != nil {
		return nil, err
	}
	certs, err := identity.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("%s holds %d certificates: give one CA certificate (a root, or with --intermediate an intermediate CA)", file, len(certs))
	}
	if err := check(certs[0]); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &identity.CA{Cert: certs[0]}, nil
}

func runTrustAddCA(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	check, add, kind := identity.CheckCA, (*identity.TrustStore).AddRoot, "CA"
	if c.opts.intermediate {
		check, add, kind = identity.CheckAnchor, (*identity.TrustStore).AddIntermediate, "intermediate CA"
	}
	ca, err := c.readCACert(c.args[0], check)
	if err != nil {
		return err
	}
	t, err := c.trustStore()
	if err != nil {
		return err
	}
	if err := add(t, ca.Cert); err != nil {
		return err
	}
	fp := identity.FingerprintOf(ca.Cert.PublicKey.(ed25519.PublicKey))
	c.printf("Trusting %s %q (fingerprint %s).\n", kind, identity.DisplayName(ca.Cert), fp)
	c.noteRestartTrust()
	return nil
}

func runTrustRemoveCA(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	ca, err := c.readCACert(c.args[0], identity.CheckAnchor)
	if err != nil {
		return err
	}
	t, err := c.trustStore()
	if err != nil {
		return err
	}
	if err := t.RemoveRoot(ca.Cert); err != nil {
		return err
	}
	c.printf("No longer trusting CA %q.\n", identity.DisplayName(ca.Cert))
	c.noteRestartTrust()
	return nil
}

func runTrustList(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	t, err := c.trustStore()
	if err != nil {
		return err
	}
	roots, err := t.Roots()
	if err != nil {
		return err
	}
	if len(roots) == 0 {
		c.printf("You trust no CA yet; add one with `chat trust add-ca FILE`.\n")
	}
	for _, r := range roots {
		fp := identity.FingerprintOf(r.PublicKey.(ed25519.PublicKey))
		kind := ""
		if identity.CheckCA(r) != nil {
			kind = " (an intermediate CA, trusted itself; issued by " + identity.IssuerName(r) + ")"
		}
		c.printf("%s%s\n  fingerprint: %s\n  valid until: %s\n", identity.DisplayName(r), kind, fp, r.NotAfter.UTC().Format(time.DateOnly))
	}
	return nil
}

// noteRestartTrust is noteRestart after a change of the trusted roots.
func (c *ctx) noteRestartTrust() {
	if h, err := c.home(); err == nil {
		c.noteRestart(h, "use the new set of trusted CAs")
	}
}
