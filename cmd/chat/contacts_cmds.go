package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

func contactCommands() []*command {
	verifyFlags := func(fs *flag.FlagSet, o *options) {
		fs.StringVar(&o.fingerprint, "fingerprint", "", "the fingerprint the peer read out to you: mark verified if it matches")
		fs.BoolVar(&o.yes, "yes", false, "mark verified: you compared the safety number")
	}
	return []*command{
		{
			name:    "contacts add",
			args:    "INVITATION|MULTIADDR|PEERID [--name NAME] [--fingerprint FP]",
			summary: "add a contact by invitation, address or peer ID: pin the key (the ID embeds it)",
			help: `The contact is trusted on first use. With --fingerprint, the fingerprint
is checked against the key and the contact is marked verified.

An invitation (CERTCHAT:..., what ` + "`chat id`" + ` or /id shows) is checked
against its signature; its name is the contact's unless --name is given
(with " (2)" if another contact has it). With an invitation or a full
address (.../p2p/PEERID), chat also connects and remembers the addresses:
through ` + "`chat daemon`" + ` if it runs on this home, else with a node of its
own for up to 20 s. A relay's address is refused: a relay is not a person
(use it with --relay).`,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.StringVar(&o.name, "name", "", "your name for the contact")
				fs.StringVar(&o.fingerprint, "fingerprint", "", "the contact's fingerprint, to verify now")
			},
			run: runContactsAdd,
		},
		{
			name:    "contacts list",
			args:    "[--json]",
			summary: "list contacts and how far each is trusted",
			flags: func(fs *flag.FlagSet, o *options) {
				fs.BoolVar(&o.json, "json", false, "print JSON")
			},
			run: runContactsList,
		},
		{
			name:    "contacts verify",
			args:    "PEER [--fingerprint FP | --yes]",
			summary: "mark a contact verified after comparing fingerprints",
			flags:   verifyFlags,
			run:     runContactsVerify,
		},
		{
			name:    "contacts remove",
			args:    "PEER",
			summary: "forget a contact",
			run:     runContactsRemove,
		},
		{
			name:    "contacts block",
			args:    "PEER",
			summary: "reject a contact's key: no chat with it until you add it again",
			run:     runContactsBlock,
		},
		{
			name:    "verify",
			args:    "PEER [--fingerprint FP | --yes]",
			summary: "show the safety number and QR code to compare with a peer",
			help: `Both of you run ` + "`chat verify`" + ` and compare the 60 digits (or scan
the code). If they match, confirm, or pass --yes, and the contact is
marked verified.`,
			flags: verifyFlags,
			run:   runVerify,
		},
	}
}

func runContactsAdd(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	target := c.args[0]
	id, suggested, err := node.ParseTarget(target)
	if err != nil {
		return err
	}
	if target != id.String() {
		if c.opts.fingerprint != "" {
			if err := checkFingerprint(id, c.opts.fingerprint); err != nil {
				return err
			}
		}
		if err := addByAddress(c, target, id, suggested); err != nil {
			return err
		}
		if c.opts.fingerprint == "" {
			return nil
		}
		t, ct, err := c.resolveContact(id.String())
		if err != nil {
			return err
		}
		return markVerified(c, t, ct)
	}
	t, err := c.trustStore()
	if err != nil {
		return err
	}
	state := identity.StateTOFU
	if c.opts.fingerprint != "" {
		if err := checkFingerprint(id, c.opts.fingerprint); err != nil {
			return err
		}
		state = identity.StateVerified
	}
	if err := c.pin(t, id, c.opts.name, state); err != nil {
		return err
	}
	c.printf("Added %s as %s.\n", labelFor(t, id), state)
	return nil
}

// pin is the only way the CLI changes a contact: never one's own peer ID,
// never a name that reads like another contact's.
func (c *ctx) pin(t *identity.TrustStore, id peer.ID, name string, s identity.State) error {
	h, err := c.home()
	if err != nil {
		return err
	}
	chain, err := h.LoadChain()
	if err != nil {
		return err
	}
	if me, _ := identity.CertPeerID(chain[0]); me == id {
		return errors.New("that is your own peer id")
	}
	return t.PinUnique(id, name, s, c.now())
}

func labelFor(t *identity.TrustStore, id peer.ID) string {
	if c, ok, _ := t.Contact(id); ok {
		return fmt.Sprintf("%s (%s)", c.Label(), id)
	}
	return id.String()
}

func checkFingerprint(id peer.ID, typed string) error {
	want, err := identity.ParseFingerprint(typed)
	if err != nil {
		return err
	}
	pub, err := identity.KeyFromPeerID(id)
	if err != nil {
		return err
	}
	if !identity.FingerprintOf(pub).Equal(want) {
		return errors.New("the fingerprint does NOT match this peer's key: do not trust it; nothing was changed")
	}
	return nil
}

type contactJSON struct {
	PeerID      string `json:"peer_id"`
	Name        string `json:"name"`
	CertName    string `json:"cert_name,omitempty"`
	Trust       string `json:"trust"`
	Fingerprint string `json:"fingerprint"`
	ReplacedBy  string `json:"replaced_by,omitempty"`
}

