package e2e_test

import (
	"errors"
	"testing"

	"github.com/certchat/certchat/e2e"
)

// TestSendReceipts: several receipts written with SendReceipts leave in
// one write on the stream, in one TLS record, and the peer reads them as
// the separate receipt frames SendReceipt would have written, in order.
func TestSendReceipts(t *testing.T) {
	w := hosts(t)
	a, b := pairAB(t, w, nil, nil)
	var want []e2e.Receipt
	for i := range 5 {
		st := e2e.ReceiptStored
		if i == 3 {
			st = e2e.ReceiptSeen
		}
		want = append(want, e2e.Receipt{ID: e2e.NewMessageID(), Status: st})
	}
	var sw *wire
	var writes int // the server's writes that SendReceipts made
	var sendErr, emptyErr error
	c, s := run{client: a, server: b, wrapServer: wrapWith(nil, &sw),
		clientScript: func(s *e2e.Session, o *outcome) {
			o.sendErr = s.SendText(e2e.Text{ID: e2e.NewMessageID(), SentAt: epoch, Body: "hello"})
			n := 0
			receiveAll(s, o, func(f e2e.Frame) bool {
				if f.Type == e2e.FrameReceipt {
					n++
				}
				return n == len(want)
			})
			s.Close()
		},
		serverScript: func(s *e2e.Session, o *outcome) {
			receiveAll(s, o, func(f e2e.Frame) bool { return f.Type == e2e.FrameText })
			emptyErr = s.SendReceipts(nil)
			before := len(sw.Writes())
			sendErr = s.SendReceipts(want)
			writes = len(sw.Writes()) - before
			receiveAll(s, o, func(e2e.Frame) bool { return false })
			s.Close()
		}}.do(t)
	checkSide(t, "client", c, nil, nil)
	checkSide(t, "server", s, nil, []string{"hello"})
	if sendErr != nil || emptyErr != nil {
		t.Fatalf("SendReceipts: %v; of none: %v", sendErr, emptyErr)
	}
	if writes != 1 {
		t.Errorf("%d receipts went out in %d writes, want 1", len(want), writes)
	} else {
		last := sw.Writes()
		recs, rest := records(last[len(last)-1])
		if len(recs) != 1 || recs[0].typ != recApplicationData || len(rest) != 0 {
			t.Errorf("the write holds %d records (%v), want one of application data", len(recs), recs)
		}
	}
	var got []e2e.Receipt
	for _, f := range c.frames {
		if f.Type != e2e.FrameReceipt {
			t.Errorf("unexpected %s frame", f.Type)
			continue
		}
		r, err := e2e.ParseReceipt(f.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d receipts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("receipt %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	// After the session closed: nothing is written.
	if err := s.sess.SendReceipts(want); !errors.Is(err, e2e.ErrClosed) {
		t.Errorf("SendReceipts on a closed session: %v, want ErrClosed", err)
	}
}

// TestCloseSend: a side that ends its sending with CloseSend still reads
// what the peer sends until the peer's own close frame, and sends
// nothing more.
func TestCloseSend(t *testing.T) {
	w := hosts(t)
	a, b := pairAB(t, w, nil, nil)
	id := e2e.NewMessageID()
	var sendAfter, closeErr error
	var code e2e.CloseCode
	var reason string
	var peerClosed bool
	c, s := run{client: a, server: b,
		clientScript: func(s *e2e.Session, o *outcome) {
			o.sendErr = s.SendText(e2e.Text{ID: id, SentAt: epoch, Body: "hello"})
			closeErr = s.CloseSend(e2e.CloseGoingAway, "leaving")
			sendAfter = s.SendReceipt(e2e.Receipt{ID: id, Status: e2e.ReceiptStored})
			receiveAll(s, o, func(e2e.Frame) bool { return false })
			s.Close()
		},
		serverScript: func(s *e2e.Session, o *outcome) {
			receiveAll(s, o, func(e2e.Frame) bool { return false })
			code, reason, peerClosed = s.CloseReason()
			// The peer still reads: the answer, then our close frame.
			if err := s.SendReceipts([]e2e.Receipt{{ID: id, Status: e2e.ReceiptStored}}); err != nil {
				o.sendErr = err
			}
			s.Close()
		}}.do(t)
	checkSide(t, "client", c, nil, nil)
	checkSide(t, "server", s, nil, []string{"hello"})
	if closeErr != nil {
		t.Fatalf("CloseSend: %v", closeErr)
	}
	if !errors.Is(sendAfter, e2e.ErrClosed) {
		t.Errorf("Send after CloseSend: %v, want ErrClosed", sendAfter)
	}
	if !peerClosed || code != e2e.CloseGoingAway || reason != "leaving" {
		t.Errorf("the server saw close %v %q %v", code, reason, peerClosed)
	}
	if len(c.frames) != 1 || c.frames[0].Type != e2e.FrameReceipt {
		t.Fatalf("the client read %v after CloseSend, want the receipt", c.frames)
	}
	if _, _, ok := c.sess.CloseReason(); !ok {
		t.Error("the client did not read the server's close frame")
	}
}
