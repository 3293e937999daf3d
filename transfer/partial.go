package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// SyncEvery is how many chunks the receiver writes between making them
// durable: after a crash (kill -9 included) the sender sends again at
// most these and the ones in flight.
const SyncEvery = 256

// PartialDir is the folder, inside the downloads folder, where files stay
// until they are whole and verified.
const PartialDir = ".certchat-partial"

// Partial is a file being received: its chunks go to a file apart from
// the downloads, and a state file beside it says which are held and how
// far the SHA-256 has got, so that the transfer resumes where it was.
// It is not safe for concurrent use.
type Partial struct {
	o        *Offer
	seal     *Sealer
	dir      string
	f        *os.File
	have     []byte // a bit per chunk
	held     int    // chunks held
	prefix   int    // chunks hashed, in order
	h        hash.Hash
	unsynced int
	buf      []byte
	state    *os.File // the state file
	slot     int      // bytes of one of its two slots
	seq      uint64   // the last state saved
	sum      [32]byte // the SHA-256 the file must have
	sumKnown bool     // from the offer, or (SumLater) from ExpectSum
	direct   *direct  // a large file's writes past the page cache (Linux), or nil
	err      error    // a failed block write: the partial file must be opened again
	// checkpointed: the caller makes chunks durable with Checkpoint,
	// so Write does not fsync by itself every SyncEvery chunks (only
	// every 2 × SyncEvery, should the caller stop checkpointing).
	checkpointed bool
}