func runContactsList(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	t, err := c.trustStore()
	if err != nil {
		return err
	}
	cs, err := t.Contacts()
	if err != nil {
		return err
	}
	caVerified := c.caVerified(t, cs)
	out := make([]contactJSON, 0, len(cs))
	short := make([]string, 0, len(cs))
	for _, ct := range cs {
		pub, _ := identity.KeyFromPeerID(ct.PeerID)
		fp := identity.FingerprintOf(pub)
		short = append(short, fp.Short())
		trust := ct.State
		if trust == identity.StateTOFU && caVerified[ct.PeerID] {
			trust = identity.StateCAVerified // as the chat window shows it
		}
		j := contactJSON{PeerID: ct.PeerID.String(), Name: ct.Label(), CertName: ct.CertName, Trust: string(trust), Fingerprint: fp.String()}
		if ct.ReplacedBy != "" {
			j.ReplacedBy = ct.ReplacedBy.String()
		}
		out = append(out, j)
	}
	if c.opts.json {
		enc := json.NewEncoder(c.io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(out) == 0 {
		c.printf("No contacts yet. Add one with `chat contacts add INVITATION` (`chat id` shows yours to give).\n")
		return nil
	}
	w := tabwriter.NewWriter(c.io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tTRUST\tFINGERPRINT\tPEER ID")
	for i, j := range out {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", j.Name, j.Trust, short[i], j.PeerID)
	}
	return w.Flush()
}

func (c *ctx) resolveContact(s string) (*identity.TrustStore, identity.Contact, error) {
	t, err := c.trustStore()
	if err != nil {
		return nil, identity.Contact{}, err
	}
	ct, err := t.Resolve(s)
	return t, ct, err
}

func runContactsVerify(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	t, ct, err := c.resolveContact(c.args[0])
	if err != nil {
		return err
	}
	if c.opts.fingerprint == "" && !c.opts.yes {
		if err := printSafety(c, t, ct.PeerID); err != nil {
			return err
		}
		if !c.confirm("Do the safety numbers match? [y/N] ") {
			return errors.New("not marked verified: after comparing, confirm on a terminal or pass --yes or --fingerprint FP")
		}
	}
	return markVerified(c, t, ct)
}

func markVerified(c *ctx, t *identity.TrustStore, ct identity.Contact) error {
	if c.opts.fingerprint != "" {
		if err := checkFingerprint(ct.PeerID, c.opts.fingerprint); err != nil {
			return err
		}
	}
	if err := c.pin(t, ct.PeerID, "", identity.StateVerified); err != nil {
		return err
	}
	c.printf("Marked %s as verified.\n", labelFor(t, ct.PeerID))
	return nil
}

func (c *ctx) confirm(question string) bool {
	ans, err := c.promptLine(question)
	return err == nil && strings.EqualFold(ans, "y")
}

func runVerify(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	t, ct, err := c.resolveContact(c.args[0])
	if err != nil {
		return err
	}
	if err := printSafety(c, t, ct.PeerID); err != nil {
		return err
	}
	if c.opts.fingerprint != "" || c.opts.yes || c.confirm("Do the safety numbers match? [y/N] ") {
		return markVerified(c, t, ct)
	}
	return nil
}

// printSafety shows both fingerprints, the safety number and its QR code.
func printSafety(c *ctx, t *identity.TrustStore, id peer.ID) error {
	h, err := c.home()
	if err != nil {
		return err
	}
	chain, err := h.LoadChain()
	if err != nil {
		return err
	}
	myKey := chain[0].PublicKey.(ed25519.PublicKey) // LoadChain checked the type
	theirs, err := identity.KeyFromPeerID(id)
	if err != nil {
		return err
	}
	if myKey.Equal(theirs) {
		return errors.New("that is your own peer id")
	}
	number, err := identity.SafetyNumber(myKey, theirs)
	if err != nil {
		return err
	}
	qr, err := identity.QRCode(identity.SafetyNumberQR(number))
	if err != nil {
		return err
	}
	c.printf("Safety number with %s:\n\n%s\n\n", labelFor(t, id), strings.Join(safetyRows(number), "\n"))
	c.printf("Read these numbers to them over a channel you trust, in person or by voice\n(not by message); they see the same numbers with `chat verify`. Mark them\nverified only if every group matches.\n\n%s\n", qr)
	c.printf("your fingerprint:  %s\ntheir fingerprint: %s\n\n", identity.FingerprintOf(myKey), identity.FingerprintOf(theirs))
	return nil
}

func runContactsRemove(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	t, ct, err := c.resolveContact(c.args[0])
	if err != nil {
		return err
	}
	label := labelFor(t, ct.PeerID)
	if err := t.Remove(ct.PeerID); err != nil {
		return err
	}
	c.printf("Removed %s.\n", label)
	return nil
}

func runContactsBlock(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	t, ct, err := c.resolveContact(c.args[0])
	if err != nil {
		return err
	}
	if err := c.pin(t, ct.PeerID, "", identity.StateUntrusted); err != nil {
		return err
	}
	c.printf("Blocked %s: its key is untrusted now.\n", labelFor(t, ct.PeerID))
	return nil
}

// safetyRows lays out the 12 groups of a safety number as the chat
// window's /verify does: three rows of four groups, indented.
func safetyRows(number string) []string {
	groups := strings.Fields(number)
	var rows []string
	for i := 0; i < len(groups); i += 4 {
		rows = append(rows, "    "+strings.Join(groups[i:min(i+4, len(groups))], " "))
	}
	return rows
}
