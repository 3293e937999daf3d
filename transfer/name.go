package transfer

import (
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes bounds a cleaned name; most file systems allow 255, and
// " (999)" may be added.
const maxNameBytes = 200

// CleanName makes a sender's file name safe to create in the downloads
// folder and to show: only its last path element, without control,
// format or bidirectional characters (which can make "evil.exe" read as
// "exe.txt"), without leading dots or spaces (no hidden files, no "..")
// and at most 200 bytes, keeping the extension. A name with nothing left
// is "file".
func CleanName(name string) string {
	name = strings.ToValidUTF8(name, "")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimLeft(name, ". \t")
	name = strings.TrimRight(name, " \t")
	if len(name) > maxNameBytes {
		// The cut may land just after a space.
		name = strings.TrimRight(shorten(name), " \t")
	}
	if name == "" {
		return "file"
	}
	return name
}

// unsafeRune: controls, format characters (bidi overrides and isolates,
// zero-width joiners), line and paragraph separators, and characters
// file systems reserve.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zl, r) ||
		unicode.Is(unicode.Zp, r) || r == utf8.RuneError || strings.ContainsRune(`:*?"<>|`, r)
}

// shorten cuts a long name to maxNameBytes at a rune boundary, keeping a
// short extension.
func shorten(name string) string {
	ext := filepath.Ext(name)
	if len(ext) > 16 {
		ext = ""
	}
	stem := name[:len(name)-len(ext)]
	limit := maxNameBytes - len(ext)
	for len(stem) > limit {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	return stem + ext
}
