package e2e_test

// Golden transcripts, as crypto/tls's own tests keep them: what a full and
// a resumed certchat handshake put on the wire, so that a change to it is
// noticed in review. The record sequence and sizes of each flight, and the
// plaintext ClientHello and ServerHello parsed field by field. Regenerate
// with
//
//	go test ./e2e -run TestGoldenTranscript -update
//
// and review the diff.

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestGoldenTranscript(t *testing.T) {
	w := hosts(t)
	a, b := pairAB(t, w, nil, nil)
	for _, tc := range []struct {
		name, file string
		resumed    bool
	}{
		{"full", "transcript-full.golden", false},
		{"resumed", "transcript-resumed.golden", true},
	} {
		var cw, sw *wire
		c, s := run{client: a, server: b, wrapClient: wrapWith(nil, &cw), wrapServer: wrapWith(nil, &sw)}.do(t)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, nil, []string{"hello"})
		if t.Failed() {
			return
		}
		if c.sess.Info().Resumed != tc.resumed {
			t.Fatalf("%s: resumed = %v", tc.name, c.sess.Info().Resumed)
		}
		got := transcript(t, tc.name, cw.Writes(), sw.Writes())
		path := filepath.Join("testdata", tc.file)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s handshake differs from %s (run with -update and review the diff):\n%s",
				tc.name, path, lineDiff(string(want), got))
		}
	}
}

// transcript describes the handshake: the client's two flights and the
// server's flight and its post-handshake NewSessionTicket, in the order
// they happen.
func transcript(t *testing.T, name string, cw, sw [][]byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# certchat %s handshake, alice (client) and bob (server).\n", name)
	fmt.Fprintf(&b, "# One block per write (flight); records as type, legacy version, length.\n")
	flights := []struct {
		label string
		data  []byte
	}{
		{"client flight 1", cw[0]},
		{"server flight 1", sw[0]},
		{"client flight 2", cw[1]},
		{"server, next write", sw[1]},
	}
	for _, f := range flights {
		fmt.Fprintf(&b, "\n%s:\n", f.label)
		recs, rest := records(f.data)
		if len(rest) != 0 {
			t.Errorf("%s: %d bytes that are not whole records", f.label, len(rest))
		}
		for _, r := range recs {
			fmt.Fprintf(&b, "  %-18s %#04x %5d", recordName(r.typ), r.vers, len(r.body))
			if r.typ == recHandshake {
				fmt.Fprintf(&b, "  %s", handshakeName(r.body[0]))
			}
			b.WriteString("\n")
		}
		if h := parseHello(f.data); h != nil {
			describeHello(&b, h)
		}
	}
	return b.String()
}

func describeHello(b *strings.Builder, h *hello) {
	fmt.Fprintf(b, "    legacy_version %#04x, session_id %d bytes\n", h.version, len(h.sessionID))
	if h.msgType == 1 {
		// Go orders suites by the machine's AES support: compare as a set.
		suites := slices.Clone(h.suites)
		slices.Sort(suites)
		fmt.Fprintf(b, "    cipher_suites (sorted) %s\n", names(suites, func(v uint16) string { return tls.CipherSuiteName(v) }))
	}
	fmt.Fprintf(b, "    extensions %s\n", names(h.extensions, extensionName))
	fmt.Fprintf(b, "    supported_versions %s\n", names(h.versions, tls.VersionName))
	if len(h.groups) > 0 {
		fmt.Fprintf(b, "    supported_groups %s\n", names(h.groups, func(v uint16) string { return tls.CurveID(v).String() }))
	}
	var shares []string
	for _, k := range h.keyShares {
		shares = append(shares, fmt.Sprintf("%s(%d)", tls.CurveID(k.group), k.size))
	}
	fmt.Fprintf(b, "    key_share %s\n", strings.Join(shares, " "))
	if len(h.alpn) > 0 {
		fmt.Fprintf(b, "    alpn %s\n", strings.Join(h.alpn, " "))
	}
	if len(h.sigAlgs) > 0 {
		fmt.Fprintf(b, "    signature_algorithms %s\n", names(h.sigAlgs, func(v uint16) string { return tls.SignatureScheme(v).String() }))
	}
	if len(h.pskModes) > 0 {
		fmt.Fprintf(b, "    psk_key_exchange_modes %v (1 = psk_dhe_ke)\n", h.pskModes)
	}
	switch {
	case h.msgType == 1:
		fmt.Fprintf(b, "    pre_shared_key offered: %v\n", h.psk)
	case h.psk:
		fmt.Fprintf(b, "    pre_shared_key selected: identity %d\n", h.pskSelected)
	}
}

func names[T any](vs []T, name func(T) string) string {
	var s []string
	for _, v := range vs {
		s = append(s, name(v))
	}
	return strings.Join(s, " ")
}

func recordName(t uint8) string {
	switch t {
	case recChangeCipherSpec:
		return "change_cipher_spec"
	case recAlert:
		return "alert"
	case recHandshake:
		return "handshake"
	case recApplicationData:
		return "application_data"
	}
	return fmt.Sprintf("type-%d", t)
}

func handshakeName(t uint8) string {
	switch t {
	case 1:
		return "ClientHello"
	case 2:
		return "ServerHello"
	}
	return fmt.Sprintf("handshake-%d", t)
}

func extensionName(t uint16) string {
	if n, ok := map[uint16]string{
		0: "server_name", 5: "status_request", 10: "supported_groups", 11: "ec_point_formats",
		13: "signature_algorithms", 16: "alpn", 18: "signed_certificate_timestamp",
		23: "extended_master_secret", 35: "session_ticket", 41: "pre_shared_key",
		43: "supported_versions", 44: "cookie", 45: "psk_key_exchange_modes",
		50: "signature_algorithms_cert", 51: "key_share", 65281: "renegotiation_info",
	}[t]; ok {
		return n
	}
	return fmt.Sprintf("ext-%d", t)
}

// lineDiff shows the lines that differ.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b bytes.Buffer
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n  - %s\n  + %s\n", i+1, w, g)
		}
	}
	return b.String()
}
