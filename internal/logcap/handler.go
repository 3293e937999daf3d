package logcap

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Limits say how many identical lines a Handler lets through.
type Limits struct {
	// Burst is how many lines of one level and message pass in a window.
	Burst int
	// Window is how long a burst lasts; the lines dropped in it are counted
	// in one line when it ends.
	Window time.Duration
	// MaxKeys caps the (level, message) pairs tracked; the lines of pairs
	// beyond it share one burst.
	MaxKeys int
}

// DefaultLimits let 20 lines of each message through per minute, tracking
// 512 messages.
var DefaultLimits = Limits{Burst: 20, Window: time.Minute, MaxKeys: 512}

// maxKeyLen bounds the part of a message that tells lines apart, and so
// the memory a tracked pair holds.
const maxKeyLen = 256

// SuppressedFormat is the message of the line that counts dropped lines.
const SuppressedFormat = "%d similar lines suppressed"

// Handler is a slog.Handler that drops repeated lines (see the package
// comment). Handlers made by WithAttrs and WithGroup share its counts.
type Handler struct {
	next slog.Handler
	lim  *limiter
}

// NewHandler wraps next. Zero fields of l take DefaultLimits' values.
func NewHandler(next slog.Handler, l Limits) *Handler {
	if l.Burst <= 0 {
		l.Burst = DefaultLimits.Burst
	}
	if l.Window <= 0 {
		l.Window = DefaultLimits.Window
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = DefaultLimits.MaxKeys
	}
	return &Handler{next: next, lim: &limiter{l: l, keys: map[key]*entry{}}}
}

type key struct {
	level slog.Level
	msg   string
}

// entry counts one pair's lines in its current window.
type entry struct {
	key     key
	start   time.Time // of the window
	n       int       // lines in the window
	dropped int       // lines dropped and not yet counted in a line
	next    slog.Handler
	timer   *time.Timer // counts the dropped lines at the window's end
}

// limiter is the state a Handler and its derived handlers share. Its
// mutex is held for map and counter updates only, never while writing.
type limiter struct {
	mu        sync.Mutex
	l         Limits
	keys      map[key]*entry
	overflow  *entry // the pairs beyond MaxKeys
	lastSweep time.Time
	closed    bool
}

// suppressed is a line to write: n lines of e's pair were dropped.
type suppressed struct {
	next  slog.Handler
	key   key
	n     int
	since time.Time
}

func (s suppressed) write() {
	if s.n == 0 || s.next == nil {
		return
	}
	r := slog.NewRecord(time.Now(), s.key.level, fmt.Sprintf(SuppressedFormat, s.n), 0)
	like := s.key.msg
	if like == "" {
		like = "(messages beyond the tracked ones)"
	}
	r.AddAttrs(slog.String("like", like), slog.Time("since", s.since))
	s.next.Handle(context.Background(), r)
}

// take returns e's dropped lines as a line to write and zeroes them.
func (e *entry) take() suppressed {
	s := suppressed{next: e.next, key: e.key, n: e.dropped, since: e.start}
	e.dropped = 0
	return s
}

func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	pass, before := h.lim.count(r.Level, r.Message, h.next)
	before.write()
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), lim: h.lim}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), lim: h.lim}
}

// Close writes the counts of lines dropped so far and stops the timers
// that would write them; later dropped lines are counted when their pair
// logs again after its window.
func (h *Handler) Close() {
	l := h.lim
	l.mu.Lock()
	l.closed = true
	var out []suppressed
	for _, e := range l.all() {
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		if e.dropped > 0 {
			out = append(out, e.take())
		}
	}
	l.mu.Unlock()
	for _, s := range out {
		s.write()
	}
}

// all is every entry, the overflow one included. l.mu is held.
func (l *limiter) all() []*entry {
	es := make([]*entry, 0, len(l.keys)+1)
	for _, e := range l.keys {
		es = append(es, e)
	}
	if l.overflow != nil {
		es = append(es, l.overflow)
	}
	return es
}

// count counts a line: pass says whether to write it, before is a count
// of dropped lines to write first (a window of its pair ended).
func (l *limiter) count(level slog.Level, msg string, next slog.Handler) (pass bool, before suppressed) {
	if len(msg) > maxKeyLen {
		msg = msg[:maxKeyLen]
	}
	k := key{level, msg}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(k, now)
	if now.Sub(e.start) >= l.l.Window {
		before = e.take()
		e.start, e.n = now, 0
	}
	e.n++
	if e.n <= l.l.Burst {
		return true, before
	}
	e.dropped++
	e.next = next
	if e.timer == nil && !l.closed {
		e.timer = time.AfterFunc(e.start.Add(l.l.Window).Sub(now), func() { l.windowEnded(e) })
	}
	return false, before
}

// entry finds or makes k's entry. l.mu is held.
func (l *limiter) entry(k key, now time.Time) *entry {
	if e, ok := l.keys[k]; ok {
		return e
	}
	if len(l.keys) >= l.l.MaxKeys {
		l.sweep(now)
	}
	if len(l.keys) >= l.l.MaxKeys {
		if l.overflow == nil {
			l.overflow = &entry{key: key{level: slog.LevelWarn}, start: now}
		}
		return l.overflow
	}
	e := &entry{key: k, start: now}
	l.keys[k] = e
	return e
}

// sweep forgets the pairs whose window ended with nothing left to count,
// at most once a second (it walks every pair). l.mu is held.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, e := range l.keys {
		if e.dropped == 0 && e.timer == nil && now.Sub(e.start) >= l.l.Window {
			delete(l.keys, k)
		}
	}
}

// windowEnded writes the count of e's dropped lines.
func (l *limiter) windowEnded(e *entry) {
	l.mu.Lock()
	e.timer = nil
	s := e.take()
	l.mu.Unlock()
	s.write()
}
