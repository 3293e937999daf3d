package e2e_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"reflect"
	"testing"

	"github.com/certchat/certchat/e2e"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fwdPeer is a peer ID made from a fixed Ed25519 seed.
func fwdPeer(tb testing.TB, seed byte) peer.ID {
	tb.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func sampleForward(tb testing.TB) e2e.Forward {
	return e2e.Forward{Group: [32]byte{7}, ID: e2e.MessageID{9}, Copies: []e2e.ForwardCopy{
		{Member: fwdPeer(tb, 1), Envelope: []byte("sealed for one")},
		{Member: fwdPeer(tb, 2), Envelope: []byte("sealed for two, a little longer")},
	}}
}

func TestForwardRoundTrip(t *testing.T) {
	f := sampleForward(t)
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2e.ParseForward(b)
	if err != nil || !reflect.DeepEqual(got, f) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	n := len(fwdPeer(t, 1))
	copyAt := 32 + 16 + 2 // the first copy's peer ID length
	for name, in := range map[string][]byte{
		"short":           b[:49],
		"no copies":       append(bytes.Clone(b[:48]), 0, 0),
		"cut":             b[:len(b)-1],
		"trailing":        append(bytes.Clone(b), 0),
		"empty peer":      append(bytes.Clone(b[:copyAt]), 0),
		"peer too long":   append(bytes.Clone(b[:copyAt]), 65),
		"not a peer":      append(append(bytes.Clone(b[:copyAt]), byte(n)), bytes.Repeat([]byte{0xff}, n+5)...),
		"empty envelope":  append(append(bytes.Clone(b[:copyAt+1+n]), 0, 0, 0, 0), b[copyAt+1+n+4:]...),
		"envelope beyond": append(append(bytes.Clone(b[:copyAt+1+n]), 0xff, 0xff, 0xff, 0xff), b[copyAt+1+n+4:]...),
	} {
		if _, err := e2e.ParseForward(in); !errors.Is(err, e2e.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	for name, bad := range map[string]e2e.Forward{
		"no copies":   {},
		"too many":    {Copies: make([]e2e.ForwardCopy, e2e.MaxForwardCopies+1)},
		"no envelope": {Copies: []e2e.ForwardCopy{{Member: fwdPeer(t, 1)}}},
		"no member":   {Copies: []e2e.ForwardCopy{{Envelope: []byte("x")}}},
		"too large":   {Copies: []e2e.ForwardCopy{{Member: fwdPeer(t, 1), Envelope: make([]byte, e2e.MaxFramePayload)}}},
	} {
		if _, err := bad.Marshal(); err == nil {
			t.Errorf("%s: Marshal wrote it", name)
		}
	}
}

func TestForwardedRoundTrip(t *testing.T) {
	f := e2e.Forwarded{Group: [32]byte{3}, Sender: fwdPeer(t, 4), Envelope: []byte("sealed by the sender")}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2e.ParseForwarded(b)
	if err != nil || !reflect.DeepEqual(got, f) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	n := len(f.Sender)
	for name, in := range map[string][]byte{
		"short":      b[:32],
		"no copy":    b[:32+1+n],
		"cut sender": b[:32+n],
		"empty peer": append(bytes.Clone(b[:32]), 0, 1, 2),
	} {
		if _, err := e2e.ParseForwarded(in); !errors.Is(err, e2e.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (e2e.Forwarded{Sender: f.Sender}).Marshal(); err == nil {
		t.Error("Marshal wrote a forwarded frame without its copy")
	}
}

func TestForwardRefusedRoundTrip(t *testing.T) {
	r := e2e.ForwardRefused{ID: e2e.MessageID{5}, Refused: []e2e.Refusal{{Member: fwdPeer(t, 1)}, {Member: fwdPeer(t, 2), Later: true}}}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2e.ParseForwardRefused(b)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for name, in := range map[string][]byte{
		"short":       b[:17],
		"none":        append(bytes.Clone(b[:16]), 0, 0),
		"cut":         b[:len(b)-1],
		"trailing":    append(bytes.Clone(b), 0),
		"more said":   append(bytes.Clone(b[:16]), 0, 3),
		"no flags":    append(bytes.Clone(b[:16]), 0, 1),
		"other flags": append(append(bytes.Clone(b[:18]), 2), b[19:]...),
	} {
		if _, err := e2e.ParseForwardRefused(in); !errors.Is(err, e2e.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (e2e.ForwardRefused{}).Marshal(); err == nil {
		t.Error("Marshal wrote a refusal naming nobody")
	}
}

// The forwards bit of the settings frame, beside the indications.
func TestSettingsForwards(t *testing.T) {
	s := e2e.Settings{Forwards: true}
	if b := s.Marshal(); !bytes.Equal(b, []byte{4}) {
		t.Fatalf("settings %+v encode as %x, want 04", s, b)
	}
	if got, err := e2e.ParseSettings([]byte{4}); err != nil || got != s {
		t.Fatalf("settings 04: %+v, %v", got, err)
	}
	if got, err := e2e.ParseSettings([]byte{3}); err != nil || got.Forwards {
		t.Fatalf("an older peer's settings (03) say it forwards: %+v, %v", got, err)
	}
}

// fuzzRoundTrip fuzzes a strict parser: every error is ErrMalformed, and
// what parses marshals back to the same bytes.
func fuzzRoundTrip[T any](f *testing.F, parse func([]byte) (T, error), marshal func(T) ([]byte, error)) {
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := parse(in)
		if err != nil {
			if !errors.Is(err, e2e.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		out, err := marshal(got)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("re-encoding: %x, %v; want %x", out, err, in)
		}
	})
}

func FuzzParseForward(f *testing.F) {
	b, _ := sampleForward(f).Marshal()
	f.Add(b)
	f.Add(b[:60])
	fuzzRoundTrip(f, e2e.ParseForward, e2e.Forward.Marshal)
}

func FuzzParseForwarded(f *testing.F) {
	b, _ := e2e.Forwarded{Group: [32]byte{3}, Sender: fwdPeer(f, 4), Envelope: []byte("sealed")}.Marshal()
	f.Add(b)
	f.Add(b[:40])
	fuzzRoundTrip(f, e2e.ParseForwarded, e2e.Forwarded.Marshal)
}

func FuzzParseForwardRefused(f *testing.F) {
	b, _ := e2e.ForwardRefused{ID: e2e.MessageID{5}, Refused: []e2e.Refusal{{Member: fwdPeer(f, 1), Later: true}}}.Marshal()
	f.Add(b)
	f.Add(b[:20])
	fuzzRoundTrip(f, e2e.ParseForwardRefused, e2e.ForwardRefused.Marshal)
}
