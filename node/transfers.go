package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Get transfers (PROTOCOL §15). The offer, and every later word about a
// transfer (declined, cancelled, received), is a message: sealed in the
// ratchet, kept in the outbox until its receipt, live or through a
// relay's mailbox, stored on both sides and shown in the history. The
// content moves on a stream of its own (filestream.go) that the
// receiver opens to the sender while a verified chat session with it is
// up, asking for the chunks it lacks (the sender keeps such a session
// up with the receiver of a file it has begun to send: filereach.go);
// small files to an offline recipient also go sealed into its mailbox
// (mailFile). A transfer is per peer: a group send offers the file to
// each member (§15.7).

// Events of file transfers; Event.File says which and how far.
const (
	// EventFileOffer: a peer offers a file and the user must decide.
	EventFileOffer EventKind = "file_offer"
	// EventFileProgress: bytes moved, or a notice of why it waits.
	// At most a few a second per transfer.
	EventFileProgress EventKind = "file_progress"
	// EventFileDone: received and verified (incoming; Path is where), or
	// the peer holds it (outgoing).
	EventFileDone EventKind = "file_done"
	// EventFileFailed: declined, cancelled (by either side) or failed;
	// Error says which. EventFileDone or EventFileFailed is the last
	// event of a transfer: no progress follows.
	EventFileFailed EventKind = "file_failed"
)

// MailboxFileMax is the largest file left at a relay's mailbox for an
// offline recipient: its chunks, each sealed in its own envelope, share
// the recipient's mailbox (32 MiB, 200 items from one sender) with
// messages. A larger file waits until the recipient is online.
const MailboxFileMax = 1 << 20

// progressEvery is the least time between two progress events of one
// transfer.
const progressEvery = 250 * time.Millisecond

// FileInfo is what the node knows of a transfer.
type FileInfo struct {
	ID        transfer.ID
	Peer      peer.ID
	Direction store.Direction
	// Name: for an incoming file its cleaned name (transfer.CleanName),
	// for an outgoing one the file's own.
	Name   string
	Size   int64
	SHA256 [32]byte
	State  store.TransferState
	Bytes  int64  // held by the receiver, as far as this side knows
	Path   string // the file sent, or where a received file is
	Error  string // why it failed
	Notice string // why it waits
	// Trust is the sender's trust state when an offer arrives.
	Trust identity.State
}

var (
	// ErrNoTransfer: no transfer has that ID.
	ErrNoTransfer = errors.New("no such file transfer")
	// ErrTransferOver: the transfer is finished (done, declined,
	// cancelled or failed); the error is a *TransferOverError.
	ErrTransferOver = errors.New("the file transfer is over")
)

// TransferOverError is ErrTransferOver with the state the transfer ended
// in, for a sentence that says how ("nothing to cancel: … it is
// cancelled").
type TransferOverError struct{ State store.TransferState }

func (e *TransferOverError) Error() string {
	return fmt.Sprintf("%v: it is %s", ErrTransferOver, e.State)
}

func (e *TransferOverError) Unwrap() error { return ErrTransferOver }

// transfers owns the file transfers in flight: for each incoming one
// accepted, a puller that fetches its chunks (one goroutine, through
// workers); for outgoing ones, the streams being served (libp2p's handler
// goroutines) and the small files being left at a relay (one goroutine
// each, through workers). mu guards pulls, serving, disk, shown and
// mailing; only workers.mu is taken under it (starting a puller).
type transfers struct {
	*core
	rk       *ratchetKeys
	sessions *sessions
	out      *outbox
	mail     *mailboxes
	book     *peerBook

	mu      sync.Mutex
	pulls   map[transfer.ID]*pull
	serving map[transfer.ID]map[*serveState]struct{}
	// disk serializes the use of an incoming transfer's partial file,
	// and its end: the puller holds it for a whole exchange, a chunk
	// from a mailbox while it is written (none while an exchange runs),
	// finish until the file is recorded done, stopWith while it stores
	// the end. Whatever writes or places checks under it that the
	// transfer is under way (openUnlessOver); whatever ends one stores
	// the end before it discards the partial file under it.
	disk  map[transfer.ID]*diskLock
	shown map[transfer.ID]shownProgress
	// mailing: the small files whose chunks mailFile is leaving at a
	// relay now, so that an offer resumed by start and the same offer
	// queued meanwhile do not both go, each with what stops it (ended:
	// the deposit in flight too).
	mailing map[transfer.ID]context.CancelFunc
	// sums: the SHA-256 of outgoing files offered without it, computed
	// as they are sent (filesums.go).
	sums *fileSums
	// reach keeps the receivers of interrupted outgoing files reachable
	// (filereach.go).
	reach *fileReach
	hooks fileHooks // where tests hold or change the node; none in use otherwise
}

