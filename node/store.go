package node

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"
)

// The message store is a bbolt database (chat.db in the home):
//
//	meta       "version" → 1; "keycheck" → a sealed known value, to detect
//	           a database opened with the wrong identity; "listen-ports" →
//	           the ports the listeners got, to ask for again at the next
//	           start (Config.RememberPorts): JSON, listen address as
//	           configured (port 0) → port
//	convs      peer ID → conversation summary and numbering state (JSON)
//	msgs/<id>  one bucket per peer: 8-byte big-endian sequence → message
//	ids        message ID (16) → peer ID || sequence, for dedupe and receipts
//	outbox     peer ID || sequence → message ID: sent, not yet acknowledged
//	peers      peer ID → what we last knew of the peer (JSON)
//
// Messages are JSON with the body sealed: XChaCha20-Poly1305 under a key
// derived from the identity key ("storage"), with the message ID and peer
// ID as associated data, so a body cannot be moved to another message.
// Every change is one bbolt transaction, fsynced on commit: a message
// accepted by Send, or acknowledged to a sender, survives a crash.
var (
	bktMeta   = []byte("meta")
	bktConvs  = []byte("convs")
	bktMsgs   = []byte("msgs")
	bktIDs    = []byte("ids")
	bktOutbox = []byte("outbox")
	bktPeers  = []byte("peers")

	keyVersion     = []byte("version")
	keyKeyCheck    = []byte("keycheck")
	keyListenPorts = []byte("listen-ports")
)

const storeVersion = 1

// ErrDatabaseBusy means another process has the database open.
var ErrDatabaseBusy = errors.New("the message database is in use by another certchat process using this home (a daemon or a chat window); stop it or use another --home")

// ErrWrongDatabaseKey means the database belongs to another identity.
var ErrWrongDatabaseKey = errors.New("the message database was written by another identity: its messages cannot be read with this key")

// Direction of a message.
type Direction string

const (
	Incoming Direction = "in"
	Outgoing Direction = "out"
)

// Status of an outgoing message.
type Status string

const (
	StatusSending   Status = "sending"   // stored, not yet written to the peer
	StatusSent      Status = "sent"      // written to a live session, no receipt yet
	StatusQueued    Status = "queued"    // waiting at the relay's mailbox
	StatusDelivered Status = "delivered" // the peer stored it (receipt)
	StatusFailed    Status = "failed"    // given up; see Error
	StatusReceived  Status = "received"  // an incoming message
)

// Message is one stored message.
type Message struct {
	ID        e2e.MessageID
	Peer      peer.ID // the other party
	Seq       uint64  // position in the conversation, as stored
	Direction Direction
	SentAt    time.Time // sender's clock
	StoredAt  time.Time // our clock
	Body      string
	Status    Status
	Error     string    `json:",omitempty"`
	Delivered time.Time `json:",omitempty"`
	// The sender's numbering (node/gaps.go): Stream 0 for a message
	// stored before messages were numbered.
	Stream, Number uint64 `json:",omitempty"`
	// Incoming only: the message arrived after later ones of the peer,
	// and how many earlier ones were still missing once it was stored.
	Late    bool `json:",omitempty"`
	Missing int  `json:",omitempty"`
}

// storedMessage is the on-disk form.
type storedMessage struct {
	ID        string    `json:"id"`
	Dir       Direction `json:"dir"`
	SentAt    int64     `json:"sent"`
	StoredAt  int64     `json:"stored"`
	Status    Status    `json:"status"`
	Error     string    `json:"error,omitempty"`
	Delivered int64     `json:"delivered,omitempty"`
	Stream    uint64    `json:"stream,omitempty"`
	Number    uint64    `json:"num,omitempty"`
	Late      bool      `json:"late,omitempty"`
	Missing   int       `json:"missing,omitempty"`
	Sealed    []byte    `json:"body"`
}

// Conversation summarises a conversation for lists.
type Conversation struct {
	Peer     peer.ID   `json:"peer"`
	Last     time.Time `json:"last"`
	LastSeq  uint64    `json:"last_seq"`
	Unread   int       `json:"unread"`
	Messages int       `json:"messages"`
	Missing  int       `json:"missing,omitempty"` // the peer's earlier messages not yet arrived
}

// storedConv is a conversation's record: the summary and the numbering
// state of both directions.
type storedConv struct {
	Conversation
	Stream uint64     `json:"stream,omitempty"` // ours: the numbering of what we send
	Sent   uint64     `json:"sent,omitempty"`   // the last number we gave
	Recv   recvWindow `json:"recv"`             // what arrived of the peer's numbering
}

