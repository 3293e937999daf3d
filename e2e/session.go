package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Session is an established end-to-end channel with a verified peer. Send
// may be called from several goroutines; Receive from one at a time.
type Session struct {
	tc    *tls.Conn
	nc    *netConn
	peer  identity.Verdict
	state tls.ConnectionState
	id    string

	wmu  sync.Mutex
	rmu  sync.Mutex
	rbuf []byte // Receive's buffer, reused; guarded by rmu

	mu         sync.Mutex
	closed     bool
	sendClosed bool // our close frame went (CloseSend or CloseWith)
	peerClosed bool
	closeCode  CloseCode
	closeText  string
}

// Info describes what the handshake negotiated.
type Info struct {
	Version     uint16
	CipherSuite uint16
	Group       tls.CurveID
	Protocol    string
	Resumed     bool
	// SessionID names the session (from the TLS exporter; not a secret).
	SessionID string
}

// VersionName, SuiteName and GroupName are the IANA names.
func (i Info) VersionName() string { return tls.VersionName(i.Version) }
func (i Info) SuiteName() string   { return tls.CipherSuiteName(i.CipherSuite) }
func (i Info) GroupName() string   { return i.Group.String() }

// PostQuantum reports whether the key exchange was hybrid post-quantum
// (X25519MLKEM768). A peer that offers X25519 only gets a classical
// session, unless Policy.RequirePostQuantum refuses it.
func (i Info) PostQuantum() bool { return i.Group == tls.X25519MLKEM768 }

func newSession(tc *tls.Conn, nc *netConn, verdict identity.Verdict) *Session {
	s := &Session{tc: tc, nc: nc, peer: verdict, state: tc.ConnectionState()}
	if b, err := s.state.ExportKeyingMaterial(ExporterSessionID, nil, 16); err == nil {
		s.id = hex.EncodeToString(b)
	}
	return s
}

// confirm ends the handshake with proof that both sides accepted. In TLS
// 1.3 the client's handshake completes before the server has checked the
// client's certificate, so the server, once it has, sends a ready frame,
// and the client waits for it: a client the server refuses gets the
// server's alert here (ErrRejected) instead of a session that dies at once.
func (s *Session) confirm(client bool) error {
	if !client {
		// Written straight to the TLS connection: the handshake's write
		// gathering is still on, and flushes it with the session ticket.
		ready, _ := AppendFrame(nil, FrameReady, nil)
		_, err := s.tc.Write(ready)
		return err
	}
	f, err := readFrame(s.tc, nil)
	if err != nil {
		return err
	}
	if f.Type != FrameReady {
		return fmt.Errorf("%w: the first frame is %s, not ready", ErrNotCertchat, f.Type)
	}
	if len(f.Payload) != 0 {
		return fmt.Errorf("%w: the ready frame carries %d bytes", ErrNotCertchat, len(f.Payload))
	}
	return nil
}

// Peer is the verified peer: ID, name, trust state and why.
func (s *Session) Peer() identity.Verdict { return s.peer }

// PeerID is the verified peer ID.
func (s *Session) PeerID() peer.ID { return s.peer.PeerID }

// PeerCertificates is the chain the peer presented (stored in the ticket
// when resumed), leaf first.
func (s *Session) PeerCertificates() []*x509.Certificate { return s.state.PeerCertificates }

// Info reports the negotiated version, suite, group and resumption.
func (s *Session) Info() Info {
	return Info{
		Version:     s.state.Version,
		CipherSuite: s.state.CipherSuite,
		Group:       s.state.CurveID,
		Protocol:    s.state.NegotiatedProtocol,
		Resumed:     s.state.DidResume,
		SessionID:   s.id,
	}
}

// ExportKeyingMaterial derives a secret bound to this session (RFC 8446
// §7.5) for later layers, e.g. seeding the Double Ratchet.
func (s *Session) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	return s.state.ExportKeyingMaterial(label, context, length)
}

// Send writes one frame: one TLS write, whose records go to the stream
// in one write.
func (s *Session) Send(t FrameType, payload []byte) error {
	buf := getBuffer()
	defer putBuffer(buf)
	frame, err := AppendFrame((*buf)[:0], t, payload)
	if err != nil {
		return err
	}
	*buf = frame
	return s.write(frame)
}

// write writes encoded frames, unless our close frame went: one TLS
// write, whose records go to the stream in one write.
func (s *Session) write(frames []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.sendDone() {
		return ErrClosed
	}
	s.nc.startGather()
	_, err := s.tc.Write(frames)
	if ferr := s.nc.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return s.ioError(err)
	}
	return nil
}

// SendText sends a text message.
func (s *Session) SendText(t Text) error {
	p, err := t.Marshal()
	if err != nil {
		return err
	}
	return s.Send(FrameText, p)
}

// SendReceipt acknowledges a message.
func (s *Session) SendReceipt(r Receipt) error { return s.Send(FrameReceipt, r.Marshal()) }

// SendReceipts acknowledges several messages in one write: the same
// receipt frames SendReceipt writes, one per receipt and in order, sealed
// in one TLS write (one record while they fit in 16 KiB) that goes to the
// stream in one write. The peer reads them as separate receipts. Either
// all of them are written or the session is broken.
func (s *Session) SendReceipts(rs []Receipt) error {
	if len(rs) == 0 {
		return nil
	}
	buf := getBuffer()
	defer putBuffer(buf)
	b := (*buf)[:0]
	for _, r := range rs {
		var p [receiptLen]byte
		b, _ = AppendFrame(b, FrameReceipt, r.appendPayload(p[:0])) // never too large
	}
	*buf = b
	return s.write(b)
}

