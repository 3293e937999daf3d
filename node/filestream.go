package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// ProtocolFile is the libp2p protocol that carries a file's chunks
// (PROTOCOL §14.5). The receiver opens it to the sender.
const ProtocolFile protocol.ID = "/certchat/file/1.0.0"

// Frames on a file stream: type (1) ‖ length (4, BE) ‖ payload.
const (
	fsWant  byte = 0x31 // receiver: transfer ID ‖ u64 bytes held ‖ u32 n ‖ n × (u64 from, u64 to)
	fsChunk byte = 0x32 // sender: u64 index ‖ sealed chunk
	fsAck   byte = 0x33 // receiver: u64 chunk frames read on this stream ‖ u64 bytes held (durable)
	fsEnd   byte = 0x34 // sender: every chunk asked for was written
	fsDone  byte = 0x35 // receiver: the file is whole and verified
	fsError byte = 0x3f // sender: u8 code ‖ message (UTF-8, ≤ 256 bytes)
)

// Error codes of fsError.
const (
	fsErrUnknown   = 1 // no such transfer to this peer
	fsErrOver      = 2 // cancelled or finished
	fsErrNoSession = 3 // no verified chat session with the peer: try again later
	fsErrSource    = 4 // the file cannot be read any more
)

const (
	// fsMaxPayload bounds a frame: a chunk and its index.
	fsMaxPayload = 8 + transfer.ChunkSize + transfer.Overhead
	// fsMaxRanges bounds the ranges one want carries; the rest are
	// asked for after the end.
	fsMaxRanges = 8192
	// fileWindow is how many chunks the sender writes ahead of the
	// receiver's acknowledgement. The receiver acknowledges once its
	// chunks are durable, every transfer.SyncEvery; twice that keeps the
	// sender writing while the receiver syncs.
	fileWindow = 2 * transfer.SyncEvery
	// fileIdle: a stream with nothing to read for this long is dead.
	fileIdle = 60 * time.Second
	// minCircuitData and minCircuitTime: a relayed connection with less
	// than this is a relay with go-libp2p's defaults (128 KiB, 2 min):
	// no file starts on it.
	minCircuitData = 4 << 20
	minCircuitTime = 10 * time.Minute
)

// Errors of the file stream.
var (
	errLimitedCircuit = errors.New("waiting for a direct connection or a certchat relay: the only path to the peer is a relay circuit too limited for files")
	errPeerOffline    = errors.New("waiting for the peer to come online")
)

// fsRefused is an fsError frame from the sender.
type fsRefused struct {
	code byte
	msg  string
}

func (e *fsRefused) Error() string { return "the sender refused: " + e.msg }

// final says whether asking again cannot help.
func (e *fsRefused) final() bool { return e.code != fsErrNoSession }

func writeFS(w io.Writer, typ byte, payload []byte) error {
	b := make([]byte, 5, 5+len(payload))
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	_, err := w.Write(append(b, payload...))
	return err
}

