package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/certchat/certchat/internal/testproc"
	"github.com/rogpeppe/go-internal/testscript"
)

// The CLI tests are testscripts in testdata/script, as filippo.io/age has
// them: the test binary doubles as the chat command, so every script runs
// the real CLI in its own process.

func TestMain(m *testing.M) {
	if code, ok := helperMain(); ok {
		os.Exit(code)
	}
	testscript.Main(cleanupM{m}, map[string]func(){
		"chat": func() {
			os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
		},
	})
}

// cleanupM removes, once the tests ran, the chat binary that process tests
// build with testproc.ChatBinary.
type cleanupM struct{ m *testing.M }

func (c cleanupM) Run() int {
	defer testproc.Cleanup()
	return c.m.Run()
}

func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			// A fresh home for every script: nothing of the user's leaks in.
			home := filepath.Join(e.WorkDir, "home")
			if err := os.MkdirAll(home, 0o700); err != nil {
				return err
			}
			e.Setenv("HOME", home)
			e.Setenv("CERTCHAT_HOME", filepath.Join(e.WorkDir, "certchat"))
			if v := os.Getenv("CERTCHAT_CI"); v != "" {
				e.Setenv("CERTCHAT_CI", v)
			}
			// Under -race every chat process would sleep a second at exit
			// waiting for racing goroutines to report; ours have none left.
			if os.Getenv("GORACE") == "" {
				e.Setenv("GORACE", "atexit_sleep_ms=0")
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "openssl":
				// CI must not pass by skipping: there a missing openssl fails.
				_, err := exec.LookPath("openssl")
				if err != nil && os.Getenv("CERTCHAT_CI") != "" {
					return false, fmt.Errorf("openssl is required when CERTCHAT_CI is set: %v", err)
				}
				return err == nil, nil
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":   cmdStatus,
			"cmpre":    cmdCmpRE,
			"jsonvar":  cmdJSONVar,
			"capture":  cmdCapture,
			"truncate": cmdTruncate,
			"perm":     cmdPerm,
			"count":    cmdCount,
		},
	})
}

// status N PROG [ARGS...] runs PROG and checks that it exits with N. For chat
// failing, stderr must be exactly one line "chat: ...".
func cmdStatus(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with %d, want %d", args[1], got, want)
	}
	if args[1] == "chat" && want != 0 {
		stderr := ts.ReadFile("stderr")
		if !strings.HasPrefix(stderr, "chat: ") || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
			ts.Fatalf("stderr is not one line `chat: ...`: %q", stderr)
		}
	}
}

// cmpre FILE GOLDEN compares FILE (or stdout/stderr) with GOLDEN line by
// line, each golden line an anchored regexp. ${VAR} in GOLDEN is replaced by
// the variable's value, quoted for regexps.
func cmdCmpRE(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cmpre FILE GOLDEN")
	}
	got := strings.Split(strings.TrimSuffix(ts.ReadFile(args[0]), "\n"), "\n")
	golden := strings.Split(strings.TrimSuffix(ts.ReadFile(args[1]), "\n"), "\n")
	if len(got) != len(golden) {
		ts.Fatalf("%s has %d lines, %s %d:\n%s", args[0], len(got), args[1], len(golden), strings.Join(got, "\n"))
	}
	for i := range got {
		pat := os.Expand(golden[i], func(k string) string { return regexp.QuoteMeta(ts.Getenv(k)) })
		re, err := regexp.Compile("^(?:" + pat + ")$")
		ts.Check(err)
		if !re.MatchString(got[i]) {
			ts.Fatalf("%s line %d:\n  %q\ndoes not match\n  %s", args[0], i+1, got[i], pat)
		}
	}
}

// jsonvar VAR FIELD [FILE] sets VAR to a top-level string or bool field of
// the JSON object in FILE (default stdout).
func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: jsonvar VAR FIELD [FILE]")
	}
	file := "stdout"
	if len(args) == 3 {
		file = args[2]
	}
	var m map[string]any
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(file)), &m))
	v, ok := m[args[1]]
	if !ok {
		ts.Fatalf("no field %q in %s", args[1], file)
	}
	ts.Setenv(args[0], fmt.Sprint(v))
}

// capture VAR REGEXP [FILE] sets VAR to the first submatch of REGEXP in
// FILE (default stdout).
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: capture VAR REGEXP [FILE]")
	}
	file := "stdout"
	if len(args) == 3 {
		file = args[2]
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile(file))
	if len(m) < 2 {
		ts.Fatalf("%s does not match %s", file, args[1])
	}
	ts.Setenv(args[0], m[1])
}

// truncate FILE SIZE cuts FILE to SIZE bytes.
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	ts.Check(os.Truncate(ts.MkAbs(args[0]), n))
}

// perm FILE MODE checks a file's permission bits (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if st.Mode().Perm() != os.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %#o", args[0], st.Mode().Perm(), want)
	}
}

// count N REGEXP [FILE] checks that REGEXP matches N times in FILE (default
// stdout).
func cmdCount(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: count N REGEXP [FILE]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	file := "stdout"
	if len(args) == 3 {
		file = args[2]
	}
	re, err := regexp.Compile("(?m)" + args[1])
	ts.Check(err)
	if got := len(re.FindAllString(ts.ReadFile(file), -1)); got != want {
		ts.Fatalf("%s matches %s %d times, want %d", file, args[1], got, want)
	}
}
