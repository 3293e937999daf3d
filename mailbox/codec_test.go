package mailbox

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The codec's parsers take bytes from the network (the relay parses
// requests, the node answers): they must never panic, never allocate more
// than the input can justify, and accept only canonical encodings, so
// that what parses re-encodes to exactly the same bytes.
//
// Run one target for a while with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzParseItems$' -fuzztime 30s ./mailbox/

func cdPeer(tb testing.TB) peer.ID {
	tb.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	// An Ed25519 peer ID is the identity multihash of the protobuf key.
	b := append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, pub...)
	id, err := peer.IDFromBytes(b)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func cdBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// canonical checks the round trip of a message that parsed: encoding it
// gives the input back, and parsing that gives the same message.
func canonical[M any](t *testing.T, in []byte, m M, marshal func(M) []byte, parse func([]byte) (M, error)) {
	t.Helper()
	out := marshal(m)
	if !bytes.Equal(out, in) {
		t.Fatalf("parsed %x, re-encoded %x", in, out)
	}
	again, err := parse(out)
	if err != nil {
		t.Fatalf("the re-encoding does not parse: %v", err)
	}
	if !reflect.DeepEqual(again, m) {
		t.Fatalf("round trip changed the message: %+v, then %+v", m, again)
	}
}

func FuzzParsePublish(f *testing.F) {
	f.Add(Publish{Bundle: cdBytes(1498)}.Marshal())
	f.Add(Publish{Bundle: cdBytes(10), OneTimeEC: [][]byte{cdBytes(3), {}}, OneTimeKEM: [][]byte{cdBytes(5)}}.Marshal())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 65})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParsePublish(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(m.OneTimeEC) > MaxPrekeysPerPublish || len(m.OneTimeKEM) > MaxPrekeysPerPublish {
			t.Fatalf("%d and %d one-time entries accepted", len(m.OneTimeEC), len(m.OneTimeKEM))
		}
		canonical(t, in, m, Publish.Marshal, ParsePublish)
	})
}

func FuzzParseFetchBundle(f *testing.F) {
	f.Add(FetchBundle{Peer: cdPeer(f)}.Marshal())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 2, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseFetchBundle(in)
		if err != nil {
			return
		}
		if err := m.Peer.Validate(); err != nil {
			t.Fatalf("accepted an invalid peer id: %v", err)
		}
		canonical(t, in, m, FetchBundle.Marshal, ParseFetchBundle)
	})
}

func FuzzParseDeposit(f *testing.F) {
	f.Add(Deposit{To: cdPeer(f), Envelope: cdBytes(400)}.Marshal())
	f.Add(Deposit{To: cdPeer(f)}.Marshal())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseDeposit(in)
		if err != nil {
			return
		}
		if m.To.Validate() != nil {
			t.Fatal("accepted an invalid recipient")
		}
		canonical(t, in, m, Deposit.Marshal, ParseDeposit)
	})
}

// Fetch is the one lenient parser: a max outside 1..MaxFetch means
// MaxFetch. Its output is always in range and stable.
func FuzzParseFetch(f *testing.F) {
	f.Add(Fetch{Max: 1}.Marshal())
	f.Add(Fetch{Max: MaxFetch}.Marshal())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseFetch(in)
		if err != nil {
			if len(in) == 4 {
				t.Fatalf("four bytes refused: %v", err)
			}
			return
		}
		if m.Max < 1 || m.Max > MaxFetch {
			t.Fatalf("max %d out of range", m.Max)
		}
		if again, err := ParseFetch(m.Marshal()); err != nil || again != m {
			t.Fatalf("round trip: %+v, then %+v (%v)", m, again, err)
		}
		if n := int(uint32(in[0])<<24 | uint32(in[1])<<16 | uint32(in[2])<<8 | uint32(in[3])); n >= 1 && n <= MaxFetch && m.Max != n {
			t.Fatalf("max %d parsed as %d", n, m.Max)
		}
	})
}

func FuzzParseAck(f *testing.F) {
	f.Add(Ack{IDs: []uint64{1, 2, 1 << 63}}.Marshal())
	f.Add(Ack{}.Marshal())
	f.Add([]byte{0, 0, 0, 65})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseAck(in)
		if err != nil {
			return
		}
		if len(m.IDs) > MaxFetch {
			t.Fatalf("%d ids accepted", len(m.IDs))
		}
		canonical(t, in, m, Ack.Marshal, ParseAck)
	})
}

