// The mailbox's rate limiters: a token bucket per peer (or per source
// address or prefix), forgotten when idle.

package relay

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiters are token buckets per key (a peer ID, an address, a prefix),
// forgotten when idle.
type limiters struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	m     map[string]*limiterEntry
	swept time.Time // last sweep of idle entries
}

type limiterEntry struct {
	l    *rate.Limiter
	seen time.Time
}

func newLimiters(r rate.Limit, burst int) *limiters {
	return &limiters{r: r, burst: burst, m: map[string]*limiterEntry{}}
}

// allow takes a token for p, or says how long to wait for one.
func (l *limiters) allow(p string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 10000 && now.Sub(l.swept) > time.Minute {
		l.swept = now // at most once a minute: peer IDs are free to make
		for k, e := range l.m {
			if now.Sub(e.seen) > time.Hour {
				delete(l.m, k)
			}
		}
	}
	e, ok := l.m[p]
	if !ok {
		e = &limiterEntry{l: rate.NewLimiter(l.r, l.burst)}
		l.m[p] = e
	}
	e.seen = now
	r := e.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}
