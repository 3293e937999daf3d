package transfer_test

import (
	"strings"
	"testing"

	"github.com/certchat/certchat/transfer"
)

func TestCleanName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../.bashrc", "bashrc"},
		{"/etc/passwd", "passwd"},
		{`C:\Users\bob\evil.exe`, "evil.exe"},
		{"..", "file"},
		{".", "file"},
		{"", "file"},
		{"...", "file"},
		{" .hidden", "hidden"},
		{"\x1b[31mred\x1b[0m.txt", "[31mred[0m.txt"},
		{"bell\a\r\n.txt", "bell.txt"},
		{"c1\u009b31m.txt", "c131m.txt"},
		{"photo\u202egpj.exe", "photogpj.exe"},
		{"zero\u200bwidth.txt", "zerowidth.txt"},
		{"line\u2028sep.txt", "linesep.txt"},
		{"bad\xffutf8.txt", "badutf8.txt"},
		{"what?.txt", "what.txt"},
		{"résumé ünïcode.txt", "résumé ünïcode.txt"},
		{"trailing space ", "trailing space"},
		{strings.Repeat("a", 199) + " b", strings.Repeat("a", 199)},
	} {
		if got := transfer.CleanName(tc.in); got != tc.want {
			t.Errorf("CleanName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("é", 300) + ".tar.gz"
	got := transfer.CleanName(long)
	if len(got) > 200 || !strings.HasSuffix(got, ".gz") || !strings.HasPrefix(got, "éé") {
		t.Errorf("a 600-byte name became %d bytes: %q", len(got), got)
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"../../.bashrc", "\x1b]0;x\a", "a/b\\c", "..", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := transfer.CleanName(s)
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\\x00\x1b\a\n\r") || n[0] == '.' || len(n) > 200 {
			t.Fatalf("CleanName(%q) = %q", s, n)
		}
		if transfer.CleanName(n) != n {
			t.Fatalf("CleanName is not idempotent on %q: %q then %q", s, n, transfer.CleanName(n))
		}
	})
}
