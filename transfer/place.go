package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// place moves the verified file at from into dir as name, or "stem
// (2).ext" and so on if that exists: a placeholder created exclusively
// holds the name, then the rename replaces it. The file stays 0600.
func place(dir, name, from string) (string, error) {
	if err := os.Chmod(from, 0o600); err != nil {
		return "", err
	}
	for n := 1; n <= 1000; n++ {
		path := filepath.Join(dir, candidate(name, n))
		ph, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("downloads folder: %w", err)
		}
		if err := ph.Close(); err != nil {
			return "", err
		}
		if err := os.Rename(from, path); err != nil {
			return "", errors.Join(fmt.Errorf("move the received file into place: %w", err), os.Remove(path))
		}
		return path, syncDir(dir)
	}
	return "", fmt.Errorf("downloads folder: 1000 files are already named like %q", name)
}

// candidate is name for the first try, then "stem (n).ext".
func candidate(name string, n int) string {
	if n == 1 {
		return name
	}
	ext := filepath.Ext(name)
	if ext == name {
		ext = ""
	}
	return fmt.Sprintf("%s (%d)%s", strings.TrimSuffix(name, ext), n, ext)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
