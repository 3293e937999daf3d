package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/relay"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// BenchmarkDHTFindPeer measures finding peers by peer ID in the certchat
// DHT at scale (docs/BENCHMARKS.md, "DHT"): relays joined by --bootstrap
// (in this process), and full nodes (node.Node, reachable only through
// relays: no listener) each configured with one relay, keeping two
// (the second found in the DHT). While lookups run, 20 % of the peers
// leave and as many new ones join, and at half time one relay leaves.
// A lookup is found when the target's signed record lists a circuit
// address; it is "live" when that circuit goes through a relay still up.
// It runs its scenario once whatever b.N is: run it with -benchtime 1x.
//
// Settings (environment): CERTCHAT_DHT_PEERS=200, CERTCHAT_DHT_RELAYS=5,
// CERTCHAT_DHT_LOOKUPS=1000, CERTCHAT_DHT_SECONDS=60 (the lookup phase).
func BenchmarkDHTFindPeer(b *testing.B) {
	nPeers, nRelays := envInt("CERTCHAT_DHT_PEERS", 200), envInt("CERTCHAT_DHT_RELAYS", 5)
	nLookups, secs := envInt("CERTCHAT_DHT_LOOKUPS", 1000), envInt("CERTCHAT_DHT_SECONDS", 60)
	began := time.Now()

	var relays []*relay.Server
	var relayAddrs []string
	for i := range nRelays {
		var boot []string
		if i > 0 {
			boot = slices.Compact([]string{relayAddrs[0], relayAddrs[i-1]})
		}
		srv, err := relay.NewServer(relay.Config{
			Home: identity.Home{Dir: b.TempDir()}, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: boot,
			Limits:  relay.Limits{MaxReservationsPerIP: 8192, MaxReservations: 8192},
			Mailbox: relay.MailboxLimits{MaxMailboxPerIP: 8192, MaxMailboxPerPrefix: 8192, MaxMailbox: 8192},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { srv.Close() })
		relays = append(relays, srv)
		relayAddrs = append(relayAddrs, srv.Addrs()[0])
	}

	sw := &dhtSwarm{b: b, relays: relayAddrs}
	sw.live.Store(int64(nRelays))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range nPeers {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sw.join(i)
		}()
	}
	wg.Wait()
	b.Cleanup(sw.closeAll)
	sw.waitReserved(60 * time.Second)
	time.Sleep(3 * time.Second) // records published
	b.Logf("%d relays and %d peers up in %v", nRelays, nPeers, time.Since(began).Round(time.Millisecond))

	// The lookup phase, with churn and a relay leaving.
	b.ResetTimer()
	phase := time.Duration(secs) * time.Second
	start := time.Now()
	churn := nPeers / 5
	var churnWG sync.WaitGroup
	churnWG.Add(1)
	go func() {
		defer churnWG.Done()
		for i := range churn {
			time.Sleep(phase / time.Duration(churn+1))
			sw.leave()
			sw.join(nPeers + i)
		}
	}()
	var deadRelay atomic.Value
	time.AfterFunc(phase/2, func() {
		deadRelay.Store(relays[nRelays-1].ID())
		sw.live.Add(-1)
		relays[nRelays-1].Close()
		b.Logf("relay %s left at %v", relays[nRelays-1].ID(), time.Since(start).Round(time.Millisecond))
	})

	type result struct {
		found, live bool
		took        time.Duration
		at          time.Duration // since the phase began
		err         error
		targetAge   time.Duration
		addrs       int
	}
	results := make([]result, nLookups)
	var lwg sync.WaitGroup
	every := phase / time.Duration(nLookups)
	for i := range nLookups {
		time.Sleep(time.Until(start.Add(time.Duration(i) * every)))
		from, to := sw.pick()
		if from == nil || to == nil {
			continue
		}
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			t0 := time.Now()
			addrs, err := from.n.FindPeer(ctx, to.n.ID())
			r := result{took: time.Since(t0), at: t0.Sub(start), err: err, targetAge: t0.Sub(to.joined), addrs: len(addrs)}
			dead, _ := deadRelay.Load().(peer.ID)
			for _, a := range addrs {
				if relayID, ok := circuitRelay(a); ok {
					r.found = err == nil
					r.live = r.live || relayID != dead
				}
			}
			results[i] = r
		}()
	}
	lwg.Wait()
	churnWG.Wait()
	b.StopTimer()

	var took []time.Duration
	found, live, n := 0, 0, 0
	for _, r := range results {
		if r.took == 0 {
			continue
		}
		n++
		took = append(took, r.took)
		if r.found {
			found++
		}
		if r.live {
			live++
		}
	}
	slices.Sort(took)
	if os.Getenv("CERTCHAT_DHT_DETAIL") != "" {
		for _, r := range results {
			if r.took > time.Second || !r.found {
				b.Logf("at %v took %v found %v addrs %d target up %v err %v", r.at.Round(time.Millisecond), r.took.Round(time.Millisecond), r.found, r.addrs, r.targetAge.Round(time.Millisecond), r.err)
			}
		}
	}
	pct := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	b.ReportMetric(100*float64(found)/float64(n), "found%")
	b.ReportMetric(100*float64(live)/float64(n), "live%")
	b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.95).Microseconds())/1000, "p95-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.Logf("%d lookups: %d found (%.2f%%), %d through a live relay; p50 %v p95 %v p99 %v max %v; %d left, %d joined",
		n, found, 100*float64(found)/float64(n), live, pct(0.5), pct(0.95), pct(0.99), took[len(took)-1], churn, churn)
}

