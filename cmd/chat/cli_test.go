package main

import (
	"bytes"
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

// runIn runs the CLI in this process with empty stdin.
func runIn(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// Every command has help on stdout with exit 0, through all three spellings.
func TestEveryCommandHelp(t *testing.T) {
	for _, c := range commands() {
		if c.name == "" {
			continue
		}
		words := strings.Fields(c.name)
		for _, args := range [][]string{
			append(slices.Clone(words), "--help"),
			append(slices.Clone(words), "-h"),
			append([]string{"help"}, words...),
		} {
			code, out, errOut := runIn(t, args...)
			if code != 0 || errOut != "" {
				t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: chat "+c.name+" ") || !strings.Contains(out, c.summary) || !strings.Contains(out, "\nFlags:\n") {
				t.Errorf("%q: help is\n%s", args, out)
			}
		}
	}
	code, out, _ := runIn(t, "help")
	if code != 0 {
		t.Fatal(code)
	}
	for _, c := range commands() {
		if c.name != "" && !strings.Contains(out, "\n  "+c.name+" ") {
			t.Errorf("overview lacks %q", c.name)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"contacts"},
		{"contacts", "frobnicate"},
		{"--home", "/nonexistent", "frobnicate"},
		{"help", "frobnicate"},
		{"id", "--bogus"},
		{"id", "-json=maybe"},
		{"id", "extra"},
		{"init", "--name"},
		{"contacts", "add"},
		{"ca", "sign", "--days", "many", "x"},
		{"--bogus"},
	} {
		code, out, errOut := runIn(t, args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if out != "" {
			t.Errorf("%q: stdout %q", args, out)
		}
		if !strings.HasPrefix(errOut, "chat: ") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%q: stderr is not one line: %q", args, errOut)
		}
	}
}

func TestFindCommand(t *testing.T) {
	cs := commands()
	for _, tc := range []struct {
		args []string
		name string // "-" for none
		rest []string
	}{
		{nil, "", nil},
		{[]string{"--home", "d"}, "", []string{"--home", "d"}},
		{[]string{"id"}, "id", nil},
		{[]string{"id", "--json"}, "id", []string{"--json"}},
		{[]string{"--home", "d", "id"}, "id", []string{"--home", "d"}},
		{[]string{"--home=d", "--passphrase-file", "p", "ca", "sign", "x.csr"}, "ca sign", []string{"--home=d", "--passphrase-file", "p", "x.csr"}},
		{[]string{"contacts", "add", "ID", "--name", "bob"}, "contacts add", []string{"ID", "--name", "bob"}},
		{[]string{"--name", "x"}, "", []string{"--name", "x"}},
		{[]string{"verify", "bob"}, "verify", []string{"bob"}},
		{[]string{"frobnicate"}, "-", nil},
		{[]string{"contacts"}, "-", nil},
		{[]string{"contacts", "frob"}, "-", nil},
	} {
		c, rest := findCommand(cs, tc.args)
		switch {
		case tc.name == "-":
			if c != nil {
				t.Errorf("%q: found %q", tc.args, c.name)
			}
		case c == nil:
			t.Errorf("%q: no command", tc.args)
		case c.name != tc.name || !slices.Equal(rest, tc.rest):
			t.Errorf("%q: %q %q, want %q %q", tc.args, c.name, rest, tc.name, tc.rest)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		name string
	}{
		{[]string{"a", "--name", "bob", "b"}, []string{"a", "b"}, "bob"},
		{[]string{"--name=bob", "a"}, []string{"a"}, "bob"},
		{[]string{"a", "--", "--name", "x"}, []string{"a", "--name", "x"}, ""},
		{[]string{"--", "-weird", "--name", "x"}, []string{"-weird", "--name", "x"}, ""},
		{[]string{"--name", "bob", "--", "--"}, []string{"--"}, "bob"},
		{[]string{"-"}, []string{"-"}, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		name := fs.String("name", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *name != tc.name {
			t.Errorf("%q: %q name=%q %v; want %q name=%q", tc.args, pos, *name, err, tc.pos, tc.name)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(discard)
	if _, err := parseInterspersed(fs, []string{"a", "--nope"}); err == nil {
		t.Error("unknown flag after a positional accepted")
	}
}

func TestReport(t *testing.T) {
	var b bytes.Buffer
	if code := report(&b, nil); code != 0 || b.Len() != 0 {
		t.Errorf("nil: %d %q", code, b.String())
	}
	b.Reset()
	if code := report(&b, usageErr("give %s", "X")); code != 2 || b.String() != "chat: give X\n" {
		t.Errorf("usage: %d %q", code, b.String())
	}
	b.Reset()
	if code := report(&b, errors.New("first\nsecond\t third")); code != 1 || b.String() != "chat: first second third\n" {
		t.Errorf("error: %d %q", code, b.String())
	}
}

func TestUntilText(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		-time.Second:           "EXPIRED",
		0:                      "0 days left",
		36 * time.Hour:         "1 day left",
		365 * 24 * time.Hour:   "365 days left",
		10 * 24 * time.Hour:    "10 days left",
		10*24*time.Hour - 1e9:  "9 days left",
		2*24*time.Hour + 1e9:   "2 days left",
		400 * 24 * time.Hour:   "400 days left",
		1000 * 24 * time.Hour:  "1000 days left",
		30*24*time.Hour + 3600: "30 days left",
	} {
		if got := untilText(now, now.Add(d)); got != want {
			t.Errorf("untilText(%v) = %q, want %q", d, got, want)
		}
	}
}