// Store is the message database.
type Store struct {
	db   *bolt.DB
	aead interface {
		Seal(dst, nonce, plaintext, ad []byte) []byte
		Open(dst, nonce, ciphertext, ad []byte) ([]byte, error)
		NonceSize() int
	}
}

// DBFile is the message database's name in a home.
const DBFile = "chat.db"

// OpenIdentityStore opens the store at path with the key the identity
// derives for it: the one way both the node and one-shot commands open it.
func OpenIdentityStore(path string, id *identity.Identity) (*Store, error) {
	key, err := id.DeriveKey("storage")
	if err != nil {
		return nil, err
	}
	return OpenStore(path, key)
}

// OpenStore opens (creating if needed) the database at path with the
// storage key.
func OpenStore(path string, key []byte) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, ErrDatabaseBusy
	}
	if err != nil {
		return nil, fmt.Errorf("open message database %s: %w", path, err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, aead: aead}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktMeta, bktConvs, bktMsgs, bktIDs, bktOutbox, bktPeers} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bktMeta)
		if v := meta.Get(keyVersion); v != nil && !bytes.Equal(v, []byte{storeVersion}) {
			return fmt.Errorf("message database version %v is newer than this program understands", v)
		}
		if err := meta.Put(keyVersion, []byte{storeVersion}); err != nil {
			return err
		}
		check := meta.Get(keyKeyCheck)
		if check == nil {
			return meta.Put(keyKeyCheck, s.seal([]byte("certchat"), []byte("keycheck")))
		}
		if _, err := s.open(check, []byte("keycheck")); err != nil {
			return ErrWrongDatabaseKey
		}
		return nil
	})
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) seal(plain, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+16)
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, ad)
}

func (s *Store) open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], ad)
}

func bodyAD(id e2e.MessageID, p peer.ID) []byte { return append(id[:], p...) }

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

func outboxKey(p peer.ID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(p), 0), seq)
}

func (s *Store) encode(m *Message) ([]byte, error) {
	sm := storedMessage{
		ID: m.ID.String(), Dir: m.Direction, SentAt: m.SentAt.UnixMilli(), StoredAt: m.StoredAt.UnixMilli(),
		Status: m.Status, Error: m.Error, Stream: m.Stream, Number: m.Number, Late: m.Late, Missing: m.Missing,
		Sealed: s.seal([]byte(m.Body), bodyAD(m.ID, m.Peer)),
	}
	if !m.Delivered.IsZero() {
		sm.Delivered = m.Delivered.UnixMilli()
	}
	return json.Marshal(sm)
}

func (s *Store) decode(p peer.ID, seq uint64, data []byte) (Message, error) {
	var sm storedMessage
	if err := json.Unmarshal(data, &sm); err != nil {
		return Message{}, fmt.Errorf("stored message %s/%d: %w", p, seq, err)
	}
	id, err := e2e.ParseMessageID(sm.ID)
	if err != nil {
		return Message{}, err
	}
	body, err := s.open(sm.Sealed, bodyAD(id, p))
	if err != nil {
		return Message{}, fmt.Errorf("stored message %s: body does not decrypt", sm.ID)
	}
	m := Message{ID: id, Peer: p, Seq: seq, Direction: sm.Dir, SentAt: time.UnixMilli(sm.SentAt),
		StoredAt: time.UnixMilli(sm.StoredAt), Body: string(body), Status: sm.Status, Error: sm.Error,
		Stream: sm.Stream, Number: sm.Number, Late: sm.Late, Missing: sm.Missing}
	if sm.Delivered != 0 {
		m.Delivered = time.UnixMilli(sm.Delivered)
	}
	return m, nil
}

func convBucket(tx *bolt.Tx, p peer.ID, create bool) (*bolt.Bucket, error) {
	msgs := tx.Bucket(bktMsgs)
	if !create {
		return msgs.Bucket([]byte(p)), nil
	}
	return msgs.CreateBucketIfNotExists([]byte(p))
}

func getConv(tx *bolt.Tx, p peer.ID) storedConv {
	var c storedConv
	if v := tx.Bucket(bktConvs).Get([]byte(p)); v != nil {
		json.Unmarshal(v, &c)
	}
	c.Peer = p
	return c
}

func putConv(tx *bolt.Tx, c storedConv) error {
	v, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return tx.Bucket(bktConvs).Put([]byte(c.Peer), v)
}

// AddOutgoing stores a new outgoing message and queues it in the outbox.
// When it returns, the message survives a crash.
func (s *Store) AddOutgoing(m *Message) error {
	m.Direction, m.Status = Outgoing, StatusSending
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := s.append(tx, m, true); err != nil {
			return err
		}
		return tx.Bucket(bktOutbox).Put(outboxKey(m.Peer, m.Seq), m.ID[:])
	})
}