// fileHooks are the points where tests hold the node, or change what it
// sends (export_files_test.go); each is nil unless a test set it, before
// Start or before any transfer, and is read without a lock.
type fileHooks struct {
	// tamper, set by tests only before Start, changes a sealed chunk
	// before it is written to a file stream, or (index: the file's
	// chunk count) the sealed SHA-256 of the end frame: the path
	// tampering.
	tamper func(i int, sealed []byte)
	// chunkLeft, set by tests only before any file is sent, is called
	// after mailFile left chunk i at a relay, with the node's context.
	chunkLeft func(ctx context.Context, i int)
	// chunkCame, set by tests only before Start, is called by
	// mailedChunk for mailed chunk i of a transfer under way, before it
	// takes the transfer's disk lock, with the node's context.
	chunkCame func(ctx context.Context, i int)
	// placed, set by tests only before Start, is called by finish once
	// the whole file is at path in the downloads, with the node's
	// context.
	placed func(ctx context.Context, path string)
	// beforeProgress, set by tests only before any transfer, is called by
	// progress just before it shows an event of transfer id, with the
	// node's context.
	beforeProgress func(ctx context.Context, id transfer.ID)
	// chunkWritten, set by tests only before any file is received, is
	// called after a live exchange wrote chunk i to the partial file,
	// with the puller's context (done when the node stops).
	chunkWritten func(ctx context.Context, i int)
	// ending, set by tests only before any transfer, is called by
	// storeEnd after stopWith read the transfer under way, before its
	// end is stored, with the node's context.
	ending func(ctx context.Context)
	// resuming, set by tests only before Start, is called by start once
	// it follows the node's events and before it reads the transfers to
	// resume, with the node's context.
	resuming func(ctx context.Context)
	// sessionWait and refusalLinger, set by tests only before Start,
	// replace the waits of the same names (zero: those).
	sessionWait, refusalLinger time.Duration
}

// waits returns sessionWait and refusalLinger, or what tests set instead.
func (h *fileHooks) waits() (session, linger time.Duration) {
	session, linger = sessionWait, refusalLinger
	if h.sessionWait > 0 {
		session = h.sessionWait
	}
	if h.refusalLinger > 0 {
		linger = h.refusalLinger
	}
	return session, linger
}

// atHook calls hook with ctx and v, if a test set it (fileHooks).
func atHook[T any](hook func(context.Context, T), ctx context.Context, v T) {
	if hook != nil {
		hook(ctx, v)
	}
}

type pull struct {
	cancel context.CancelFunc
	kick   chan struct{}
	peer   peer.ID
	stream network.Stream // the file stream of the exchange under way, if any
}

type serveState struct{ cancel context.CancelFunc }

type shownProgress struct {
	at     time.Time
	bytes  int64
	notice string
	// showing counts the progress events of the transfer on their way
	// now (progress); ended says its end came meanwhile, and end is that
	// event (nil if it could not be made), which the last of them shows
	// after its own (showEnd).
	showing int
	ended   bool
	end     *Event
}

func newTransfers(c *core) *transfers {
	ft := &transfers{core: c, pulls: map[transfer.ID]*pull{}, serving: map[transfer.ID]map[*serveState]struct{}{},
		disk: map[transfer.ID]*diskLock{}, shown: map[transfer.ID]shownProgress{}, mailing: map[transfer.ID]context.CancelFunc{},
		sums: newFileSums(c)}
	ft.reach = newFileReach(ft)
	return ft
}

