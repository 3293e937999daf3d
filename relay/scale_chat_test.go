//go:build linux

// The relayed chats of TestRelayScale: opening them through the relay,
// texts and receipts, and running one phase of the exchange.

package relay_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Phases of the message exchange.
const (
	phaseSteady = iota
	phaseMax
	phases
)

var phaseNames = [phases]string{"steady", "maximum"}

// scaleChat is one relayed chat: a (initiator) sends texts, b answers
// each with a receipt.
type scaleChat struct {
	a, b    *scalePeer
	sess    *e2e.Session // a's end
	setup   time.Duration
	closing atomic.Bool
	window  chan struct{}

	mu      sync.Mutex
	pending map[e2e.MessageID]pendingText
	lat     [phases][]time.Duration
	sent    [phases]int
	acked   [phases]int
	unknown int
	errs    int
	readErr error

	// b's end, touched only by its receive loop until the run ends.
	recvd   map[e2e.MessageID]bool
	dups    int
	respErr error
}

type pendingText struct {
	at    time.Time
	phase int
}

func (sw *scaleSwarm) addChat(a, b *scalePeer) {
	c := &scaleChat{a: a, b: b, pending: map[e2e.MessageID]pendingText{}, recvd: map[e2e.MessageID]bool{}}
	sw.mu.Lock()
	sw.chats[b.id.PeerID()] = c
	sw.list = append(sw.list, c)
	sw.mu.Unlock()
}

// respond is b's side: the e2e responder handshake, then a receipt for
// every text.
func (sw *scaleSwarm) respond(p *scalePeer, s network.Stream) {
	sw.mu.Lock()
	c := sw.chats[p.id.PeerID()]
	sw.mu.Unlock()
	if c == nil || c.a.id.PeerID() != s.Conn().RemotePeer() {
		s.Reset()
		return
	}
	sess, err := p.ep.Server(context.Background(), s, s.Conn().RemotePeer())
	if err != nil {
		c.mu.Lock()
		c.respErr = err
		c.mu.Unlock()
		return
	}
	defer sess.Close()
	for {
		f, err := sess.Receive()
		if err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.respErr = err
				c.mu.Unlock()
			}
			return
		}
		if f.Type != e2e.FrameText {
			continue
		}
		txt, err := e2e.ParseText(f.Payload)
		if err != nil {
			c.mu.Lock()
			c.respErr = err
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		if c.recvd[txt.ID] {
			c.dups++
		}
		c.recvd[txt.ID] = true
		c.mu.Unlock()
		if err := sess.SendReceipt(e2e.Receipt{ID: txt.ID, Status: e2e.ReceiptStored}); err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.respErr = err
				c.mu.Unlock()
			}
			return
		}
	}
}

