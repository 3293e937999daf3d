package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// State is how far a peer's certificate is trusted.
type State string

// Trust states, from the evaluation of a certificate for a peer ID.
const (
	// StateCAVerified: the certificate was issued directly by a CA root
	// the user trusts (never through an intermediate).
	StateCAVerified State = "ca-verified"
	// StateVerified: the user compared the key's fingerprint or safety number.
	StateVerified State = "verified"
	// StateTOFU: the key was pinned on first use and never compared.
	StateTOFU State = "tofu"
	// StateChanged: a known name now comes with a different key. Blocks
	// until the user accepts or rejects the new key.
	StateChanged State = "changed"
	// StateExpired: the certificate is outside its validity dates.
	StateExpired State = "expired"
	// StateUntrusted: the user rejected this key, or it was replaced.
	StateUntrusted State = "untrusted"
	// StateUnknown: first contact; the user has not decided yet.
	StateUnknown State = "unknown"
)

// Trusted reports whether messages may flow without asking the user.
func (s State) Trusted() bool {
	return s == StateCAVerified || s == StateVerified || s == StateTOFU
}

// Contact is a peer the user has decided about.
type Contact struct {
	PeerID peer.ID `json:"peer_id"`
	// Name is the user's label for the contact.
	Name string `json:"name,omitempty"`
	// CertName is the common name last seen in the peer's certificate.
	CertName string `json:"cert_name,omitempty"`
	// State is one of verified, tofu or untrusted.
	State   State     `json:"state"`
	Added   time.Time `json:"added"`
	Updated time.Time `json:"updated"`
	// ReplacedBy is set when the user accepted a new key for this contact.
	ReplacedBy peer.ID `json:"replaced_by,omitempty"`
}

// Label is the name to show: the user's label, else the certificate name,
// else a short peer ID.
func (c Contact) Label() string {
	switch {
	case c.Name != "":
		return SanitizeName(c.Name)
	case c.CertName != "":
		return SanitizeName(c.CertName)
	}
	return ShortID(c.PeerID)
}

// ShortID abbreviates a peer ID for display.
func ShortID(id peer.ID) string {
	s := id.String()
	if len(s) > 12 {
		return s[:6] + "…" + s[len(s)-6:]
	}
	return s
}

// Verdict is the answer of Evaluate: who the peer is, how far its
// certificate is trusted and why, in words a person can read.
type Verdict struct {
	PeerID peer.ID
	Name   string // display name: the contact's label or the certificate's CN
	State  State
	Reason string
	Issuer string // "self-signed" or the issuing CA's name
	// IssuerTrusted is set when a trusted CA root issued the certificate
	// directly (Issuer is then that root's name). Otherwise Issuer is only
	// what the certificate claims: anyone can make a CA named "Acme Root".
	IssuerTrusted bool
	Fingerprint   Fingerprint
	NotAfter      time.Time
	// Previous is the contact whose name this key claims, when State is changed.
	Previous *Contact
	// Chain is the chain evaluated, leaf first: what the node keeps of a
	// key whose handshake it refused, to evaluate it again later.
	Chain []*x509.Certificate `json:"-"`
	// ValidFrom and ValidUntil, set when State is ca-verified, bound the
	// times at which the same chain and trust store contents
	// (TrustStore.GenerationSince) give this verdict: the leaf's validity
	// and its issuing CA's, both inclusive. Zero otherwise.
	ValidFrom, ValidUntil time.Time `json:"-"`
}

// trustFile is the on-disk form of the trust store (trust.json).
type trustFile struct {
	Version  int       `json:"version"`
	Contacts []Contact `json:"contacts"`
	Roots    []string  `json:"roots"` // PEM

	roots []*x509.Certificate // Roots, parsed
}

const (
	trustVersion = 1
	maxTrustFile = 8 << 20
)