// downloads is the folder received files go to.
func (ft *transfers) downloads() string {
	if ft.cfg.Downloads != "" {
		return ft.cfg.Downloads
	}
	return ft.cfg.Home.Path("downloads")
}

// start serves the file protocol, follows connections (a puller waiting
// for its peer tries again at once) and the outbox through sub (an offer
// left at a relay takes a small file's chunks along), and resumes the
// transfers the last run left: an incoming one's puller, the receiver of
// an outgoing one it had begun to fetch kept reachable (fileReach), and
// the chunks of a small file whose offer went to a relay and which the
// last run did not finish leaving there (mailUnfinished). Node.Start
// subscribes sub before anything in it can emit, so what the outbox did
// meanwhile waits in it; start owns it. What was stored before (an offer
// queued between New and Start, or by the last run), the transfers read
// here tell, whatever receipt came since.
func (ft *transfers) start(sub *Subscription) {
	ft.host.SetStreamHandler(ProtocolFile, ft.handleStream)
	ft.host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) { ft.connected(c) },
	})
	started := ft.work.goDo(func() {
		defer sub.Close()
		for {
			select {
			case <-ft.ctx.Done():
				return
			case e, ok := <-sub.C:
				if !ok {
					return
				}
				if e.Kind != EventStatus || e.Message == nil {
					continue
				}
				switch e.Message.Status {
				case store.StatusQueued:
					ft.offerQueued(e.Message.ID, e.Message.Peer)
				case store.StatusSent, store.StatusDelivered:
					ft.offerSent(e.Message.ID, e.Message.Peer)
				}
			}
		}
	})
	if !started {
		sub.Close()
	}
	if ft.hooks.resuming != nil {
		ft.hooks.resuming(ft.ctx)
	}
	ts, err := ft.store.Transfers().List()
	if err != nil {
		ft.log.Warn("read file transfers", "err", err)
	}
	for _, t := range ts {
		switch {
		case t.Direction == store.Incoming && (t.State == store.TransferWaiting || t.State == store.TransferActive):
			ft.startPull(t)
		case t.Direction == store.Outgoing && t.State == store.TransferActive:
			// The receiver asks again once it can reach us, or we it.
			ft.reach.keep(t.Peer)
		default:
			switch again, err := mailUnfinished(ft.store, t); {
			case err != nil:
				ft.log.Warn("a small file's chunks may not be left at a relay", "transfer", t.ID, "err", err)
			case again:
				ft.offerQueued(t.ID, t.Peer)
			}
		}
	}
}

func (ft *transfers) stop() { ft.host.RemoveStreamHandler(ProtocolFile) }

// info describes a stored transfer.
func (ft *transfers) info(t store.Transfer) (FileInfo, error) {
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil {
		return FileInfo{}, fmt.Errorf("file transfer %s: %w", t.ID, err)
	}
	fi := FileInfo{ID: o.ID, Peer: t.Peer, Direction: t.Direction, Name: o.Name, Size: o.Size, SHA256: o.SHA256,
		State: t.State, Bytes: t.Bytes, Path: t.Path, Error: t.Error}
	if t.Direction == store.Incoming {
		fi.Name = transfer.CleanName(o.Name)
	}
	if t.State == store.TransferDone {
		fi.Bytes = o.Size
	}
	ft.mu.Lock()
	if s, ok := ft.shown[o.ID]; ok && !t.State.Final() {
		fi.Bytes, fi.Notice = max(fi.Bytes, s.bytes), s.notice
	}
	ft.mu.Unlock()
	return fi, nil
}

func (ft *transfers) emitFile(kind EventKind, t store.Transfer) {
	fi, err := ft.info(t)
	if err != nil {
		ft.log.Warn("file event", "err", err)
		return
	}
	if kind == EventFileOffer {
		fi.Trust = ft.trustState(t.Peer)
	}
	ft.emit(Event{Kind: kind, File: &fi})
}