// readFS reads a frame into buf (grown if needed) and returns its type
// and payload.
func readFS(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > fsMaxPayload {
		return 0, nil, fmt.Errorf("%w: a file stream frame of %d bytes", e2e.ErrMalformed, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, err
	}
	return h[0], buf, nil
}

func wantPayload(id transfer.ID, held int64, missing [][2]int) []byte {
	if len(missing) > fsMaxRanges {
		missing = missing[:fsMaxRanges]
	}
	b := append([]byte(nil), id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(held))
	b = binary.BigEndian.AppendUint32(b, uint32(len(missing)))
	for _, r := range missing {
		b = binary.BigEndian.AppendUint64(b, uint64(r[0]))
		b = binary.BigEndian.AppendUint64(b, uint64(r[1]))
	}
	return b
}

// parseWant reads a want; ranges are checked against the offer later.
func parseWant(p []byte) (id transfer.ID, held int64, ranges [][2]int, err error) {
	if len(p) < 16+8+4 {
		return id, 0, nil, fmt.Errorf("%w: a want of %d bytes", e2e.ErrMalformed, len(p))
	}
	copy(id[:], p)
	held = int64(binary.BigEndian.Uint64(p[16:]))
	n := binary.BigEndian.Uint32(p[24:])
	if n > fsMaxRanges || len(p) != 28+16*int(n) {
		return id, 0, nil, fmt.Errorf("%w: a want's ranges", e2e.ErrMalformed)
	}
	for i := range int(n) {
		from := binary.BigEndian.Uint64(p[28+16*i:])
		to := binary.BigEndian.Uint64(p[36+16*i:])
		if from >= to || to > transfer.MaxFileSize/transfer.ChunkSize+1 {
			return id, 0, nil, fmt.Errorf("%w: a want's range %d–%d", e2e.ErrMalformed, from, to)
		}
		ranges = append(ranges, [2]int{int(from), int(to)})
	}
	return id, held, ranges, nil
}

func errorPayload(code byte, msg string) []byte {
	if len(msg) > 256 {
		msg = msg[:256]
	}
	return append([]byte{code}, msg...)
}

// roomyCircuit says whether a connection can carry a file: a direct one,
// or a circuit whose relay allows enough (a certchat relay: 64 MiB, 6 h
// by default; when one circuit's data runs out the transfer goes on on
// the next).
func roomyCircuit(c network.Conn) bool {
	st := c.Stat()
	if !st.Limited {
		return true
	}
	if d, ok := st.Extra[client.StatLimitData].(uint64); ok && d != 0 && d < minCircuitData {
		return false
	}
	if d, ok := st.Extra[client.StatLimitDuration].(time.Duration); ok && d != 0 && d < minCircuitTime {
		return false
	}
	return true
}

// The receiver's side.

// startPull starts fetching an accepted incoming transfer, unless that
// runs already.
func (ft *transfers) startPull(t store.Transfer) {
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil {
		ft.log.Warn("a stored offer does not parse", "transfer", t.ID, "err", err)
		return
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if _, ok := ft.pulls[o.ID]; ok {
		return
	}
	ctx, cancel := context.WithCancel(ft.ctx)
	pl := &pull{cancel: cancel, kick: make(chan struct{}, 1), peer: t.Peer}
	if !ft.work.goDo(func() { ft.pullLoop(ctx, t.Peer, o, pl) }) {
		cancel()
		return
	}
	ft.pulls[o.ID] = pl
}

// connected wakes the pullers waiting for the connection's peer; a
// direct connection also ends their exchanges on relayed ones, which
// resume on it at once (the relay's circuit is limited, the direct path
// faster).
func (ft *transfers) connected(c network.Conn) {
	p, direct := c.RemotePeer(), !c.Stat().Limited
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, pl := range ft.pulls {
		if pl.peer != p {
			continue
		}
		if s := pl.stream; direct && s != nil && s.Conn().Stat().Limited {
			s.Reset()
		}
		signal(pl.kick)
	}
}

// exchanging records the stream of a transfer's exchange (nil: none).
func (ft *transfers) exchanging(id transfer.ID, s network.Stream) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if pl, ok := ft.pulls[id]; ok {
		pl.stream = s
	}
}

// pullLoop fetches a transfer until it is whole, over or the node stops:
// each round dials the peer if needed, opens a file stream and asks for
// what is missing; a broken stream, a changed path or a restart only
// costs the chunks in flight.
func (ft *transfers) pullLoop(ctx context.Context, p peer.ID, o *transfer.Offer, pl *pull) {
	defer func() {
		ft.mu.Lock()
		if ft.pulls[o.ID] == pl {
			delete(ft.pulls, o.ID)
		}
		ft.mu.Unlock()
		pl.cancel()
	}()
	backoff := ft.cfg.RetryMin
	for ctx.Err() == nil {
		err := ft.pullOnce(ctx, p, o)
		if err == nil || ctx.Err() != nil {
			return
		}
		var refused *fsRefused
		switch {
		case errors.As(err, &refused) && refused.code == fsErrOver:
			// The sender cancelled; its control message says so too.
			if t, err := ft.setStateFinal(o.ID, store.TransferCancelled, "cancelled by the peer"); err == nil {
				ft.ended(t)
			}
			return
		case errors.As(err, &refused) && refused.final(), errors.Is(err, transfer.ErrHashMismatch):
			ft.fail(o.ID, err)
			return
		case errors.Is(err, transfer.ErrDiskFull):
			ft.notice(o.ID, err.Error())
			ft.sleep(ft.cfg.RetryMax, pl.kick, ctx.Done())
			continue
		case errors.Is(err, errLimitedCircuit), errors.Is(err, errPeerOffline):
			ft.notice(o.ID, err.Error())
		default:
			ft.log.Info("file transfer interrupted; resuming", "transfer", o.ID, "peer", p, "in", backoff, "err", err)
		}
		if ft.sleep(jitter(backoff), pl.kick, ctx.Done()) {
			backoff = min(2*backoff, ft.cfg.RetryMax)
		} else {
			backoff = ft.cfg.RetryMin
		}
	}
}

// notice shows why a transfer waits.
func (ft *transfers) notice(id transfer.ID, why string) {
	t, err := ft.store.Transfer(e2e.MessageID(id))
	if err != nil || t.State.Final() {
		return
	}
	ft.mu.Lock()
	bytes := ft.shown[id].bytes
	ft.mu.Unlock()
	ft.progress(t, max(bytes, t.Bytes), why, false)
}

// pullOnce runs one round: nil when the file is received and verified.
// The partial file is held (its disk lock) only while it is used, not
// while the peer is dialed, so chunks from a mailbox go on arriving.
func (ft *transfers) pullOnce(ctx context.Context, p peer.ID, o *transfer.Offer) error {
	l := ft.diskLock(o.ID)
	l.Lock()
	part, err := transfer.OpenPartial(ft.downloads(), o)
	if err != nil {
		l.Unlock()
		return err
	}
	if part.Done() { // from a mailbox, or finished before a crash
		return ft.finish(part, o, l)
	}
	err = part.Close()
	l.Unlock()
	if err != nil {
		return err
	}
	s, err := ft.openFileStream(ctx, p)
	if err != nil {
		return err
	}
	defer s.Reset()
	ft.exchanging(o.ID, s)
	defer ft.exchanging(o.ID, nil)
	l.Lock()
	if part, err = transfer.OpenPartial(ft.downloads(), o); err != nil {
		l.Unlock()
		return err
	}
	l.live.Store(true)
	done, err := ft.exchange(ctx, s, part, o)
	l.live.Store(false)
	if !done {
		l.Unlock()
		return errors.Join(err, part.Close())
	}
	s.Close()
	return ft.finish(part, o, l)
}

// finish places a whole file and records it; l is the transfer's disk
// lock, released before the state changes (which may discard).
func (ft *transfers) finish(part *transfer.Partial, o *transfer.Offer, l interface{ Unlock() }) error {
	path, err := part.Finish(ft.downloads())
	l.Unlock()
	if err != nil {
		return err
	}
	ft.received(o.ID, path, o.Size)
	return nil
}

// openFileStream opens a file stream to p, which must have a verified
// chat session with us (dialed if needed), on a connection that can
// carry a file.
func (ft *transfers) openFileStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	if ft.sessions.newest(p) == nil {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		_, err := ft.sessions.get(dctx, p)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w (%s): %w", errPeerOffline, identity.ShortID(p), err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	s, err := ft.host.NewStream(network.WithAllowLimitedConn(sctx, "file"), p, ProtocolFile)
	if err != nil {
		return nil, fmt.Errorf("open a file stream: %w", err)
	}
	if !roomyCircuit(s.Conn()) {
		s.Reset()
		return nil, errLimitedCircuit
	}
	return s, nil
}

// exchange asks for the missing chunks and writes what comes, until the
// file is whole (done) or the stream fails.
func (ft *transfers) exchange(ctx context.Context, s network.Stream, part *transfer.Partial, o *transfer.Offer) (bool, error) {
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	t, err := ft.setState(o.ID, store.TransferActive, part.Held(), "", "")
	if err != nil {
		return false, err
	}
	ft.progress(t, part.Held(), "", true)
	w := bufio.NewWriter(s)
	var sendMu sync.Mutex // the read loop and the commits write
	send := func(typ byte, payload []byte) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		if err := writeFS(w, typ, payload); err != nil {
			return err
		}
		return w.Flush()
	}
	if err := send(fsWant, wantPayload(o.ID, part.Held(), part.Missing())); err != nil {
		return false, err
	}
	r := bufio.NewReaderSize(s, 256<<10)
	buf := make([]byte, fsMaxPayload)
	read, unacked := 0, 0
	// Chunks are made durable off this loop (one commit at a time), and
	// acknowledged once they are: reading goes on during the fsync.
	var pending chan error
	wait := func() error {
		if pending == nil {
			return nil
		}
		err := <-pending
		pending = nil
		return err
	}
	defer wait()
	ack := func() error {
		if err := wait(); err != nil {
			return err
		}
		commit, held, err := part.Checkpoint()
		if err != nil {
			return err
		}
		unacked = 0
		payload := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(read)), uint64(held))
		done := make(chan error, 1)
		run := func() {
			err := commit()
			if err == nil {
				ft.progress(t, held, "", false)
				err = send(fsAck, payload)
			}
			done <- err
		}
		if !ft.work.goDo(run) {
			run()
		}
		pending = done
		return nil
	}
	for {
		s.SetReadDeadline(time.Now().Add(fileIdle))
		typ, payload, err := readFS(r, buf)
		if err != nil {
			return false, err
		}
		switch typ {
		case fsChunk:
			if len(payload) < 8 {
				return false, fmt.Errorf("%w: a chunk frame of %d bytes", e2e.ErrMalformed, len(payload))
			}
			i := binary.BigEndian.Uint64(payload)
			read++
			unacked++
			err := part.Write(int(min(i, 1<<40)), payload[8:])
			switch {
			case errors.Is(err, transfer.ErrTampered), errors.Is(err, transfer.ErrMalformed):
				// Not written: it stays missing and is asked for again.
				ft.log.Warn("a file chunk failed its check; it will be fetched again", "transfer", o.ID, "chunk", i, "err", err)
			case err != nil:
				return false, err
			}
			if unacked >= transfer.SyncEvery {
				if err := ack(); err != nil {
					return false, err
				}
			}
		case fsEnd:
			if err := ack(); err != nil {
				return false, err
			}
			if err := wait(); err != nil {
				return false, err
			}
			if part.Done() {
				// The file is verified by Finish; the sender learns it from
				// done here, or from the control message if this is lost.
				if err := send(fsDone, nil); err != nil {
					ft.log.Info("tell the sender the file arrived", "err", err)
				}
				return true, nil
			}
			if err := send(fsWant, wantPayload(o.ID, part.Held(), part.Missing())); err != nil {
				return false, err
			}
		case fsError:
			if len(payload) < 1 || !utf8.Valid(payload[1:]) {
				return false, fmt.Errorf("%w: an error frame", e2e.ErrMalformed)
			}
			return false, &fsRefused{code: payload[0], msg: string(payload[1:])}
		default:
			return false, fmt.Errorf("%w: file stream frame 0x%02x", e2e.ErrMalformed, typ)
		}
	}
}

