package e2e_test

// Framing: ReadFrame, AppendFrame, the payloads (text, receipt, close) and
// what a session does with unknown and malformed frames. Fuzz targets at
// the end; their seed corpora are in testdata/fuzz/.

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/network"
)

func hdr(t e2e.FrameType, n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{byte(t)}, n)
}

func TestReadFrame(t *testing.T) {
	max := bytes.Repeat([]byte{'m'}, e2e.MaxFramePayload)
	for _, tc := range []struct {
		name    string
		in      []byte
		want    *e2e.Frame
		wantErr error
		// consumed is how many bytes ReadFrame may have read (-1: all).
		consumed int
	}{
		{"text", append(hdr(e2e.FrameText, 3), "abc"...), &e2e.Frame{Type: e2e.FrameText, Payload: []byte("abc")}, nil, -1},
		{"empty payload", hdr(e2e.FrameReceipt, 0), &e2e.Frame{Type: e2e.FrameReceipt, Payload: []byte{}}, nil, -1},
		{"unknown type is still a frame", append(hdr(0xfe, 1), 'x'), &e2e.Frame{Type: 0xfe, Payload: []byte("x")}, nil, -1},
		{"largest payload", append(hdr(e2e.FrameEnvelope, e2e.MaxFramePayload), max...), &e2e.Frame{Type: e2e.FrameEnvelope, Payload: max}, nil, -1},
		{"one byte too large", append(hdr(e2e.FrameEnvelope, e2e.MaxFramePayload+1), max...), nil, e2e.ErrFrameTooLarge, 5},
		{"4 GiB announced", append(hdr(e2e.FrameText, 0xffffffff), "abc"...), nil, e2e.ErrFrameTooLarge, 5},
		{"clean end", nil, nil, io.EOF, -1},
		{"end inside the header", hdr(e2e.FrameText, 3)[:3], nil, e2e.ErrTruncated, -1},
		{"end inside the payload", append(hdr(e2e.FrameText, 3), "ab"...), nil, e2e.ErrTruncated, -1},
		{"end right after the header", hdr(e2e.FrameText, 3), nil, e2e.ErrTruncated, -1},
		{"trailing bytes are the next frame's", append(append(hdr(e2e.FrameText, 1), 'a'), 0x02), &e2e.Frame{Type: e2e.FrameText, Payload: []byte("a")}, nil, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, slow := range []bool{false, true} {
				br := bytes.NewReader(tc.in)
				var r io.Reader = br
				if slow {
					r = iotest.OneByteReader(br)
				}
				f, err := e2e.ReadFrame(r)
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("slow=%v: err %v, want %v", slow, err, tc.wantErr)
					}
					if f.Payload != nil {
						t.Errorf("a failed read returned a payload")
					}
				} else if err != nil || f.Type != tc.want.Type || !bytes.Equal(f.Payload, tc.want.Payload) {
					t.Fatalf("slow=%v: got %v %v, want %v", slow, f.Type, err, tc.want.Type)
				}
				consumed := len(tc.in) - br.Len()
				if tc.consumed >= 0 && consumed != tc.consumed {
					t.Errorf("slow=%v: read %d bytes, want %d", slow, consumed, tc.consumed)
				}
			}
		})
	}
	t.Run("reader error", func(t *testing.T) {
		boom := errors.New("boom")
		if _, err := e2e.ReadFrame(iotest.ErrReader(boom)); !errors.Is(err, boom) {
			t.Errorf("err %v", err)
		}
		r := io.MultiReader(bytes.NewReader(hdr(e2e.FrameText, 10)), iotest.ErrReader(boom))
		if _, err := e2e.ReadFrame(r); !errors.Is(err, boom) {
			t.Errorf("err %v", err)
		}
	})
}

