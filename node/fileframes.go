package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The inner frames of file transfers (PROTOCOL §15.4): sealed in ratchet
// envelopes like texts, never on the channel itself. An offer and a
// control are messages (numbered, stored, in the outbox until their
// receipt, in the history); a chunk is not: it only travels through a
// relay's mailbox, for small files to an offline recipient.
const (
	frameFileOffer   e2e.FrameType = 0x07
	frameFileControl e2e.FrameType = 0x08
	frameFileChunk   e2e.FrameType = 0x09
)

// What a file control says (PROTOCOL §15.4).
const (
	fileDeclined  uint8 = 1 // the recipient does not want the file
	fileCancelled uint8 = 2 // either side stopped the transfer
	fileReceived  uint8 = 3 // the recipient holds the file, verified
)

// msgHeaderLen: message ID, sent-at, stream and number, as in a text.
const msgHeaderLen = 16 + 8 + 8 + 8

func appendMsgHeader(b []byte, m store.Message) []byte {
	b = append(b, m.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.SentAt.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, m.Stream)
	return binary.BigEndian.AppendUint64(b, m.Number)
}

// parseMsgHeader reads the message fields of an offer or control; the
// numbering rule is the text's (PROTOCOL §7).
func parseMsgHeader(p []byte) (store.Message, []byte, error) {
	if len(p) < msgHeaderLen {
		return store.Message{}, nil, fmt.Errorf("%w: a file frame of %d bytes", e2e.ErrMalformed, len(p))
	}
	var m store.Message
	copy(m.ID[:], p)
	m.SentAt = time.UnixMilli(int64(binary.BigEndian.Uint64(p[16:])))
	m.Stream = binary.BigEndian.Uint64(p[24:])
	m.Number = binary.BigEndian.Uint64(p[32:])
	if (m.Stream == 0) != (m.Number == 0) {
		return store.Message{}, nil, fmt.Errorf("%w: a file frame's numbering", e2e.ErrMalformed)
	}
	return m, p[msgHeaderLen:], nil
}

