package main

import (
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
)

func identityCommands() []*command {
	return []*command{
		{
			name:    "init",
			args:    "[--name NAME] [--no-passphrase]",
			summary: "create your identity: an Ed25519 key and a self-signed certificate",
			help: `The key is encrypted with a passphrase (Argon2id and XChaCha20-Poly1305)
unless --no-passphrase is given. Without a terminal, the name comes from
--name or $CERTCHAT_NAME and the passphrase from --passphrase-file or
$CERTCHAT_PASSPHRASE. An existing identity is never replaced.`,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.StringVar(&o.name, "name", os.Getenv("CERTCHAT_NAME"), "your display name ($CERTCHAT_NAME)")
				fs.BoolVar(&o.noPassphrase, "no-passphrase", false, "store the key unencrypted (not recommended)")
			},
			run:             runInit,
			withoutIdentity: true,
		},
		{
			name:    "id",
			args:    "[--json | --invite] [--listen MULTIADDR] [--relay MULTIADDR]",
			summary: "show your name, peer ID, fingerprint, certificate and invitation",
			help: `The invitation (CERTCHAT:..., and its QR code) is what you share: it
carries your peer ID, name, addresses and relays, signed with your key;
the other side adds you with ` + "`chat contacts add INVITATION`" + ` or /add. It
is made by the running daemon, else for the addresses the next ` + "`chat`" + `
run listens on (the remembered ports, or --listen) and your relays: that
needs your key. ` + "`chat id`" + ` never asks for the passphrase (an encrypted
key shows no invitation unless --passphrase-file or $CERTCHAT_PASSPHRASE
gives it); ` + "`chat id --invite`" + ` asks. With a chat window open on the
home, use /id there. --invite prints only the invitation's text, for
scripts; --json prints no invitation.`,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.BoolVar(&o.json, "json", false, "print a JSON object (no invitation)")
				fs.BoolVar(&o.invite, "invite", false, "print only the invitation's text")
				fs.Var(&o.node.listen, "listen", "the addresses the invitation is for (as `chat --listen`)")
				fs.Var(&o.node.relays, "relay", "a relay the invitation names, remembered (as `chat --relay`)")
			},
			run: runID,
		},
		{
			name:    "csr",
			args:    "> me.csr",
			summary: "print a certificate signing request (PEM) for a CA to sign",
			help: `Give the request to your group's CA. It can be signed with
` + "`chat ca sign`" + ` or with openssl, setting the extensions itself
(CA:FALSE, digitalSignature, the request's libp2p:peer SAN): the README,
"A group CA", gives the command. Never with -copy_extensions copy: it
copies whatever a request asks for, CA:TRUE included, and chat refuses a
CA certificate as an identity. Install the result with
` + "`chat cert import me.crt`" + `. openssl reads ca.key only if the CA was
made with ` + "`chat ca init --no-passphrase`" + ` (or by openssl): an
encrypted ca.key is certchat's own format.`,
			run: runCSR,
		},
		{
			name:    "cert import",
			args:    "FILE",
			summary: "install a CA-issued certificate for your key",
			help: `The certificate must be for your own key, must not be a CA certificate
(CA:TRUE, keyCertSign, cRLSign), and must be issued directly by a CA root
you trust (` + "`chat trust add-ca`" + `). It replaces your current
certificate; only the certificate itself is kept, not the rest of FILE.
A chat window or daemon already running on this home keeps presenting the
old one until it is restarted.`,
			run: runCertImport,
		},
	}
}

func startCommand() *command {
	return &command{
		name:    "",
		args:    "[--name NAME] [--no-passphrase] [--notify auto|osc777|osc9|osc99|off] [--listen MULTIADDR] [--relay MULTIADDR] [--no-mdns] [--require-pq] [--log FILE]",
		summary: "open the chat; on first run, create your identity",
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.name, "name", os.Getenv("CERTCHAT_NAME"), "your display name on first run ($CERTCHAT_NAME)")
			fs.BoolVar(&o.noPassphrase, "no-passphrase", false, "on first run, store the key unencrypted (not recommended)")
			fs.StringVar(&o.notify, "notify", os.Getenv("CERTCHAT_NOTIFY"), "desktop notifications: auto, osc777, osc9, osc99 or off ($CERTCHAT_NOTIFY; default: \"notify\" in home/config.json, else auto)")
			nodeFlags(fs, o)
		},
		run:             runStart,
		withoutIdentity: true,
	}
}

