package certchat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

const module = "github.com/certchat/certchat"

// allowedImports is the direction of the dependencies (docs/ARCHITECTURE.md,
// "Dependencies"): for each package of the module (by its path inside the
// module; "" is the root), the packages of the module its non-test files
// may import. A package missing here fails the test: add it here and to
// docs/ARCHITECTURE.md. Entries for packages that do not exist are fine.
var allowedImports = map[string][]string{
	"":                           {},
	"identity":                   {},
	"e2e":                        {"identity"},
	"e2e/ratchet":                {"identity"},
	"store":                      {"identity", "e2e", "e2e/ratchet", "internal/boltfile"},
	"mailbox":                    {"identity", "e2e", "e2e/ratchet"},
	"group":                      {"identity"},
	"transfer":                   {},
	"invite":                     {"identity"},
	"certdht":                    {},
	"node":                       {"identity", "e2e", "e2e/ratchet", "store", "mailbox", "invite", "transfer", "certdht", "group"},
	"relay":                      {"identity", "e2e", "e2e/ratchet", "mailbox", "internal/boltfile", "certdht"},
	"ui":                         {"identity", "e2e", "store", "node", "transfer", "group"},
	"cmd/chat":                   {"identity", "e2e", "e2e/ratchet", "store", "mailbox", "invite", "transfer", "certdht", "node", "relay", "ui", "internal/logcap", "group"},
	"internal/testproc":          {"identity"},
	"internal/logcap":            {},
	"internal/boltfile":          {},
	"internal/boltfile/bolttest": {},
}

// testOnly are packages that only _test.go files may import.
var testOnly = []string{"internal/testproc", "internal/boltfile/bolttest"}

// libp2pAllowed is, for the packages below the node, every libp2p (or
// multiformats) package their non-test files may import: identities are
// libp2p peer IDs and keys, and e2e's channel runs on a stream whose peer
// it checks, but neither touches a host, a transport or the network.
// Packages not listed here may import any libp2p package.
var libp2pAllowed = map[string][]string{
	"identity":    {"github.com/libp2p/go-libp2p/core/crypto", "github.com/libp2p/go-libp2p/core/peer"},
	"e2e":         {"github.com/libp2p/go-libp2p/core/peer"},
	"e2e/ratchet": {},
	// invite reads peer IDs and multiaddrs, the addresses it carries.
	"invite": {"github.com/libp2p/go-libp2p/core/peer", "github.com/multiformats/go-multiaddr", "github.com/multiformats/go-multiaddr/net"},
}

// listedPackage is what `go list` says of one package.
type listedPackage struct {
	ImportPath string
	Imports    []string // non-test imports
	Error      *struct{ Err string }
}

// checkImports returns one line for each import of pkgs that breaks the
// rules.
func checkImports(pkgs []listedPackage, allowed, libp2p map[string][]string, testOnly []string) []string {
	var bad []string
	for _, p := range pkgs {
		rel, ok := relPath(p.ImportPath)
		if !ok {
			continue
		}
		may, known := allowed[rel]
		if !known {
			bad = append(bad, fmt.Sprintf("%s is not in the table of allowed imports: add it to allowedImports in architecture_test.go and to docs/ARCHITECTURE.md", p.ImportPath))
			continue
		}
		lowLibp2p, restricted := libp2p[rel]
		for _, imp := range p.Imports {
			if impRel, internal := relPath(imp); internal {
				switch {
				case slices.Contains(testOnly, impRel):
					bad = append(bad, fmt.Sprintf("%s imports %s, which only _test.go files may import", p.ImportPath, imp))
				case !slices.Contains(may, impRel):
					bad = append(bad, fmt.Sprintf("%s imports %s against the dependency direction (it may import: %s)", p.ImportPath, imp, list(may)))
				}
				continue
			}
			if restricted && isLibp2p(imp) && !slices.Contains(lowLibp2p, imp) {
				bad = append(bad, fmt.Sprintf("%s imports %s: below the node only %s may be imported", p.ImportPath, imp, list(lowLibp2p)))
			}
		}
	}
	return bad
}

// relPath is an import path's path inside the module.
func relPath(importPath string) (string, bool) {
	if importPath == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(importPath, module+"/")
	return rel, ok
}

func isLibp2p(imp string) bool {
	return strings.HasPrefix(imp, "github.com/libp2p/") || strings.HasPrefix(imp, "github.com/multiformats/")
}

func list(s []string) string {
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, ", ")
}

// goList lists the module's packages; the test runs in the module root.
func goList(t *testing.T) []listedPackage {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-e", "-json=ImportPath,Imports,Error", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages; is the test running in the module root?", len(pkgs))
	}
	return pkgs
}

