package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Small files through a relay's mailbox, for an offline recipient
// (PROTOCOL §15.6).

// offerQueued follows an outgoing message left at a relay: if it is a
// file offer, the file's chunks follow it there when the file is small
// enough; a larger one waits, and says so. start calls it too for an
// offer whose chunks the last run did not finish leaving
// (mailUnfinished).
func (ft *transfers) offerQueued(id e2e.MessageID, p peer.ID) {
	t, err := ft.store.Transfers().Transfer(id)
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
	ft.mu.Lock()
	if _, busy := ft.mailing[o.ID]; busy {
		ft.mu.Unlock()
		return // the same offer's chunks are being left
	}
	ctx, stop := context.WithCancel(ft.ctx) // ended stops it
	ft.mailing[o.ID] = stop
	ft.mu.Unlock()
	done := func() {
		ft.mu.Lock()
		delete(ft.mailing, o.ID)
		ft.mu.Unlock()
		stop()
	}
	started := ft.work.goDo(func() {
		defer done()
		// Read again: another run, ended since the read above, may have
		// left the chunks, or the transfer may be over.
		t, err := ft.store.Transfers().Transfer(id)
		if err != nil {
			ft.log.Warn("a small file was not left at a relay; it waits for the peer", "transfer", o.ID, "err", fmt.Errorf("read the transfer: %w", err))
			return
		}
		if t.State.Final() || t.Mailed {
			return
		}
		if err := ft.mailFile(ctx, t, o); err != nil {
			ft.log.Info("a small file was not left at a relay; it waits for the peer", "transfer", o.ID, "err", err)
			ft.progress(t, 0, fmt.Sprintf("waiting for %s to come online", identity.ShortID(p)), true)
		}
	})
	if !started {
		done()
	}
}

// mailUnfinished says whether the file of t still has chunks to leave at
// a relay after a restart: t is a small outgoing file whose offer went to
// a relay (queued, or delivered since: whoever fetched it from the
// mailbox needs the chunks there too, unless the sender is online) and
// whose chunks the last run did not all leave (it ended, or a deposit
// failed). The receipt may come at any time, even while Start runs and
// before start looks here: the transfer keeps that its offer was queued
// (OfferQueued), a record from before that field only the queued status.
// Nothing else tells: the outbox sends only what is not queued yet, and
// what was left is not recorded chunk by chunk, so all of them go again
// (a chunk the recipient holds already is ignored). Not a transfer that
// is over (done, declined, cancelled), nor one the recipient has pulled
// from live (active, or bytes acknowledged), nor one whose offer was
// given up (failed).
func mailUnfinished(st *store.Store, t store.Transfer) (bool, error) {
	if t.Direction != store.Outgoing || t.State != store.TransferWaiting || t.Mailed || t.Bytes > 0 {
		return false, nil
	}
	o, err := transfer.ParseOffer(t.Offer)
	if err != nil {
		return false, fmt.Errorf("file transfer %s: %w", t.ID, err)
	}
	if o.Size > MailboxFileMax {
		return false, nil
	}
	m, err := st.Message(t.ID)
	if err != nil {
		return false, fmt.Errorf("the offer of file transfer %s: %w", t.ID, err)
	}
	return m.Status == store.StatusQueued || m.Status == store.StatusDelivered && t.OfferQueued, nil
}

// offerSent follows an outgoing message written to a live session: if it
// is a file offer and that session runs on a relay circuit too small for
// files, the sender is told the file waits for a better path (the
// receiver says so too, and opens no stream until one appears).
func (ft *transfers) offerSent(id e2e.MessageID, p peer.ID) {
	cs := ft.sessions.newest(p)
	if cs == nil || roomyCircuit(cs.conn) {
		return
	}
	t, err := ft.store.Transfers().Transfer(id)
	if err != nil || t.Direction != store.Outgoing || t.State.Final() {
		return
	}
	ft.progress(t, 0, errLimitedCircuit.Error(), true)
}

