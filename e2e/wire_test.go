package e2e_test

// The tests' man-in-the-middle. libp2p's own security (Noise or TLS)
// protects the transport under our TLS, so an attacker on the network
// cannot touch our bytes; the tests therefore put the attacker between our
// TLS and the libp2p stream: a Conn that records every Write that
// crypto/tls makes (one Write is one handshake flight, or one record after
// the handshake) and may flip, drop, duplicate, hold back, truncate or
// inject bytes. Splicing and reflection use a real third host instead.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/network"
)

// wire wraps a stream. Writes go through tamper (nil: forwarded as they
// are); every Write and every byte read is recorded.
type wire struct {
	network.Stream
	tamper func(w *wire, i int, p []byte) error

	mu     sync.Mutex
	writes [][]byte
	read   bytes.Buffer
	held   [][]byte
}

func newWire(s network.Stream, tamper func(w *wire, i int, p []byte) error) *wire {
	return &wire{Stream: s, tamper: tamper}
}

func (w *wire) Write(p []byte) (int, error) {
	c := bytes.Clone(p)
	w.mu.Lock()
	i := len(w.writes)
	w.writes = append(w.writes, c)
	w.mu.Unlock()
	if w.tamper == nil {
		return w.Stream.Write(p)
	}
	if err := w.tamper(w, i, bytes.Clone(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wire) Read(p []byte) (int, error) {
	n, err := w.Stream.Read(p)
	w.mu.Lock()
	w.read.Write(p[:n])
	w.mu.Unlock()
	return n, err
}

// send writes bytes to the stream, past the tamperer.
func (w *wire) send(b ...[]byte) error {
	for _, x := range b {
		if _, err := w.Stream.Write(x); err != nil {
			return err
		}
	}
	return nil
}

// Writes is a copy of every Write so far (before tampering).
func (w *wire) Writes() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([][]byte(nil), w.writes...)
}

// Read is everything read so far.
func (w *wire) Reads() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.read.Bytes())
}

// Tamperers. Each acts on the Write with index at and forwards the others.

// onWrite applies f to Write number at; other Writes pass.
func onWrite(at int, f func(w *wire, p []byte) error) func(*wire, int, []byte) error {
	return func(w *wire, i int, p []byte) error {
		if i != at {
			return w.send(p)
		}
		return f(w, p)
	}
}

// flipAt flips one bit of the byte at offset off of Write at.
func flipAt(at int, off func(p []byte) int) func(*wire, int, []byte) error {
	return onWrite(at, func(w *wire, p []byte) error {
		p[off(p)] ^= 0x01
		return w.send(p)
	})
}

// dropFrom drops Write at and everything after it (a peer that stalls).
func dropFrom(at int) func(*wire, int, []byte) error {
	return func(w *wire, i int, p []byte) error {
		if i >= at {
			return nil
		}
		return w.send(p)
	}
}

// truncateAt writes the first half of Write at and ends the stream.
func truncateAt(at int) func(*wire, int, []byte) error {
	return func(w *wire, i int, p []byte) error {
		switch {
		case i < at:
			return w.send(p)
		case i == at:
			w.send(p[:len(p)/2])
			return w.CloseWrite()
		}
		return nil
	}
}

// appendAt appends extra bytes to Write at, in the same write.
func appendAt(at int, extra []byte) func(*wire, int, []byte) error {
	return onWrite(at, func(w *wire, p []byte) error { return w.send(append(p, extra...)) })
}

// duplicateAt sends Write at twice.
func duplicateAt(at int) func(*wire, int, []byte) error {
	return onWrite(at, func(w *wire, p []byte) error { return w.send(p, p) })
}

