package e2e_test

// Adversarial tests against real libp2p hosts on 127.0.0.1. Each case
// asserts the specific sentinel error on the side(s) that detect the
// attack, and that nothing reached the application that should not have.

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// errAnyFailure expects the side to fail without naming the error: for a
// side that is not our code (a bare crypto/tls peer).
var errAnyFailure = errors.New("any failure")

// advCase is one attack.
type advCase struct {
	name string
	// setup builds the session to run.
	setup func(t *testing.T, w *testWorld) run
	// client and server are the errors each side must end with (nil: no
	// error); ignored for a raw side.
	client, server error
	// clientFrames and serverFrames are the texts each side's application
	// may see (default none).
	clientFrames, serverFrames []string
}

// pairAB is alice (client) and bob (server), who know each other.
func pairAB(t *testing.T, w *testWorld, aOpts, bOpts []partyOpt) (*party, *party) {
	return pair(t, w.alice, w.bob, aOpts, bOpts)
}

// tampered is the usual setup: alice and bob with a tamperer on one side.
func tampered(client, server func(*wire, int, []byte) error) func(t *testing.T, w *testWorld) run {
	return func(t *testing.T, w *testWorld) run {
		a, b := pairAB(t, w, nil, nil)
		r := run{client: a, server: b}
		if client != nil {
			r.wrapClient = wrapWith(client, nil)
		}
		if server != nil {
			r.wrapServer = wrapWith(server, nil)
		}
		return r
	}
}

func helloField(f func(h *hello) int) func(p []byte) int {
	return func(p []byte) int {
		h := parseHello(p)
		if h == nil {
			panic("not a hello")
		}
		return f(h)
	}
}

// Offsets in the first flights.
var (
	clientRandom = helloField(func(h *hello) int { return h.randomOff + 7 })
	sessionIDPos = helloField(func(h *hello) int { return h.sessionOff + 3 })
	mlkemShare   = helloField(func(h *hello) int { return h.keyShares[0].off + 100 })
	x25519Share  = helloField(func(h *hello) int { return h.keyShares[len(h.keyShares)-1].off + 5 })
)

// Encrypted records of the flights, in order (checked by the golden
// transcript): the server's EncryptedExtensions, CertificateRequest,
// Certificate, CertificateVerify, Finished; the client's Certificate,
// CertificateVerify, Finished.
const (
	srvCertificate       = 2
	srvCertificateVerify = 3
	srvFinished          = 4
	cliCertificate       = 0
	cliCertificateVerify = 1
	cliFinished          = 2
)

// Writes of the client: 0 ClientHello, 1 its second flight, then one
// record per frame.
const firstAppWrite = 2

var (
	fakeRecord = append([]byte{recApplicationData, 3, 3, 0, 32}, make([]byte, 32)...)
	garbage    = []byte("\x00\x01 this is not TLS, just some garbage bytes \xff\xfe\xfd")
	httpGET    = []byte("GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\n\r\n")
	httpReply  = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
)