// TrustStore holds contacts and trusted CA roots, in a JSON file shared by
// every process using the same home. Reads see changes other processes made;
// writes are serialised with a file lock and are atomic.
type TrustStore struct {
	path string

	mu      sync.Mutex
	issuers issuerMemo
	stat    os.FileInfo
	// checked is when the file was last compared with what is loaded
	// (ContactSince); zero: never.
	checked  time.Time
	contacts map[peer.ID]Contact
	roots    []*x509.Certificate
	pool     *x509.CertPool
	// keys holds each contact's NameKey of its label and of its
	// certificate name ("" for none), computed when the file is loaded:
	// Evaluate compares a certificate's name with every contact's.
	keys map[peer.ID][2]string

	// gen counts the contents loaded (contacts and roots, from the file
	// or as written): a decision drawn from them holds while it is the
	// same (GenerationSince). Written under mu, read without it.
	gen atomic.Uint64
	// checkedMono is checked as an offset from monoBase plus one (zero:
	// never), for GenerationSince without mu. Written under mu, with
	// checked.
	checkedMono atomic.Int64
}

// monoBase is the origin of TrustStore.checkedMono: offsets from it
// compare on the monotonic clock.
var monoBase = time.Now()

// setChecked records when the file was last compared with the disk.
// Callers hold mu, and bump gen first if the contents changed.
func (t *TrustStore) setChecked(at time.Time) {
	t.checked = at
	t.checkedMono.Store(int64(at.Sub(monoBase)) + 1)
}

// OpenTrustStore opens the store at path; a missing file is an empty store.
func OpenTrustStore(path string) (*TrustStore, error) {
	t := &TrustStore{path: path}
	if err := t.refresh(); err != nil {
		return nil, err
	}
	return t, nil
}

// refresh reloads the file if another process replaced it. Callers hold mu
// or are the constructor.
func (t *TrustStore) refresh() error { return t.reload(false) }

// reload is refresh; force skips the check that the file is unchanged,
// which update needs: a replaced file can reuse the inode, size and
// (coarse) modification time of the one cached, and a read-modify-write
// cycle on a stale copy would lose the other writer's change.
func (t *TrustStore) reload(force bool) error {
	checked := time.Now() // what is read below is the file as it is at this time or later
	st, err := os.Stat(t.path)
	if errors.Is(err, os.ErrNotExist) {
		if t.contacts == nil || t.stat != nil {
			t.stat, t.contacts, t.roots, t.pool = nil, map[peer.ID]Contact{}, nil, x509.NewCertPool()
			t.gen.Add(1)
		}
		t.setChecked(checked)
		return nil
	}
	if err != nil {
		return fmt.Errorf("trust store: %w", err)
	}
	if !force && t.stat != nil && os.SameFile(st, t.stat) && st.ModTime().Equal(t.stat.ModTime()) && st.Size() == t.stat.Size() {
		t.setChecked(checked)
		return nil
	}
	data, err := ReadFileLimited(t.path, maxTrustFile)
	if err != nil {
		return fmt.Errorf("trust store: %w", err)
	}
	f, err := parseTrustFile(data)
	if err != nil {
		return fmt.Errorf("trust store %s: %w", t.path, err)
	}
	t.load(f)
	t.stat = st
	t.setChecked(checked)
	return nil
}

// load makes f the store's contents. Callers hold mu.
func (t *TrustStore) load(f *trustFile) {
	defer t.gen.Add(1) // after the contents: who reads the new count finds them
	t.contacts = make(map[peer.ID]Contact, len(f.Contacts))
	t.keys = make(map[peer.ID][2]string, len(f.Contacts))
	for _, c := range f.Contacts {
		t.contacts[c.PeerID] = c
		t.keys[c.PeerID] = [2]string{NameKey(c.Name), NameKey(c.CertName)}
	}
	t.roots = f.roots
	t.pool = x509.NewCertPool()
	for _, r := range f.roots {
		t.pool.AddCert(r)
	}
}

// parseTrustFile parses and validates trust.json. It rejects unknown
// versions, malformed peer IDs, unknown states, duplicates and roots that
// are not Ed25519 CA certificates.
func parseTrustFile(data []byte) (*trustFile, error) {
	var f trustFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	// dec.More would miss a stray "}" or "]".
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrCorrupt)
	}
	if f.Version != trustVersion {
		return nil, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, f.Version)
	}
	seen := map[peer.ID]bool{}
	for _, c := range f.Contacts {
		if _, err := KeyFromPeerID(c.PeerID); err != nil {
			return nil, fmt.Errorf("%w: contact: %v", ErrCorrupt, err)
		}
		if seen[c.PeerID] {
			return nil, fmt.Errorf("%w: contact %s listed twice", ErrCorrupt, c.PeerID)
		}
		seen[c.PeerID] = true
		switch c.State {
		case StateVerified, StateTOFU, StateUntrusted:
		default:
			return nil, fmt.Errorf("%w: contact %s has state %q", ErrCorrupt, c.PeerID, c.State)
		}
		if c.ReplacedBy != "" {
			if _, err := KeyFromPeerID(c.ReplacedBy); err != nil {
				return nil, fmt.Errorf("%w: contact %s: %v", ErrCorrupt, c.PeerID, err)
			}
		}
	}
	for _, p := range f.Roots {
		certs, err := ParseCertificatesPEM([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("%w: root: %v", ErrCorrupt, err)
		}
		if len(certs) != 1 {
			return nil, fmt.Errorf("%w: root entry holds %d certificates", ErrCorrupt, len(certs))
		}
		if err := CheckAnchor(certs[0]); err != nil {
			return nil, fmt.Errorf("%w: root: %v", ErrCorrupt, err)
		}
		f.roots = append(f.roots, certs[0])
	}
	return &f, nil
}

// update runs a read-modify-write cycle under the file lock.
func (t *TrustStore) update(fn func(contacts map[peer.ID]Contact, roots *[]*x509.Certificate) error) error {
	unlock, err := lockFile(t.path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.reload(true); err != nil {
		return err
	}
	contacts := make(map[peer.ID]Contact, len(t.contacts))
	for k, v := range t.contacts {
		contacts[k] = v
	}
	roots := slices.Clone(t.roots)
	if err := fn(contacts, &roots); err != nil {
		return err
	}
	f := &trustFile{Version: trustVersion, Contacts: []Contact{}, Roots: []string{}, roots: roots}
	for _, c := range contacts {
		f.Contacts = append(f.Contacts, c)
	}
	slices.SortFunc(f.Contacts, func(a, b Contact) int { return strings.Compare(string(a.PeerID), string(b.PeerID)) })
	for _, r := range roots {
		f.Roots = append(f.Roots, string(EncodeCertificatesPEM(r)))
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(t.path, append(data, '\n'), 0o600); err != nil {
		return err
	}
	t.load(f)
	t.stat, _ = os.Stat(t.path)
	return nil
}

// Contacts lists contacts sorted by label.
func (t *TrustStore) Contacts() ([]Contact, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return nil, err
	}
	out := make([]Contact, 0, len(t.contacts))
	for _, c := range t.contacts {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Contact) int {
		if c := strings.Compare(strings.ToLower(a.Label()), strings.ToLower(b.Label())); c != 0 {
			return c
		}
		return strings.Compare(string(a.PeerID), string(b.PeerID))
	})
	return out, nil
}

// Contact returns the contact with that peer ID.
func (t *TrustStore) Contact(id peer.ID) (Contact, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return Contact{}, false, err
	}
	c, ok := t.contacts[id]
	return c, ok, nil
}

// ContactSince is Contact for a caller to whom the file as this store
// last compared it with the disk is fresh enough if that was at since or
// later: it reads the disk (a stat) only if not. Many look-ups in a row
// (a group message's copies, one per member) then cost one stat, not one
// each. Changes made through this TrustStore are seen at once whatever
// since is; another process's, by the first look-up whose since is after
// them.
func (t *TrustStore) ContactSince(id peer.ID, since time.Time) (Contact, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.checked.IsZero() || t.checked.Before(since) {
		if err := t.refresh(); err != nil {
			return Contact{}, false, err
		}
	}
	c, ok := t.contacts[id]
	return c, ok, nil
}