func runStart(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	if !h.HasIdentity() {
		if err := firstRun(c, h); err != nil {
			return err
		}
	}
	return openChat(c, h)
}

// firstRun creates an identity, asking on the terminal for what flags and
// the environment did not give.
func firstRun(c *ctx, h identity.Home) error {
	fmt.Fprintf(c.io.err, "Welcome to certchat. No identity in %s yet; let's create one.\n", h.Dir)
	if c.opts.name == "" {
		name, err := c.askName(h)
		if err != nil {
			return err
		}
		c.opts.name = name
	}
	return runInit(c)
}

// askName asks for the display name at the terminal; Enter takes the
// user's login name. A name CheckName refuses (too long, unprintable) is
// asked again, up to maxPassphraseAttempts times in all: it used to end
// the first run.
func (c *ctx) askName(h identity.Home) (string, error) {
	def := defaultName()
	for attempt := 1; ; attempt++ {
		ans, err := c.promptLine(fmt.Sprintf("Your name as peers will see it [%s]: ", def))
		if err != nil {
			// Why no name came, and how to give one.
			why := "there is no terminal to ask for your name"
			if c.tty != nil {
				why = "no name was typed"
			}
			return "", fmt.Errorf("no identity in %s yet, and %s: give it with --name NAME or $CERTCHAT_NAME (or run `chat init --name NAME`)", h.Dir, why)
		}
		if ans = strings.TrimSpace(ans); ans == "" {
			ans = def
		}
		err = identity.CheckName(ans)
		switch {
		case err == nil:
			return ans, nil
		case attempt == maxPassphraseAttempts:
			return "", fmt.Errorf("%w; nothing was created", err)
		}
		fmt.Fprintf(c.io.err, "%s, try again\n", err)
	}
}

func defaultName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "me"
}

func runInit(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	if h.HasIdentity() {
		return fmt.Errorf("%w in %s; nothing was changed", identity.ErrIdentityExists, h.Dir)
	}
	if c.opts.name == "" {
		return usageErr("give your display name with --name NAME (or $CERTCHAT_NAME)")
	}
	if err := identity.CheckName(c.opts.name); err != nil {
		return err
	}
	pass, err := c.newSecret(c.identitySecret(), c.opts.noPassphrase)
	if err != nil {
		return err
	}
	id, err := h.Init(c.opts.name, pass, identity.DefaultKDF, c.now())
	if err != nil {
		return err
	}
	// The chat opens right after a first run: do not ask for the
	// passphrase again, nor decrypt the key just written.
	c.id = id
	protection := "encrypted with your passphrase"
	if pass == nil {
		protection = "NOT encrypted (--no-passphrase)"
	}
	fmt.Fprintf(c.io.err, "Created identity %q in %s; the key is %s.\n", id.Name(), h.Dir, protection)
	return nil
}

// idInfo is what `chat id --json` prints.
type idInfo struct {
	PeerID       string    `json:"peer_id"`
	Name         string    `json:"name"`
	Fingerprint  string    `json:"fingerprint"`
	Issuer       string    `json:"issuer"`
	NotAfter     time.Time `json:"not_after"`
	Home         string    `json:"home"`
	KeyEncrypted bool      `json:"key_encrypted"`
}

func runID(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	if c.opts.invite {
		text, err := c.invitation(h)
		if err != nil {
			return err
		}
		c.printf("%s\n", text)
		return nil
	}
	if !c.opts.json {
		encrypted, err := printIdentity(c, h)
		if err != nil {
			return err
		}
		// chat id asks for no passphrase: an encrypted key that no
		// running daemon holds and no passphrase unlocks makes no
		// invitation here.
		if pass, given, _ := c.identitySecret().given(); encrypted && (!given || len(pass) == 0) && !daemonRuns(h) {
			c.printf("\nInvitation: your key is encrypted; `chat id --invite` makes it (it asks for the passphrase), or /id in the chat window.\n")
			return nil
		}
		text, err := c.invitation(h)
		if err != nil {
			c.printf("\nNo invitation: %s\n", err)
			return nil
		}
		return c.printInvitation(text)
	}
	info, err := identityInfo(h)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(c.io.out)
	enc.SetIndent("", "  ")
	return enc.Encode(info)
}