// progress records and shows how far a transfer is, at most every
// progressEvery unless force (a new notice always shows). A transfer
// that is over records and shows nothing: the stream's goroutine, a
// chunk from a mailbox, can report progress after the transfer ended,
// and its end is the last event shown of it (showEnd). The transfer is
// read once this call counts as showing: an end stored before is seen
// here; one stored after waits for this event.
func (ft *transfers) progress(t store.Transfer, bytes int64, notice string, force bool) {
	id := transfer.ID(t.ID)
	ft.mu.Lock()
	s := ft.shown[id]
	s.showing++
	ft.shown[id] = s
	ft.mu.Unlock()
	cur, err := ft.store.Transfers().Transfer(t.ID)
	if err != nil {
		ft.log.Warn("file progress not shown", "transfer", id, "err", fmt.Errorf("read the transfer: %w", err))
	}
	under := err == nil && !cur.State.Final()
	now := ft.cfg.Now()
	ft.mu.Lock()
	s = ft.shown[id]
	show := under && (force || notice != s.notice || (bytes != s.bytes && now.Sub(s.at) >= progressEvery))
	if under {
		s.bytes, s.notice = bytes, notice
		if show {
			s.at = now
		}
		ft.shown[id] = s
	}
	ft.mu.Unlock()
	if show {
		atHook(ft.hooks.beforeProgress, ft.ctx, id)
		ft.emitFile(EventFileProgress, cur)
	}
	ft.mu.Lock()
	s = ft.shown[id]
	s.showing--
	var end *Event
	switch {
	case s.showing > 0:
		ft.shown[id] = s
	case s.ended || !under:
		end = s.end
		delete(ft.shown, id)
	default:
		ft.shown[id] = s
	}
	ft.mu.Unlock()
	if end != nil {
		ft.emit(*end)
	}
}

// showEnd shows that transfer t ended (kind: done or failed) and forgets
// its progress. A progress event on its way now read the transfer
// before its end was stored (progress): the end is left to the last
// such event to show after its own, so that no progress follows it.
func showEnd(ft *transfers, kind EventKind, t store.Transfer) {
	id := transfer.ID(t.ID)
	var end *Event
	if fi, err := ft.info(t); err != nil {
		ft.log.Warn("file event", "err", err)
	} else {
		end = &Event{Kind: kind, File: &fi}
	}
	ft.mu.Lock()
	if s, ok := ft.shown[id]; ok && s.showing > 0 {
		s.ended, s.end = true, end
		ft.shown[id] = s
		ft.mu.Unlock()
		return
	}
	delete(ft.shown, id)
	ft.mu.Unlock()
	if end != nil {
		ft.emit(*end)
	}
}

// sendFile offers the file at path to p (Files.Send).
func (ft *transfers) sendFile(p peer.ID, path string) (FileInfo, error) {
	fs, err := ft.sendFiles([]peer.ID{p}, path)
	if err != nil {
		return FileInfo{}, err
	}
	return fs[0], nil
}