func FuzzParseOK(f *testing.F) {
	f.Add(OK{PrekeysEC: 200, PrekeysKEM: 3, ID: 77}.Marshal())
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseOK(in)
		if err != nil {
			if len(in) == 16 {
				t.Fatalf("sixteen bytes refused: %v", err)
			}
			return
		}
		canonical(t, in, m, OK.Marshal, ParseOK)
	})
}

func FuzzParseBundleAnswer(f *testing.F) {
	f.Add(BundleAnswer{Bundle: cdBytes(2866)}.Marshal())
	f.Add([]byte{0, 0x10, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseBundleAnswer(in)
		if err != nil {
			return
		}
		canonical(t, in, m, BundleAnswer.Marshal, ParseBundleAnswer)
	})
}

func FuzzParseItems(f *testing.F) {
	a, b := cdPeer(f), cdPeer(f)
	at := time.UnixMilli(time.Now().UnixMilli())
	f.Add(Items{}.Marshal())
	f.Add(Items{More: true, Items: []Item{
		{ID: 1, From: a, Deposited: at, Envelope: cdBytes(40)},
		{ID: 1 << 40, From: b, Deposited: at.Add(time.Hour), Envelope: cdBytes(170)},
		{ID: 3, From: a, Deposited: time.UnixMilli(0), Envelope: nil},
	}}.Marshal())
	f.Add([]byte{2, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 0, 65})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseItems(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if len(m.Items) > MaxFetch {
			t.Fatalf("%d items accepted", len(m.Items))
		}
		for _, it := range m.Items {
			if it.From.Validate() != nil || len(it.Envelope) > MaxEnvelope {
				t.Fatalf("accepted item %d: from %q, %d bytes", it.ID, it.From, len(it.Envelope))
			}
		}
		out := m.Marshal()
		if !bytes.Equal(out, in) {
			t.Fatalf("parsed %x, re-encoded %x", in, out)
		}
		again, err := ParseItems(out)
		if err != nil || len(again.Items) != len(m.Items) || again.More != m.More {
			t.Fatalf("round trip: %v", err)
		}
		for i := range m.Items {
			x, y := m.Items[i], again.Items[i]
			if x.ID != y.ID || x.From != y.From || !x.Deposited.Equal(y.Deposited) || !bytes.Equal(x.Envelope, y.Envelope) {
				t.Fatalf("item %d changed in the round trip", i)
			}
		}
	})
}

func FuzzParseError(f *testing.F) {
	f.Add((&Error{Code: CodeRateLimited, RetryAfter: 5 * time.Second, Message: "too many deposits"}).Marshal())
	f.Add((&Error{Code: CodeQuotaFull, Message: "the recipient's mailbox is full (1000 messages, 400000 bytes)"}).Marshal())
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 4, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := ParseError(in)
		if err != nil {
			return
		}
		if len(e.Message) > 1024 {
			t.Fatalf("a message of %d bytes accepted", len(e.Message))
		}
		canonical(t, in, e, (*Error).Marshal, ParseError)
		_ = e.Error()
	})
}

// Error's retry time is whole seconds on the wire, rounded up: a wait
// under a second must not read as "retry now".
func TestErrorRetryAfterRoundsUp(t *testing.T) {
	for _, c := range []struct {
		in, want time.Duration
	}{
		{0, 0}, {time.Millisecond, time.Second}, {200 * time.Millisecond, time.Second},
		{time.Second, time.Second}, {1500 * time.Millisecond, 2 * time.Second}, {-time.Second, 0},
		{200 * 365 * 24 * time.Hour, (1<<32 - 1) * time.Second},
	} {
		e, err := ParseError((&Error{Code: CodeRateLimited, RetryAfter: c.in}).Marshal())
		if err != nil || e.RetryAfter != c.want {
			t.Errorf("retry after %v encodes as %v (%v), want %v", c.in, e.RetryAfter, err, c.want)
		}
	}
}

// Errors match their sentinels by code only.
func TestErrorIs(t *testing.T) {
	e := &Error{Code: CodeQuotaFull, Message: "full", RetryAfter: time.Second}
	if !errors.Is(e, ErrQuotaFull) || errors.Is(e, ErrRateLimited) || errors.Is(ErrQuotaFull, e) {
		t.Fatal("errors.Is on mailbox errors")
	}
}