// TestImportDirection fails on every import against the direction of
// docs/ARCHITECTURE.md. It skips nothing.
func TestImportDirection(t *testing.T) {
	for _, line := range checkImports(goList(t), allowedImports, libp2pAllowed, testOnly) {
		t.Error(line)
	}
}

// TestCheckImports shows that the checker rejects what it must.
func TestCheckImports(t *testing.T) {
	pkg := func(rel string, imports ...string) listedPackage {
		p := listedPackage{ImportPath: module + "/" + rel}
		if rel == "" {
			p.ImportPath = module
		}
		for _, imp := range imports {
			if _, ours := allowedImports[imp]; ours || imp == "node/mailbox" {
				imp = module + "/" + imp
			}
			p.Imports = append(p.Imports, imp)
		}
		return p
	}
	good := []listedPackage{
		pkg(""),
		pkg("identity", "crypto/ed25519", "github.com/libp2p/go-libp2p/core/peer", "github.com/libp2p/go-libp2p/core/crypto"),
		pkg("e2e", "identity", "crypto/tls", "github.com/libp2p/go-libp2p/core/peer"),
		pkg("e2e/ratchet", "crypto/mlkem"),
		pkg("store", "identity", "e2e", "internal/boltfile", "go.etcd.io/bbolt"),
		pkg("mailbox", "identity", "e2e", "github.com/libp2p/go-libp2p/core/host"),
		pkg("node", "identity", "e2e", "e2e/ratchet", "store", "mailbox", "github.com/libp2p/go-libp2p/p2p/discovery/mdns"),
		pkg("relay", "identity", "e2e", "e2e/ratchet", "mailbox", "internal/boltfile", "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"),
		pkg("ui", "identity", "e2e", "store", "node"),
		pkg("cmd/chat", "identity", "node", "relay", "ui"),
		pkg("internal/testproc", "identity", "os/exec"),
		pkg("internal/boltfile", "go.etcd.io/bbolt"),
		pkg("internal/boltfile/bolttest", "go.etcd.io/bbolt"),
		{ImportPath: "github.com/other/module", Imports: []string{module + "/node"}},
	}
	if bad := checkImports(good, allowedImports, libp2pAllowed, testOnly); len(bad) > 0 {
		t.Fatalf("the final layout is refused:\n%s", strings.Join(bad, "\n"))
	}
	for _, tc := range []struct {
		name string
		pkg  listedPackage
		want string
	}{
		{"identity imports node", pkg("identity", "node"), "identity imports " + module + "/node against"},
		{"relay imports node", pkg("relay", "mailbox", "node"), "relay imports " + module + "/node against"},
		{"e2e imports store", pkg("e2e", "store"), "e2e imports " + module + "/store against"},
		{"mailbox imports node", pkg("mailbox", "node"), "against the dependency direction"},
		{"ui imports relay", pkg("ui", "relay"), "against the dependency direction"},
		{"e2e imports ratchet", pkg("e2e", "e2e/ratchet"), "against the dependency direction"},
		{"root imports identity", pkg("", "identity"), "against the dependency direction"},
		{"unknown package", pkg("node/mailbox", "identity"), "node/mailbox is not in the table"},
		{"non-test import of testproc", pkg("node", "internal/testproc"), "only _test.go files"},
		{"non-test import of bolttest", pkg("store", "internal/boltfile/bolttest"), "only _test.go files"},
		{"node imports boltfile", pkg("node", "internal/boltfile"), "against the dependency direction"},
		{"boltfile imports store", pkg("internal/boltfile", "store"), "against the dependency direction"},
		{"identity imports a host", pkg("identity", "github.com/libp2p/go-libp2p/core/host"), "identity imports github.com/libp2p/go-libp2p/core/host"},
		{"e2e imports p2p", pkg("e2e", "github.com/libp2p/go-libp2p/p2p/net/swarm"), "below the node"},
		{"e2e imports core/crypto", pkg("e2e", "github.com/libp2p/go-libp2p/core/crypto"), "below the node"},
		{"ratchet imports multiaddr", pkg("e2e/ratchet", "github.com/multiformats/go-multiaddr"), "below the node"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := checkImports([]listedPackage{tc.pkg}, allowedImports, libp2pAllowed, testOnly)
			if len(bad) != 1 || !strings.Contains(bad[0], tc.want) {
				t.Errorf("got %q, want one line containing %q", bad, tc.want)
			}
		})
	}
	// A package listed as test-only fails even if the table lets it be imported.
	loose := map[string][]string{"node": {"internal/testproc"}}
	if bad := checkImports([]listedPackage{pkg("node", "internal/testproc")}, loose, nil, testOnly); len(bad) != 1 {
		t.Errorf("node importing internal/testproc: got %q, want one line", bad)
	}
}

