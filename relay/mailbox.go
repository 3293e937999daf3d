// The mailbox server: its state, opening and closing it, and the stream
// handler that reads one request and dispatches it by type.

package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/internal/boltfile"
	"github.com/certchat/certchat/mailbox"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/time/rate"
)

type mailboxServer struct {
	db        *bolt.DB
	h         host.Host
	lim       MailboxLimits
	log       *slog.Logger
	now       func() time.Time
	deposit   *limiters
	bundle    *limiters
	publishes *limiters
	bundleIP  *limiters       // bundle fetches per source address
	bundleNet *limiters       // and per source prefix
	grants    *grants         // one-time prekeys handed out per requester and source
	ctx       context.Context // cancelled by close: ends notifications
	cancel    context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex // guards closed, wg.Add and used
	closed    bool
	wg        sync.WaitGroup
	used      map[peer.ID]time.Time // owners' uses since the last sweep (bucket seen)
}

func openMailbox(path string, h host.Host, lim MailboxLimits, log *slog.Logger) (*mailboxServer, error) {
	// boltfile checks the file before bbolt maps it: a damaged one is
	// refused, unchanged, rather than faulting here or in the sweeper.
	// No freelist is kept in the file (NoFreelistSync): bbolt would
	// rewrite all of it at every commit, and a mailbox frees pages all
	// the time (TestMailboxSmallWriteAfterFreedPages); it is rebuilt here.
	db, err := boltfile.Open(path, 0o600, &bolt.Options{Timeout: time.Second, NoFreelistSync: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("mailbox database %s is in use by another relay", path)
	}
	if err != nil {
		return nil, mailboxOpenErr(path, err)
	}
	err = boltfile.Guard(path, func() error {
		return db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bktBundles, bktUsage, bktOTEC, bktOTKEM, bktMail, bktPairs, bktSeen, bktRegSrc, bktSrcCount, bktItemSrc} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, mailboxOpenErr(path, err)
	}
	lim = lim.withDefaults()
	m := &mailboxServer{
		db: db, h: h, lim: lim, log: log, now: time.Now,
		deposit:   newLimiters(rate.Limit(lim.DepositRate), int(10*lim.DepositRate)+1),
		bundle:    newLimiters(rate.Limit(lim.BundleRate), 10),
		publishes: newLimiters(rate.Limit(lim.PublishRate), 5),
		bundleIP:  newLimiters(rate.Limit(lim.BundleRatePerIP), 20),
		bundleNet: newLimiters(rate.Limit(4*lim.BundleRatePerIP), 80),
		grants:    newGrants(),
		done:      make(chan struct{}),
		used:      map[peer.ID]time.Time{},
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(mailbox.Protocol, m.handle)
	m.wg.Add(1)
	go m.sweeper()
	return m, nil
}

func (m *mailboxServer) close() error {
	m.h.RemoveStreamHandler(mailbox.Protocol)
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.cancel()
	close(m.done)
	m.wg.Wait()
	m.sweepIdle() // keeps the uses seen since the last sweep
	return m.db.Close()
}

// handle serves one request on a stream.
func (m *mailboxServer) handle(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	from := s.Conn().RemotePeer()
	f, err := e2e.ReadFrame(s)
	if err != nil {
		s.Reset()
		return
	}
	t, answer := m.serveFrom(from, streamSource(s), f)
	out, err := e2e.AppendFrame(nil, t, answer)
	if err != nil {
		s.Reset()
		return
	}
	s.Write(out)
}

// serve serves a request from a peer whose address is unknown.
func (m *mailboxServer) serve(from peer.ID, f e2e.Frame) (e2e.FrameType, []byte) {
	return m.serveFrom(from, source{}, f)
}

// serveFrom serves a request from a peer at src.
func (m *mailboxServer) serveFrom(from peer.ID, src source, f e2e.Frame) (e2e.FrameType, []byte) {
	var (
		t   e2e.FrameType
		out []byte
		err error
	)
	switch f.Type {
	case mailbox.TypePublish:
		t, out, err = m.publish(from, src, f.Payload)
	case mailbox.TypeFetchBundle:
		t, out, err = m.fetchBundle(from, src, f.Payload)
	case mailbox.TypeDeposit:
		t, out, err = m.depositFrom(from, src, f.Payload)
	case mailbox.TypeFetch:
		t, out, err = m.fetch(from, f.Payload)
	case mailbox.TypeAck:
		t, out, err = m.ack(from, f.Payload)
	default:
		err = &mailbox.Error{Code: mailbox.CodeMalformed, Message: "unknown request"}
	}
	if err == nil && (f.Type == mailbox.TypePublish || f.Type == mailbox.TypeFetch || f.Type == mailbox.TypeAck) {
		m.mu.Lock()
		m.used[from] = m.now()
		m.mu.Unlock()
	}
	if err != nil {
		var me *mailbox.Error
		if !errors.As(err, &me) {
			m.log.Error("mailbox", "peer", from, "err", err)
			me = &mailbox.Error{Code: mailbox.CodeInternal, Message: "internal error"}
		}
		return mailbox.TypeError, me.Marshal()
	}
	return t, out
}

func malformed(what string) error {
	return &mailbox.Error{Code: mailbox.CodeMalformed, Message: "malformed " + what}
}

// DamagedError is a mailbox database file that is not a whole bbolt
// database (truncated, or bytes flipped in its structure): the relay
// refuses to start on it and leaves it as it is.
type DamagedError struct {
	Path   string
	Reason string
	Err    error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("the mailbox database %s is damaged (%s): restore it from a backup, or move it away to start with an empty mailbox (the messages waiting in it are lost)", e.Path, e.Reason)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// mailboxOpenErr is err, from opening the mailbox database at path, as a
// *DamagedError when the file is at fault.
func mailboxOpenErr(path string, err error) error {
	if reason, ok := boltfile.Damage(err); ok {
		return &DamagedError{Path: path, Reason: reason, Err: err}
	}
	return fmt.Errorf("mailbox database: %w", err)
}
