package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/certchat/certchat/identity"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1234", 1234, true},
		{"16MiB", 16 << 20, true},
		{"16 mib", 16 << 20, true},
		{"1.5GiB", 3 << 29, true},
		{"500K", 500 << 10, true},
		{"2GB", 2 << 30, true},
		{"10B", 10, true},
		{"", 0, false},
		{"-1", 0, false},
		{"lots", 0, false},
		{"2TiB", 0, false},
		{"9999GiB", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}

// The downloads folder: $XDG_DOWNLOAD_DIR, else ~/Downloads if it
// exists, else the home's downloads.
func TestDefaultDownloads(t *testing.T) {
	user := t.TempDir()
	h := identity.Home{Dir: filepath.Join(user, "cc")}
	t.Setenv("HOME", user)
	t.Setenv("XDG_DOWNLOAD_DIR", "")
	if got := defaultDownloads(h); got != h.Path("downloads") {
		t.Errorf("without ~/Downloads: %s", got)
	}
	if err := os.Mkdir(filepath.Join(user, "Downloads"), 0o700); err != nil {
		t.Fatal(err)
	}
	if got := defaultDownloads(h); got != filepath.Join(user, "Downloads") {
		t.Errorf("with ~/Downloads: %s", got)
	}
	t.Setenv("XDG_DOWNLOAD_DIR", "/srv/in")
	if got := defaultDownloads(h); got != "/srv/in" {
		t.Errorf("with $XDG_DOWNLOAD_DIR: %s", got)
	}
	t.Setenv("XDG_DOWNLOAD_DIR", "relative")
	if got := defaultDownloads(h); got != filepath.Join(user, "Downloads") {
		t.Errorf("a relative $XDG_DOWNLOAD_DIR is not used: %s", got)
	}
}