// mailFile seals every chunk of a small file in an envelope of its own
// and leaves them at the peer's relay, after the offer. A transfer that
// ends meanwhile (cancelled, declined, received: by either side) stops
// it before the next chunk: the chunks not left yet are not, the
// transfer is not recorded as left, and nothing more is shown. Its end
// also ends ctx (ended), which stops the chunk's deposit in flight.
func (ft *transfers) mailFile(ctx context.Context, t store.Transfer, o *transfer.Offer) error {
	relays := ft.mail.relaysOf(t.Peer)
	if len(relays.all) == 0 {
		return errNoMailbox
	}
	envs, err := sealChunks(ft.rk, t, o)
	if err != nil {
		return err
	}
	for i, env := range envs {
		switch over, err := transferOver(ft.store, t.ID); {
		case err != nil:
			return fmt.Errorf("before chunk %d of %d: %w", i+1, len(envs), err)
		case over:
			return nil
		}
		if err := ft.mail.deposit(ctx, relays, t.Peer, env); err != nil {
			return depositErr(ft.store, t.ID, fmt.Errorf("leave chunk %d of %d at a relay: %w", i+1, len(envs), err))
		}
		atHook(ft.hooks.chunkLeft, ft.ctx, i)
	}
	nt, err := markMailed(ft.store, t.ID)
	if errors.Is(err, ErrTransferOver) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record the chunks left at a relay: %w", err)
	}
	ft.progress(nt, 0, "left at the relay for "+identity.ShortID(t.Peer), true)
	return nil
}

// depositErr is err, the failure to leave a chunk of transfer id at a
// relay, unless the transfer ended meanwhile, which stopped the deposit
// (mailFile): then nil.
func depositErr(st *store.Store, id e2e.MessageID, err error) error {
	over, oerr := transferOver(st, id)
	if oerr != nil {
		return errors.Join(err, oerr)
	}
	if over {
		return nil
	}
	return err
}

// sealChunks seals every chunk of the file of t, read from its path,
// for t's peer: one envelope each, in order.
func sealChunks(rk *ratchetKeys, t store.Transfer, o *transfer.Offer) ([][]byte, error) {
	src, err := transfer.OpenSource(t.Path, o)
	if err != nil {
		return nil, fmt.Errorf("open the file: %w", err)
	}
	defer src.Close()
	var pts [][]byte
	for i := range o.Chunks() {
		sealed, err := src.Chunk(nil, i)
		if err != nil {
			return nil, fmt.Errorf("read chunk %d: %w", i+1, err)
		}
		pt, err := chunkPlaintext(o.ID, i, sealed)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i+1, err)
		}
		pts = append(pts, pt)
	}
	envs, err := rk.sealAll(t.Peer, pts)
	if err != nil {
		return nil, fmt.Errorf("seal the chunks: %w", err)
	}
	return envs, nil
}

// transferOver says whether the transfer id has ended (done, declined,
// cancelled, failed), as stored now.
func transferOver(st *store.Store, id e2e.MessageID) (bool, error) {
	t, err := st.Transfers().Transfer(id)
	if err != nil {
		return false, fmt.Errorf("read the transfer: %w", err)
	}
	return t.State.Final(), nil
}

// markMailed records that every chunk of the outgoing transfer id was
// left at a relay, unless the transfer has ended (ErrTransferOver): an
// ended transfer stays as it ended.
func markMailed(st *store.Store, id e2e.MessageID) (store.Transfer, error) {
	return st.Transfers().UpdateTransfer(id, func(t *store.Transfer) error {
		if t.State.Final() {
			return &TransferOverError{t.State}
		}
		t.Mailed = true
		return nil
	})
}

// mailedChunk writes a chunk that came through a mailbox, unless a live
// exchange runs (it fetches the chunk itself). A file whole and accepted
// is finished at once. A chunk of an offer not yet accepted from a peer
// we may not message is not written (docs/PROTOCOL.md §10): each offer
// a stranger may leave would bring up to MailboxFileMax onto the disk;
// once the user accepts the file, it is pulled from its sender.
func (ft *transfers) mailedChunk(p peer.ID, c *mailedChunk) {
	t, err := ft.store.Transfers().Transfer(e2e.MessageID(c.id))
	if err != nil || t.Peer != p || t.Direction != store.Incoming || t.State.Final() {
		return
	}
	if t.State == store.TransferOffered && ft.book.mayMessage(p) != nil {
		ft.log.Info("a mailed chunk of a file not accepted, from a peer who is not a contact, is not kept", "transfer", t.ID, "peer", p)
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
	atHook(ft.hooks.chunkCame, ft.ctx, c.index)
	l.Lock()
	// Read again under the lock: a transfer ended meanwhile (cancelled
	// by either side) gets nothing more written (openUnlessOver).
	t, part, err := openUnlessOver(ft, o)
	if err != nil {
		l.Unlock()
		if !errors.Is(err, ErrTransferOver) {
			ft.log.Warn("a mailed file chunk was not written", "transfer", o.ID, "chunk", c.index, "err", err)
		}
		return
	}
	if err := part.Write(c.index, c.sealed); err != nil {
		ft.log.Warn("a mailed file chunk was not written", "transfer", o.ID, "chunk", c.index, "err", err)
	}
	if part.Done() && part.SumKnown() && t.State != store.TransferOffered {
		if err := ft.finish(part, o, l); err != nil && !errors.Is(err, ErrTransferOver) {
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