// OpenPartial starts receiving o into downloads/.certchat-partial, or
// resumes what an earlier run kept there. The offer comes from the
// caller's own store: its key is never written beside the data.
func OpenPartial(downloads string, o *Offer) (*Partial, error) {
	seal, err := NewSealer(o)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(downloads, PartialDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("downloads folder: %w", err)
	}
	p := &Partial{o: o, seal: seal, dir: dir, have: make([]byte, (o.Chunks()+7)/8), h: sha256.New(),
		sum: o.SHA256, sumKnown: !o.SumLater}
	f, err := os.OpenFile(p.path(".part"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("partial file: %w", err)
	}
	p.f = f
	if err := p.openState(); err != nil {
		return nil, errors.Join(err, f.Close(), p.closeState())
	}
	if err := p.load(); err != nil {
		// No state, or one that does not describe this file: start over.
		p.have, p.held, p.prefix, p.h = make([]byte, len(p.have)), 0, 0, sha256.New()
	}
	if o.Size >= directMin && !noDirect {
		if df := openDirect(p.path(".part"), o.Size); df != nil {
			p.direct = newDirect(df)
		}
	}
	return p, nil
}

func (p *Partial) path(ext string) string {
	return filepath.Join(p.dir, p.o.ID.String()+ext)
}

// Has says whether chunk i is held.
func (p *Partial) Has(i int) bool { return p.have[i/8]&(1<<(i%8)) != 0 }

// Held is how many bytes have arrived.
func (p *Partial) Held() int64 {
	p.settle()
	return p.heldBytes()
}

func (p *Partial) heldBytes() int64 {
	n := int64(p.held) * ChunkSize
	if c := p.o.Chunks(); c > 0 && p.Has(c-1) {
		n -= int64(ChunkSize - p.o.ChunkLen(c-1))
	}
	return n
}

// Done says whether every chunk has arrived.
func (p *Partial) Done() bool {
	p.settle()
	return p.held == p.o.Chunks()
}

// Missing lists the chunks not held as ranges [from, to).
func (p *Partial) Missing() [][2]int {
	p.settle()
	var out [][2]int
	for i := 0; i < p.o.Chunks(); i++ {
		if p.Has(i) {
			continue
		}
		if n := len(out); n > 0 && out[n-1][1] == i {
			out[n-1][1] = i + 1
		} else {
			out = append(out, [2]int{i, i + 1})
		}
	}
	return out
}

// Write checks sealed chunk i and writes it. A chunk that fails its
// check (ErrTampered) is not written, and can be fetched again; a chunk
// held already is ignored. A full disk is ErrDiskFull, and what arrived
// before stays for a later resume. Every SyncEvery chunks Write makes
// them durable itself (Sync), unless the caller uses Checkpoint.
func (p *Partial) Write(i int, sealed []byte) error {
	if p.err != nil {
		return p.err
	}
	if p.direct != nil && !p.direct.off && i >= 0 && i < p.o.Chunks() && p.o.ChunkLen(i) == ChunkSize && !p.Has(i) {
		return p.writeDirect(i, sealed)
	}
	if err := p.settle(); err != nil {
		return err
	}
	plain, err := p.seal.Open(p.buf[:0], i, sealed)
	if err != nil {
		return err
	}
	p.buf = plain
	if p.Has(i) {
		return nil
	}
	if _, err := p.f.WriteAt(plain, int64(i)*ChunkSize); err != nil {
		return p.writeFailed(err)
	}
	if err := p.held1(i, plain); err != nil {
		return err
	}
	if p.unsynced >= p.syncEvery() {
		return p.Sync()
	}
	return nil
}

// syncEvery is how many chunks Write lets go unsynced.
func (p *Partial) syncEvery() int {
	if p.checkpointed {
		return 2 * SyncEvery
	}
	return SyncEvery
}

// writeDirect opens chunk i into the filling block (direct.go).
func (p *Partial) writeDirect(i int, sealed []byte) error {
	dst, err := p.blockSlot(i)
	if err != nil {
		p.err = err
		return err
	}
	plain, err := p.seal.Open(dst, i, sealed)
	if err != nil {
		return err
	}
	if &plain[0] != &dst[:1][0] {
		return errors.New("a chunk was not opened in place") // never: dst has room
	}
	p.direct.cur.n++
	pending := p.direct.cur.n
	for _, b := range p.direct.inflight {
		pending += b.n
	}
	if p.unsynced+pending >= p.syncEvery() {
		return p.Sync()
	}
	return nil
}

// held1 records chunk i, written: its bit, and the SHA-256 if it is
// next in order.
func (p *Partial) held1(i int, plain []byte) error {
	if p.Has(i) {
		return nil
	}
	p.have[i/8] |= 1 << (i % 8)
	p.held++
	p.unsynced++
	return p.hashPrefix(i, plain)
}

func (p *Partial) writeFailed(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		// Keep what is durable; this chunk will come again.
		if serr := p.syncNow(); serr != nil && !errors.Is(serr, syscall.ENOSPC) {
			return fmt.Errorf("%w (and saving the transfer's state: %v)", ErrDiskFull, serr)
		}
		return fmt.Errorf("%w in %s: %d of %d bytes kept for a later resume", ErrDiskFull, filepath.Dir(p.dir), p.heldBytes(), p.o.Size)
	}
	return fmt.Errorf("write the partial file: %w", err)
}

// hashPrefix feeds the SHA-256 with every chunk held in order from the
// start: the one just written if it is next, then any that came early.
func (p *Partial) hashPrefix(i int, plain []byte) error {
	for p.prefix < p.o.Chunks() && p.Has(p.prefix) {
		chunk := plain
		if p.prefix != i {
			chunk = make([]byte, p.o.ChunkLen(p.prefix))
			if _, err := p.f.ReadAt(chunk, int64(p.prefix)*ChunkSize); err != nil {
				return fmt.Errorf("read back the partial file: %w", err)
			}
		}
		p.h.Write(chunk)
		p.prefix++
	}
	return nil
}

// Sync makes the chunks written so far durable, then records them.
func (p *Partial) Sync() error {
	if err := p.settle(); err != nil {
		return err
	}
	return p.syncNow()
}

// syncNow makes the chunks recorded as held durable, then saves them.
func (p *Partial) syncNow() error {
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("save the partial file: %w", err)
	}
	if err := p.save(); err != nil {
		return err
	}
	p.unsynced = 0
	return nil
}