// GenerationSince is a count that changes whenever the contacts or the
// trusted CAs change, with the file compared with the disk at since or
// later as for ContactSince. A caller may keep a decision drawn from the
// store (a contact's state, a verdict of Evaluate, within the validity
// it names: Verdict.ValidFrom and ValidUntil) while the count is the
// same: a change through this TrustStore moves it before the call that
// made it returns, another process's by the first call whose since is
// after it. When the file was compared recently enough, it takes no
// lock: a group message's copies, one per member, ask it once each.
func (t *TrustStore) GenerationSince(since time.Time) (uint64, error) {
	if c := t.checkedMono.Load(); c != 0 && c-1 >= int64(since.Sub(monoBase)) {
		return t.gen.Load(), nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.checked.IsZero() || t.checked.Before(since) {
		if err := t.refresh(); err != nil {
			return 0, err
		}
	}
	return t.gen.Load(), nil
}

// Resolve finds a contact by peer ID or by name (case-insensitive). A
// valid peer ID that is not a contact resolves to an empty contact with
// only PeerID set, so callers can pin it. Only an Ed25519 peer ID is
// taken as one: other text that decodes as a peer ID (a short name such
// as "16FbzZ", the end of a real ID, decodes as one that embeds no key)
// is tried as a name, and if no contact is called so the error
// (ErrUnknownContact) says why it is not a peer ID either.
func (t *TrustStore) Resolve(s string) (Contact, error) {
	var notID error // why s, which decodes as a peer ID, names no peer
	if id, err := peer.Decode(s); err == nil {
		if _, notID = KeyFromPeerID(id); notID == nil {
			c, ok, err := t.Contact(id)
			if err != nil {
				return Contact{}, err
			}
			if !ok {
				return Contact{PeerID: id}, nil
			}
			return c, nil
		}
	}
	cs, err := t.Contacts()
	if err != nil {
		return Contact{}, err
	}
	c, err := contactNamed(cs, s)
	if notID != nil && errors.Is(err, ErrUnknownContact) {
		return Contact{}, fmt.Errorf("%w %q, and it is not a valid peer id (%w): give a whole peer id (12D3KooW…) or a contact's name", ErrUnknownContact, s, notID)
	}
	return c, err
}

// contactNamed is the contact of cs that s names (Resolve of a name).
func contactNamed(cs []Contact, s string) (Contact, error) {
	// Names are compared as the trust store compares them (NameKey): a
	// contact whose name only looks like another's makes the name
	// ambiguous, so the user gives a peer ID instead of reaching the
	// look-alike by mistake.
	key := NameKey(s)
	var found []Contact
	for _, c := range cs {
		name := c.Name
		if name == "" {
			name = c.CertName
		}
		if key != "" && NameKey(name) == key {
			found = append(found, c)
		}
	}
	if len(found) > 1 {
		// A key replaced by AcceptChange hands its name to the new one.
		current := slices.DeleteFunc(slices.Clone(found), func(c Contact) bool { return c.ReplacedBy != "" })
		if len(current) > 0 {
			found = current
		}
	}
	switch len(found) {
	case 0:
		return Contact{}, fmt.Errorf("%w %q: give a peer id or a contact's name", ErrUnknownContact, s)
	case 1:
		return found[0], nil
	}
	return Contact{}, fmt.Errorf("%d contacts are called %q: use the peer id", len(found), s)
}

// Roots lists trusted CA roots.
func (t *TrustStore) Roots() ([]*x509.Certificate, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return nil, err
	}
	return slices.Clone(t.roots), nil
}