// Receive reads the next frame the application must handle. The payload
// is valid until the next call to Receive, which reuses its memory (as
// bufio.Scanner does): copy it to keep it. Optional
// frames of unknown types are skipped. It returns io.EOF after the peer
// closed the session properly (see CloseReason), ErrTruncated if the
// stream ended without that, ErrTampered if a record failed
// authentication, and ErrUnknownFrame or ErrMalformed (after closing the
// session) if the peer broke the protocol.
func (s *Session) Receive() (Frame, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		if s.peerDone() {
			return Frame{}, io.EOF
		}
		f, err := readFrame(s.tc, s.rbuf)
		if err != nil {
			return Frame{}, s.readError(err)
		}
		if cap(f.Payload) <= maxKeptBuffer {
			s.rbuf = f.Payload[:0] // large ones are not kept by idle sessions
		} else {
			s.rbuf = nil
		}
		switch {
		case f.Type == FrameClose:
			code, reason, err := parseClose(f.Payload)
			if err != nil {
				return Frame{}, s.protocolError(err)
			}
			s.mu.Lock()
			s.peerClosed, s.closeCode, s.closeText = true, code, reason
			s.mu.Unlock()
			return Frame{}, io.EOF
		case f.Type.known():
			return f, nil
		case f.Type.Critical():
			return Frame{}, s.protocolError(fmt.Errorf("%w %s", ErrUnknownFrame, f.Type))
		}
	}
}

// CloseReason reports how the peer closed the session, once Receive has
// returned io.EOF.
func (s *Session) CloseReason() (CloseCode, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closeCode, s.closeText, s.peerClosed
}

// SetReadDeadline bounds the next Receive.
func (s *Session) SetReadDeadline(t time.Time) error { return s.tc.SetReadDeadline(t) }

// SetWriteDeadline bounds the next Send.
func (s *Session) SetWriteDeadline(t time.Time) error { return s.tc.SetWriteDeadline(t) }

// Close ends the session properly: a close frame, then TLS close_notify.
func (s *Session) Close() error { return s.CloseWith(CloseNormal, "") }

// CloseWith ends the session with a code and reason for the peer (unless
// CloseSend sent them already), then releases the stream.
func (s *Session) CloseWith(code CloseCode, reason string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	sent := s.sendClosed
	s.sendClosed = true
	s.mu.Unlock()
	var werr error
	if !sent {
		werr = s.writeClose(code, reason)
	}
	if err := s.tc.Close(); err != nil && werr == nil {
		werr = err
	}
	if werr != nil {
		return s.ioError(werr)
	}
	return nil
}

// CloseSend ends our side properly — a close frame with code and reason,
// then TLS close_notify — and leaves the session open for reading: what
// the peer sent before its own close frame still arrives, and Receive
// returns io.EOF after that frame. A peer that reads our close frame
// answers with its own, which proves it read everything before it. Send
// fails with ErrClosed from now on; Close or CloseWith releases the
// stream.
func (s *Session) CloseSend(code CloseCode, reason string) error {
	s.mu.Lock()
	if s.sendClosed {
		s.mu.Unlock()
		return nil
	}
	s.sendClosed = true
	s.mu.Unlock()
	err := s.writeClose(code, reason)
	if err == nil {
		// No Send writes from now on: each checks sendClosed under wmu,
		// which writeClose waited for.
		err = s.tc.CloseWrite()
	}
	if err != nil {
		return s.ioError(err)
	}
	return nil
}

// writeClose writes our close frame, once the caller set sendClosed.
func (s *Session) writeClose(code CloseCode, reason string) error {
	buf, _ := AppendFrame(nil, FrameClose, marshalClose(code, reason))
	// The deadline first: it also ends a Send blocked on a peer that
	// stopped reading, which holds wmu.
	s.tc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.tc.Write(buf)
	return err
}

func (s *Session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// sendDone reports whether our close frame went: nothing more is sent.
func (s *Session) sendDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendClosed
}

func (s *Session) peerDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peerClosed
}

func (s *Session) protocolError(err error) error {
	s.CloseWith(CloseProtocol, err.Error())
	return err
}

// readError maps what crypto/tls returns to our errors.
func (s *Session) readError(err error) error {
	switch {
	case errors.Is(err, io.EOF):
		// crypto/tls reports EOF at a record boundary with or without
		// close_notify; only our close frame proves a deliberate end.
		return fmt.Errorf("%w (no close frame)", ErrTruncated)
	case errors.Is(err, ErrTruncated), errors.Is(err, ErrFrameTooLarge):
		return s.protocolError(err)
	}
	return s.ioError(err)
}

func (s *Session) ioError(err error) error {
	if errors.Is(err, ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if isTimeout(err) {
		// A transport's own deadline error (yamux's), made to match
		// os.ErrDeadlineExceeded as a net.Conn's does.
		return fmt.Errorf("%w: %v", os.ErrDeadlineExceeded, err)
	}
	if s.isClosed() && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	if c := classify(err, true); c != nil {
		return c
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	}
	return err
}