// AddIncoming stores a received message unless one with its ID is
// already stored. It reports whether the message is new.
func (s *Store) AddIncoming(m *Message) (bool, error) {
	isNew := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		isNew, err = s.addIncomingTx(tx, m)
		return err
	})
	return isNew, err
}

// append assigns the next sequence number and writes the message. With
// number, it also numbers an outgoing message, or records an incoming
// one's number and learns whether it is late and what is missing.
func (s *Store) append(tx *bolt.Tx, m *Message, number bool) error {
	b, err := convBucket(tx, m.Peer, true)
	if err != nil {
		return err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	m.Seq = seq
	c := getConv(tx, m.Peer)
	if number {
		c.number(m)
	}
	v, err := s.encode(m)
	if err != nil {
		return err
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return err
	}
	if err := tx.Bucket(bktIDs).Put(m.ID[:], append([]byte(m.Peer), seqKey(seq)...)); err != nil {
		return err
	}
	c.Last, c.LastSeq = m.StoredAt, seq
	c.Messages++
	if m.Direction == Incoming {
		c.Unread++
	}
	return putConv(tx, c)
}

// locate finds a message by ID.
func locate(tx *bolt.Tx, id e2e.MessageID) (peer.ID, uint64, bool) {
	v := tx.Bucket(bktIDs).Get(id[:])
	if len(v) < 8 {
		return "", 0, false
	}
	return peer.ID(v[:len(v)-8]), binary.BigEndian.Uint64(v[len(v)-8:]), true
}

// SetStatus records a new status for an outgoing message; delivered
// removes it from the outbox. It reports the message, and whether the
// status changed (receipts are idempotent).
func (s *Store) SetStatus(id e2e.MessageID, from peer.ID, st Status, errText string, now time.Time) (Message, bool, error) {
	var (
		out     Message
		changed bool
	)
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		out, changed, err = s.setStatusTx(tx, id, from, st, errText, now)
		return err
	})
	return out, changed, err
}

func (s *Store) setStatusTx(tx *bolt.Tx, id e2e.MessageID, from peer.ID, st Status, errText string, now time.Time) (Message, bool, error) {
	p, seq, ok := locate(tx, id)
	if !ok || p != from {
		return Message{}, false, fmt.Errorf("no message %s to %s", id, from)
	}
	b, _ := convBucket(tx, p, false)
	raw := b.Get(seqKey(seq))
	var sm storedMessage
	if err := json.Unmarshal(raw, &sm); err != nil {
		return Message{}, false, err
	}
	// Delivered is final; queued never replaces sent or delivered's news.
	if sm.Dir != Outgoing || sm.Status == StatusDelivered || sm.Status == st ||
		(st == StatusSent && sm.Status == StatusQueued) {
		m, err := s.decode(p, seq, raw)
		return m, false, err
	}
	sm.Status, sm.Error = st, errText
	if st == StatusDelivered {
		sm.Delivered = now.UnixMilli()
	}
	if st == StatusDelivered || st == StatusFailed {
		if err := tx.Bucket(bktOutbox).Delete(outboxKey(p, seq)); err != nil {
			return Message{}, false, err
		}
	}
	v, err := json.Marshal(sm)
	if err != nil {
		return Message{}, false, err
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return Message{}, false, err
	}
	m, err := s.decode(p, seq, v)
	return m, true, err
}

// Outbox lists a peer's unacknowledged messages in the order written.
func (s *Store) Outbox(p peer.ID) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _ := convBucket(tx, p, false)
		if b == nil {
			return nil
		}
		c := tx.Bucket(bktOutbox).Cursor()
		prefix := append([]byte(p), 0)
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			seq := binary.BigEndian.Uint64(k[len(prefix):])
			m, err := s.decode(p, seq, b.Get(seqKey(seq)))
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// hasOutbox reports whether p has unacknowledged messages, without
// reading them.
func (s *Store) hasOutbox(p peer.ID) bool {
	found := false
	s.db.View(func(tx *bolt.Tx) error {
		prefix := append([]byte(p), 0)
		k, _ := tx.Bucket(bktOutbox).Cursor().Seek(prefix)
		found = k != nil && bytes.HasPrefix(k, prefix)
		return nil
	})
	return found
}