// TestReadFrameNoAllocation: a header announcing 4 GiB is refused before
// anything is allocated for the payload.
func TestReadFrameNoAllocation(t *testing.T) {
	in := append(hdr(e2e.FrameText, 0xffffffff), make([]byte, 64)...)
	for _, n := range []uint32{0xffffffff, e2e.MaxFramePayload + 1} {
		binary.BigEndian.PutUint32(in[1:], n)
		const runs = 100
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range runs {
			if _, err := e2e.ReadFrame(bytes.NewReader(in)); !errors.Is(err, e2e.ErrFrameTooLarge) {
				t.Fatal(err)
			}
		}
		runtime.ReadMemStats(&after)
		if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 1024 {
			t.Errorf("announcing %d bytes allocated %d bytes per read", n, per)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	got, err := e2e.AppendFrame([]byte("prefix"), e2e.FrameText, []byte("abc"))
	if err != nil || string(got) != "prefix\x01\x00\x00\x00\x03abc" {
		t.Errorf("%q %v", got, err)
	}
	if _, err := e2e.AppendFrame(nil, e2e.FrameEnvelope, make([]byte, e2e.MaxFramePayload+1)); !errors.Is(err, e2e.ErrFrameTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	if b, err := e2e.AppendFrame(nil, e2e.FrameEnvelope, make([]byte, e2e.MaxFramePayload)); err != nil || len(b) != 5+e2e.MaxFramePayload {
		t.Errorf("largest: %d %v", len(b), err)
	}
}

func TestFrameTypes(t *testing.T) {
	for _, tc := range []struct {
		t        e2e.FrameType
		critical bool
		name     string
	}{
		{e2e.FrameText, true, "text"}, {e2e.FrameReceipt, true, "receipt"}, {e2e.FrameEnvelope, true, "envelope"},
		{e2e.FrameRatchetInit, true, "ratchet-init"}, {e2e.FrameMessage, true, "message"}, {e2e.FrameClose, true, "close"},
		{0x7f, true, "type-0x7f"}, {e2e.FrameSettings, false, "settings"}, {e2e.FrameTyping, false, "typing"},
		{e2e.FrameForward, false, "forward"}, {e2e.FrameForwarded, false, "forwarded"},
		{e2e.FrameForwardRefused, false, "forward-refused"}, {0x85, false, "type-0x85"}, {0xff, false, "type-0xff"},
	} {
		if tc.t.Critical() != tc.critical || tc.t.String() != tc.name {
			t.Errorf("%#x: critical %v name %q", uint8(tc.t), tc.t.Critical(), tc.t.String())
		}
	}
}

func textPayload(id e2e.MessageID, ms int64, body string) []byte {
	return numberedPayload(id, ms, 0, 0, body)
}

func numberedPayload(id e2e.MessageID, ms int64, stream, number uint64, body string) []byte {
	b := append(id[:], binary.BigEndian.AppendUint64(nil, uint64(ms))...)
	b = binary.BigEndian.AppendUint64(b, stream)
	b = binary.BigEndian.AppendUint64(b, number)
	return append(b, body...)
}

func TestText(t *testing.T) {
	id := e2e.NewMessageID()
	sent := time.UnixMilli(1_700_000_000_123)
	long := strings.Repeat("é", e2e.MaxTextBytes/2)
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"ascii", textPayload(id, sent.UnixMilli(), "hello"), true},
		{"numbered", numberedPayload(id, sent.UnixMilli(), 0xfeed, 7, "hello"), true},
		{"largest number", numberedPayload(id, sent.UnixMilli(), 1, 1<<64-1, "hi"), true},
		{"number without stream", numberedPayload(id, sent.UnixMilli(), 0, 7, "hello"), false},
		{"stream without number", numberedPayload(id, sent.UnixMilli(), 0xfeed, 0, "hello"), false},
		{"utf-8", textPayload(id, sent.UnixMilli(), "grüß 👋"), true},
		{"longest", textPayload(id, sent.UnixMilli(), long), true},
		{"one byte too long", textPayload(id, sent.UnixMilli(), long+"x"), false},
		{"empty body", textPayload(id, sent.UnixMilli(), ""), false},
		{"invalid utf-8", textPayload(id, sent.UnixMilli(), "ab\xffcd"), false},
		{"truncated utf-8", textPayload(id, sent.UnixMilli(), "é"[:1]), false},
		{"short header", id[:10], false},
		{"old 24-byte header", append(append(id[:], make([]byte, 8)...), "hello"...), false},
		{"nothing", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e2e.ParseText(tc.in)
			if !tc.ok {
				if !errors.Is(err, e2e.ErrMalformed) {
					t.Fatalf("err %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || got.ID != id || !got.SentAt.Equal(sent) || got.Body != string(tc.in[40:]) {
				t.Fatalf("%+v %v", got, err)
			}
			again, err := got.Marshal()
			if err != nil || !bytes.Equal(again, tc.in) {
				t.Fatalf("marshal: %v", err)
			}
		})
	}
	for _, body := range []string{"", "\xff", long + "x"} {
		if _, err := (e2e.Text{ID: id, Body: body}).Marshal(); err == nil {
			t.Errorf("Marshal accepted a body of %d bytes (valid %v)", len(body), utf8.ValidString(body))
		}
	}
	if _, err := (e2e.Text{ID: id, Number: 3, Body: "x"}).Marshal(); err == nil {
		t.Error("Marshal accepted a number without a stream")
	}
	if _, err := e2e.ParseMessageID(id.String()); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "xyz", id.String()[:30], id.String() + "00"} {
		if _, err := e2e.ParseMessageID(bad); err == nil {
			t.Errorf("ParseMessageID(%q) accepted", bad)
		}
	}
	if a, b := e2e.NewMessageID(), e2e.NewMessageID(); a == b {
		t.Error("two equal random ids")
	}
}

func TestReceipt(t *testing.T) {
	id := e2e.NewMessageID()
	good := e2e.Receipt{ID: id, Status: e2e.ReceiptStored}.Marshal()
	if r, err := e2e.ParseReceipt(good); err != nil || r.ID != id || r.Status != e2e.ReceiptStored {
		t.Errorf("%+v %v", r, err)
	}
	seen := e2e.Receipt{ID: id, Status: e2e.ReceiptSeen}.Marshal()
	if r, err := e2e.ParseReceipt(seen); err != nil || r.Status != e2e.ReceiptSeen {
		t.Errorf("seen: %+v %v", r, err)
	}
	for _, bad := range [][]byte{nil, good[:16], append(bytes.Clone(good), 0), append(id[:], 0), append(id[:], 3), append(id[:], 0xff)} {
		if _, err := e2e.ParseReceipt(bad); !errors.Is(err, e2e.ErrMalformed) {
			t.Errorf("ParseReceipt(%x): %v", bad, err)
		}
	}
}

// TestSessionFrames: what a session does with frames on the wire.
func TestSessionFrames(t *testing.T) {
	w := hosts(t)
	t.Run("unknown critical frame closes the session", func(t *testing.T) {
		a, b := pairAB(t, w, nil, nil)
		c, s := run{client: a, server: b, clientScript: func(s *e2e.Session, o *outcome) {
			o.sendErr = s.Send(0x42, []byte("from the future"))
			receiveAll(s, o, func(e2e.Frame) bool { return false })
			code, _, ok := s.CloseReason()
			if !ok || code != e2e.CloseProtocol {
				o.endErr = errors.New("the peer did not close with CloseProtocol")
			}
		}, serverScript: serverReads}.do(t)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, e2e.ErrUnknownFrame, nil)
	})
	t.Run("unknown optional frame is skipped", func(t *testing.T) {
		a, b := pairAB(t, w, nil, nil)
		c, s := run{client: a, server: b, clientScript: func(s *e2e.Session, o *outcome) {
			s.Send(0x90, []byte("an extension"))
			s.Send(0xff, nil)
			chat(s, o)
		}}.do(t)
		checkSide(t, "client", c, nil, nil)
		checkSide(t, "server", s, nil, []string{"hello"})
	})
	t.Run("close frame with code and reason", func(t *testing.T) {
		a, b := pairAB(t, w, nil, nil)
		long := strings.Repeat("r", 2*e2e.MaxCloseReason)
		for _, tc := range []struct{ sent, got string }{
			{"user rejected", "user rejected"},
			{long, long[:e2e.MaxCloseReason]},
			{"bad \xff utf-8", "bad ? utf-8"},
		} {
			var code e2e.CloseCode
			var reason string
			var ok bool
			c, srv := run{client: a, server: b,
				clientScript: func(s *e2e.Session, o *outcome) {
					o.sendErr = s.CloseWith(e2e.CloseRejected, tc.sent)
					if err := s.CloseWith(e2e.CloseNormal, "twice"); err != nil {
						o.sendErr = err
					}
				},
				serverScript: func(s *e2e.Session, o *outcome) {
					receiveAll(s, o, func(e2e.Frame) bool { return false })
					code, reason, ok = s.CloseReason()
					// Receive keeps answering io.EOF.
					if _, err := s.Receive(); err != io.EOF {
						o.endErr = err
					}
				}}.do(t)
			checkSide(t, "client", c, nil, nil)
			checkSide(t, "server", srv, nil, nil) // io.EOF, and io.EOF again
			if !ok || code != e2e.CloseRejected || reason != tc.got {
				t.Errorf("close %v %q %v, want %v %q", code, reason, ok, e2e.CloseRejected, tc.got)
			}
		}
	})
	t.Run("malformed close frame", func(t *testing.T) {
		a, b := pairAB(t, w, nil, nil)
		bad := append([]byte{0}, strings.Repeat("r", e2e.MaxCloseReason+1)...)
		for _, payload := range [][]byte{{}, {0, 0xff}, bad} {
			_, s := run{client: a, server: b, clientScript: func(s *e2e.Session, o *outcome) {
				s.Send(e2e.FrameClose, payload)
				receiveAll(s, o, func(e2e.Frame) bool { return false })
			}, serverScript: serverReads}.do(t)
			checkSide(t, "server", s, e2e.ErrMalformed, nil)
		}
	})
	t.Run("oversized frame inside the channel", func(t *testing.T) {
		// A peer whose own code does not check sizes: a bare crypto/tls
		// client with alice's identity announcing 4 GiB.
		a, b := pairAB(t, w, nil, nil)
		_ = a
		var closeFrame []byte
		_, s := run{server: b, clientNode: w.alice, rawClient: func(st network.Stream) {
			tc := tls.Client(streamConn{st}, bareConfig(w.alice.id.TLSCertificate(), nil))
			tc.SetDeadline(time.Now().Add(testTimeout))
			if err := tc.Handshake(); err != nil {
				t.Error(err)
				return
			}
			tc.Write(hdr(e2e.FrameEnvelope, 0xffffffff))
			closeFrame, _ = io.ReadAll(tc)
		}, serverScript: serverReads}.do(t)
		checkSide(t, "server", s, e2e.ErrFrameTooLarge, nil)
		r := bytes.NewReader(closeFrame)
		if f, err := e2e.ReadFrame(r); err != nil || f.Type != e2e.FrameReady {
			t.Errorf("the responder's first frame is not ready: %v %v", f, err)
		}
		if f, err := e2e.ReadFrame(r); err != nil || f.Type != e2e.FrameClose || f.Payload[0] != byte(e2e.CloseProtocol) {
			t.Errorf("the responder did not close with CloseProtocol: %v %v", f, err)
		}
	})
	t.Run("frame cut by a proper TLS close", func(t *testing.T) {
		a, b := pairAB(t, w, nil, nil)
		_ = a
		_, s := run{server: b, clientNode: w.alice, rawClient: func(st network.Stream) {
			tc := tls.Client(streamConn{st}, bareConfig(w.alice.id.TLSCertificate(), nil))
			tc.SetDeadline(time.Now().Add(testTimeout))
			if err := tc.Handshake(); err != nil {
				t.Error(err)
				return
			}
			tc.Write(append(hdr(e2e.FrameText, 100), "only part"...))
			tc.CloseWrite() // close_notify
			io.Copy(io.Discard, tc)
		}, serverScript: serverReads}.do(t)
		checkSide(t, "server", s, e2e.ErrTruncated, nil)
	})
	t.Run("close_notify without close frame", func(t *testing.T) {
		_, b := pairAB(t, w, nil, nil)
		_, s := run{server: b, clientNode: w.alice, rawClient: func(st network.Stream) {
			tc := tls.Client(streamConn{st}, bareConfig(w.alice.id.TLSCertificate(), nil))
			tc.SetDeadline(time.Now().Add(testTimeout))
			if err := tc.Handshake(); err != nil {
				t.Error(err)
				return
			}
			tc.CloseWrite()
			io.Copy(io.Discard, tc)
		}, serverScript: serverReads}.do(t)
		checkSide(t, "server", s, e2e.ErrTruncated, nil)
	})
	t.Run("read deadline", func(t *testing.T) {
		a, b := pairAB(t, w, nil, nil)
		c, _ := run{client: a, server: b, clientScript: func(s *e2e.Session, o *outcome) {
			s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := s.Receive()
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				o.endErr = err
			}
			s.SetWriteDeadline(time.Time{})
			s.Close()
		}, serverScript: serverReads}.do(t)
		checkSide(t, "client", c, nil, nil)
	})
}

