package node

import (
	"context"
	"sync"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TamperFilesForTest makes n change sealed chunks before it writes them
// to a file stream (f returns whether it changed chunk i). Call before
// any transfer runs.
func (n *Node) TamperFilesForTest(f func(i int, sealed []byte)) { n.files.hooks.tamper = f }

// SendFileNamedForTest offers the file at path under another name, as a
// hostile sender would.
func (n *Node) SendFileNamedForTest(to peer.ID, path, name string) (FileInfo, error) {
	o, err := transfer.NewOffer(path)
	if err != nil {
		return FileInfo{}, err
	}
	o.Name = name
	now := n.cfg.Now()
	m := store.Message{ID: e2e.MessageID(o.ID), Peer: to, SentAt: now, StoredAt: now, Body: offerBody(o)}
	t := store.Transfer{ID: m.ID, Peer: to, Offer: o.Marshal(), Path: path, State: store.TransferWaiting, Created: now, Updated: now}
	if err := n.store.Transfers().AddOutgoingFile(&m, t); err != nil {
		return FileInfo{}, err
	}
	n.out.kick(to)
	return n.files.info(t)
}

// MailChunksForTest makes n call f after it left chunk i of a small file
// at a relay (mailFile), with the node's context: f may hold the node
// there until it is closed. Call before any file is sent.
func (n *Node) MailChunksForTest(f func(ctx context.Context, i int)) { n.files.hooks.chunkLeft = f }

// MailingForTest says whether n is leaving the chunks of file id at a
// relay now (mailFile, under the claim offerQueued takes).
func (n *Node) MailingForTest(id transfer.ID) bool {
	return heldUnder(&n.files.mu, n.files.mailing, id)
}

// MailedChunkForTest makes n call f for each mailed chunk i of a
// transfer under way, before it takes the transfer's disk lock to write
// it (mailedChunk), with the node's context: f may hold the node there
// until it is closed. Call before Start.
func (n *Node) MailedChunkForTest(f func(ctx context.Context, i int)) { n.files.hooks.chunkCame = f }

// PlacedForTest makes n call f once a received file is whole, verified
// and at path in the downloads, before the transfer is recorded done
// (finish), with the node's context. Call before Start.
func (n *Node) PlacedForTest(f func(ctx context.Context, path string)) { n.files.hooks.placed = f }

// ProgressForTest makes n call f just before it shows a progress event
// of transfer id, with the node's context. Call before any transfer.
func (n *Node) ProgressForTest(f func(ctx context.Context, id transfer.ID)) {
	n.files.hooks.beforeProgress = f
}

// ShownForTest says whether n keeps what it showed of transfer id's
// progress.
func (n *Node) ShownForTest(id transfer.ID) bool {
	return heldUnder(&n.files.mu, n.files.shown, id)
}

// heldUnder says whether m, which mu guards, holds id.
func heldUnder[V any](mu *sync.Mutex, m map[transfer.ID]V, id transfer.ID) bool {
	mu.Lock()
	defer mu.Unlock()
	_, ok := m[id]
	return ok
}

// ReceiveChunksForTest makes n call f after a live exchange wrote chunk
// i of a file it receives, with the puller's context (done when n
// closes): f may hold the puller there. Call before any file is received.
func (n *Node) ReceiveChunksForTest(f func(ctx context.Context, i int)) {
	n.files.hooks.chunkWritten = f
}

// ResumingForTest makes n call f in Start, once its file part follows the
// node's events and before it reads the transfers to resume, with the
// node's context: f may hold Start there. Call before Start.
func (n *Node) ResumingForTest(f func(ctx context.Context)) { n.files.hooks.resuming = f }

// EndingForTest makes n call f when it ends a transfer from its side
// (cancel, failure), after it read the transfer under way and before it
// stores the end, with the node's context: f may hold n there. Call
// before any transfer.
func (n *Node) EndingForTest(f func(ctx context.Context)) { n.files.hooks.ending = f }