func identityInfo(h identity.Home) (idInfo, error) {
	chain, err := h.LoadChain()
	if err != nil {
		return idInfo{}, err
	}
	leaf := chain[0]
	id, _ := identity.CertPeerID(leaf) // LoadChain checked it
	keyPEM, err := identity.ReadFileLimited(h.KeyPath(), maxKeyFile)
	if err != nil {
		return idInfo{}, err
	}
	pub := leaf.PublicKey.(ed25519.PublicKey) // LoadChain checked the type
	return idInfo{
		PeerID:       id.String(),
		Name:         identity.DisplayName(leaf),
		Fingerprint:  identity.FingerprintOf(pub).String(),
		Issuer:       identity.IssuerName(leaf),
		NotAfter:     leaf.NotAfter.UTC(),
		Home:         h.Dir,
		KeyEncrypted: identity.IsEncryptedKey(keyPEM),
	}, nil
}

// printIdentity prints the identity and reports whether its key is
// encrypted.
func printIdentity(c *ctx, h identity.Home) (bool, error) {
	info, err := identityInfo(h)
	if err != nil {
		return false, err
	}
	key := "encrypted with a passphrase"
	if !info.KeyEncrypted {
		key = "not encrypted"
	}
	c.printf("name:         %s\n", info.Name)
	c.printf("peer id:      %s\n", info.PeerID)
	c.printf("fingerprint:  %s\n", info.Fingerprint)
	c.printf("certificate:  %s, valid until %s (%s)\n", info.Issuer, info.NotAfter.Format(time.DateOnly), untilText(c.now(), info.NotAfter))
	c.printf("key:          %s\n", key)
	c.printf("home:         %s\n", info.Home)
	return info.KeyEncrypted, nil
}

// untilText says how long until t, in days.
func untilText(now, t time.Time) string {
	d := t.Sub(now)
	if d < 0 {
		return "EXPIRED"
	}
	days := int(d.Hours() / 24)
	if days == 1 {
		return "1 day left"
	}
	return fmt.Sprintf("%d days left", days)
}

func runCSR(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	id, _, err := c.loadIdentity()
	if err != nil {
		return err
	}
	pem, err := identity.NewCSR(id.Signer(), id.Name())
	if err != nil {
		return err
	}
	_, err = c.io.out.Write(pem)
	return err
}

func runCertImport(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	data, err := c.readInput(c.args[0])
	if err != nil {
		return err
	}
	chain, err := identity.ParseCertificatesPEM(data)
	if err != nil {
		return fmt.Errorf("%s: %w", c.args[0], err)
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	trust, err := h.TrustStore()
	if err != nil {
		return err
	}
	chain, err = h.ImportCertificate(chain, trust, c.now())
	if err != nil {
		return fmt.Errorf("import %s: %w", c.args[0], err)
	}
	c.printf("Installed the certificate for %q issued by %s, valid until %s.\n",
		identity.DisplayName(chain[0]), identity.IssuerName(chain[0]), chain[0].NotAfter.UTC().Format(time.DateOnly))
	c.noteRestart(h, "present the new certificate")
	return nil
}

// readInput reads a file argument, or stdin for "-", with a size bound.
func (c *ctx) readInput(name string) ([]byte, error) {
	if name != "-" {
		return identity.ReadFileLimited(name, maxInputFile)
	}
	data, err := io.ReadAll(io.LimitReader(c.io.in, maxInputFile+1))
	if err != nil {
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if len(data) > maxInputFile {
		return nil, fmt.Errorf("standard input is larger than %d bytes", maxInputFile)
	}
	return data, nil
}

// Bounds on files the CLI reads.
const (
	maxInputFile = 1 << 20  // certificates, CSRs
	maxKeyFile   = 64 << 10 // key files
)