// The sender's side.

// handleStream serves a receiver's file stream: only a transfer offered
// to that peer (the one libp2p's transport authenticated), only while a
// verified chat session with it is up.
func (ft *transfers) handleStream(s network.Stream) {
	defer s.Reset()
	p := s.Conn().RemotePeer()
	s.SetReadDeadline(time.Now().Add(fileIdle))
	r := bufio.NewReaderSize(s, 64<<10)
	typ, payload, err := readFS(r, make([]byte, 0, 4096))
	if err != nil || typ != fsWant {
		return
	}
	id, held, ranges, err := parseWant(payload)
	if err != nil {
		ft.log.Info("a malformed file request", "peer", p, "err", err)
		return
	}
	refuse := func(code byte, msg string) { writeFS(s, fsError, errorPayload(code, msg)) }
	t, err := ft.store.Transfer(e2e.MessageID(id))
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && (t.Peer != p || t.Direction != store.Outgoing):
		refuse(fsErrUnknown, "no such transfer")
		return
	case err != nil:
		ft.log.Error("read a file transfer", "err", err)
		return
	case t.State.Final():
		refuse(fsErrOver, "the transfer is "+string(t.State))
		return
	case ft.sessions.newest(p) == nil:
		refuse(fsErrNoSession, "no verified chat session")
		return
	}
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil {
		refuse(fsErrSource, "the offer cannot be read")
		return
	}
	src, err := transfer.OpenSource(t.Path, o)
	if err != nil {
		ft.log.Warn("a file being sent cannot be read", "path", t.Path, "err", err)
		refuse(fsErrSource, "the file cannot be read any more")
		ft.fail(o.ID, fmt.Errorf("the file cannot be read: %w", err))
		return
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(ft.ctx)
	defer cancel()
	ss := &serveState{cancel: cancel}
	ft.mu.Lock()
	if ft.serving[o.ID] == nil {
		ft.serving[o.ID] = map[*serveState]struct{}{}
	}
	ft.serving[o.ID][ss] = struct{}{}
	ft.mu.Unlock()
	defer func() {
		ft.mu.Lock()
		delete(ft.serving[o.ID], ss)
		if len(ft.serving[o.ID]) == 0 {
			delete(ft.serving, o.ID)
		}
		ft.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	if t, err = ft.setState(o.ID, store.TransferActive, held, "", ""); err != nil {
		return
	}
	ft.progress(t, held, "", true)
	if ft.serve(s, r, src, o, t, held, ranges) {
		if t, err := ft.setState(o.ID, store.TransferDone, o.Size, "", ""); err == nil {
			ft.emitFile(EventFileDone, t)
			ft.mu.Lock()
			delete(ft.shown, o.ID)
			ft.mu.Unlock()
		}
	}
}

// fsMsg is a frame the receiver wrote, read by serve's reader.
type fsMsg struct {
	typ     byte
	payload []byte
	err     error
}

// serve writes the chunks asked for, at most fileWindow ahead of the
// acknowledgements, and the next ranges when asked; true when the
// receiver says the file is whole.
func (ft *transfers) serve(s network.Stream, r *bufio.Reader, src *transfer.Source, o *transfer.Offer, t store.Transfer, held int64, ranges [][2]int) bool {
	msgs := make(chan fsMsg, 4)
	quit := make(chan struct{})
	defer close(quit)
	if !ft.work.goDo(func() {
		for {
			s.SetReadDeadline(time.Now().Add(fileIdle + time.Minute))
			typ, payload, err := readFS(r, nil)
			select {
			case msgs <- fsMsg{typ, payload, err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}) {
		return false
	}
	buf := make([]byte, 13, 13+transfer.ChunkSize+transfer.Overhead)
	sent, acked := 0, 0
	began := time.Now()
	// handle takes one frame of the receiver; done or failed ends.
	handle := func(m fsMsg) (next [][2]int, done, failed bool) {
		if m.err != nil {
			return nil, false, true
		}
		switch m.typ {
		case fsAck:
			if len(m.payload) != 16 {
				return nil, false, true
			}
			acked = int(min(binary.BigEndian.Uint64(m.payload), uint64(sent)))
			held = int64(binary.BigEndian.Uint64(m.payload[8:]))
			ft.progress(t, min(held, o.Size), "", false)
		case fsWant:
			_, h, rs, err := parseWant(m.payload)
			if err != nil {
				return nil, false, true
			}
			held = h
			return rs, false, false
		case fsDone:
			return nil, true, false
		default:
			return nil, false, true
		}
		return nil, false, false
	}
	for {
		budget := o.Chunks() // ranges that overlap never make a want cost more than the file
		for _, rg := range ranges {
			for i := rg[0]; i < min(rg[1], o.Chunks()) && budget > 0; i++ {
				budget--
				for sent-acked >= fileWindow {
					if _, done, failed := handle(<-msgs); done || failed {
						return done
					}
				}
				b := buf[:13]
				b[0] = fsChunk
				b, err := src.Chunk(b, i)
				if err != nil {
					ft.log.Warn("read the file being sent", "err", err)
					writeFS(s, fsError, errorPayload(fsErrSource, "the file cannot be read any more"))
					ft.fail(o.ID, err)
					return false
				}
				binary.BigEndian.PutUint32(b[1:], uint32(len(b)-5))
				binary.BigEndian.PutUint64(b[5:], uint64(i))
				if ft.tamper != nil {
					ft.tamper(i, b[13:])
				}
				if _, err := s.Write(b); err != nil {
					return false
				}
				sent++
				if rate := ft.cfg.FileRate; rate > 0 {
					due := began.Add(time.Duration(float64(sent) * transfer.ChunkSize / float64(rate) * float64(time.Second)))
					time.Sleep(time.Until(due))
				}
			}
		}
		if err := writeFS(s, fsEnd, nil); err != nil {
			return false
		}
		ranges = nil
		for ranges == nil {
			next, done, failed := handle(<-msgs)
			if done || failed {
				return done
			}
			ranges = next
		}
	}
}

// Small files through the mailbox.

// offerQueued follows an outgoing message left at a relay: if it is a
// file offer, the file's chunks follow it there when the file is small
// enough; a larger one waits, and says so.
func (ft *transfers) offerQueued(id e2e.MessageID, p peer.ID) {
	t, err := ft.store.Transfer(id)
	if err != nil || t.Direction != store.Outgoing || t.State.Final() || t.Mailed {
		return
	}
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil {
		return
	}
	if o.Size > MailboxFileMax {
		ft.progress(t, 0, fmt.Sprintf("waiting for %s to come online (files over %s are not left at relays)", identity.ShortID(p), humanSize(MailboxFileMax)), true)
		return
	}
	ft.work.goDo(func() {
		if err := ft.mailFile(t, o); err != nil {
			ft.log.Info("a small file was not left at a relay; it waits for the peer", "transfer", o.ID, "err", err)
			ft.progress(t, 0, fmt.Sprintf("waiting for %s to come online", identity.ShortID(p)), true)
		}
	})
}

// mailFile seals every chunk of a small file in an envelope of its own
// and leaves them at the peer's relay, after the offer.
func (ft *transfers) mailFile(t store.Transfer, o *transfer.Offer) error {
	relays := ft.mail.relaysOf(t.Peer)
	if len(relays) == 0 {
		return errNoMailbox
	}
	src, err := transfer.OpenSource(t.Path, o)
	if err != nil {
		return err
	}
	defer src.Close()
	var pts [][]byte
	for i := range o.Chunks() {
		sealed, err := src.Chunk(nil, i)
		if err != nil {
			return err
		}
		pt, err := chunkPlaintext(o.ID, i, sealed)
		if err != nil {
			return err
		}
		pts = append(pts, pt)
	}
	envs, err := ft.rk.sealAll(t.Peer, pts)
	if err != nil {
		return err
	}
	for _, env := range envs {
		if err := ft.mail.depositAny(relays, t.Peer, env); err != nil {
			return err
		}
	}
	nt, err := ft.store.UpdateTransfer(t.ID, func(t *store.Transfer) error {
		t.Mailed = true
		return nil
	})
	if err == nil {
		ft.progress(nt, 0, "left at the relay for "+identity.ShortID(t.Peer), true)
	}
	return err
}

// mailedChunk writes a chunk that came through a mailbox, unless a live
// exchange runs (it fetches the chunk itself). A file whole and accepted
// is finished at once.
func (ft *transfers) mailedChunk(p peer.ID, c *mailedChunk) {
	t, err := ft.store.Transfer(e2e.MessageID(c.id))
	if err != nil || t.Peer != p || t.Direction != store.Incoming || t.State.Final() {
		return
	}
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil || o.Size > MailboxFileMax {
		return
	}
	l := ft.diskLock(o.ID)
	if l.live.Load() {
		return // a live exchange: the sender is online, and sends this chunk too
	}
	l.Lock()
	part, err := transfer.OpenPartial(ft.downloads(), o)
	if err != nil {
		l.Unlock()
		ft.log.Warn("open a partial file", "err", err)
		return
	}
	if err := part.Write(c.index, c.sealed); err != nil {
		ft.log.Warn("a mailed file chunk was not written", "transfer", o.ID, "chunk", c.index, "err", err)
	}
	if part.Done() && t.State != store.TransferOffered {
		if err := ft.finish(part, o, l); err != nil {
			ft.fail(o.ID, err)
		}
		return
	}
	err = part.Close()
	l.Unlock()
	if err != nil {
		ft.log.Warn("save a partial file", "err", err)
	}
	ft.progress(t, part.Held(), "", false)
}
