package logcap

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the timers' writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

// The finding: an attacker made certchat log about 42 MB in 25 s. A flood
// of 100,000 identical warnings now writes the burst and one line that
// counts the rest.
func TestFloodIsBounded(t *testing.T) {
	var buf lockedBuffer
	h := NewHandler(slog.NewTextHandler(&buf, nil), Limits{Burst: 20, Window: time.Minute, MaxKeys: 16})
	log := slog.New(h).With("peer", "12D3KooWattacker")
	for i := range 100_000 {
		log.Warn("handshake failed", "attempt", i)
	}
	got := lines(buf.String())
	if len(got) != 20 {
		t.Fatalf("%d lines before the window ended, want the burst of 20", len(got))
	}
	h.Close()
	got = lines(buf.String())
	if len(got) != 21 {
		t.Fatalf("%d lines after Close, want 21:\n%s", len(got), buf.String())
	}
	last := got[20]
	if !strings.Contains(last, `level=WARN msg="99980 similar lines suppressed" peer=12D3KooWattacker like="handshake failed"`) {
		t.Errorf("count line: %s", last)
	}
	if n := len(buf.String()); n > 21*200 {
		t.Errorf("%d bytes for the flood", n)
	}
}

// The count line comes when the window ends, without Close; then a new
// burst passes.
func TestCountAtWindowEnd(t *testing.T) {
	var buf lockedBuffer
	h := NewHandler(slog.NewTextHandler(&buf, nil), Limits{Burst: 3, Window: 100 * time.Millisecond})
	defer h.Close()
	log := slog.New(h)
	for range 1000 {
		log.Error("relay refused")
	}
	log.Info("other") // another message has its own burst
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "997 similar lines suppressed") {
		if time.Now().After(deadline) {
			t.Fatalf("no count line:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	log.Error("relay refused")
	got := lines(buf.String())
	if len(got) != 6 || !strings.Contains(got[5], `msg="relay refused"`) || !strings.Contains(got[4], "level=ERROR") {
		t.Errorf("lines:\n%s", buf.String())
	}
}

// Many distinct messages: at most MaxKeys are tracked, the rest share one
// burst, so a flood of distinct messages is bounded too.
func TestDistinctMessagesBounded(t *testing.T) {
	var buf lockedBuffer
	h := NewHandler(slog.NewTextHandler(&buf, nil), Limits{Burst: 5, Window: time.Minute, MaxKeys: 8})
	log := slog.New(h)
	for i := range 10_000 {
		log.Warn(fmt.Sprintf("dial %d failed", i%1000))
	}
	h.Close()
	if n := len(h.lim.keys); n > 8 {
		t.Errorf("%d keys tracked", n)
	}
	got := lines(buf.String())
	// 8 tracked messages pass whole bursts, the others share one; then at
	// most one count line for each and for the shared burst.
	if max := 8*5 + 5 + 9; len(got) > max {
		t.Errorf("%d lines, want at most %d", len(got), max)
	}
	if !strings.Contains(buf.String(), "like=\"(messages beyond the tracked ones)\"") {
		t.Errorf("no count for the shared burst:\n%s", buf.String())
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// A file rotates at its size to PATH.1, and the two never hold more than
// twice the size.
func TestFileRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.log")
	const max = 10 << 10
	f, err := OpenFile(path, max)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rotated := false
	for i := range 5000 {
		line := fmt.Sprintf("line %d %s\n", i, strings.Repeat("x", i%300))
		if _, err := f.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		cur, old := fileSize(t, path), fileSize(t, path+".1")
		if cur > max || cur+old > 2*max {
			t.Fatalf("after line %d: %d + %d bytes, cap %d", i, cur, old, max)
		}
		if old > 0 && !rotated {
			rotated = true
			if old+int64(len(line)) <= max {
				t.Fatalf("rotated early: %d bytes + %d", old, len(line))
			}
		}
	}
	if !rotated {
		t.Fatal("never rotated")
	}
	// The files hold whole lines, the last ones written.
	data, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(data), "\n") || !regexp.MustCompile(`^line \d+ x*\n`).Match(data) {
		t.Errorf("current file starts %q", data[:40])
	}
	if fi, _ := os.Stat(path + ".1"); fi.Mode().Perm() != 0o600 {
		t.Errorf("rotated file mode %v", fi.Mode())
	}
	// A line longer than the cap is cut to it.
	if _, err := f.Write(bytes.Repeat([]byte("y"), 3*max)); err != nil {
		t.Fatal(err)
	}
	if cur, old := fileSize(t, path), fileSize(t, path+".1"); cur > max || cur+old > 2*max {
		t.Fatalf("after a long line: %d + %d bytes", cur, old)
	}
}

// A file that is already at its size when opened rotates at the first
// write.
func TestFileOpenFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.log")
	os.WriteFile(path, bytes.Repeat([]byte("z\n"), 600), 0o600)
	f, err := OpenFile(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write([]byte("new\n"))
	if data, _ := os.ReadFile(path); string(data) != "new\n" {
		t.Errorf("current file %q", data)
	}
	if n := fileSize(t, path+".1"); n != 1200 {
		t.Errorf("old file %d bytes", n)
	}
}

// The handler and the file together: a flood of 100,000 warnings through a
// small file keeps both bounded, and the count line is in the file.
func TestFloodIntoFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.log")
	f, err := OpenFile(path, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(slog.NewTextHandler(f, nil), DefaultLimits)
	log := slog.New(h)
	for range 100_000 {
		log.Warn("e2e handshake refused", "err", "certificate does not match the peer ID")
	}
	h.Close()
	f.Close()
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != DefaultLimits.Burst+1 {
		t.Errorf("%d lines", n)
	}
	if !strings.Contains(string(data), fmt.Sprintf(SuppressedFormat, 100_000-DefaultLimits.Burst)) {
		t.Errorf("no count line:\n%s", data)
	}
}