// setStatusMany records a status for several outgoing messages to p in
// one transaction, and returns those whose status changed.
func (s *Store) setStatusMany(p peer.ID, ids []e2e.MessageID, st Status, now time.Time) ([]Message, error) {
	var out []Message
	err := s.db.Update(func(tx *bolt.Tx) error {
		out = out[:0]
		for _, id := range ids {
			m, changed, err := s.setStatusTx(tx, id, p, st, "", now)
			if err != nil {
				continue // not ours to change: as SetStatus, reported by nothing
			}
			if changed {
				out = append(out, m)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// OutboxPeers lists peers with unacknowledged messages.
func (s *Store) OutboxPeers() ([]peer.ID, error) {
	var out []peer.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bktOutbox).Cursor()
		for k, _ := c.First(); k != nil; {
			p := peer.ID(k[:len(k)-9])
			out = append(out, p)
			k, _ = c.Seek(append([]byte(p), 1))
		}
		return nil
	})
	return out, err
}

// History returns up to limit messages with a peer before sequence
// number before (0: the newest), oldest first: one page of scrollback.
func (s *Store) History(p peer.ID, before uint64, limit int) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		b, _ := convBucket(tx, p, false)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			c.Seek(seqKey(before))
			k, v = c.Prev()
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			m, err := s.decode(p, binary.BigEndian.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// Message returns one message by ID.
func (s *Store) Message(id e2e.MessageID) (Message, error) {
	var out Message
	err := s.db.View(func(tx *bolt.Tx) error {
		p, seq, ok := locate(tx, id)
		if !ok {
			return fmt.Errorf("no message %s", id)
		}
		b, _ := convBucket(tx, p, false)
		var err error
		out, err = s.decode(p, seq, b.Get(seqKey(seq)))
		return err
	})
	return out, err
}

// Conversations lists conversation summaries, most recent first.
func (s *Store) Conversations() ([]Conversation, error) {
	var out []Conversation
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktConvs).ForEach(func(k, v []byte) error {
			var c Conversation
			if err := json.Unmarshal(v, &c); err != nil {
				return err
			}
			c.Peer = peer.ID(k)
			out = append(out, c)
			return nil
		})
	})
	sortConversations(out)
	return out, err
}

// MarkRead clears a conversation's unread count.
func (s *Store) MarkRead(p peer.ID) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		c := getConv(tx, p)
		if c.Unread == 0 {
			return nil
		}
		c.Unread = 0
		return putConv(tx, c)
	})
}

// Search finds messages whose body contains text (case-insensitive),
// newest first, at most limit. Bodies are encrypted, so this decrypts
// and scans; no plaintext index is kept on disk.
func (s *Store) Search(text string, limit int) ([]Message, error) {
	needle := strings.ToLower(text)
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktMsgs).ForEachBucket(func(k []byte) error {
			p := peer.ID(k)
			return tx.Bucket(bktMsgs).Bucket(k).ForEach(func(sk, v []byte) error {
				m, err := s.decode(p, binary.BigEndian.Uint64(sk), v)
				if err != nil {
					return err
				}
				if strings.Contains(strings.ToLower(m.Body), needle) {
					out = append(out, m)
				}
				return nil
			})
		})
	})
	sortNewestFirst(out)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// PeerRecord is what we remember of a peer between runs.
type PeerRecord struct {
	Name     string    `json:"name,omitempty"`
	Addrs    []string  `json:"addrs,omitempty"`
	LastSeen time.Time `json:"last_seen,omitempty"`
	CertDER  []byte    `json:"cert,omitempty"`
	// CAVerified: the last handshake chained to a trusted CA, so messages
	// may go to the peer although it is not a contact.
	CAVerified bool `json:"ca_verified,omitempty"`
}

// Peer reads one peer record.
func (s *Store) Peer(p peer.ID) (PeerRecord, bool, error) {
	var r PeerRecord
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktPeers).Get([]byte(p))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &r)
	})
	return r, found, err
}

// PutPeer stores a peer record.
func (s *Store) PutPeer(p peer.ID, r PeerRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktPeers).Put([]byte(p), v) })
}

// Peers lists stored peer records.
func (s *Store) Peers() (map[peer.ID]PeerRecord, error) {
	out := map[peer.ID]PeerRecord{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bktPeers).ForEach(func(k, v []byte) error {
			var r PeerRecord
			if json.Unmarshal(v, &r) == nil {
				out[peer.ID(k)] = r
			}
			return nil
		})
	})
	return out, err
}

// listenPorts reads the remembered listen ports: listen address as
// configured (with port 0) → the port it got.
func (s *Store) listenPorts() (map[string]int, error) {
	ports := map[string]int{}
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktMeta).Get(keyListenPorts)
		if v == nil {
			return nil
		}
		if err := json.Unmarshal(v, &ports); err != nil {
			return fmt.Errorf("remembered listen ports: %w", err)
		}
		return nil
	})
	return ports, err
}

// putListenPorts remembers listen ports (listenPorts).
func (s *Store) putListenPorts(ports map[string]int) error {
	v, err := json.Marshal(ports)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bktMeta).Put(keyListenPorts, v) })
}