// sendFiles offers the file at path to each peer, each an offer of its
// own (its own transfer ID and key), so that each transfer goes on,
// resumes or ends on its own. This is what a group send does for each
// member (PROTOCOL §15.7). Every peer is checked before anything is
// stored. A file small enough for a relay's mailbox is read once for its
// SHA-256, which the offer carries; a larger one is not read before it
// is sent: its SHA-256 is computed as it is sent and travels sealed at
// the end of the chunks (transfer.NewOfferSumLater), so it starts at
// once and is read once.
func (ft *transfers) sendFiles(ps []peer.ID, path string) ([]FileInfo, error) {
	for _, p := range ps {
		if err := ft.book.mayMessage(p); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	newOffer := transfer.NewOffer
	if st, err := os.Stat(abs); err == nil && st.Size() > MailboxFileMax {
		newOffer = transfer.NewOfferSumLater
	}
	first, err := newOffer(abs)
	if err != nil {
		return nil, fmt.Errorf("offer %s: %w", path, err)
	}
	var out []FileInfo
	for i, p := range ps {
		o := first
		if i > 0 {
			if o, err = first.Fresh(); err != nil {
				return out, err
			}
		}
		fi, err := ft.offer(p, abs, o)
		if err != nil {
			return out, err
		}
		out = append(out, fi)
	}
	return out, nil
}

// offer stores and queues an offer of the file at abs to p.
func (ft *transfers) offer(p peer.ID, abs string, o *transfer.Offer) (FileInfo, error) {
	now := ft.cfg.Now()
	m := store.Message{ID: e2e.MessageID(o.ID), Peer: p, SentAt: now, StoredAt: now, Body: offerBody(o)}
	t := store.Transfer{ID: m.ID, Peer: p, Direction: store.Outgoing, Offer: o.Marshal(), Path: abs, State: store.TransferWaiting, Created: now, Updated: now}
	if err := ft.store.Transfers().AddOutgoingFile(&m, t); err != nil {
		return FileInfo{}, fmt.Errorf("store the file offer: %w", err)
	}
	ft.emit(Event{Kind: EventStatus, Message: &m})
	ft.out.kick(p)
	return ft.info(t)
}

// accept starts receiving an offered file.
func (ft *transfers) accept(id transfer.ID) error {
	t, err := ft.store.Transfers().UpdateTransfer(e2e.MessageID(id), func(t *store.Transfer) error {
		switch {
		case t.Direction != store.Incoming:
			return fmt.Errorf("%w: %s is a file you send", ErrNoTransfer, id)
		case t.State.Final():
			return &TransferOverError{t.State}
		case t.State != store.TransferOffered:
			return nil // accepted already
		}
		t.State, t.Updated = store.TransferWaiting, ft.cfg.Now()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNoTransfer, id)
	}
	if err != nil {
		return err
	}
	ft.startPull(t)
	return nil
}

// cancel stops a transfer from this side: an incoming offer not yet
// accepted is declined, anything else cancelled; the peer is told by a
// control message (through the outbox, so it arrives however late).
func (ft *transfers) cancel(id transfer.ID) error {
	return ft.stopWith(id, store.TransferCancelled, "cancelled")
}

// stopWith ends a transfer in state st (cancelled or failed) with the
// reason errText, telling the peer it is cancelled. An incoming one's
// end is stored under its disk lock, so that a file being finished
// (finish) is either recorded done first (the transfer is over) or not
// placed: a live exchange, which holds the lock, is stopped first.
func (ft *transfers) stopWith(id transfer.ID, st store.TransferState, errText string) error {
	t, err := ft.store.Transfers().Transfer(e2e.MessageID(id))
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrNoTransfer, id)
	}
	if err != nil {
		return err
	}
	if t.State.Final() {
		return &TransferOverError{t.State}
	}
	var m store.Message
	if t.Direction == store.Incoming {
		ft.mu.Lock()
		if pl, ok := ft.pulls[id]; ok {
			pl.cancel()
		}
		ft.mu.Unlock()
		l := ft.diskLock(id)
		l.Lock()
		t, m, err = storeEnd(ft, id, st, errText)
		l.Unlock()
	} else {
		t, m, err = storeEnd(ft, id, st, errText)
	}
	if err != nil {
		return err
	}
	ft.emit(Event{Kind: EventStatus, Message: &m})
	ft.out.kick(t.Peer)
	ft.ended(t)
	return nil
}

// storeEnd stores the end of transfer id, unless it is over already,
// with the control message that tells its peer (stopWith): an offer
// not accepted yet that the user cancels is declined. The check and the
// write are one store transaction (EndTransfer), so an end stored since
// stopWith read the transfer (the peer's "received", a file recorded
// done) stays, and the peer is told nothing: ErrTransferOver.
func storeEnd(ft *transfers, id transfer.ID, st store.TransferState, errText string) (store.Transfer, store.Message, error) {
	if ft.hooks.ending != nil {
		ft.hooks.ending(ft.ctx)
	}
	t, m, err := ft.store.Transfers().EndTransfer(e2e.MessageID(id), func(t *store.Transfer) (store.Message, uint8) {
		action, st, errText := fileCancelled, st, errText
		if t.Direction == store.Incoming && t.State == store.TransferOffered && st == store.TransferCancelled {
			action, st, errText = fileDeclined, store.TransferDeclined, "declined"
		}
		now := ft.cfg.Now()
		t.State, t.Error, t.Updated = st, errText, now
		name := "a file"
		if o, err := transfer.ParseOffer(t.Offer); err == nil {
			name = transfer.CleanName(o.Name)
		}
		return store.Message{ID: e2e.NewMessageID(), Peer: t.Peer, SentAt: now, StoredAt: now, Body: controlBody(action, name)}, action
	})
	switch {
	case errors.Is(err, store.ErrTransferOver):
		return t, m, &TransferOverError{t.State}
	case errors.Is(err, store.ErrNotFound):
		return t, m, fmt.Errorf("%w: %s", ErrNoTransfer, id)
	case err != nil:
		return t, m, fmt.Errorf("store the cancellation: %w", err)
	}
	return t, m, nil
}

