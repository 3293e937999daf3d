package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/testproc"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TestRequirePostQuantum: a peer that offers X25519 only (a stock
// go-libp2p host speaking certchat's protocol through crypto/tls, as the
// security review did) gets a session from `chat daemon`, reported with
// "post_quantum": false; with `--require-pq`, or "require_post_quantum"
// in config.json, the daemon refuses its handshake (issue 11, finding 10).
func TestRequirePostQuantum(t *testing.T) {
	bin := testproc.ChatBinary(t)
	noPassphraseEnv(t)
	for _, tc := range []struct {
		name    string
		flags   []string
		config  string
		refused bool
	}{
		{"default", nil, "", false},
		{"--require-pq", []string{"--require-pq"}, "", true},
		{"config.json", nil, `{"require_post_quantum": true}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "h")
			_, id := newHome(t, dir, "Alice")
			if tc.config != "" {
				if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			port := freePort(t)
			args := append([]string{"--home", dir, "daemon", "--json", "--no-mdns", "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}, tc.flags...)
			events := runDaemonEvents(t, bin, args...)
			target, err := peer.Decode(id)
			if err != nil {
				t.Fatal(err)
			}

			mallory, err := identity.Generate("mallory", time.Now().Add(-time.Minute), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			held, err := classicalHandshake(t, mallory, target, fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port))
			if tc.refused {
				if err == nil {
					t.Fatal("the daemon answered a classical-only handshake")
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("a classical-only handshake under the default settings: %v", err)
			}
			defer held()
			// The daemon reports the peer, not post-quantum.
			timeout := time.After(15 * time.Second)
			for {
				select {
				case l, ok := <-events:
					if !ok {
						t.Fatal("the daemon exited")
					}
					var ev struct {
						Event       string `json:"event"`
						PeerID      string `json:"peer_id"`
						Online      bool   `json:"online"`
						PostQuantum *bool  `json:"post_quantum"`
					}
					if json.Unmarshal([]byte(l), &ev) != nil || ev.Event != "peer" || ev.PeerID != mallory.PeerID().String() || !ev.Online {
						continue
					}
					if ev.PostQuantum == nil || *ev.PostQuantum {
						t.Fatalf("the classical session is reported as %s", l)
					}
					return
				case <-timeout:
					t.Fatal("no peer event for the classical-only peer")
				}
			}
		})
	}
}

// freePort is a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// runDaemonEvents runs the chat binary with args (a `daemon --json`) until
// the test ends, and gives its stdout lines.
func runDaemonEvents(t *testing.T, bin string, args ...string) <-chan string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	t.Cleanup(func() {
		stdin.Write([]byte(`{"cmd":"quit"}` + "\n"))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", stderr.String())
		}
	})
	return lines
}

// classicalHandshake connects to target at addr from a stock go-libp2p
// host with id's key, opens a chat stream and runs certchat's TLS 1.3
// handshake with crypto/tls offering X25519 only, then reads the
// responder's first frame: nil once it arrives, else why not. The
// session is held open until done is called.
func classicalHandshake(t *testing.T, id *identity.Identity, target peer.ID, addr string) (done func(), err error) {
	t.Helper()
	key, err := id.Libp2pKey()
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(key), libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The daemon may still be starting: try to connect for a while.
	var s network.Stream
	for {
		err := h.Connect(ctx, peer.AddrInfo{ID: target, Addrs: []ma.Multiaddr{ma.StringCast(addr)}})
		if err == nil {
			if s, err = h.NewStream(ctx, target, e2e.ProtocolChat); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			h.Close()
			t.Fatalf("cannot reach the daemon: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	done = func() { s.Close(); h.Close() }
	tc := tls.Client(pqStreamConn{s}, &tls.Config{
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		NextProtos:         []string{e2e.ALPNChat},
		InsecureSkipVerify: true,
		Certificates:       []tls.Certificate{id.TLSCertificate()},
	})
	tc.SetDeadline(time.Now().Add(20 * time.Second))
	if err := tc.Handshake(); err != nil {
		done()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if got := tc.ConnectionState().CurveID; got != tls.X25519 {
		t.Fatalf("the handshake used %v, not X25519 alone", got)
	}
	buf := make([]byte, 64)
	if _, err := tc.Read(buf); err != nil {
		done()
		return nil, fmt.Errorf("first frame: %w", err)
	}
	return done, nil
}

// pqStreamConn is a libp2p stream as a net.Conn for crypto/tls.
type pqStreamConn struct{ network.Stream }

func (pqStreamConn) LocalAddr() net.Addr  { return &net.TCPAddr{} }
func (pqStreamConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }
