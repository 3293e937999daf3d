package certchat

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecurityDocNamesTests: every test docs/SECURITY.md names for an
// attack exists, so the page cannot promise a test that was renamed or
// removed. A `TestX` or `FuzzX` must be a function of a _test.go file of
// the module (in the file or folder the row names, if it names one);
// `TestScripts/name` a script cmd/chat/testdata/script/name.txtar.
func TestSecurityDocNamesTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("docs", "SECURITY.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Every test function of the module, by the file that holds it.
	funcs := map[string][]string{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)[A-Za-z0-9_]*)\(`)
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			funcs[string(m[1])] = append(funcs[string(m[1])], filepath.ToSlash(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile("`((?:Test|Fuzz)[A-Za-z0-9_]*)(?:/([a-z0-9_]+))?`")
	where := regexp.MustCompile(`\(([a-z0-9_]+(?:/[a-z0-9_.]+)+|[a-z0-9_]+\.go)[,)]`)
	named := 0
	for i, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		// A row's test cell: tests separated by ";", each group followed by
		// the file or folder that holds it, if given.
		for _, group := range strings.Split(cells[len(cells)-1], ";") {
			place := ""
			if m := where.FindStringSubmatch(group); m != nil {
				place = m[1]
			}
			for _, m := range name.FindAllStringSubmatch(group, -1) {
				named++
				fn, script := m[1], m[2]
				files := funcs[fn]
				if len(files) == 0 {
					t.Errorf("docs/SECURITY.md:%d names %s, which no test file defines", i+1, fn)
					continue
				}
				if script != "" {
					if _, err := os.Stat(filepath.Join("cmd", "chat", "testdata", "script", script+".txtar")); err != nil {
						t.Errorf("docs/SECURITY.md:%d names TestScripts/%s: %v", i+1, script, err)
					}
					continue
				}
				if place != "" && !inPlace(files, place) {
					t.Errorf("docs/SECURITY.md:%d places %s in %s; it is in %s", i+1, fn, place, strings.Join(files, ", "))
				}
			}
		}
	}
	if named < 100 {
		t.Fatalf("only %d test names found in docs/SECURITY.md's tables: the parsing is broken", named)
	}
}

// inPlace reports whether one of files is place (a file) or lies in it
// (a folder, or a file's folder).
func inPlace(files []string, place string) bool {
	dir := place
	if strings.HasSuffix(place, ".go") {
		dir = filepath.ToSlash(filepath.Dir(place))
	}
	for _, f := range files {
		if f == place || filepath.ToSlash(filepath.Dir(f)) == dir || strings.HasPrefix(f, place+"/") {
			return true
		}
	}
	return false
}
