package ui

import (
	"slices"
	"strings"

	"github.com/certchat/certchat/identity"
)

// Tab completion of the input line. When the line starts with "/", Tab
// completes the command name, then, after a command that takes a contact,
// the contact's name; a word starting with "@" completes to a contact's
// name anywhere. Otherwise Tab switches chats. Several matches: each Tab
// puts in the next, and the notice line lists them.

// contactCommands take a contact as their first argument.
// (/invite, /kick and /admin: the member, in the open group).
var contactCommands = []string{"admin", "block", "invite", "keep", "kick", "remove", "rename", "trust", "unblock", "verify", "whois"}

// completion is what Tab does to a line: the words that may replace the
// line from start on (each a whole replacement), or none.
type completion struct {
	start   int      // byte offset of the word completed
	matches []string // replacements for text[start:], in order
}

// completeLine finds the completion for text with the cursor at its end.
// ok is false when Tab is not about completing (the line does not start
// with "/" and its last word does not start with "@"): it switches chats.
func completeLine(text string, commands, names []string) (completion, bool) {
	start := strings.LastIndexByte(text, ' ') + 1
	word := text[start:]
	switch {
	case strings.HasPrefix(text, "/") && start == 0:
		return completion{start: 0, matches: matchWords(word[1:], commands, "/", " ")}, true
	case strings.HasPrefix(word, "@"):
		return completion{start: start, matches: matchWords(word[1:], names, "@", "")}, true
	case strings.HasPrefix(text, "/") && !strings.HasPrefix(text, "//"):
		cmd, rest, _ := strings.Cut(text[1:], " ")
		if !slices.Contains(contactCommands, strings.ToLower(cmd)) {
			return completion{start: start}, true
		}
		// The contact is the whole argument (names may have spaces),
		// except for /rename, whose first word names the contact.
		argStart := len(cmd) + 2
		if strings.EqualFold(cmd, "rename") && strings.Contains(rest, " ") {
			return completion{start: start}, true
		}
		return completion{start: argStart, matches: matchWords(text[argStart:], names, "", "")}, true
	}
	return completion{}, false
}

// matchWords lists the candidates that start with prefix (case and
// look-alike letters aside), each as prepend+candidate+appended, sorted
// and without repeats.
func matchWords(prefix string, candidates []string, prepend, appended string) []string {
	var out []string
	lower := strings.ToLower(prefix)
	for _, c := range candidates {
		if strings.HasPrefix(strings.ToLower(c), lower) || (prefix != "" && identity.SameName(prefixOf(c, prefix), prefix)) {
			out = append(out, prepend+c+appended)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	return slices.Compact(out)
}

// prefixOf is the start of s as long (in runes) as p.
func prefixOf(s, p string) string {
	r, n := []rune(s), len([]rune(p))
	return string(r[:min(n, len(r))])
}

// completer remembers the last Tab so the next one puts in the next match.
type completer struct {
	base   string // the line before the first Tab
	comp   completion
	next   int
	result string // the line the last Tab left
}

// tab completes text: the new line, the matches (to list when there are
// several), and whether Tab was about completing at all.
func (c *completer) tab(text string, commands, names []string) (string, []string, bool) {
	if c.result == "" || text != c.result {
		comp, ok := completeLine(text, commands, names)
		if !ok {
			c.reset()
			return text, nil, false
		}
		c.base, c.comp, c.next = text, comp, 0
	}
	if len(c.comp.matches) == 0 {
		c.reset()
		return text, nil, true
	}
	matches := c.comp.matches
	line := c.base[:c.comp.start] + matches[c.next%len(matches)]
	c.next++
	c.result = line
	if len(matches) == 1 {
		c.reset()
	}
	return line, matches, true
}

func (c *completer) reset() { *c = completer{} }

// tabComplete runs Tab on the input line; false means Tab is not about
// completing and switches chats.
func (u *commands) tabComplete() bool {
	text := u.in.GetText()
	line, matches, ok := u.completer.tab(text, commandNames(), u.chatNames())
	if !ok {
		return false
	}
	if line != text {
		u.in.SetText(line)
	}
	switch {
	case len(matches) > 1:
		shown := make([]string, len(matches))
		for i, m := range matches {
			shown[i] = strings.TrimSpace(m)
		}
		u.notes.inform("Tab: " + strings.Join(shown, "  "))
	case len(matches) == 0:
		word := text[strings.LastIndexByte(text, ' ')+1:]
		if word == "" {
			u.notes.inform("Nothing to complete here.")
		} else {
			u.notes.inform("Nothing starts with \u201c" + truncate(oneLine(word), 30) + "\u201d.")
		}
	}
	return true
}

// commandNames are the /commands, without the slash.
func commandNames() []string {
	var out []string
	for _, c := range commandList() {
		out = append(out, c.name)
	}
	return out
}

// chatNames are the names of the people's chats in the list.
func (u *commands) chatNames() []string {
	var out []string
	for _, p := range u.roster.order {
		if c := u.roster.get(p); c.grp == nil {
			out = append(out, c.name())
		}
	}
	return out
}