// ended stops whatever still moves a transfer that is over, discards
// what an incoming one that will not complete holds, and tells the user.
func (ft *transfers) ended(t store.Transfer) {
	id := transfer.ID(t.ID)
	ft.mu.Lock()
	if pl, ok := ft.pulls[id]; ok {
		pl.cancel()
	}
	for s := range ft.serving[id] {
		s.cancel()
	}
	if stop, ok := ft.mailing[id]; ok {
		stop()
	}
	ft.mu.Unlock()
	ft.sums.drop(id)
	if t.Direction == store.Incoming && t.State != store.TransferDone {
		ft.discard(t)
	}
	kind := EventFileFailed
	if t.State == store.TransferDone {
		kind = EventFileDone
	}
	showEnd(ft, kind, t)
}

// discard deletes an incoming transfer's partial file, once no puller
// uses it.
func (ft *transfers) discard(t store.Transfer) {
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil {
		return
	}
	l := ft.diskLock(o.ID)
	l.Lock()
	defer l.Unlock()
	p, err := transfer.OpenPartial(ft.downloads(), o)
	if err == nil {
		err = p.Discard()
	}
	if err != nil {
		ft.log.Warn("discard a partial file", "transfer", o.ID, "err", err)
	}
}

// diskLock serializes the use of one incoming transfer's partial file;
// live is set while a live exchange holds it.
type diskLock struct {
	sync.Mutex
	live atomic.Bool
}

func (ft *transfers) diskLock(id transfer.ID) *diskLock {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	l, ok := ft.disk[id]
	if !ok {
		l = &diskLock{}
		ft.disk[id] = l
	}
	return l
}

// arrived handles what a file frame brought (from a live session or a
// mailbox): a new offer, a control from the peer, a mailed chunk.
func (ft *transfers) arrived(p peer.ID, a *fileArrival) {
	switch {
	case a.offer != nil:
		t, err := ft.store.Transfers().Transfer(e2e.MessageID(a.offer.ID))
		if err != nil {
			ft.log.Warn("read a file offer just stored", "err", err)
			return
		}
		if ft.autoAccept(p, a.offer.Size) {
			if err := ft.accept(a.offer.ID); err != nil {
				ft.log.Warn("accept a file", "err", err)
			}
		}
		ft.emitFile(EventFileOffer, t)
	case a.control != nil:
		ft.ended(*a.control)
	case a.chunk != nil:
		ft.mailedChunk(p, a.chunk)
	}
}

// autoAccept: files from a verified or CA-verified contact up to the
// size the user set are taken without asking.
func (ft *transfers) autoAccept(p peer.ID, size int64) bool {
	if size > ft.cfg.AutoAcceptFiles {
		return false
	}
	st := ft.trustState(p)
	return st == identity.StateVerified || st == identity.StateCAVerified
}

// trustState is how far p is trusted now: the verdict on its last
// certificate, else (never seen) what the trust store says of its key.
func (ft *transfers) trustState(p peer.ID) identity.State {
	if v, ok := ft.book.verdictNow(p); ok {
		return v.State
	}
	c, ok, err := ft.trust.Contact(p)
	if err != nil {
		ft.log.Warn("cannot read the trust store; the peer counts as unknown", "peer", p, "err", err)
	}
	if ok {
		return c.State
	}
	return identity.StateUnknown
}

// files lists every transfer.
func (ft *transfers) files() ([]FileInfo, error) {
	ts, err := ft.store.Transfers().List()
	out := make([]FileInfo, 0, len(ts))
	for _, t := range ts {
		fi, ierr := ft.info(t)
		if ierr != nil {
			err = errors.Join(err, ierr)
			continue
		}
		out = append(out, fi)
	}
	return out, err
}