// swapAt holds Write at back and sends it after Write at+1.
func swapAt(at int) func(*wire, int, []byte) error {
	return func(w *wire, i int, p []byte) error {
		switch i {
		case at:
			w.mu.Lock()
			w.held = append(w.held, p)
			w.mu.Unlock()
			return nil
		case at + 1:
			w.mu.Lock()
			held := w.held
			w.held = nil
			w.mu.Unlock()
			return w.send(append([][]byte{p}, held...)...)
		}
		return w.send(p)
	}
}

// dropAt drops Write at only.
func dropAt(at int) func(*wire, int, []byte) error {
	return onWrite(at, func(*wire, []byte) error { return nil })
}

// replaceAll sends recorded instead of Write 0 and drops everything the
// local TLS writes (a replay of an earlier session's flights).
func replaceAll(recorded [][]byte) func(*wire, int, []byte) error {
	return func(w *wire, i int, p []byte) error {
		if i == 0 {
			return w.send(recorded...)
		}
		return nil
	}
}

// closeWriteAfter forwards Writes before at, then ends the stream without
// any close frame or close_notify.
func closeWriteAfter(at int) func(*wire, int, []byte) error {
	return func(w *wire, i int, p []byte) error {
		if i < at {
			return w.send(p)
		}
		if i == at {
			return w.CloseWrite()
		}
		return nil
	}
}

// wrapWith makes a run wrapper that keeps the wire for inspection.
func wrapWith(tamper func(*wire, int, []byte) error, keep **wire) func(network.Stream) e2e.Conn {
	return func(s network.Stream) e2e.Conn {
		w := newWire(s, tamper)
		if keep != nil {
			*keep = w
		}
		return w
	}
}

// --- TLS records --------------------------------------------------------

const (
	recChangeCipherSpec = 20
	recAlert            = 21
	recHandshake        = 22
	recApplicationData  = 23
)

// record is one TLS record inside a Write: its type, version, and the
// offset of its body in the Write.
type record struct {
	typ  uint8
	vers uint16
	off  int // of the body
	body []byte
}

// records splits a byte stream into TLS records; an incomplete tail is
// returned as rest.
func records(b []byte) (recs []record, rest []byte) {
	off := 0
	for len(b)-off >= 5 {
		n := int(binary.BigEndian.Uint16(b[off+3:]))
		if len(b)-off-5 < n {
			break
		}
		recs = append(recs, record{typ: b[off], vers: binary.BigEndian.Uint16(b[off+1:]), off: off + 5, body: b[off+5 : off+5+n]})
		off += 5 + n
	}
	return recs, b[off:]
}

// nthRecord finds the n-th record of type typ in p and returns the offset
// of the middle of its body.
func nthRecordMiddle(typ uint8, n int) func(p []byte) int {
	return func(p []byte) int {
		recs, _ := records(p)
		for _, r := range recs {
			if r.typ != typ {
				continue
			}
			if n == 0 {
				return r.off + len(r.body)/2
			}
			n--
		}
		panic(fmt.Sprintf("no record of type %d number %d in a write of %d bytes", typ, n, len(p)))
	}
}

// hello is the plaintext of a ClientHello or ServerHello.
type hello struct {
	msgType     uint8
	length      int
	version     uint16
	randomOff   int // offset of the random in the write
	sessionID   []byte
	sessionOff  int
	suites      []uint16 // offered (ClientHello) or chosen (ServerHello)
	extensions  []uint16 // types, in order
	versions    []uint16 // supported_versions
	groups      []uint16 // supported_groups
	keyShares   []keyShare
	alpn        []string
	sigAlgs     []uint16
	pskModes    []uint8
	psk         bool   // pre_shared_key present
	pskIdentity []byte // ClientHello: the first identity offered (the ticket)
	pskSelected int    // ServerHello: selected identity, -1 if none
}

type keyShare struct {
	group uint16
	size  int
	off   int // offset of the key in the write
}