// FindCA finds a trusted CA (a root, or an intermediate trusted itself)
// by its name, as `chat trust list` shows it (any case, compared as
// contact names are), or by its fingerprint, whole or its first group or
// more (dashes optional). Two CAs of one name are told apart by
// fingerprint.
func (t *TrustStore) FindCA(s string) (*x509.Certificate, error) {
	cas, err := t.Roots()
	if err != nil {
		return nil, err
	}
	key, fp := NameKey(s), strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
	var found []*x509.Certificate
	for _, ca := range cas {
		pub, ok := ca.PublicKey.(ed25519.PublicKey)
		if !ok {
			continue // CheckCA lets none in
		}
		byName := key != "" && NameKey(DisplayName(ca)) == key
		byFP := len(fp) >= 7 && strings.HasPrefix(strings.ReplaceAll(FingerprintOf(pub).String(), "-", ""), fp)
		if byName || byFP {
			found = append(found, ca)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w is called %q: `chat trust list` shows their names and fingerprints", ErrUnknownCA, s)
	case 1:
		return found[0], nil
	}
	fps := make([]string, len(found))
	for i, ca := range found {
		fps[i] = FingerprintOf(ca.PublicKey.(ed25519.PublicKey)).String()[:7]
	}
	return nil, fmt.Errorf("%d CAs you trust are called %q: name one by its fingerprint (%s)", len(found), s, strings.Join(fps, ", "))
}

// AddRoot trusts a CA root certificate.
func (t *TrustStore) AddRoot(cert *x509.Certificate) error {
	if err := CheckCA(cert); err != nil {
		return err
	}
	return t.addAnchor(cert)
}

// AddIntermediate trusts a CA certificate that is not a root, as the user
// asked explicitly: certificates it issues directly are CA-verified
// (issued by it), whoever issued it. Nothing else follows from it: the
// root above it is not trusted, nor are CAs below it.
func (t *TrustStore) AddIntermediate(cert *x509.Certificate) error {
	if err := CheckAnchor(cert); err != nil {
		return err
	}
	return t.addAnchor(cert)
}

func (t *TrustStore) addAnchor(cert *x509.Certificate) error {
	return t.update(func(_ map[peer.ID]Contact, roots *[]*x509.Certificate) error {
		for _, r := range *roots {
			if r.Equal(cert) {
				return nil
			}
		}
		*roots = append(*roots, cert)
		return nil
	})
}

// RemoveRoot stops trusting a CA root.
func (t *TrustStore) RemoveRoot(cert *x509.Certificate) error {
	return t.update(func(_ map[peer.ID]Contact, roots *[]*x509.Certificate) error {
		n := len(*roots)
		*roots = slices.DeleteFunc(*roots, func(r *x509.Certificate) bool { return r.Equal(cert) })
		if len(*roots) == n {
			return errors.New("that CA is not trusted")
		}
		return nil
	})
}

// Pin adds or updates a contact with a stored state (verified, tofu or
// untrusted). An empty name keeps the current label.
func (t *TrustStore) Pin(id peer.ID, name string, state State, now time.Time) error {
	return t.pin(id, state, now, func(map[peer.ID]Contact) (string, error) { return name, nil })
}

// PinUnique pins id as Pin does, refusing (NameTakenError, which is
// ErrNameTaken) a name that reads the same as another contact's label,
// checked under the store's lock: what the user names a contact never
// makes two contacts read the same.
func (t *TrustStore) PinUnique(id peer.ID, name string, state State, now time.Time) error {
	return t.pin(id, state, now, func(contacts map[peer.ID]Contact) (string, error) {
		if name == "" {
			return "", nil
		}
		if err := nameTaken(contacts, id, name); err != nil {
			return "", err
		}
		return name, nil
	})
}

// PinDistinct pins id as Pin does, labelled base, or base with the first
// free suffix " (2)", " (3)", ... if another contact reads base, chosen
// under the store's lock; it returns the label.
func (t *TrustStore) PinDistinct(id peer.ID, base string, state State, now time.Time) (string, error) {
	var label string
	err := t.pin(id, state, now, func(contacts map[peer.ID]Contact) (string, error) {
		label = freeLabel(contacts, base, id)
		return label, nil
	})
	return label, err
}

// pin is Pin with the name chosen inside the update; "" keeps the label.
func (t *TrustStore) pin(id peer.ID, state State, now time.Time, name func(map[peer.ID]Contact) (string, error)) error {
	if _, err := KeyFromPeerID(id); err != nil {
		return err
	}
	switch state {
	case StateVerified, StateTOFU, StateUntrusted:
	default:
		return fmt.Errorf("cannot pin a contact as %q", state)
	}
	return t.update(func(contacts map[peer.ID]Contact, _ *[]*x509.Certificate) error {
		c, ok := contacts[id]
		if !ok {
			c = Contact{PeerID: id, Added: now}
		}
		n, err := name(contacts)
		if err != nil {
			return err
		}
		if n != "" {
			if err := CheckName(n); err != nil {
				return err
			}
			c.Name = n
		}
		if c.State != state {
			c.State, c.Updated = state, now
		}
		if state != StateUntrusted {
			c.ReplacedBy = ""
		}
		contacts[id] = c
		return nil
	})
}

// NoteCertName records the certificate name a contact presented.
//
// The label the user knows a contact by never changes behind their back.
// A contact without a label of its own reads as its certificate name; when
// a later certificate of the same key says another name, the name it read
// as until then becomes its label, and the new name is only its
// certificate name (shown beside the label: "bob, whose certificate now
// says ..."). Otherwise a contact could rename itself to a look-alike of
// another contact, and two contacts would read the same.
func (t *TrustStore) NoteCertName(id peer.ID, certName string) error {
	c, ok, err := t.Contact(id)
	if err != nil || !ok || c.CertName == certName {
		return err
	}
	return t.update(func(contacts map[peer.ID]Contact, _ *[]*x509.Certificate) error {
		c, ok := contacts[id]
		if !ok || c.CertName == certName {
			return nil
		}
		switch {
		case c.Name == "" && c.CertName != "":
			// Renamed: keep the label it had.
			c.Name = c.Label()
		case c.Name == "":
			// A key accepted before its certificate was seen (a first
			// message through a relay) may claim another contact's name:
			// it gets a label of its own, so two contacts never read the
			// same.
			base := SanitizeName(certName)
			if label := freeLabel(contacts, base, id); label != base {
				c.Name = label
			}
		}
		c.CertName = certName
		contacts[id] = c
		return nil
	})
}

// labelTaken reports whether a contact other than except reads label: its
// label has the same NameKey.
func labelTaken(contacts map[peer.ID]Contact, label string, except peer.ID) bool {
	for id, c := range contacts {
		if id != except && SameName(c.Label(), label) {
			return true
		}
	}
	return false
}

// freeLabel is base, or base with the first free suffix " (2)", " (3)",
// ..., so that no contact other than except reads the same.
func freeLabel(contacts map[peer.ID]Contact, base string, except peer.ID) string {
	label := base
	for i := 2; labelTaken(contacts, label, except); i++ {
		label = fmt.Sprintf("%s (%d)", base, i)
	}
	return label
}

// AcceptChange resolves a changed key in favour of the new one: newID is
// pinned with state (tofu or verified), taking over the old contact's label,
// and the old key is marked untrusted and replaced.
func (t *TrustStore) AcceptChange(oldID, newID peer.ID, certName string, state State, now time.Time) error {
	if state != StateTOFU && state != StateVerified {
		return fmt.Errorf("cannot accept a new key as %q", state)
	}
	if _, err := KeyFromPeerID(newID); err != nil {
		return err
	}
	return t.update(func(contacts map[peer.ID]Contact, _ *[]*x509.Certificate) error {
		old, ok := contacts[oldID]
		if !ok {
			return fmt.Errorf("%w %s", ErrUnknownContact, oldID)
		}
		// The new key becomes the contact the user knows: it takes the
		// label the old key read as, not the name its certificate says
		// (which may only look like it).
		name := old.Name
		if name == "" && old.CertName != "" {
			name = old.Label()
		}
		contacts[newID] = Contact{PeerID: newID, Name: name, CertName: certName, State: state, Added: now, Updated: now}
		old.State, old.ReplacedBy, old.Updated = StateUntrusted, newID, now
		contacts[oldID] = old
		return nil
	})
}

// Rename gives a contact a new label. A label that reads the same as
// another contact's (NameKey: case, look-alike letters, surrounding
// punctuation) is refused with ErrNameTaken, so two contacts never read
// the same; the check runs under the store's lock.
func (t *TrustStore) Rename(id peer.ID, name string, now time.Time) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if NameKey(name) == "" {
		return errors.New("name has no letters or digits")
	}
	return t.update(func(contacts map[peer.ID]Contact, _ *[]*x509.Certificate) error {
		c, ok := contacts[id]
		if !ok {
			return fmt.Errorf("%w %s", ErrUnknownContact, ShortID(id))
		}
		if err := nameTaken(contacts, id, name); err != nil {
			return err
		}
		c.Name, c.Updated = name, now
		contacts[id] = c
		return nil
	})
}