// serverReads reads until the end, answering nothing.
func serverReads(s *e2e.Session, o *outcome) {
	receiveAll(s, o, func(e2e.Frame) bool { return false })
	s.Close()
}

// FuzzReadFrame: whatever the input, ReadFrame returns a frame that
// encodes back to the bytes it read, or one of its documented errors.
func FuzzReadFrame(f *testing.F) {
	f.Add(append(hdr(e2e.FrameText, 3), "abc"...))
	f.Add(hdr(e2e.FrameReceipt, 0))
	f.Add(hdr(e2e.FrameText, 0xffffffff))
	f.Add(hdr(e2e.FrameText, e2e.MaxFramePayload+1))
	f.Add([]byte{0x0f, 0, 0})
	f.Add(append(hdr(0x90, 2), "xyz"...))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		fr, err := e2e.ReadFrame(r)
		read := len(in) - r.Len()
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				if len(in) != 0 {
					t.Fatalf("io.EOF after %d bytes", len(in))
				}
			case errors.Is(err, e2e.ErrFrameTooLarge):
				if read != 5 || binary.BigEndian.Uint32(in[1:]) <= e2e.MaxFramePayload {
					t.Fatalf("too large after %d bytes", read)
				}
			case errors.Is(err, e2e.ErrTruncated):
				if read != len(in) {
					t.Fatalf("truncated with %d bytes left", r.Len())
				}
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(fr.Payload) > e2e.MaxFramePayload {
			t.Fatalf("payload of %d bytes", len(fr.Payload))
		}
		out, err := e2e.AppendFrame(nil, fr.Type, fr.Payload)
		if err != nil || !bytes.Equal(out, in[:read]) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}