// openChats dials every chat through the relay, par at a time.
func (sw *scaleSwarm) openChats(relay peer.AddrInfo, par int) map[string]int {
	var (
		mu    sync.Mutex
		fails = map[string]int{}
		wg    sync.WaitGroup
		sem   = make(chan struct{}, par)
	)
	for _, c := range sw.list {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := sw.open(relay, c); err != nil {
				mu.Lock()
				fails[reason(err)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return fails
}

func (sw *scaleSwarm) open(relay peer.AddrInfo, c *scaleChat) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	circuit, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", relay.Addrs[0], relay.ID))
	if err != nil {
		return err
	}
	began := time.Now()
	b := c.b.id.PeerID()
	if err := c.a.h.Connect(ctx, peer.AddrInfo{ID: b, Addrs: []ma.Multiaddr{circuit}}); err != nil {
		return fmt.Errorf("connect through the relay: %w", err)
	}
	s, err := c.a.h.NewStream(network.WithAllowLimitedConn(ctx, "certchat scale"), b, e2e.ProtocolChat)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	if !s.Conn().Stat().Limited || !strings.Contains(s.Conn().RemoteMultiaddr().String(), "/p2p-circuit") {
		s.Reset()
		return fmt.Errorf("the chat stream is not relayed (%s)", s.Conn().RemoteMultiaddr())
	}
	sess, err := c.a.ep.Client(ctx, s, s.Conn().RemotePeer(), b)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.sess = sess
	c.setup = time.Since(began)
	go c.readReceipts()
	return nil
}

func (sw *scaleSwarm) setupTimes() []time.Duration {
	var out []time.Duration
	for _, c := range sw.list {
		if c.sess != nil {
			out = append(out, c.setup)
		}
	}
	return out
}

// readReceipts is a's receive loop: each receipt completes a round trip.
func (c *scaleChat) readReceipts() {
	for {
		f, err := c.sess.Receive()
		if err != nil {
			if !c.closing.Load() {
				c.mu.Lock()
				c.readErr = err
				c.mu.Unlock()
			}
			return
		}
		now := time.Now()
		if f.Type != e2e.FrameReceipt {
			continue
		}
		r, err := e2e.ParseReceipt(f.Payload)
		c.mu.Lock()
		p, ok := c.pending[r.ID]
		if err != nil || !ok {
			c.unknown++
			c.mu.Unlock()
			continue
		}
		delete(c.pending, r.ID)
		c.lat[p.phase] = append(c.lat[p.phase], now.Sub(p.at))
		c.acked[p.phase]++
		c.mu.Unlock()
		if p.phase == phaseMax {
			<-c.window
		}
	}
}

// send writes one text and notes when.
func (c *scaleChat) send(phase int, body string) {
	id := e2e.NewMessageID()
	now := time.Now()
	c.mu.Lock()
	c.pending[id] = pendingText{at: now, phase: phase}
	c.sent[phase]++
	c.mu.Unlock()
	if err := c.sess.SendText(e2e.Text{ID: id, SentAt: now, Body: body}); err != nil {
		c.mu.Lock()
		c.errs++
		c.mu.Unlock()
	}
}

// phaseResult is what one phase measured.
type phaseResult struct {
	name                             string
	wall                             time.Duration
	sent, acked, lost, dups, unknown int
	errs                             int
	lat                              []time.Duration // sorted
	use                              usage
	relayRSS, relayPeak, clientRSS   int64
	drain                            time.Duration
}

// runPhase sends texts on every chat: in the steady phase at cfg.rate per
// chat (starts spread over one interval), in the maximum phase as fast as
// the receipts come back with cfg.window texts in flight per chat. Then it
// waits for the outstanding receipts.
func (sw *scaleSwarm) runPhase(t *testing.T, rp *relayProc, self *proc, mon *monitor, phase int, cfg scaleConfig) *phaseResult {
	t.Helper()
	body := strings.Repeat("x", cfg.body)
	length := cfg.steady
	if phase == phaseMax {
		length = cfg.max
	}
	mon.reset()
	u0 := measureUsage(rp, self)
	began := time.Now()
	end := began.Add(length)
	stop := make(chan struct{})
	timer := time.AfterFunc(length, func() { close(stop) })
	defer timer.Stop()
	var wg sync.WaitGroup
	for _, c := range sw.list {
		wg.Add(1)
		if phase == phaseMax {
			c.window = make(chan struct{}, cfg.window)
		}
		go func() {
			defer wg.Done()
			if phase == phaseMax {
				for {
					select {
					case c.window <- struct{}{}:
						c.send(phase, body)
					case <-stop:
						return
					}
				}
			}
			interval := time.Duration(float64(time.Second) / cfg.rate)
			time.Sleep(rand.N(interval))
			tk := time.NewTicker(interval)
			defer tk.Stop()
			for now := time.Now(); now.Before(end); now = <-tk.C {
				c.send(phase, body)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(began)
	// Drain: wait for the receipts still on their way.
	drainStart := time.Now()
	for time.Since(drainStart) < 30*time.Second {
		left := 0
		for _, c := range sw.list {
			c.mu.Lock()
			left += c.sent[phase] - c.acked[phase]
			c.mu.Unlock()
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := &phaseResult{name: phaseNames[phase], wall: wall, drain: time.Since(drainStart)}
	res.use = measureUsage(rp, self).since(u0)
	rs := rp.sample()
	res.relayRSS, res.relayPeak = rs.rss, mon.peak()
	res.clientRSS = self.sample().rss
	for _, c := range sw.list {
		c.mu.Lock()
		res.sent += c.sent[phase]
		res.acked += c.acked[phase]
		res.unknown += c.unknown
		res.errs += c.errs
		res.lat = append(res.lat, c.lat[phase]...)
		if c.readErr != nil || c.respErr != nil {
			res.errs++
			t.Logf("chat %s → %s: initiator %v, responder %v", identity.ShortID(c.a.id.PeerID()),
				identity.ShortID(c.b.id.PeerID()), c.readErr, c.respErr)
		}
		c.mu.Unlock()
	}
	res.lost = res.sent - res.acked
	// Every text the initiators sent, in every phase so far, reached the
	// responders exactly once.
	for _, c := range sw.list {
		c.mu.Lock()
		want := 0
		for p := range phase + 1 {
			want += c.sent[p]
		}
		if len(c.recvd) != want {
			res.lost += want - len(c.recvd)
		}
		res.dups += c.dups
		c.mu.Unlock()
	}
	slices.Sort(res.lat)
	t.Logf("%s phase: %d sent, %d acknowledged in %v (%.0f msg/s); round trip p50 %v p99 %v max %v; CPU: %s",
		res.name, res.sent, res.acked, wall.Round(time.Millisecond), res.rate(),
		pct(res.lat, 0.50), pct(res.lat, 0.99), pct(res.lat, 1), res.use.describe(wall+res.drain))
	return res
}

// rate is acknowledged messages per second over the phase.
func (r *phaseResult) rate() float64 { return float64(r.acked) / r.wall.Seconds() }

// pct is the q-quantile of sorted durations (nearest rank).
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))].Round(10 * time.Microsecond)
}