// plaintext is the ratchet plaintext of an outgoing message: its text
// frame, or the file offer or control it carries.
func (rk *ratchetKeys) plaintext(m store.Message) ([]byte, error) {
	if m.Group != (store.GroupID{}) {
		return groupPlaintext(m) // a group message's copy (groups.go)
	}
	t, err := rk.store.Transfers().Transfer(m.ID)
	switch {
	case err == nil && t.Direction == store.Outgoing:
		return innerFrame(frameFileOffer, append(appendMsgHeader(nil, m), t.Offer...))
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	c, err := rk.store.Transfers().FileControlOf(m.ID)
	switch {
	case err == nil:
		return innerFrame(frameFileControl, append(append(appendMsgHeader(nil, m), c.Transfer[:]...), c.Action))
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	return textPlaintext(m)
}

// chunkPlaintext is the ratchet plaintext of a sealed chunk for a mailbox.
func chunkPlaintext(id transfer.ID, i int, sealed []byte) ([]byte, error) {
	b := append(id[:], make([]byte, 0, 8+len(sealed))...)
	b = binary.BigEndian.AppendUint64(b, uint64(i))
	return innerFrame(frameFileChunk, append(b, sealed...))
}

// fileArrival is what a file frame brought, for the transfers part.
type fileArrival struct {
	offer   *transfer.Offer // a new offer
	control *store.Transfer // a transfer a control changed
	action  uint8           // that control
	chunk   *mailedChunk    // a chunk from a mailbox
	from    peer.ID         // the sender
}

type mailedChunk struct {
	id     transfer.ID
	index  int
	sealed []byte
}

// commitFile commits the new state w with what a file frame asks of the
// store, in one transaction (commitInner's part for files).
func (rk *ratchetKeys) commitFile(p peer.ID, w store.Ratchet, f *e2e.Frame, res *opened) error {
	now := rk.now()
	if f.Type == frameFileOffer || f.Type == frameFileControl {
		// Kept as messages of the conversation: bounded as texts are.
		if err := rk.mayKeep(p); err != nil {
			return err
		}
	}
	switch f.Type {
	case frameFileOffer:
		m, rest, err := parseMsgHeader(f.Payload)
		if err != nil {
			return err
		}
		o, err := transfer.ParseOffer(rest)
		if err != nil {
			return err
		}
		if o.ID != transfer.ID(m.ID) {
			return fmt.Errorf("%w: a file offer's message ID is not its transfer's", e2e.ErrMalformed)
		}
		m.Peer, m.StoredAt, m.Body = p, now, offerBody(o)
		t := store.Transfer{ID: m.ID, Peer: p, Offer: rest, State: store.TransferOffered, Created: now, Updated: now}
		res.text = &m
		res.isNew, err = rk.store.Transfers().SaveRatchetWithIncomingFile(w, &m, t)
		if err == nil && res.isNew {
			res.file = &fileArrival{offer: o, from: p}
		}
		return err
	case frameFileControl:
		m, rest, err := parseMsgHeader(f.Payload)
		if err != nil {
			return err
		}
		if len(rest) != 17 {
			return fmt.Errorf("%w: a file control of %d bytes", e2e.ErrMalformed, len(rest))
		}
		var id e2e.MessageID
		copy(id[:], rest)
		action := rest[16]
		if action < fileDeclined || action > fileReceived {
			return fmt.Errorf("%w: file control %d", e2e.ErrMalformed, action)
		}
		name := "a file"
		if t, err := rk.store.Transfers().Transfer(id); err == nil {
			if o, err := transfer.ParseOffer(t.Offer); err == nil {
				name = transfer.CleanName(o.Name)
			}
		}
		m.Peer, m.StoredAt, m.Body = p, now, controlBody(action, name)
		res.text = &m
		isNew, t, err := rk.store.Transfers().SaveRatchetWithIncomingControl(w, &m, id, func(t *store.Transfer) bool {
			return applyControl(t, action, now)
		})
		res.isNew = isNew
		if err == nil && t != nil {
			res.file = &fileArrival{control: t, action: action, from: p}
		}
		return err
	}
	// A chunk: only the state is committed here; the chunk is written to
	// the partial file by the transfers part, outside this lock.
	if len(f.Payload) < 16+8+transfer.Overhead {
		return fmt.Errorf("%w: a file chunk of %d bytes", e2e.ErrMalformed, len(f.Payload))
	}
	c := &mailedChunk{sealed: f.Payload[24:]}
	copy(c.id[:], f.Payload)
	idx := binary.BigEndian.Uint64(f.Payload[16:])
	if idx > transfer.MaxFileSize/transfer.ChunkSize {
		return fmt.Errorf("%w: file chunk %d", e2e.ErrMalformed, idx)
	}
	c.index = int(idx)
	if err := rk.saveState(w, res); err != nil {
		return err
	}
	res.file = &fileArrival{chunk: c, from: p}
	return nil
}

// applyControl changes a transfer as a control from its peer says, and
// reports whether it did: the recipient may decline, cancel or say it
// received an outgoing transfer; the sender may only cancel an incoming
// one. A finished transfer stays as it is.
func applyControl(t *store.Transfer, action uint8, now time.Time) bool {
	if t.State.Final() {
		return false
	}
	switch {
	case action == fileCancelled:
		t.State, t.Error = store.TransferCancelled, "cancelled by the peer"
	case t.Direction != store.Outgoing:
		return false
	case action == fileDeclined:
		t.State, t.Error = store.TransferDeclined, "declined by the peer"
	case action == fileReceived:
		t.State, t.Error = store.TransferDone, ""
	default:
		return false
	}
	t.Updated = now
	return true
}

// offerBody is how an offer reads in the history.
func offerBody(o *transfer.Offer) string {
	return fmt.Sprintf("[file] %s (%s)", transfer.CleanName(o.Name), humanSize(o.Size))
}

// controlBody is how a control reads in the history.
func controlBody(action uint8, name string) string {
	switch action {
	case fileDeclined:
		return fmt.Sprintf("[file] %s: declined", name)
	case fileCancelled:
		return fmt.Sprintf("[file] %s: cancelled", name)
	}
	return fmt.Sprintf("[file] %s: received", name)
}

// humanSize writes a size in bytes, KiB, MiB or GiB.
func humanSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

func isFileFrame(t e2e.FrameType) bool {
	return t == frameFileOffer || t == frameFileControl || t == frameFileChunk
}
