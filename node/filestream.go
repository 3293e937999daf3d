package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// ProtocolFile is the libp2p protocol that carries a file's chunks
// (PROTOCOL §15.5). The receiver opens it to the sender.
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