// Checkpoint records which chunks are written so far and returns the
// work that makes them durable: the partial file's fsync, then the state
// that lists them. Blocks still being written past the page cache, and
// the block filling, are not waited for: the next checkpoint lists them
// (a checkpoint that waited for them stalled the stream for the disk's
// latency). The caller may run it on another goroutine while it
// goes on writing (an fsync of 16 MiB no longer stalls the stream), but
// must run the commits one at a time and in order, and must not call
// Sync, Close, Finish or Discard while one runs. Held is what the commit
// makes durable. Once the caller checkpoints, Write no longer syncs by
// itself every SyncEvery chunks (it did on the very chunk the caller
// checkpoints at, stalling the stream for the fsync the checkpoint runs
// beside it); it is the caller's to checkpoint every SyncEvery chunks.
func (p *Partial) Checkpoint() (commit func() error, held int64, err error) {
	if err := p.reap(); err != nil {
		return nil, 0, err
	}
	p.checkpointed = true
	p.seq++
	b, err := p.encodeState()
	if err != nil {
		return nil, 0, err
	}
	p.unsynced = 0
	f, state, at := p.f, p.state, int64(p.seq%2)*int64(p.slot)
	return func() error {
		if err := f.Sync(); err != nil {
			return p.syncFailed(fmt.Errorf("save the partial file: %w", err))
		}
		if _, err := state.WriteAt(b, at); err != nil {
			return p.syncFailed(fmt.Errorf("save the transfer's state: %w", err))
		}
		if err := state.Sync(); err != nil {
			return p.syncFailed(fmt.Errorf("save the transfer's state: %w", err))
		}
		return nil
	}, p.heldBytes(), nil
}

// syncFailed marks a full disk as ErrDiskFull.
func (p *Partial) syncFailed(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w in %s: %w", ErrDiskFull, filepath.Dir(p.dir), err)
	}
	return err
}

// ExpectSum opens the sealed SHA-256 that ends a SumLater transfer
// (Sealer.SealSum) and keeps it for Finish; it fails with ErrTampered.
// An offer that carried its sum ignores it.
func (p *Partial) ExpectSum(sealed []byte) error {
	if !p.o.SumLater {
		return nil
	}
	sum, err := p.seal.OpenSum(sealed)
	if err != nil {
		return err
	}
	p.sum, p.sumKnown = sum, true
	return nil
}

// SumKnown says whether Finish can check the file: the offer carried
// its SHA-256, or ExpectSum has been given it.
func (p *Partial) SumKnown() bool { return p.sumKnown }

// Sum is the SHA-256 the file must have (zero until SumKnown).
func (p *Partial) Sum() [32]byte { return p.sum }

// Finish checks the whole file's SHA-256 and moves it into downloads
// under its cleaned name (never over an existing file, never
// executable), returning the path. A file that does not match is
// discarded (ErrHashMismatch).
func (p *Partial) Finish(downloads string) (string, error) {
	if err := p.settle(); err != nil {
		return "", err
	}
	if !p.Done() {
		return "", fmt.Errorf("%w: %d of %d bytes", ErrIncomplete, p.Held(), p.o.Size)
	}
	if !p.sumKnown {
		return "", fmt.Errorf("%w: its SHA-256 has not come", ErrIncomplete)
	}
	if err := p.f.Sync(); err != nil {
		return "", fmt.Errorf("save the partial file: %w", err)
	}
	var sum [32]byte
	p.h.Sum(sum[:0])
	if sum != p.sum {
		return "", errors.Join(fmt.Errorf("%w: %s", ErrHashMismatch, CleanName(p.o.Name)), p.Discard())
	}
	if err := errors.Join(p.closeDirect(), p.f.Close()); err != nil {
		return "", err
	}
	path, err := place(downloads, CleanName(p.o.Name), p.path(".part"))
	if err != nil {
		return "", err
	}
	return path, p.removeState()
}

// Discard deletes what arrived: a cancelled or failed transfer.
func (p *Partial) Discard() error {
	p.closeDirect()
	cerr := p.f.Close()
	if errors.Is(cerr, os.ErrClosed) {
		cerr = nil
	}
	err := os.Remove(p.path(".part"))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return errors.Join(cerr, err, p.removeState())
}

// Close saves the state and closes the partial file, keeping both for a
// later resume.
func (p *Partial) Close() error {
	return errors.Join(p.Sync(), p.closeDirect(), p.f.Close(), p.closeState())
}