// FuzzParseText: a text that parses marshals back to the same bytes and
// obeys the rules; anything else is ErrMalformed.
func FuzzParseText(f *testing.F) {
	id := e2e.MessageID{1, 2, 3}
	f.Add(textPayload(id, 1_700_000_000_000, "hello"))
	f.Add(textPayload(id, -1, "grüß"))
	f.Add(textPayload(id, 0, ""))
	f.Add(textPayload(id, 0, "\xff"))
	f.Add(numberedPayload(id, 1_700_000_000_000, 0xfeed, 42, "numbered"))
	f.Add(numberedPayload(id, 1_700_000_000_000, 0, 42, "half numbered"))
	f.Add([]byte("short"))
	f.Fuzz(func(t *testing.T, in []byte) {
		txt, err := e2e.ParseText(in)
		if err != nil {
			if !errors.Is(err, e2e.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if txt.Body == "" || len(txt.Body) > e2e.MaxTextBytes || !utf8.ValidString(txt.Body) {
			t.Fatalf("accepted body %q", txt.Body)
		}
		out, err := txt.Marshal()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip: %v\n in %x\nout %x", err, in, out)
		}
	})
}

// FuzzParseReceipt: a receipt that parses marshals back to the same bytes.
func FuzzParseReceipt(f *testing.F) {
	id := e2e.MessageID{9, 8, 7}
	f.Add(e2e.Receipt{ID: id, Status: e2e.ReceiptStored}.Marshal())
	f.Add(append(id[:], 0))
	f.Add(id[:])
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := e2e.ParseReceipt(in)
		if err != nil {
			if !errors.Is(err, e2e.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if (r.Status != e2e.ReceiptStored && r.Status != e2e.ReceiptSeen) || !bytes.Equal(r.Marshal(), in) {
			t.Fatalf("round trip %+v", r)
		}
	})
}