func TestAdversarial(t *testing.T) {
	cases := []advCase{
		// A flipped byte in each handshake flight.
		{name: "flip ClientHello random", setup: tampered(flipAt(0, clientRandom), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip ClientHello session id", setup: tampered(flipAt(0, sessionIDPos), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip ClientHello ML-KEM share", setup: tampered(flipAt(0, mlkemShare), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip ClientHello X25519 share", setup: tampered(flipAt(0, x25519Share), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip ServerHello random", setup: tampered(nil, flipAt(0, clientRandom)),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip server Certificate", setup: tampered(nil, flipAt(0, nthRecordMiddle(recApplicationData, srvCertificate))),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip server CertificateVerify", setup: tampered(nil, flipAt(0, nthRecordMiddle(recApplicationData, srvCertificateVerify))),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip server Finished", setup: tampered(nil, flipAt(0, nthRecordMiddle(recApplicationData, srvFinished))),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		// The client completes its handshake when it sends its Finished;
		// it learns of the server's refusal on its first Receive.
		{name: "flip client Certificate", setup: tampered(flipAt(1, nthRecordMiddle(recApplicationData, cliCertificate)), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip client CertificateVerify", setup: tampered(flipAt(1, nthRecordMiddle(recApplicationData, cliCertificateVerify)), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "flip client Finished", setup: tampered(flipAt(1, nthRecordMiddle(recApplicationData, cliFinished)), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},

		// Truncated flights: half a flight, then the end of the stream.
		{name: "truncated ClientHello", setup: tampered(truncateAt(0), nil),
			client: e2e.ErrTruncated, server: e2e.ErrTruncated},
		{name: "truncated server flight", setup: tampered(nil, truncateAt(0)),
			client: e2e.ErrTruncated, server: e2e.ErrTruncated},
		{name: "truncated client flight", setup: tampered(truncateAt(1), nil),
			client: e2e.ErrTruncated, server: e2e.ErrTruncated},
		// A record header whose length was raised: the reader waits for
		// bytes that never come, until the handshake deadline.
		{name: "record length changed", setup: func(t *testing.T, w *testWorld) run {
			a, b := pairAB(t, w, []partyOpt{withTimeout(400 * time.Millisecond)}, []partyOpt{withTimeout(4 * time.Second)})
			return run{client: a, server: b, wrapServer: wrapWith(onWrite(0, func(w *wire, p []byte) error {
				recs, _ := records(p)
				p[recs[2+srvCertificate].off-2]++ // ServerHello, CCS, then the encrypted records
				return w.send(p)
			}), nil)}
		}, client: e2e.ErrHandshakeTimeout, server: e2e.ErrTruncated},

		// Garbage after the client's last flight, in the same write.
		{name: "trailing record after client flight", setup: tampered(appendAt(1, fakeRecord), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "trailing garbage after client flight", setup: tampered(appendAt(1, garbage), nil),
			client: e2e.ErrTampered, server: e2e.ErrTampered},

		// Flights replayed from an earlier session.
		{name: "replayed client flights", setup: func(t *testing.T, w *testWorld) run {
			a, b := pairAB(t, w, nil, nil)
			var old *wire
			if c, s := (run{client: a, server: b, wrapClient: wrapWith(nil, &old)}).do(t); c.failure() != nil || s.failure() != nil {
				t.Fatalf("first session: %v / %v", c, s)
			}
			return run{client: a, server: b, wrapClient: wrapWith(replaceAll(old.Writes()[:2]), nil)}
		}, client: e2e.ErrTampered, server: e2e.ErrTampered},
		{name: "replayed server flight", setup: func(t *testing.T, w *testWorld) run {
			a, b := pairAB(t, w, nil, nil)
			var old *wire
			if c, s := (run{client: a, server: b, wrapServer: wrapWith(nil, &old)}).do(t); c.failure() != nil || s.failure() != nil {
				t.Fatalf("first session: %v / %v", c, s)
			}
			return run{client: a, server: b, wrapServer: wrapWith(replaceAll(old.Writes()[:1]), nil)}
		}, client: e2e.ErrTampered, server: e2e.ErrTampered},

		// Certificates.
		{name: "untrusted CA", setup: func(t *testing.T, w *testWorld) run {
			b := newParty(t, w.bob, withIdentity(issued(t, newCA(t, "Evil Root"), w.bob.key(), "bob")))
			a := newParty(t, w.alice)
			b.pin(t, a.id.PeerID(), "", identity.StateTOFU)
			return run{client: a, server: b}
		}, client: e2e.ErrUnknownPeer, server: e2e.ErrRejected},
		{name: "expired server certificate", setup: func(t *testing.T, w *testWorld) run {
			old := certFor(t, w.bob.key(), "bob", epoch.Add(-400*24*time.Hour), 30*24*time.Hour)
			a, b := pairAB(t, w, nil, []partyOpt{withIdentity(old)})
			return run{client: a, server: b}
		}, client: e2e.ErrExpired, server: e2e.ErrRejected},
		{name: "not yet valid server certificate", setup: func(t *testing.T, w *testWorld) run {
			future := certFor(t, w.bob.key(), "bob", epoch.Add(48*time.Hour), 30*24*time.Hour)
			a, b := pairAB(t, w, nil, []partyOpt{withIdentity(future)})
			return run{client: a, server: b}
		}, client: e2e.ErrNotYetValid, server: e2e.ErrRejected},
		{name: "expired client certificate", setup: func(t *testing.T, w *testWorld) run {
			old := certFor(t, w.alice.key(), "alice", epoch.Add(-400*24*time.Hour), 30*24*time.Hour)
			a, b := pairAB(t, w, []partyOpt{withIdentity(old)}, nil)
			return run{client: a, server: b}
		}, client: e2e.ErrRejected, server: e2e.ErrExpired},
		{name: "not yet valid client certificate", setup: func(t *testing.T, w *testWorld) run {
			future := certFor(t, w.alice.key(), "alice", epoch.Add(48*time.Hour), 30*24*time.Hour)
			a, b := pairAB(t, w, []partyOpt{withIdentity(future)}, nil)
			return run{client: a, server: b}
		}, client: e2e.ErrRejected, server: e2e.ErrNotYetValid},
		{name: "server certificate key is not the stream's peer", setup: func(t *testing.T, w *testWorld) run {
			a, s := pair(t, w.alice, w.split, nil, nil)
			return run{client: a, server: s}
		}, client: e2e.ErrWrongPeer, server: e2e.ErrRejected},
		{name: "client certificate key is not the stream's peer", setup: func(t *testing.T, w *testWorld) run {
			s, b := pair(t, w.split, w.bob, nil, nil)
			return run{client: s, server: b}
		}, client: e2e.ErrRejected, server: e2e.ErrWrongPeer},

		// Middle hosts.
		{name: "middle host answers with its own certificate", setup: func(t *testing.T, w *testWorld) run {
			// Alice means to reach bob, but her stream reached mallory
			// (a relay or a wrong address), who runs certchat with her
			// own identity and would relay to bob.
			a, m := pair(t, w.alice, w.mallory, nil, nil)
			a.pin(t, w.bob.id.PeerID(), "bob", identity.StateVerified)
			return run{client: a, server: m, expected: w.bob.h.ID()}
		}, client: e2e.ErrNotDialedPeer, server: e2e.ErrRejected},
		{name: "middle host splices bytes to the dialed peer", setup: func(t *testing.T, w *testWorld) run {
			// Mallory pipes alice's stream into a stream of her own to
			// bob: the certificates are genuine, the libp2p peers are not.
			a, b := pairAB(t, w, nil, nil)
			proto, bob := serve(t, b)
			return run{client: a, serverNode: w.mallory, expected: w.mallory.h.ID(), rawServer: func(s network.Stream) {
				spliceTo(t, w.mallory, w.bob, proto, s)
			}, also: bob}
		}, client: e2e.ErrWrongPeer},
		{name: "middle presents bob's certificate without bob's key", setup: func(t *testing.T, w *testWorld) run {
			// Below our TLS the bytes go to mallory although the
			// transport said bob (libp2p's security would stop this).
			a, _ := pairAB(t, w, nil, nil)
			cert := tls.Certificate{Certificate: [][]byte{w.bob.id.Certificate().Raw}, PrivateKey: w.mallory.key()}
			return run{client: a, serverNode: w.mallory, expected: w.bob.h.ID(), claimClientRemote: w.bob.h.ID(),
				rawServer: bareServer(t, cert, nil)}
		}, client: e2e.ErrTampered},
		{name: "middle presents alice's certificate without alice's key", setup: func(t *testing.T, w *testWorld) run {
			_, b := pairAB(t, w, nil, nil)
			cert := tls.Certificate{Certificate: [][]byte{w.alice.id.Certificate().Raw}, PrivateKey: w.mallory.key()}
			return run{server: b, clientNode: w.mallory, claimServerRemote: w.alice.h.ID(),
				rawClient: bareClient(t, cert, nil)}
		}, server: e2e.ErrTampered},
		{name: "reflection through a middle host", setup: func(t *testing.T, w *testWorld) run {
			// Mallory pipes alice's outgoing stream back into alice's own
			// server.
			a := newParty(t, w.alice)
			a.pin(t, w.mallory.id.PeerID(), "", identity.StateTOFU)
			proto, self := serve(t, a)
			return run{client: a, serverNode: w.mallory, rawServer: func(s network.Stream) {
				spliceTo(t, w.mallory, w.alice, proto, s)
			}, also: self}
		}, client: e2e.ErrSelfConnection},

		// Not certchat.
		{name: "garbage to a responder", setup: rawTo(garbage), server: e2e.ErrNotCertchat},
		{name: "HTTP request to a responder", setup: rawTo(httpGET), server: e2e.ErrNotCertchat},
		{name: "garbage as the answer", setup: rawFrom(garbage), client: e2e.ErrNotCertchat},
		{name: "HTTP response as the answer", setup: rawFrom(httpReply), client: e2e.ErrNotCertchat},
		{name: "TLS responder with another ALPN", setup: func(t *testing.T, w *testWorld) run {
			a, _ := pair(t, w.alice, w.mallory, nil, nil)
			return run{client: a, serverNode: w.mallory, rawServer: bareServer(t, w.mallory.id.TLSCertificate(), func(c *tls.Config) {
				c.NextProtos = []string{"h2"}
			})}
		}, client: e2e.ErrNotCertchat},
		{name: "TLS responder without ALPN", setup: func(t *testing.T, w *testWorld) run {
			// crypto/tls accepts a server that picks no protocol: our
			// negotiation check is what refuses it.
			a, _ := pair(t, w.alice, w.mallory, nil, nil)
			return run{client: a, serverNode: w.mallory, rawServer: bareServer(t, w.mallory.id.TLSCertificate(), func(c *tls.Config) {
				c.NextProtos = nil
			})}
		}, client: e2e.ErrNotCertchat},
		{name: "responder's first frame is not ready", setup: func(t *testing.T, w *testWorld) run {
			a, _ := pair(t, w.alice, w.mallory, nil, nil)
			receipt, _ := e2e.AppendFrame(nil, e2e.FrameReceipt, e2e.Receipt{ID: e2e.NewMessageID(), Status: e2e.ReceiptStored}.Marshal())
			return run{client: a, serverNode: w.mallory, rawServer: bareServerFirst(t, w.mallory.id.TLSCertificate(), receipt)}
		}, client: e2e.ErrNotCertchat},
		{name: "responder's ready frame carries a payload", setup: func(t *testing.T, w *testWorld) run {
			a, _ := pair(t, w.alice, w.mallory, nil, nil)
			ready, _ := e2e.AppendFrame(nil, e2e.FrameReady, []byte("x"))
			return run{client: a, serverNode: w.mallory, rawServer: bareServerFirst(t, w.mallory.id.TLSCertificate(), ready)}
		}, client: e2e.ErrNotCertchat},
		{name: "TLS 1.2 responder", setup: func(t *testing.T, w *testWorld) run {
			a, _ := pair(t, w.alice, w.mallory, nil, nil)
			return run{client: a, serverNode: w.mallory, rawServer: bareServer(t, w.mallory.id.TLSCertificate(), func(c *tls.Config) {
				c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			})}
		}, client: e2e.ErrNotCertchat},

		// Stalls.
		{name: "responder stalls", setup: func(t *testing.T, w *testWorld) run {
			a, _ := pair(t, w.alice, w.mallory, []partyOpt{withTimeout(300 * time.Millisecond)}, nil)
			return run{client: a, serverNode: w.mallory, rawServer: func(s network.Stream) {
				io.Copy(io.Discard, s) // reads the ClientHello, never answers
			}}
		}, client: e2e.ErrHandshakeTimeout},
		{name: "initiator stalls after its ClientHello", setup: func(t *testing.T, w *testWorld) run {
			a, b := pairAB(t, w, nil, []partyOpt{withTimeout(300 * time.Millisecond)})
			return run{client: a, server: b, wrapClient: wrapWith(dropFrom(1), nil)}
		}, client: e2e.ErrTruncated, server: e2e.ErrHandshakeTimeout},
		{name: "initiator sends nothing", setup: func(t *testing.T, w *testWorld) run {
			_, b := pair(t, w.mallory, w.bob, nil, []partyOpt{withTimeout(300 * time.Millisecond)})
			return run{server: b, clientNode: w.mallory, rawClient: func(s network.Stream) {
				s.Write([]byte{recHandshake, 3, 1}) // opens the stream, then nothing
				io.Copy(io.Discard, s)
			}}
		}, server: e2e.ErrHandshakeTimeout},

		// After the handshake. The client sends texts one, two, three
		// (Writes 2, 3 and 4); the second is attacked.
		{name: "tampered record", setup: records3(flipAt(firstAppWrite+1, nthRecordMiddle(recApplicationData, 0))),
			client: e2e.ErrTampered, server: e2e.ErrTampered, serverFrames: []string{"one"}},
		{name: "replayed record", setup: records3(duplicateAt(firstAppWrite + 1)),
			client: e2e.ErrTampered, server: e2e.ErrTampered, serverFrames: []string{"one", "two"}},
		{name: "reordered records", setup: records3(swapAt(firstAppWrite + 1)),
			client: e2e.ErrTampered, server: e2e.ErrTampered, serverFrames: []string{"one"}},
		{name: "dropped record", setup: records3(dropAt(firstAppWrite + 1)),
			client: e2e.ErrTampered, server: e2e.ErrTampered, serverFrames: []string{"one"}},
		{name: "injected record", setup: records3(onWrite(firstAppWrite+1, func(w *wire, p []byte) error { return w.send(fakeRecord, p) })),
			client: e2e.ErrTampered, server: e2e.ErrTampered, serverFrames: []string{"one"}},
		{name: "EOF without close frame", setup: records3(closeWriteAfter(firstAppWrite + 2)),
			server: e2e.ErrTruncated, serverFrames: []string{"one", "two"}},
		{name: "EOF inside a record", setup: records3(truncateAt(firstAppWrite + 1)),
			server: e2e.ErrTruncated, serverFrames: []string{"one"}},
	}
	w := hosts(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.setup(t, w)
			c, s := r.do(t)
			t.Logf("client: %v", c)
			t.Logf("server: %v", s)
			if r.rawClient == nil {
				checkSide(t, "client", c, tc.client, tc.clientFrames)
			}
			if r.rawServer == nil {
				checkSide(t, "server", s, tc.server, tc.serverFrames)
			}
			if r.also != nil {
				r.also(t, c, s)
			}
		})
	}
}

// checkSide asserts a side's error and the texts its application saw.
func checkSide(t *testing.T, side string, o outcome, want error, texts []string) {
	t.Helper()
	if want == errAnyFailure {
		if o.failure() == nil {
			t.Errorf("%s: did not fail", side)
		}
	} else {
		wantErr(t, side, o.failure(), want)
	}
	// A refused initiator learns it from Client itself (the responder's
	// ready frame never comes), not from a session that dies afterwards.
	if side == "client" && want == e2e.ErrRejected && !errors.Is(o.err, e2e.ErrRejected) {
		t.Errorf("client: refused, but Client returned %v: it believed it had a session", o.err)
	}
	var got []string
	for _, f := range o.frames {
		if f.Type == e2e.FrameText {
			txt, err := e2e.ParseText(f.Payload)
			if err != nil {
				t.Errorf("%s: bad text frame: %v", side, err)
			}
			got = append(got, txt.Body)
		} else if want != nil {
			t.Errorf("%s: the application was given a %s frame", side, f.Type)
		}
	}
	if len(got) != len(texts) {
		t.Errorf("%s: the application was given texts %q, want %q", side, got, texts)
		return
	}
	for i := range got {
		if got[i] != texts[i] {
			t.Errorf("%s: the application was given texts %q, want %q", side, got, texts)
		}
	}
}

// records3 is alice sending three texts to bob through a tamperer; bob
// reads until the end and answers nothing.
func records3(tamper func(*wire, int, []byte) error) func(t *testing.T, w *testWorld) run {
	return func(t *testing.T, w *testWorld) run {
		a, b := pairAB(t, w, nil, nil)
		return run{client: a, server: b, wrapClient: wrapWith(tamper, nil),
			clientScript: func(s *e2e.Session, o *outcome) {
				for _, body := range []string{"one", "two", "three"} {
					if err := s.SendText(e2e.Text{ID: e2e.NewMessageID(), SentAt: epoch, Body: body}); err != nil && o.sendErr == nil {
						o.sendErr = err
					}
				}
				receiveAll(s, o, func(e2e.Frame) bool { return false })
				s.Close()
			},
			serverScript: func(s *e2e.Session, o *outcome) {
				receiveAll(s, o, func(e2e.Frame) bool { return false })
				s.Close()
			}}
	}
}

// rawTo is mallory sending bytes to bob's responder.
func rawTo(b []byte) func(t *testing.T, w *testWorld) run {
	return func(t *testing.T, w *testWorld) run {
		_, srv := pair(t, w.mallory, w.bob, nil, nil)
		return run{server: srv, clientNode: w.mallory, rawClient: func(s network.Stream) {
			s.Write(b)
			s.CloseWrite()
			s.SetReadDeadline(time.Now().Add(testTimeout))
			io.Copy(io.Discard, s)
		}}
	}
}

// rawFrom is mallory answering alice's ClientHello with bytes.
func rawFrom(b []byte) func(t *testing.T, w *testWorld) run {
	return func(t *testing.T, w *testWorld) run {
		a, _ := pair(t, w.alice, w.mallory, nil, nil)
		return run{client: a, serverNode: w.mallory, rawServer: func(s network.Stream) {
			buf := make([]byte, 5)
			io.ReadFull(s, buf)
			s.Write(b)
			s.CloseWrite()
			s.SetReadDeadline(time.Now().Add(testTimeout))
			io.Copy(io.Discard, s)
		}}
	}
}

// serve runs p's responder on a fresh protocol and reports its outcome to
// an extra check that expects it to fail with ErrRejected (the peer
// refused us) and deliver nothing.
func serve(t *testing.T, p *party) (protocol.ID, func(t *testing.T, c, s outcome)) {
	proto := newProto()
	got := make(chan outcome, 1)
	p.n.h.SetStreamHandler(proto, func(s network.Stream) {
		var o outcome
		o.sess, o.err = p.ep.Server(context.Background(), s, s.Conn().RemotePeer())
		if o.err == nil {
			answer(o.sess, &o)
		}
		s.Close()
		got <- o
	})
	t.Cleanup(func() { p.n.h.RemoveStreamHandler(proto) })
	return proto, func(t *testing.T, _, _ outcome) {
		select {
		case o := <-got:
			t.Logf("spliced responder: %v", o)
			checkSide(t, "spliced responder", o, e2e.ErrRejected, nil)
		case <-time.After(testTimeout):
			t.Error("the spliced responder did not finish")
		}
	}
}

// spliceTo pipes the stream s into a new stream from one host to another.
func spliceTo(t *testing.T, from, to *node, proto protocol.ID, s network.Stream) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	out, err := from.h.NewStream(ctx, to.h.ID(), proto)
	if err != nil {
		t.Error(err)
		return
	}
	defer out.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(out, s)
		out.CloseWrite()
		close(done)
	}()
	io.Copy(s, out)
	s.CloseWrite()
	<-done
}

// bareConfig is a plain crypto/tls configuration with a certificate and
// our protocol, verifying nothing.
func bareConfig(cert tls.Certificate, adjust func(*tls.Config)) *tls.Config {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   e2e.Groups,
		NextProtos:         []string{e2e.ALPNChat},
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
	}
	if cert.Certificate != nil {
		c.Certificates = []tls.Certificate{cert}
	}
	if adjust != nil {
		adjust(c)
	}
	return c
}

// bareServer is a crypto/tls responder that reads whatever follows the
// handshake.
func bareServer(t *testing.T, cert tls.Certificate, adjust func(*tls.Config)) func(network.Stream) {
	return func(s network.Stream) {
		tc := tls.Server(streamConn{s}, bareConfig(cert, adjust))
		tc.SetDeadline(time.Now().Add(testTimeout))
		if err := tc.Handshake(); err != nil {
			t.Logf("bare server: %v", err)
			return
		}
		_, err := io.Copy(io.Discard, tc)
		t.Logf("bare server read: %v", err)
	}
}

// bareServerFirst is a crypto/tls responder that accepts any client and
// writes first as its first bytes after the handshake.
func bareServerFirst(t *testing.T, cert tls.Certificate, first []byte) func(network.Stream) {
	return func(s network.Stream) {
		tc := tls.Server(streamConn{s}, bareConfig(cert, nil))
		tc.SetDeadline(time.Now().Add(testTimeout))
		if err := tc.Handshake(); err != nil {
			t.Logf("bare server: %v", err)
			return
		}
		tc.Write(first)
		io.Copy(io.Discard, tc)
	}
}

// bareClient is a crypto/tls initiator that sends a text after the
// handshake and reads whatever comes.
func bareClient(t *testing.T, cert tls.Certificate, adjust func(*tls.Config)) func(network.Stream) {
	return func(s network.Stream) {
		tc := tls.Client(streamConn{s}, bareConfig(cert, adjust))
		tc.SetDeadline(time.Now().Add(testTimeout))
		if err := tc.Handshake(); err != nil {
			t.Logf("bare client: %v", err)
			return
		}
		p, _ := e2e.Text{ID: e2e.NewMessageID(), SentAt: epoch, Body: "hello"}.Marshal()
		f, _ := e2e.AppendFrame(nil, e2e.FrameText, p)
		tc.Write(f)
		_, err := io.Copy(io.Discard, tc)
		t.Logf("bare client read: %v", err)
	}
}

// streamConn is a libp2p stream as a net.Conn for crypto/tls.
type streamConn struct{ network.Stream }

func (streamConn) LocalAddr() net.Addr  { return &net.TCPAddr{} }
func (streamConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }
