package identity

import (
	"strings"
	"unicode"

	"github.com/mtibben/confusables"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// NameKey is what two names are compared by wherever the trust store asks
// "is this the same name?" (a changed key, a free label): names with the
// same key read the same to a person, so they must never stand for two
// different keys unnoticed.
//
// It is the name as shown (unprintable, zero-width and bidi characters
// dropped, SanitizeName), in Unicode NFKC, case-folded, reduced to its
// confusable skeleton (Unicode TR39: Cyrillic "о" reads as Latin "o",
// capital "I" and digit "1" as "l", "rn" as "m"), with leading and
// trailing punctuation, symbols and spaces trimmed ("alice." reads as
// "alice") and inner runs of spaces made one. The skeleton is taken
// before case folding too, because folding first would turn "aIice"
// into "aiice" and lose its likeness to "alice". A name with nothing
// left has the key "", which matches nothing.
func NameKey(name string) string {
	s := norm.NFKC.String(printableName(name))
	s = confusables.Skeleton(s)
	s = norm.NFKC.String(cases.Fold().String(s))
	s = confusables.Skeleton(s)
	s = strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsSpace(r) || !unicode.IsPrint(r)
	})
	return strings.Join(strings.Fields(s), " ")
}

// SameName reports whether two names read the same (NameKey); names that
// read as nothing are never the same.
func SameName(a, b string) bool {
	ka := NameKey(a)
	return ka != "" && ka == NameKey(b)
}
