package boltfile

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"strconv"
)

// The file format of bbolt v1.4 (go.etcd.io/bbolt/internal/common), in the
// byte order of the machine that wrote it.
const (
	pageHeaderSize   = 16 // id u64, flags u16, count u16, overflow u32
	elemSize         = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	metaSumLen       = 56 // magic u32, version u32, pageSize u32, flags u32, root u64, sequence u64, freelist u64, pgid u64, txid u64
	metaLen          = metaSumLen + 8
	magic            = 0xED0CDAED
	formatVersion    = 2
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	bucketLeafFlag   = 0x01
	bucketHeaderSize = 16 // root u64, sequence u64
	noFreelist       = ^uint64(0)
	minPageSize      = 1024
	maxPageSize      = 1 << 24 // the largest bbolt looks for
)

var order = binary.NativeEndian

type meta struct {
	pageSize                  uint32
	root, freelist, hwm, txid uint64
	valid                     bool
}

// readMeta reads the meta page at off, if the file holds it.
func readMeta(r io.ReaderAt, off int64) meta {
	var b [pageHeaderSize + metaLen]byte
	if n, _ := r.ReadAt(b[:], off); n < len(b) {
		return meta{}
	}
	m := b[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(m[:metaSumLen])
	return meta{
		pageSize: order.Uint32(m[8:]),
		root:     order.Uint64(m[16:]),
		freelist: order.Uint64(m[32:]),
		hwm:      order.Uint64(m[40:]),
		txid:     order.Uint64(m[48:]),
		valid: order.Uint32(m[0:]) == magic && order.Uint32(m[4:]) == formatVersion &&
			order.Uint64(m[metaSumLen:]) == h.Sum64(),
	}
}

// pageSize finds the page size as bbolt does: from the first meta page, or
// else from a second meta page at one of the sizes bbolt could have used.
func pageSize(r io.ReaderAt, size int64) int64 {
	if m := readMeta(r, 0); m.valid {
		return int64(m.pageSize)
	}
	for ps := int64(minPageSize); ps <= maxPageSize && ps < size-minPageSize; ps *= 2 {
		if m := readMeta(r, ps); m.valid {
			return int64(m.pageSize)
		}
	}
	return 0
}

// check reads the bbolt file r of size bytes and says what is wrong with
// it, or "" if bbolt can open and read it safely.
func check(r io.ReaderAt, size int64) string {
	if size == 0 {
		return "empty: 0 bytes"
	}
	ps := pageSize(r, size)
	if ps == 0 {
		if size < 2*4096 {
			return fmt.Sprintf("truncated: only %d bytes, and no whole header page", size)
		}
		return "neither of its header (meta) pages is valid"
	}
	if ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0 {
		return fmt.Sprintf("its header gives an impossible page size, %d", ps)
	}
	if size < 2*ps {
		return fmt.Sprintf("truncated: only %d bytes, less than its two header pages", size)
	}
	// The meta page bbolt uses: the one with the higher transaction ID if
	// it is valid, else the other.
	m0, m1 := readMeta(r, 0), readMeta(r, ps)
	m, other := m0, m1
	if m1.txid > m0.txid {
		m, other = m1, m0
	}
	if !m.valid {
		m = other
	}
	if !m.valid {
		return "neither of its header (meta) pages is valid"
	}
	if int64(m.pageSize) != ps {
		return fmt.Sprintf("its header pages disagree on the page size (%d, %d)", ps, m.pageSize)
	}
	if m.hwm < 3 {
		return fmt.Sprintf("its header counts an impossible %d pages", m.hwm)
	}
	if m.hwm > uint64(size/ps) {
		return fmt.Sprintf("truncated: %d of %d bytes", size, m.hwm*uint64(ps))
	}
	w := &walker{r: r, ps: ps, hwm: m.hwm, state: make([]byte, m.hwm)}
	if m.freelist != noFreelist {
		if reason := w.freelist(m.freelist); reason != "" {
			return reason
		}
	}
	return w.tree(m.root)
}

// walker reads the pages below the high-water mark hwm.
type walker struct {
	r     io.ReaderAt
	ps    int64
	hwm   uint64
	state []byte // per page: 0 not seen, inUse, free
	buf   []byte // the page last read, reused
}

const (
	inUse = 1
	free  = 2
)

// page reads page id with its overflow pages, and marks them in use. The
// bytes are valid until the next call.
func (w *walker) page(id, from uint64) ([]byte, string) {
	if id < 2 || id >= w.hwm {
		if from < 2 {
			return nil, fmt.Sprintf("its header refers to page %d, outside its %d pages", id, w.hwm)
		}
		return nil, fmt.Sprintf("page %d refers to page %d, outside its %d pages", from, id, w.hwm)
	}
	if int64(len(w.buf)) < w.ps {
		w.buf = make([]byte, w.ps)
	}
	buf := w.buf[:w.ps]
	if _, err := w.r.ReadAt(buf, int64(id)*w.ps); err != nil {
		return nil, fmt.Sprintf("page %d cannot be read: %v", id, err)
	}
	if got := order.Uint64(buf); got != id {
		return nil, fmt.Sprintf("page %d says it is page %d", id, got)
	}
	overflow := uint64(order.Uint32(buf[12:]))
	if id+overflow >= w.hwm {
		return nil, fmt.Sprintf("page %d runs past its %d pages", id, w.hwm)
	}
	for p := id; p <= id+overflow; p++ {
		switch w.state[p] {
		case inUse:
			return nil, fmt.Sprintf("page %d is reached twice", p)
		case free:
			return nil, fmt.Sprintf("page %d is both in use and free", p)
		}
		w.state[p] = inUse
	}
	if overflow > 0 {
		n := (int64(overflow) + 1) * w.ps
		if int64(cap(w.buf)) < n {
			w.buf = append(w.buf[:w.ps], make([]byte, n-w.ps)...)
		}
		buf = w.buf[:n]
		if _, err := w.r.ReadAt(buf[w.ps:], int64(id+1)*w.ps); err != nil {
			return nil, fmt.Sprintf("page %d cannot be read: %v", id, err)
		}
	}
	return buf, ""
}

// freelist checks the freelist page and marks the pages it lists free.
func (w *walker) freelist(id uint64) string {
	buf, reason := w.page(id, 0)
	if reason != "" {
		return reason
	}
	if flags := order.Uint16(buf[8:]); flags != flagFreelist {
		return fmt.Sprintf("its freelist page %d is not a freelist (type %#x)", id, flags)
	}
	count, ids := uint64(order.Uint16(buf[10:])), buf[pageHeaderSize:]
	if count == 0xFFFF {
		count, ids = order.Uint64(ids), ids[8:]
	}
	if count > uint64(len(ids))/8 {
		return fmt.Sprintf("its freelist page %d lists more pages than it holds", id)
	}
	for i := range count {
		p := order.Uint64(ids[8*i:])
		if p < 2 || p >= w.hwm {
			return fmt.Sprintf("its freelist lists page %d, outside its %d pages", p, w.hwm)
		}
		if w.state[p] != 0 {
			return fmt.Sprintf("its freelist lists page %d twice, or a page in use", p)
		}
		w.state[p] = free
	}
	return ""
}

// item is a page to check: a page number, or an inline bucket's page.
type item struct {
	id, from uint64
	inline   []byte
}

// tree checks every page reachable from the root bucket's page.
func (w *walker) tree(root uint64) string {
	stack := []item{{id: root}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		buf, id := it.inline, it.id
		if buf == nil {
			var reason string
			if buf, reason = w.page(it.id, it.from); reason != "" {
				return reason
			}
		}
		more, reason := w.node(buf, id, it.inline != nil)
		if reason != "" {
			return reason
		}
		stack = append(stack, more...)
	}
	return ""
}

// node checks a branch or leaf page (id, or an inline page in a bucket of
// page id) and returns the pages it refers to.
func (w *walker) node(buf []byte, id uint64, inline bool) ([]item, string) {
	where := "page " + strconv.FormatUint(id, 10)
	if inline {
		where = "an inline bucket in " + where
	}
	if len(buf) < pageHeaderSize {
		return nil, where + " is cut short"
	}
	flags, count := order.Uint16(buf[8:]), uint64(order.Uint16(buf[10:]))
	if flags != flagBranch && flags != flagLeaf || inline && flags != flagLeaf {
		return nil, fmt.Sprintf("%s is of no known type (%#x)", where, flags)
	}
	if flags == flagBranch && count == 0 {
		return nil, where + " is an empty branch"
	}
	if pageHeaderSize+count*elemSize > uint64(len(buf)) {
		return nil, fmt.Sprintf("%s counts %d elements, more than it holds", where, count)
	}
	var more []item
	for i := range count {
		e := buf[pageHeaderSize+i*elemSize:]
		start := pageHeaderSize + i*elemSize
		if flags == flagBranch {
			end := start + uint64(order.Uint32(e[0:])) + uint64(order.Uint32(e[4:]))
			if end > uint64(len(buf)) {
				return nil, fmt.Sprintf("%s has a key outside the page", where)
			}
			more = append(more, item{id: order.Uint64(e[8:]), from: id})
			continue
		}
		vstart := start + uint64(order.Uint32(e[4:])) + uint64(order.Uint32(e[8:]))
		vend := vstart + uint64(order.Uint32(e[12:]))
		if vend > uint64(len(buf)) {
			return nil, fmt.Sprintf("%s has a key or value outside the page", where)
		}
		if order.Uint32(e[0:])&bucketLeafFlag == 0 {
			continue
		}
		v := buf[vstart:vend]
		if len(v) < bucketHeaderSize {
			return nil, fmt.Sprintf("%s has a bucket without its header", where)
		}
		if broot := order.Uint64(v); broot != 0 {
			more = append(more, item{id: broot, from: id})
		} else {
			// A copy: the page's bytes are overwritten by the next read.
			more = append(more, item{id: id, inline: append([]byte(nil), v[bucketHeaderSize:]...)})
		}
	}
	return more, ""
}