// maxMethods is the most methods a type of the module may have (issue 10:
// "no type keeps more than about 40 methods"): a type that grows past it
// is split into parts that own their state (docs/ARCHITECTURE.md, "Where
// a feature goes").
const maxMethods = 40

// tooManyMethodsAllowed are the types (package path inside the module,
// ".", type name) allowed more than maxMethods for now, each with why.
// Nothing else may join; an entry whose type fits again fails the test,
// so it is removed.
var tooManyMethodsAllowed = map[string]string{}

// TestMethodCount: no type of the module's non-test files has more than
// maxMethods methods (on T and *T together), apart from the allowed ones.
func TestMethodCount(t *testing.T) {
	counts, err := methodCounts(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) < 50 {
		t.Fatalf("counted the methods of %d types: the walk missed the module", len(counts))
	}
	for _, p := range checkMethodCounts(counts, maxMethods, tooManyMethodsAllowed) {
		t.Error(p)
	}
}

// TestCheckMethodCounts: the check sees methods on T and *T and on
// generic types, ignores test files, and holds the allow-list to its
// purpose.
func TestCheckMethodCounts(t *testing.T) {
	src := func(typ string, n int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "package p\n\ntype %s[X any] struct{}\n", typ)
		for i := range n {
			recv := "*" + typ + "[X]"
			if i%2 == 0 {
				recv = typ + "[X]"
			}
			fmt.Fprintf(&b, "func (%s) M%d() {}\n", recv, i)
		}
		return b.String()
	}
	fsys := fstest.MapFS{
		"p/big.go":        {Data: []byte(src("Big", maxMethods+1))},
		"p/fits.go":       {Data: []byte(src("Fits", maxMethods))},
		"p/fits_test.go":  {Data: []byte("package p\n" + strings.Join(methodsOn("Fits", 5), "\n"))},
		"p/testdata/x.go": {Data: []byte(src("Skipped", maxMethods+1))},
	}
	counts, err := methodCounts(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if counts["p.Big"] != maxMethods+1 || counts["p.Fits"] != maxMethods || counts["p.Skipped"] != 0 {
		t.Fatalf("counts %v", counts)
	}
	if got := checkMethodCounts(counts, maxMethods, nil); len(got) != 1 || !strings.Contains(got[0], "p.Big") {
		t.Errorf("without an allowance: %q, want p.Big refused", got)
	}
	if got := checkMethodCounts(counts, maxMethods, map[string]string{"p.Big": "why"}); len(got) != 0 {
		t.Errorf("with p.Big allowed: %q", got)
	}
	if got := checkMethodCounts(counts, maxMethods, map[string]string{"p.Big": "why", "p.Fits": "why"}); len(got) != 1 || !strings.Contains(got[0], "p.Fits") {
		t.Errorf("with p.Fits allowed though it fits: %q, want the allowance refused", got)
	}
}

func methodsOn(typ string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("func (*%s[X]) T%d() {}", typ, i))
	}
	return out
}

// methodCounts counts, for each type declared with methods in the
// non-test Go files of fsys (testdata and hidden directories skipped),
// its methods on T and *T, keyed by "dir.Type" ("dir" the package's
// directory, "." for the root).
func methodCounts(fsys fs.FS) (map[string]int, error) {
	counts := map[string]int{}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		src, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || len(fd.Recv.List) != 1 {
				continue
			}
			if typ := receiverType(fd.Recv.List[0].Type); typ != "" {
				counts[filepath.ToSlash(filepath.Dir(path))+"."+typ]++
			}
		}
		return nil
	})
	return counts, err
}

// receiverType is the name of a method's receiver type: T, *T, T[X] or
// *T[X, Y].
func receiverType(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	switch x := e.(type) {
	case *ast.IndexExpr:
		e = x.X
	case *ast.IndexListExpr:
		e = x.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// checkMethodCounts lists the types over limit methods that are not
// allowed, and the allowances no longer needed.
func checkMethodCounts(counts map[string]int, limit int, allowed map[string]string) []string {
	var problems []string
	for typ, n := range counts {
		if _, ok := allowed[typ]; n > limit && !ok {
			problems = append(problems, fmt.Sprintf("%s has %d methods, more than %d: split it into parts that own their state (docs/ARCHITECTURE.md)", typ, n, limit))
		}
	}
	for typ := range allowed {
		if counts[typ] <= limit {
			problems = append(problems, fmt.Sprintf("%s has %d methods now, at most %d: remove it from tooManyMethodsAllowed", typ, counts[typ], limit))
		}
	}
	slices.Sort(problems)
	return problems
}