// NameTakenError refuses a name that reads the same as another contact's.
// It is ErrNameTaken for errors.Is.
type NameTakenError struct {
	Name      string  // the name refused, sanitized
	Contact   string  // the label of the contact it reads like
	ContactID peer.ID // that contact
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("%q reads the same as your contact %q (%s)", e.Name, e.Contact, ShortID(e.ContactID))
}

// Is makes the error ErrNameTaken.
func (e *NameTakenError) Is(target error) bool { return target == ErrNameTaken }

// nameTaken refuses name for id when another contact's label reads the
// same. A key that id replaced handed its name over and does not count.
func nameTaken(contacts map[peer.ID]Contact, id peer.ID, name string) error {
	for other, oc := range contacts {
		if other != id && oc.ReplacedBy != id && readsSame(oc.Label(), name) {
			return &NameTakenError{Name: SanitizeName(name), Contact: oc.Label(), ContactID: other}
		}
	}
	return nil
}

// readsSame is SameName, also in lower case: NameKey reads a capital I as
// l, so "ALICE" and "alice" have different keys, yet a person reads them
// as one name.
func readsSame(a, b string) bool {
	return SameName(a, b) || SameName(strings.ToLower(a), strings.ToLower(b))
}

// Remove forgets a contact.
func (t *TrustStore) Remove(id peer.ID) error {
	return t.update(func(contacts map[peer.ID]Contact, _ *[]*x509.Certificate) error {
		if _, ok := contacts[id]; !ok {
			return fmt.Errorf("%w %s", ErrUnknownContact, id)
		}
		delete(contacts, id)
		return nil
	})
}

