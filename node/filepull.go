package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The receiver's side of a file stream (PROTOCOL §15.5): the puller that
// fetches an accepted file, resuming from what the partial file holds.

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
		if err == nil || ctx.Err() != nil || errors.Is(err, ErrTransferOver) {
			return // over here or by whatever ended it, which shows its end
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
			ft.log.Info("file transfer waits for the peer", "transfer", o.ID, "peer", p, "in", backoff, "err", err)
			ft.notice(o.ID, waitNotice(err, p, transfer.CleanName(o.Name)))
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

// waitNotice is the one line a transfer that cannot reach its peer p
// shows, err being why (the receiver's puller; with name "", the
// sender's fileReach): the dial's error, a list of addresses over
// several lines, goes to the log instead.
func waitNotice(err error, p peer.ID, name string) string {
	switch {
	case !errors.Is(err, errPeerOffline):
		return err.Error()
	case name == "":
		return fmt.Sprintf("waiting for %s to come online", identity.ShortID(p))
	}
	return fmt.Sprintf("waiting for %s to come online to finish %s; will retry", identity.ShortID(p), name)
}

// notice shows why a transfer waits.
func (ft *transfers) notice(id transfer.ID, why string) {
	t, err := ft.store.Transfers().Transfer(e2e.MessageID(id))
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
	_, part, err := openUnlessOver(ft, o)
	if err != nil {
		l.Unlock()
		return err
	}
	if part.Done() && part.SumKnown() { // from a mailbox, or finished before a crash
		return ft.finish(part, o, l)
	}
	knownHeld(ft, o.ID, part.Held())
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
	if _, part, err = openUnlessOver(ft, o); err != nil {
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

// knownHeld records what the partial file of transfer id holds, without
// showing it: what the transfer shows while it waits for the sender
// (notice, Files) counts the chunks a restart kept, not only those this
// run acknowledged.
func knownHeld(ft *transfers, id transfer.ID, held int64) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	s := ft.shown[id]
	s.bytes = max(s.bytes, held)
	ft.shown[id] = s
}

// openUnlessOver opens the partial file of incoming transfer o, unless
// the transfer is over (ErrTransferOver), and reports the transfer as
// stored; the caller holds its disk lock. Whatever ends a transfer
// stores the end and then discards the partial file under that lock
// (discard): a transfer found under way here has what the caller
// writes discarded after it, one found over has it discarded already,
// and nothing is written again.
func openUnlessOver(ft *transfers, o *transfer.Offer) (store.Transfer, *transfer.Partial, error) {
	t, err := ft.store.Transfers().Transfer(e2e.MessageID(o.ID))
	if err != nil {
		return t, nil, fmt.Errorf("read the file transfer: %w", err)
	}
	if t.State.Final() {
		return t, nil, &TransferOverError{t.State}
	}
	part, err := transfer.OpenPartial(ft.downloads(), o)
	return t, part, err
}

// finish places a whole file and records the transfer done, with the
// SHA-256 it was checked against kept in its offer (a SumLater offer
// did not carry it); l is the transfer's disk lock, released once the
// transfer is recorded, so that the user's cancel (stopWith) comes
// before or finds it done. A cancel from the peer is stored without the
// lock as it arrives: a transfer it ended before the file was recorded
// is not recorded done, and the file placed is removed again
// (ErrTransferOver). A received file stays in the downloads only with
// its transfer done.
func (ft *transfers) finish(part *transfer.Partial, o *transfer.Offer, l interface{ Unlock() }) error {
	path, err := part.Finish(ft.downloads())
	if err != nil {
		l.Unlock()
		return err
	}
	atHook(ft.hooks.placed, ft.ctx, path)
	t, err := ft.store.Transfers().UpdateTransfer(e2e.MessageID(o.ID), func(t *store.Transfer) error {
		if t.State.Final() {
			return &TransferOverError{t.State}
		}
		if o, err := transfer.ParseOffer(t.Offer); err == nil && o.SumLater {
			t.Offer = o.WithSum(part.Sum()).Marshal()
		}
		t.State, t.Updated, t.Error, t.Bytes, t.Path = store.TransferDone, ft.cfg.Now(), "", max(t.Bytes, o.Size), path
		return nil
	})
	if err != nil {
		err = fmt.Errorf("record the file received: %w", err)
		if rerr := os.Remove(path); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the file placed: %w", rerr))
		}
		l.Unlock()
		return err
	}
	l.Unlock()
	ft.received(t, path)
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
	frames, release, err := ft.readFrames(s)
	if err != nil {
		return false, err
	}
	defer release()
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
		f := <-frames
		if f.err != nil {
			return false, f.err
		}
		typ, payload := f.typ, f.payload
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
			default:
				atHook(ft.hooks.chunkWritten, ctx, int(i))
			}
			if unacked >= transfer.SyncEvery {
				if err := ack(); err != nil {
					return false, err
				}
			}
		case fsEnd:
			// A SumLater offer's SHA-256 comes sealed here (another
			// offer's is ignored): Finish checks the file against it.
			if err := part.ExpectSum(payload); err != nil {
				return false, err
			}
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
		f.free()
	}
}

// fileReadAhead is how many frames the receiver reads ahead of the one
// it checks and writes: reading the stream (yamux, TLS) and opening,
// writing and hashing chunks run side by side on two cores, and a pause
// of the writes (the disk, a checkpoint) does not stop the stream at
// once: 2 MiB of frames (8 left the stream waiting for the disk; docs/BENCHMARKS.md,
// fourth round).
const fileReadAhead = 32

// frame is a file stream frame read ahead; free gives its buffer back.
type frame struct {
	typ     byte
	payload []byte
	err     error
	free    func()
}

// readFrames reads s's frames on a goroutine of its own, at most
// fileReadAhead ahead, each into a buffer of its own; release stops it
// (it returns once the stream is reset or closed).
func (ft *transfers) readFrames(s network.Stream) (<-chan frame, func(), error) {
	out := make(chan frame, fileReadAhead)
	bufs := make(chan []byte, fileReadAhead+1)
	for range fileReadAhead + 1 {
		bufs <- make([]byte, fsMaxPayload)
	}
	quit := make(chan struct{})
	// Reads bigger than the buffer go straight into the frame's buffer.
	r := bufio.NewReaderSize(s, 16<<10)
	ok := ft.work.goDo(func() {
		for {
			var buf []byte
			select {
			case buf = <-bufs:
			case <-quit:
				return
			}
			s.SetReadDeadline(time.Now().Add(fileIdle))
			typ, payload, err := readFS(r, buf)
			f := frame{typ: typ, payload: payload, err: err, free: func() { bufs <- buf }}
			select {
			case out <- f:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	})
	if !ok {
		return nil, nil, errors.New("the node is stopping")
	}
	return out, func() { close(quit) }, nil
}