// circuitRelay is the relay of a circuit address.
func circuitRelay(a ma.Multiaddr) (peer.ID, bool) {
	var relayID peer.ID
	circuit := false
	for _, c := range a {
		switch c.Code() {
		case ma.P_P2P:
			if !circuit {
				relayID, _ = peer.Decode(c.Value())
			}
		case ma.P_CIRCUIT:
			circuit = true
		}
	}
	return relayID, circuit && relayID != ""
}

// dhtSwarm is the benchmark's nodes.
type dhtSwarm struct {
	b      *testing.B
	relays []string
	live   atomic.Int64 // relays[:live] are up: new peers use one of them

	mu     sync.Mutex
	online []*dhtPeer
	left   []*dhtPeer
}

type dhtPeer struct {
	n      *node.Node
	joined time.Time
}

// join starts node i on relay i mod the relays that are up.
func (sw *dhtSwarm) join(i int) {
	h := identity.Home{Dir: sw.b.TempDir()}
	id, err := h.Init(fmt.Sprintf("peer%d", i), nil, identity.DefaultKDF, time.Now())
	if err != nil {
		sw.b.Error(err)
		return
	}
	ts, err := h.TrustStore()
	if err != nil {
		sw.b.Error(err)
		return
	}
	n, err := node.New(node.Config{Home: h, Identity: id, Trust: ts, Listen: []string{"none"},
		Relays: []string{sw.relays[i%int(sw.live.Load())]}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		sw.b.Error(err)
		return
	}
	if err := n.Start(); err != nil {
		sw.b.Error(err)
		n.Close()
		return
	}
	sw.mu.Lock()
	sw.online = append(sw.online, &dhtPeer{n: n, joined: time.Now()})
	sw.mu.Unlock()
}

// leave closes a random online peer.
func (sw *dhtSwarm) leave() {
	sw.mu.Lock()
	i := rand.IntN(len(sw.online))
	p := sw.online[i]
	sw.online = slices.Delete(sw.online, i, i+1)
	sw.left = append(sw.left, p)
	sw.mu.Unlock()
	p.n.Close()
}

// pick is a random searcher and a random target, both online for at
// least 5 s (time to reserve, publish and fill the routing table).
func (sw *dhtSwarm) pick() (from, to *dhtPeer) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for range 100 {
		f, t := sw.online[rand.IntN(len(sw.online))], sw.online[rand.IntN(len(sw.online))]
		if f != t && time.Since(t.joined) > 5*time.Second && time.Since(f.joined) > 5*time.Second {
			return f, t
		}
	}
	return nil, nil
}

// waitReserved waits until every online peer holds a reservation.
func (sw *dhtSwarm) waitReserved(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		sw.mu.Lock()
		all := slices.Clone(sw.online)
		sw.mu.Unlock()
		waiting := 0
		for _, p := range all {
			if !slices.ContainsFunc(p.n.Relays(), func(r node.RelayInfo) bool { return r.Reserved }) {
				waiting++
			}
		}
		if waiting == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	sw.b.Fatal("not every peer holds a reservation")
}

func (sw *dhtSwarm) closeAll() {
	sw.mu.Lock()
	all := sw.online
	sw.online = nil
	sw.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() { defer wg.Done(); p.n.Close() }()
	}
	wg.Wait()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
