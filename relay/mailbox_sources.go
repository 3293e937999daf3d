// Where mailbox requests come from: the requester's IP address and network
// prefix, the registrations and deposit shares counted per source, and the
// one-time prekeys handed to each. Peer IDs are free to make; addresses
// are not, so every per-peer limit has a per-source twin.

package relay

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	manet "github.com/multiformats/go-multiaddr/net"
	bolt "go.etcd.io/bbolt"
)

// source is where a request came from: its IP address (an IPv6 /64: one
// host's usual share) and its network prefix (IPv4 /24, IPv6 /48), as
// keys. Both are empty when the connection has no IP address.
type source struct {
	ip, prefix string
}

// sourceOf is the source of addr.
func sourceOf(addr netip.Addr) source {
	addr = addr.Unmap()
	switch {
	case addr.Is4():
		return source{ip: addr.String(), prefix: netip.PrefixFrom(addr, 24).Masked().String()}
	case addr.Is6():
		return source{ip: netip.PrefixFrom(addr, 64).Masked().String(), prefix: netip.PrefixFrom(addr, 48).Masked().String()}
	}
	return source{}
}

// streamSource is the source of a stream's connection.
func streamSource(s network.Stream) source {
	ip, err := manet.ToIP(s.Conn().RemoteMultiaddr())
	if err != nil {
		return source{}
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return source{}
	}
	return sourceOf(addr)
}

func (s source) known() bool { return s.ip != "" }

// encode is the source as stored: ip \x00 prefix.
func (s source) encode() []byte { return []byte(s.ip + "\x00" + s.prefix) }

func decodeSource(v []byte) source {
	for i, c := range v {
		if c == 0 {
			return source{ip: string(v[:i]), prefix: string(v[i+1:])}
		}
	}
	return source{}
}

// The sources' records in mailbox.db:
//
//	regsrc          peer → the source that registered its mailbox
//	srccount        "r" ip-or-prefix → u32 mailboxes registered from it
//	                "d" len(to) to ip-or-prefix → u32 items || u64 bytes waiting for to
//	itemsrc/<peer>  item id → the source that deposited it
var (
	bktRegSrc   = []byte("regsrc")
	bktSrcCount = []byte("srccount")
	bktItemSrc  = []byte("itemsrc")
)

func regKey(k string) []byte { return append([]byte("r"), k...) }

func shareKey(to peer.ID, k string) []byte {
	b := append([]byte("d"), byte(len(to)))
	return append(append(b, to...), k...)
}

// srcCount reads a count (and bytes, for a share) of srccount.
func srcCount(tx *bolt.Tx, k []byte) (int, int64) {
	v := tx.Bucket(bktSrcCount).Get(k)
	if len(v) < 4 {
		return 0, 0
	}
	n := int(binary.BigEndian.Uint32(v))
	if len(v) == 12 {
		return n, int64(binary.BigEndian.Uint64(v[4:]))
	}
	return n, 0
}

// addSrcCount changes a count of srccount, deleting it at zero. A share
// (shareKey) counts bytes too; a registration (regKey) does not.
func addSrcCount(tx *bolt.Tx, k []byte, delta int, bytes int64) error {
	n, size := srcCount(tx, k)
	n, size = max(n+delta, 0), max(size+bytes, 0)
	b := tx.Bucket(bktSrcCount)
	if n == 0 {
		return b.Delete(k)
	}
	v := binary.BigEndian.AppendUint32(nil, uint32(n))
	if k[0] == 'd' {
		v = binary.BigEndian.AppendUint64(v, uint64(size))
	}
	return b.Put(k, v)
}

// registered counts a new registration from src.
func registered(tx *bolt.Tx, p peer.ID, src source) error {
	if !src.known() {
		return nil
	}
	if err := tx.Bucket(bktRegSrc).Put([]byte(p), src.encode()); err != nil {
		return err
	}
	for _, k := range []string{src.ip, src.prefix} {
		if err := addSrcCount(tx, regKey(k), 1, 0); err != nil {
			return err
		}
	}
	return nil
}

// unregistered forgets p's registration in the counts of its source.
func unregistered(tx *bolt.Tx, p peer.ID) error {
	v := tx.Bucket(bktRegSrc).Get([]byte(p))
	if v == nil {
		return nil
	}
	src := decodeSource(v)
	for _, k := range []string{src.ip, src.prefix} {
		if err := addSrcCount(tx, regKey(k), -1, 0); err != nil {
			return err
		}
	}
	return tx.Bucket(bktRegSrc).Delete([]byte(p))
}

// depositedFrom counts an item (id, size bytes) for to from src.
func depositedFrom(tx *bolt.Tx, to peer.ID, id uint64, size int64, src source) error {
	if !src.known() {
		return nil
	}
	b, err := tx.Bucket(bktItemSrc).CreateBucketIfNotExists([]byte(to))
	if err != nil {
		return err
	}
	if err := b.Put(u64(id), src.encode()); err != nil {
		return err
	}
	for _, k := range []string{src.ip, src.prefix} {
		if err := addSrcCount(tx, shareKey(to, k), 1, size); err != nil {
			return err
		}
	}
	return nil
}

// itemGone takes an item of to (acked or expired) out of its source's share.
func itemGone(tx *bolt.Tx, to peer.ID, id uint64, size int64) error {
	b := tx.Bucket(bktItemSrc).Bucket([]byte(to))
	if b == nil {
		return nil
	}
	v := b.Get(u64(id))
	if v == nil {
		return nil
	}
	src := decodeSource(v)
	for _, k := range []string{src.ip, src.prefix} {
		if err := addSrcCount(tx, shareKey(to, k), -1, -size); err != nil {
			return err
		}
	}
	return b.Delete(u64(id))
}

// grants counts the one-time prekeys handed out per (requester or source,
// target) over a day, in memory: at most maxGrants entries, each forgotten
// a day after its first grant. When full of live entries, no more one-time
// prekeys are handed out until some expire (bundles still are).
type grants struct {
	mu    sync.Mutex
	m     map[string]grant
	swept time.Time
}

type grant struct {
	n     int
	since time.Time
}

const (
	maxGrants   = 1 << 16
	grantWindow = 24 * time.Hour
)

func newGrants() *grants { return &grants{m: map[string]grant{}} }

// count is how many one-time prekeys k has had in the current window.
func (g *grants) count(k string, now time.Time) int {
	e, ok := g.m[k]
	if !ok || now.Sub(e.since) >= grantWindow {
		return 0
	}
	return e.n
}

// take decides whether the requester (peer from src) gets a one-time
// prekey of target, whose pool holds left, and if so counts it.
func (g *grants) take(lim MailboxLimits, from peer.ID, src source, target peer.ID, left int, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	t := "\x00" + string(target)
	keys := []string{"p" + string(from) + t}
	caps := []int{1}
	if src.known() {
		keys = append(keys, "i"+src.ip+t, "n"+src.prefix+t)
		caps = append(caps, lim.OneTimePerIP, 4*lim.OneTimePerIP)
	}
	for i, k := range keys {
		if g.count(k, now) >= caps[i] {
			return false
		}
	}
	if left <= lim.PrekeyFloor && src.known() && g.count(keys[2], now) > 0 {
		return false // the last few go to prefixes that had none
	}
	if len(g.m)+len(keys) > maxGrants && now.Sub(g.swept) > time.Minute {
		g.swept = now
		for k, e := range g.m {
			if now.Sub(e.since) >= grantWindow {
				delete(g.m, k)
			}
		}
	}
	if len(g.m)+len(keys) > maxGrants {
		return false
	}
	for _, k := range keys {
		e, ok := g.m[k]
		if !ok || now.Sub(e.since) >= grantWindow {
			e = grant{since: now}
		}
		e.n++
		g.m[k] = e
	}
	return true
}