// setState records a transfer's new state unless it is over already,
// and reports the transfer as stored.
func (ft *transfers) setState(id transfer.ID, st store.TransferState, bytes int64, errText, path string) (store.Transfer, error) {
	return ft.store.Transfers().UpdateTransfer(e2e.MessageID(id), func(t *store.Transfer) error {
		if t.State.Final() {
			return &TransferOverError{t.State}
		}
		t.State, t.Updated, t.Error = st, ft.cfg.Now(), errText
		if bytes > t.Bytes {
			t.Bytes = bytes
		}
		if path != "" {
			t.Path = path
		}
		return nil
	})
}

// fail gives up on a transfer, saying why; the peer is told (cancelled).
func (ft *transfers) fail(id transfer.ID, cause error) {
	ft.log.Info("file transfer failed", "transfer", id, "err", cause)
	if err := ft.stopWith(id, store.TransferFailed, cause.Error()); err != nil && !errors.Is(err, ErrTransferOver) {
		ft.log.Warn("end a failed transfer", "err", err)
	}
}

// received tells the peer and the user that incoming transfer t, just
// recorded done (finish), has its file at path.
func (ft *transfers) received(t store.Transfer, path string) {
	now := ft.cfg.Now()
	name := filepath.Base(path)
	m := store.Message{ID: e2e.NewMessageID(), Peer: t.Peer, SentAt: now, StoredAt: now, Body: controlBody(fileReceived, name)}
	if err := ft.store.Transfers().AddOutgoingControl(&m, store.FileControl{Transfer: t.ID, Action: fileReceived}); err != nil {
		ft.log.Warn("store the receipt of a file", "err", err)
	} else {
		ft.emit(Event{Kind: EventStatus, Message: &m})
		ft.out.kick(t.Peer)
	}
	showEnd(ft, EventFileDone, t)
}

// Node's API for files.

// Files is the node's file API (Node.Files), on the transfers part that
// owns the transfers' state and goroutines (transfers.go's doc).
type Files struct{ *transfers }

// Files is the node's file API: send, accept, cancel and list transfers.
func (n *Node) Files() Files { return Files{n.files} }

// Send offers the file at path to a peer: the offer is stored and
// queued like a message (a small file is read first for its SHA-256, a
// larger one as it is sent). The file must stay where it is until the
// peer has it.
func (f Files) Send(to peer.ID, path string) (FileInfo, error) { return f.sendFile(to, path) }

// SendToEach offers the file at path to each peer: each gets its own
// offer and transfer (a group send, PROTOCOL §15.7).
func (f Files) SendToEach(to []peer.ID, path string) ([]FileInfo, error) {
	return f.sendFiles(to, path)
}

// Accept starts receiving an offered file.
func (f Files) Accept(id transfer.ID) error { return f.accept(id) }

// Cancel declines an offer, or cancels a transfer either way; the
// peer is told.
func (f Files) Cancel(id transfer.ID) error { return f.cancel(id) }

// List lists the transfers, oldest first.
func (f Files) List() ([]FileInfo, error) { return f.files() }

// Get reports one transfer.
func (f Files) Get(id transfer.ID) (FileInfo, error) {
	t, err := f.store.Transfers().Transfer(e2e.MessageID(id))
	if errors.Is(err, store.ErrNotFound) {
		return FileInfo{}, fmt.Errorf("%w: %s", ErrNoTransfer, id)
	}
	if err != nil {
		return FileInfo{}, err
	}
	return f.info(t)
}

// Downloads is the folder received files go to.
func (f Files) Downloads() string { return f.downloads() }

// setStateFinal ends a transfer in state st without telling the peer
// (the peer ended it).
func (ft *transfers) setStateFinal(id transfer.ID, st store.TransferState, errText string) (store.Transfer, error) {
	return ft.store.Transfers().UpdateTransfer(e2e.MessageID(id), func(t *store.Transfer) error {
		if t.State.Final() {
			return &TransferOverError{t.State}
		}
		t.State, t.Error, t.Updated = st, errText, ft.cfg.Now()
		return nil
	})
}
