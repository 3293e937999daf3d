package ratchet

import (
	"encoding/binary"
	"fmt"
)

// writer appends big-endian fields; all encodings in the package use it.
type writer struct{ b []byte }

func (w *writer) u8(v byte)       { w.b = append(w.b, v) }
func (w *writer) u16(v uint16)    { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32)    { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64)    { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) raw(p []byte)    { w.b = append(w.b, p...) }
func (w *writer) vec16(p []byte)  { w.u16(uint16(len(p))); w.raw(p) }
func (w *writer) key(k *[32]byte) { w.raw(k[:]) }

// reader consumes fields strictly: the first short read or out-of-range
// value sets err, and every later read returns zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, what)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.fail(what)
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8(what string) byte {
	if p := r.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if p := r.take(2, what); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if p := r.take(4, what); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if p := r.take(8, what); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// key reads a 32-byte value.
func (r *reader) key(what string) (k [32]byte) {
	copy(k[:], r.take(keySize, what))
	return k
}

// vec16 reads a 16-bit length-prefixed byte string of length in [lo, hi].
func (r *reader) vec16(lo, hi int, what string) []byte {
	n := int(r.u16(what))
	if r.err == nil && (n < lo || n > hi) {
		r.fail(what)
		return nil
	}
	return r.take(n, what)
}

// count reads a 16-bit element count no larger than max.
func (r *reader) count(max int, what string) int {
	n := int(r.u16(what))
	if n > max {
		r.fail(what)
		return 0
	}
	return n
}

// done fails on trailing bytes and returns the first error.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	return r.err
}