// parseHello parses the first handshake record of a write as a
// ClientHello (type 1) or ServerHello (type 2). It returns nil if the
// write does not start with one.
func parseHello(p []byte) *hello {
	recs, _ := records(p)
	if len(recs) == 0 || recs[0].typ != recHandshake || len(recs[0].body) < 4 {
		return nil
	}
	r := recs[0]
	b := r.body
	h := &hello{msgType: b[0], length: int(b[1])<<16 | int(b[2])<<8 | int(b[3]), pskSelected: -1}
	if h.msgType != 1 && h.msgType != 2 {
		return nil
	}
	rd := &reader{b: b, off: 4, base: r.off}
	h.version = rd.u16()
	h.randomOff = rd.pos()
	rd.skip(32)
	n := int(rd.u8())
	h.sessionOff = rd.pos()
	h.sessionID = rd.bytes(n)
	if h.msgType == 1 {
		suites := rd.sub(int(rd.u16()))
		for !suites.done() {
			h.suites = append(h.suites, suites.u16())
		}
		rd.skip(int(rd.u8())) // compression methods
	} else {
		h.suites = []uint16{rd.u16()}
		rd.skip(1)
	}
	exts := rd.sub(int(rd.u16()))
	for !exts.done() && exts.err == nil {
		typ := exts.u16()
		ext := exts.sub(int(exts.u16()))
		h.extensions = append(h.extensions, typ)
		switch typ {
		case 43: // supported_versions
			if h.msgType == 2 {
				h.versions = []uint16{ext.u16()}
				break
			}
			l := ext.sub(int(ext.u8()))
			for !l.done() {
				h.versions = append(h.versions, l.u16())
			}
		case 10: // supported_groups
			l := ext.sub(int(ext.u16()))
			for !l.done() {
				h.groups = append(h.groups, l.u16())
			}
		case 51: // key_share
			l := ext
			if h.msgType == 1 {
				l = ext.sub(int(ext.u16()))
			}
			for !l.done() && l.err == nil {
				g := l.u16()
				n := int(l.u16())
				h.keyShares = append(h.keyShares, keyShare{group: g, size: n, off: l.pos()})
				l.skip(n)
			}
		case 16: // ALPN
			l := ext.sub(int(ext.u16()))
			for !l.done() && l.err == nil {
				h.alpn = append(h.alpn, string(l.bytes(int(l.u8()))))
			}
		case 13: // signature_algorithms
			l := ext.sub(int(ext.u16()))
			for !l.done() {
				h.sigAlgs = append(h.sigAlgs, l.u16())
			}
		case 45: // psk_key_exchange_modes
			l := ext.sub(int(ext.u8()))
			for !l.done() {
				h.pskModes = append(h.pskModes, l.u8())
			}
		case 41: // pre_shared_key
			h.psk = true
			if h.msgType == 2 {
				h.pskSelected = int(ext.u16())
				break
			}
			ids := ext.sub(int(ext.u16()))
			h.pskIdentity = ids.bytes(int(ids.u16()))
		}
	}
	if rd.err != nil || exts.err != nil {
		return nil
	}
	return h
}

// reader reads TLS vectors; offsets are reported relative to the write.
type reader struct {
	b    []byte
	off  int
	end  int // 0: len(b)
	base int
	err  error
}

func (r *reader) limit() int {
	if r.end == 0 {
		return len(r.b)
	}
	return r.end
}
func (r *reader) done() bool { return r.off >= r.limit() || r.err != nil }
func (r *reader) pos() int   { return r.base + r.off }
func (r *reader) bytes(n int) []byte {
	if r.err != nil || r.off+n > r.limit() {
		r.err = io.ErrUnexpectedEOF
		r.off = r.limit()
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}
func (r *reader) skip(n int) { r.bytes(n) }
func (r *reader) u8() uint8 {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}
func (r *reader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}
func (r *reader) sub(n int) *reader {
	start := r.off
	r.bytes(n)
	s := &reader{b: r.b, off: start, end: start + n, base: r.base, err: r.err}
	if s.end > len(r.b) {
		s.end = len(r.b)
	}
	return s
}
