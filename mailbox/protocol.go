package mailbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Protocol IDs.
const (
	// Protocol carries requests from a node to a relay's mailbox.
	Protocol = "/certchat/mailbox/1.0.0"
	// NotifyProtocol is opened by the relay to a connected recipient when
	// mail arrives; it carries nothing, the recipient then fetches.
	NotifyProtocol = "/certchat/mailbox-notify/1.0.0"
)

// Limits of the protocol.
const (
	// MaxEnvelope bounds a deposited envelope: a 64 KiB text, its frame
	// header and the ratchet's overhead with a first-contact part fit.
	MaxEnvelope = 96 << 10
	// MaxPrekeysPerPublish bounds one-time prekeys of each kind in one
	// publish request (ML-KEM prekeys are 1.2 KB each).
	MaxPrekeysPerPublish = 64
	// MaxFetch bounds the items one fetch returns.
	MaxFetch = 64
	// maxBlob bounds any variable-length field.
	maxBlob = 1 << 20
)

// Message types: requests, then answers.
const (
	TypePublish     e2e.FrameType = 0x21
	TypeFetchBundle e2e.FrameType = 0x22
	TypeDeposit     e2e.FrameType = 0x23
	TypeFetch       e2e.FrameType = 0x24
	TypeAck         e2e.FrameType = 0x25

	TypeOK     e2e.FrameType = 0x40
	TypeBundle e2e.FrameType = 0x41
	TypeItems  e2e.FrameType = 0x42
	TypeError  e2e.FrameType = 0x4f
)

// Publish registers the sender's mailbox and stores its prekey bundle and
// more one-time prekeys (each a Bundle encoding carrying only that prekey
// in its one-time field, so the relay can verify its signature with the
// bundle code and hand it out as is).
type Publish struct {
	Bundle     []byte   // the base bundle (no one-time prekeys)
	OneTimeEC  [][]byte // bundles carrying one X25519 one-time prekey each
	OneTimeKEM [][]byte // bundles carrying one ML-KEM one-time prekey each
}

// FetchBundle asks for a peer's bundle with one one-time prekey of each
// kind, if any are left (they are handed out once).
type FetchBundle struct{ Peer peer.ID }

// Deposit leaves an envelope for a recipient.
type Deposit struct {
	To       peer.ID
	Envelope []byte
}

// Fetch asks for up to Max of one's own items.
type Fetch struct{ Max int }

// Ack deletes items fetched and stored.
type Ack struct{ IDs []uint64 }

// OK answers Publish, Deposit and Ack. For Publish it reports how many
// one-time prekeys of each kind the relay holds; for Deposit the item id.
type OK struct {
	PrekeysEC, PrekeysKEM uint32
	ID                    uint64
}

// BundleAnswer carries a bundle (with one-time prekeys attached when the
// relay had some).
type BundleAnswer struct{ Bundle []byte }

// Item is one stored envelope.
type Item struct {
	ID        uint64
	From      peer.ID // the depositor, as authenticated by its connection
	Deposited time.Time
	Envelope  []byte
}

// Items answers Fetch. More says whether items remain.
type Items struct {
	Items []Item
	More  bool
}

// ErrorCode says why a request failed.
type ErrorCode uint8

const (
	CodeMalformed     ErrorCode = 1
	CodeNotRegistered ErrorCode = 2 // the recipient has no mailbox here
	CodeQuotaFull     ErrorCode = 3 // the recipient's mailbox is full
	CodeTooLarge      ErrorCode = 4
	CodeRateLimited   ErrorCode = 5
	CodeBadBundle     ErrorCode = 6 // a published bundle failed verification
	CodeNoBundle      ErrorCode = 7
	CodeInternal      ErrorCode = 8
)

// Error is a failed request, as the relay reports it.
type Error struct {
	Code       ErrorCode
	RetryAfter time.Duration
	Message    string
}

func (e *Error) Error() string {
	msg := "mailbox: " + e.Message
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry in %s)", e.RetryAfter.Round(time.Second))
	}
	return msg
}

// Is lets errors.Is match errors by code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == ""
}

// Sentinels for errors.Is.
var (
	ErrNotRegistered = &Error{Code: CodeNotRegistered}
	ErrQuotaFull     = &Error{Code: CodeQuotaFull}
	ErrRateLimited   = &Error{Code: CodeRateLimited}
	ErrTooLarge      = &Error{Code: CodeTooLarge}
	ErrNoBundle      = &Error{Code: CodeNoBundle}
	ErrBadBundle     = &Error{Code: CodeBadBundle}
)

// ErrMalformed means a message did not parse.
var ErrMalformed = errors.New("mailbox: malformed message")

// writer and reader build and take apart the binary encodings: unsigned
// big-endian integers and length-prefixed byte strings (u32 lengths).
type writer struct{ b []byte }

func (w *writer) u8(v uint8)    { w.b = append(w.b, v) }
func (w *writer) u32(v uint32)  { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64)  { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) blob(v []byte) { w.u32(uint32(len(v))); w.b = append(w.b, v...) }

// blobs writes a list: u32 n, n×blob.
func (w *writer) blobs(vs [][]byte) {
	w.u32(uint32(len(vs)))
	for _, v := range vs {
		w.blob(v)
	}
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = ErrMalformed
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) blob(max int) []byte {
	n := r.u32()
	if r.err == nil && int64(n) > int64(max) {
		r.err = ErrMalformed
		return nil
	}
	return r.take(int(n))
}

// blobs reads a list written by writer.blobs: at most maxCount blobs of
// at most maxLen bytes each.
func (r *reader) blobs(maxCount, maxLen int) [][]byte {
	var out [][]byte
	for i, n := 0, r.count(maxCount, 4); i < n; i++ {
		out = append(out, r.blob(maxLen))
	}
	return out
}

// count reads a list length, bounded by max and by what the bytes left
// could hold (each element at least min bytes), before anything is allocated.
func (r *reader) count(max, min int) int {
	n := int(r.u32())
	if r.err == nil && (n > max || n*min > len(r.b)) {
		r.err = ErrMalformed
		return 0
	}
	return n
}

func (r *reader) peerID() peer.ID {
	b := r.blob(256)
	if r.err != nil {
		return ""
	}
	id, err := peer.IDFromBytes(b)
	if err != nil {
		r.err = ErrMalformed
		return ""
	}
	return id
}

// done checks that the message was consumed exactly.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = ErrMalformed
	}
	if r.err != nil {
		return ErrMalformed
	}
	return nil
}