func (p *Partial) closeState() error {
	if p.state == nil {
		return nil
	}
	err := p.state.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

func (p *Partial) removeState() error {
	if err := p.closeState(); err != nil {
		return err
	}
	err := os.Remove(p.path(".state"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// The state file holds two slots, written in turn, each: version, a
// sequence number, file ID, size, chunks hashed, the SHA-256's state, the
// bitmap of chunks held, and a SHA-256 of all of it. The file is made at
// its full size when the transfer opens and then only overwritten in
// place, so saving it needs no new space on a full disk, and a torn write
// spoils one slot while the other still holds the previous state. A slot
// that fails its check is ignored; with neither, the transfer starts over.
const stateV1 = 1

func (p *Partial) encodeState() ([]byte, error) {
	hs, err := p.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := []byte{stateV1}
	b = binary.BigEndian.AppendUint64(b, p.seq)
	b = append(b, p.o.ID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.o.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(p.prefix))
	b = binary.BigEndian.AppendUint16(b, uint16(len(hs)))
	b = append(b, hs...)
	b = append(b, p.have...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...), nil
}

// openState opens the state file, making it at its full size if new.
func (p *Partial) openState() error {
	b, err := p.encodeState()
	if err != nil {
		return err
	}
	p.slot = len(b)
	f, err := os.OpenFile(p.path(".state"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("transfer state: %w", err)
	}
	p.state = f
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("transfer state: %w", err)
	}
	if st.Size() == int64(2*p.slot) {
		return nil
	}
	if _, err := f.WriteAt(make([]byte, 2*p.slot), 0); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("%w in %s: no room to start receiving", ErrDiskFull, filepath.Dir(p.dir))
		}
		return fmt.Errorf("transfer state: %w", err)
	}
	return f.Sync()
}

func (p *Partial) save() error {
	p.seq++
	b, err := p.encodeState()
	if err != nil {
		return err
	}
	if _, err := p.state.WriteAt(b, int64(p.seq%2)*int64(p.slot)); err != nil {
		return fmt.Errorf("save the transfer's state: %w", err)
	}
	if err := p.state.Sync(); err != nil {
		return fmt.Errorf("save the transfer's state: %w", err)
	}
	return nil
}

// load reads the newer valid slot.
func (p *Partial) load() error {
	b := make([]byte, 2*p.slot)
	if _, err := p.state.ReadAt(b, 0); err != nil {
		return err
	}
	var best *Partial
	for _, slot := range [][]byte{b[:p.slot], b[p.slot:]} {
		q := &Partial{o: p.o, have: make([]byte, len(p.have))}
		if q.decodeState(slot) == nil && (best == nil || q.seq > best.seq) {
			best = q
		}
	}
	if best == nil {
		return ErrMalformed
	}
	p.seq, p.h, p.prefix, p.have, p.held = best.seq, best.h, best.prefix, best.have, best.held
	return nil
}

func (p *Partial) decodeState(b []byte) error {
	const head = 1 + 8 + 16 + 8 + 8 + 2
	if len(b) < head+32 || b[0] != stateV1 {
		return ErrMalformed
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], sum) {
		return ErrMalformed
	}
	p.seq = binary.BigEndian.Uint64(body[1:9])
	if !bytes.Equal(body[9:25], p.o.ID[:]) || binary.BigEndian.Uint64(body[25:33]) != uint64(p.o.Size) {
		return ErrMalformed
	}
	prefix := binary.BigEndian.Uint64(body[33:41])
	n := int(binary.BigEndian.Uint16(body[41:43]))
	if len(body) != head+n+len(p.have) || prefix > uint64(p.o.Chunks()) {
		return ErrMalformed
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(body[head : head+n]); err != nil {
		return ErrMalformed
	}
	p.h, p.prefix = h, int(prefix)
	copy(p.have, body[head+n:])
	for i := 0; i < p.o.Chunks(); i++ {
		if p.Has(i) {
			p.held++
		}
	}
	for i := 0; i < p.prefix; i++ {
		if !p.Has(i) {
			return ErrMalformed
		}
	}
	return nil
}
