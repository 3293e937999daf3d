package node

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/network"
)

// The sender's side of a file stream (PROTOCOL §15.5): serving the
// chunks a receiver asks for, at most fileWindow ahead of its
// acknowledgements.

// refuseStream writes a refusal on a receiver's file stream s and waits,
// at most linger (refusalLinger), for the receiver to hang up once it has read
// it: the reset that ends the stream (handleStream's) would otherwise
// overtake the frame, and the receiver read a broken stream, which it
// retries, where it was told that the transfer is over or cannot go on
// (TestFileStreamRefusalArrives).
func refuseStream(s network.Stream, linger time.Duration, code byte, msg string) {
	if err := writeFS(s, fsError, errorPayload(code, msg)); err != nil {
		return // the stream broke: nothing more can be told on it
	}
	if err := s.CloseWrite(); err != nil {
		return
	}
	s.SetReadDeadline(time.Now().Add(linger))
	// Until the receiver hangs up (its reset, EOF) or the deadline: how
	// it ends, and what it sends, are moot.
	_, _ = io.Copy(io.Discard, io.LimitReader(s, 64<<10))
}

// refusalLinger bounds how long a refused file stream waits for its
// receiver to read the refusal and hang up.
const refusalLinger = 5 * time.Second

// sessionWait is how long a file stream waits for our end of the chat
// session its receiver has (awaitSession).
const sessionWait = 10 * time.Second