// Evaluate answers, for every layer above, how far a certificate chain
// presented by the peer remote is trusted, and why. The error is for chains
// that do not even say who the peer is: no certificate, not Ed25519, a
// peer ID binding that does not hold, a certificate for another peer, or
// a CA certificate (ErrCACertificate: a CA is never a peer). Everything
// else is a Verdict whose State the caller acts on.
//
// The checks, in order (docs/PROTOCOL.md §2): key type and binding; the
// leaf is for remote; the leaf is not a CA; validity dates; a contact the
// user rejected; a contact the user verified; for a peer that is not a
// contact, another contact known by a name that reads the same (NameKey:
// a changed key); the leaf issued directly by a trusted CA root
// (certificates after the leaf are ignored); a contact pinned on first
// use; otherwise an unknown peer.
func (t *TrustStore) Evaluate(chain []*x509.Certificate, remote peer.ID, now time.Time) (Verdict, error) {
	if len(chain) == 0 {
		return Verdict{}, errors.New("peer sent no certificate")
	}
	leaf := chain[0]
	id, err := CertPeerID(leaf)
	if err != nil {
		return Verdict{}, err
	}
	if id != remote {
		return Verdict{}, fmt.Errorf("%w: certificate is for %s, not %s", ErrPeerIDMismatch, id, remote)
	}
	if err := CheckEndEntity(leaf); err != nil {
		return Verdict{}, err
	}
	v := Verdict{
		PeerID:      id,
		Name:        DisplayName(leaf),
		Issuer:      t.issuerName(leaf),
		Fingerprint: FingerprintOf(leaf.PublicKey.(ed25519.PublicKey)),
		NotAfter:    leaf.NotAfter,
		Chain:       slices.Clone(chain),
	}
	if err := CheckValidity(leaf, now); err != nil {
		v.State, v.Reason = StateExpired, err.Error()
		return v, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.refresh(); err != nil {
		return Verdict{}, err
	}
	contact, known := t.contacts[id]
	if known && (contact.Name != "" || contact.CertName != "") {
		v.Name = contact.Label()
	}
	if known && contact.State == StateUntrusted {
		v.State, v.Reason = StateUntrusted, "you rejected this key"
		if contact.ReplacedBy != "" {
			v.Reason = "this key was replaced by a newer one (" + ShortID(contact.ReplacedBy) + ")"
		}
		return v, nil
	}
	ca := t.verifyIssuer(leaf, now)
	caOK := ca != nil
	var caName string
	if caOK {
		caName = SanitizeName(ca.Subject.CommonName)
		v.Issuer, v.IssuerTrusted = caName, true
	}
	if known && contact.State == StateVerified {
		v.State, v.Reason = StateVerified, "fingerprint compared"
		return v, nil
	}
	if !known {
		if prev := t.conflict(id, leaf.Subject.CommonName); prev != nil {
			v.State, v.Previous = StateChanged, prev
			v.Reason = fmt.Sprintf("key changed: %s was known with a different key (%s)", prev.Label(), ShortID(prev.PeerID))
			if caOK {
				v.Reason += ", this one is issued by " + caName
			}
			return v, nil
		}
	}
	switch {
	case caOK:
		v.State, v.Reason, v.Issuer = StateCAVerified, "issued by "+caName, caName
		v.ValidFrom, v.ValidUntil = later(leaf.NotBefore, ca.NotBefore), earlier(leaf.NotAfter, ca.NotAfter)
	case known:
		v.State, v.Reason = StateTOFU, "trusted on first use, fingerprint not compared"
	default:
		v.State, v.Reason = StateUnknown, "new peer, not in your contacts"
		if v.Issuer != "self-signed" {
			v.Reason += "; issued by " + v.Issuer + ", not a CA you trust"
		}
	}
	return v, nil
}

// later is the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// earlier is the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// verifyIssuer returns the trusted CA that issued leaf directly, if one
// did (nil if none).
//
// CA-verified means issued directly by a CA in the trust store: only its
// certificates may act as issuers. Whatever else the peer sends along
// (intermediates) is ignored, so a certificate a trusted CA issued with
// CA:TRUE, by mistake or to a member who asked for it, never vouches for
// another name; path length constraints do not matter, as no path is
// longer than leaf → trusted CA. The trust store holds self-signed roots
// and the intermediates the user chose to trust themselves
// (AddIntermediate); each one vouches only for what it issued directly.
func (t *TrustStore) verifyIssuer(leaf *x509.Certificate, now time.Time) *x509.Certificate {
	if len(t.roots) == 0 {
		return nil
	}
	root, ok := verifyWithPool(leaf, t.pool, now)
	if !ok {
		return nil
	}
	return root
}

// verifyWithPool verifies that a certificate in pool issued leaf, valid at
// now, and returns it. No intermediates: see verifyIssuer.
func verifyWithPool(leaf *x509.Certificate, pool *x509.CertPool, now time.Time) (*x509.Certificate, bool) {
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:       pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil || len(chains) == 0 || len(chains[0]) != 2 {
		return nil, false
	}
	return chains[0][1], true
}

// verifyAgainst is verifyWithPool with the pool made of roots.
func verifyAgainst(leaf *x509.Certificate, roots []*x509.Certificate, now time.Time) (*x509.Certificate, bool) {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	return verifyWithPool(leaf, pool, now)
}

// conflict finds a trusted contact, other than id, known by a name that
// reads the same (NameKey) as certName: the name in its certificate, or the
// user's label for it. That is the sign of a changed key, as a changed host
// key is for ssh. Names are compared by NameKey, so neither invisible
// characters, case, look-alike letters from other scripts nor a trailing
// dot can hide a changed key.
func (t *TrustStore) conflict(id peer.ID, certName string) *Contact {
	key := NameKey(certName)
	if key == "" {
		return nil
	}
	for _, c := range t.contacts {
		if c.PeerID == id || !c.State.Trusted() { // replaced keys are untrusted
			continue
		}
		if k := t.keys[c.PeerID]; k[0] == key || k[1] == key {
			return &c
		}
	}
	return nil
}

// issuerMemo remembers IssuerName per certificate: telling a self-signed
// certificate apart costs an Ed25519 verification, which Evaluate would
// otherwise pay on every handshake with the same peer.
type issuerMemo struct {
	mu sync.Mutex
	m  map[[32]byte]string
}

const issuerMemoSize = 4096

func (t *TrustStore) issuerName(cert *x509.Certificate) string {
	key := sha256.Sum256(cert.Raw)
	t.issuers.mu.Lock()
	name, ok := t.issuers.m[key]
	t.issuers.mu.Unlock()
	if ok {
		return name
	}
	name = IssuerName(cert)
	t.issuers.mu.Lock()
	if t.issuers.m == nil || len(t.issuers.m) >= issuerMemoSize {
		t.issuers.m = map[[32]byte]string{}
	}
	t.issuers.m[key] = name
	t.issuers.mu.Unlock()
	return name
}
