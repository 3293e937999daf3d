package transfer

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// Direct writes (Linux): a large file's full chunks are opened straight
// into 1 MiB blocks aligned for O_DIRECT and written by a goroutine of
// the partial file's own, past the page cache, while the next block
// fills (blocksInFlight of them written at once: the disk is kept busy). On the reference machine this costs a fifth of the CPU of
// writing through the page cache and then making it durable
// (docs/BENCHMARKS.md, "File transfer between two nodes"). A chunk
// counts as held only once its block is written: then its bit is set
// and the SHA-256 fed, in order, on the caller's goroutine, so that the
// state saved never lists a chunk that is not on disk.
const (
	// directMin: smaller files go through the page cache.
	directMin = SyncEvery * ChunkSize
	// blockChunks is how many chunks a block holds (1 MiB).
	blockChunks = 16
	// blocksInFlight is how many blocks are written at once, each by a
	// goroutine of its own.
	blocksInFlight = 3
	directAlign    = 4096
)

// noDirect, set by benchmarks only, keeps every write in the page cache.
var noDirect bool

// block is consecutive full chunks from first, opened, to be written at
// their place.
type block struct {
	buf   []byte // blockChunks × ChunkSize, aligned
	first int
	n     int
	err   error         // the write's
	done  chan struct{} // a write ended
	ended bool          // done was received already (reap)
}

// direct is the writer of a Partial's blocks.
type direct struct {
	f        *os.File
	cur      *block   // filling
	free     []*block // ready to fill
	inflight []*block // being written, oldest first
	todo     chan *block
	// off: a block write failed for another reason than a full disk
	// (a file system that opens with O_DIRECT but does not write so):
	// the next chunks go through the page cache.
	off bool
}

func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	off := (directAlign - int(uintptr(unsafe.Pointer(&b[0]))%directAlign)) % directAlign
	return b[off : off+n : off+n]
}

func newDirect(f *os.File) *direct {
	d := &direct{f: f, todo: make(chan *block, blocksInFlight)}
	for range blocksInFlight + 1 {
		d.free = append(d.free, &block{buf: alignedBuf(blockChunks * ChunkSize), done: make(chan struct{}, 1)})
	}
	for range blocksInFlight {
		go func() {
			for b := range d.todo {
				_, b.err = f.WriteAt(b.buf[:b.n*ChunkSize], int64(b.first)*ChunkSize)
				b.done <- struct{}{}
			}
		}()
	}
	return d
}

// blockSlot is where chunk i is to be opened: at the end of the filling
// block, after submitting it if i does not follow it or it is full.
func (p *Partial) blockSlot(i int) ([]byte, error) {
	d := p.direct
	if b := d.cur; b != nil && (b.first+b.n != i || b.n == blockChunks) {
		if err := p.submit(); err != nil {
			return nil, err
		}
	}
	if d.cur == nil {
		if len(d.free) == 0 {
			if err := p.complete(); err != nil {
				return nil, err
			}
		}
		d.cur, d.free = d.free[0], d.free[1:]
		d.cur.first, d.cur.n = i, 0
	}
	at := d.cur.n * ChunkSize
	return d.cur.buf[at : at : at+ChunkSize], nil
}

// submit hands the filling block to the writer.
func (p *Partial) submit() error {
	d := p.direct
	b := d.cur
	if b == nil {
		return nil
	}
	d.cur = nil
	if b.n == 0 {
		d.free = append(d.free, b)
		return nil
	}
	if len(d.inflight) == blocksInFlight {
		if err := p.complete(); err != nil {
			d.free = append(d.free, b)
			return err
		}
	}
	d.inflight = append(d.inflight, b)
	d.todo <- b
	return nil
}

// complete waits for the oldest block in flight and records its chunks
// as held. A block that could not be written is written again chunk by
// chunk through the page cache: on a full disk, so that what fits is
// kept; for any other reason (a file system that opens with O_DIRECT
// but will not write so), and the direct writes stop there.
func (p *Partial) complete() error {
	d := p.direct
	if len(d.inflight) == 0 {
		return nil
	}
	b := d.inflight[0]
	if !b.ended {
		<-b.done
	}
	b.ended = false
	d.inflight = d.inflight[1:]
	defer func() { d.free = append(d.free, b) }()
	if b.err != nil && !errors.Is(b.err, syscall.ENOSPC) && !errors.Is(b.err, syscall.EDQUOT) {
		d.off = true
	}
	for k := range b.n {
		i := b.first + k
		plain := b.buf[k*ChunkSize : (k+1)*ChunkSize]
		if b.err != nil {
			if _, err := p.f.WriteAt(plain, int64(i)*ChunkSize); err != nil {
				return p.writeFailed(err)
			}
		}
		if err := p.held1(i, plain); err != nil {
			return err
		}
	}
	return nil
}

// reap records the chunks of the blocks whose writes have ended, oldest
// first, without waiting for the others: what a checkpoint lists while
// blocks are still being written (they are listed by the next one).
func (p *Partial) reap() error {
	if p.direct == nil || p.err != nil {
		return p.err
	}
	for d := p.direct; len(d.inflight) > 0; {
		select {
		case <-d.inflight[0].done:
			d.inflight[0].ended = true
		default:
			return nil
		}
		if err := p.complete(); err != nil {
			p.err = err
			return err
		}
	}
	return nil
}

// settle writes every block and records its chunks: what the state
// saves, Held, Done and Missing then describe the disk.
func (p *Partial) settle() error {
	if p.direct == nil {
		return p.err
	}
	if p.err == nil {
		p.err = p.submit()
	}
	for len(p.direct.inflight) > 0 {
		if err := p.complete(); err != nil && p.err == nil {
			p.err = err
		}
	}
	return p.err
}

// closeDirect stops the writer once every block is settled (an error
// settling is the caller's already: Sync's, Finish's).
func (p *Partial) closeDirect() error {
	if p.direct == nil {
		return nil
	}
	p.settle()
	close(p.direct.todo)
	err := p.direct.f.Close()
	p.direct = nil
	if err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close the partial file: %w", err)
	}
	return nil
}