// handleStream serves a receiver's file stream: only a transfer offered
// to that peer (the one libp2p's transport authenticated), only while a
// verified chat session with it is up (or comes up within sessionWait:
// the receiver opens the stream once its end of one is).
func (ft *transfers) handleStream(s network.Stream) {
	defer s.Reset()
	p := s.Conn().RemotePeer()
	wait, linger := ft.hooks.waits()
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
	t, err := ft.store.Transfers().Transfer(e2e.MessageID(id))
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && (t.Peer != p || t.Direction != store.Outgoing):
		refuseStream(s, linger, fsErrUnknown, "no such transfer")
		return
	case err != nil:
		ft.log.Error("read a file transfer", "err", err)
		return
	case t.State.Final():
		refuseStream(s, linger, fsErrOver, "the transfer is "+string(t.State))
		return
	case !awaitSession(ft.ctx, ft.sessions, p, wait):
		refuseStream(s, linger, fsErrNoSession, "no verified chat session")
		return
	}
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil {
		refuseStream(s, linger, fsErrSource, "the offer cannot be read")
		return
	}
	src, err := transfer.OpenSource(t.Path, o)
	if err != nil {
		ft.log.Warn("a file being sent cannot be read", "path", t.Path, "err", err)
		refuseStream(s, linger, fsErrSource, "the file cannot be read any more")
		ft.fail(o.ID, fmt.Errorf("the file cannot be read: %w", err))
		return
	}
	defer src.Close()
	ft.sums.feed(src, o)
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
	if !ft.serve(s, r, src, o, t, held, ranges) {
		// Gone half-way: the receiver asks again when it can reach us,
		// or we it.
		ft.reach.keep(p)
		return
	}
	if t, err := ft.setState(o.ID, store.TransferDone, o.Size, "", ""); err == nil {
		showEnd(ft, EventFileDone, t)
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
	w, err := ft.newChunkWriter(s)
	if err != nil {
		return false
	}
	defer w.stop()
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
	// b gathers up to framesPerWrite chunk frames for one write to the
	// stream; flush hands it to the writer.
	var b []byte
	frames := 0
	flush := func() {
		if b != nil {
			w.write(b)
			b, frames = nil, 0
		}
	}
	for {
		budget := o.Chunks() // ranges that overlap never make a want cost more than the file
		for _, rg := range ranges {
			for i := rg[0]; i < min(rg[1], o.Chunks()) && budget > 0; i++ {
				budget--
				if sent-acked >= fileWindow {
					flush()
				}
				for sent-acked >= fileWindow {
					if _, done, failed := handle(<-msgs); done || failed {
						return done
					}
				}
				if b == nil {
					if b, err = w.buffer(); err != nil {
						return false
					}
				}
				at := len(b)
				b = append(b, fsChunk, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
				b, err = src.Chunk(b, i)
				if err != nil {
					ft.log.Warn("read the file being sent", "err", err)
					writeFS(s, fsError, errorPayload(fsErrSource, "the file cannot be read any more"))
					ft.fail(o.ID, err)
					return false
				}
				binary.BigEndian.PutUint32(b[at+1:], uint32(len(b)-at-5))
				binary.BigEndian.PutUint64(b[at+5:], uint64(i))
				if ft.hooks.tamper != nil {
					ft.hooks.tamper(i, b[at+13:])
				}
				sent++
				if frames++; frames == framesPerWrite {
					flush()
				}
				if rate := ft.cfg.FileRate; rate > 0 {
					flush()
					due := began.Add(time.Duration(float64(sent) * transfer.ChunkSize / float64(rate) * float64(time.Second)))
					time.Sleep(time.Until(due))
				}
			}
		}
		sealed, err := ft.sums.sealed(src, o)
		if err != nil {
			ft.log.Warn("read the file being sent", "err", err)
			flush()
			writeFS(s, fsError, errorPayload(fsErrSource, "the file cannot be read any more"))
			ft.fail(o.ID, err)
			return false
		}
		if b == nil {
			if b, err = w.buffer(); err != nil {
				return false
			}
		}
		at := len(b)
		b = append(b, fsEnd, 0, 0, 0, 0)
		b = append(b, sealed...)
		binary.BigEndian.PutUint32(b[at+1:], uint32(len(sealed)))
		if ft.hooks.tamper != nil {
			ft.hooks.tamper(o.Chunks(), b[at+5:]) // the index past the last chunk: the sealed sum
		}
		flush()
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

// chunkWriter writes a file stream's chunks on a goroutine of its own,
// so that the next chunk is read and sealed while the previous one goes
// through yamux and TLS: two cores work on the stream, not one.
type chunkWriter struct {
	bufs   chan []byte
	writes chan []byte
	failed chan struct{} // closed when a write failed
	quit   chan struct{}
}

// chunkWriteAhead is how many writes are sealed ahead of the one going
// through yamux and TLS.
const chunkWriteAhead = 3

// framesPerWrite is how many chunk frames go to the stream in one write.
// yamux cuts a write into frames of at most 64 KiB − 12 bytes, each
// written through TLS on its own: one chunk frame a write (64 KiB and 29
// bytes) made two yamux frames, the second of 41 bytes, a TLS record and
// a syscall of its own; four a write make five yamux frames instead of
// eight (docs/BENCHMARKS.md, fourth round).
const framesPerWrite = 4

func (ft *transfers) newChunkWriter(s network.Stream) (*chunkWriter, error) {
	w := &chunkWriter{
		bufs:   make(chan []byte, chunkWriteAhead),
		writes: make(chan []byte, chunkWriteAhead),
		failed: make(chan struct{}),
		quit:   make(chan struct{}),
	}
	for range chunkWriteAhead {
		w.bufs <- make([]byte, 0, framesPerWrite*(13+transfer.ChunkSize+transfer.Overhead))
	}
	ok := ft.work.goDo(func() {
		for {
			select {
			case b := <-w.writes:
				if _, err := s.Write(b); err != nil {
					close(w.failed)
					return
				}
				w.bufs <- b[:0]
			case <-w.quit:
				return
			}
		}
	})
	if !ok {
		return nil, errors.New("the node is stopping")
	}
	return w, nil
}

// buffer waits for a free, empty buffer with room for framesPerWrite
// chunk frames; it fails once a write failed.
func (w *chunkWriter) buffer() ([]byte, error) {
	select {
	case b := <-w.bufs:
		return b, nil
	case <-w.failed:
		return nil, errors.New("write the file stream")
	}
}

// write queues b, a buffer from buffer; it never blocks (there are as
// many places in the queue as buffers).
func (w *chunkWriter) write(b []byte) { w.writes <- b }

// stop ends the writer; what is queued may not be written.
func (w *chunkWriter) stop() { close(w.quit) }
