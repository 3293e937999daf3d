package e2e_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certchat/certchat/e2e"
)

func msgHeader(id e2e.MessageID) []byte {
	b := append([]byte(nil), id[:]...)
	b = binary.BigEndian.AppendUint64(b, 1_700_000_000_000)
	return append(b, make([]byte, 16)...)
}

func field(t byte, v ...[]byte) []byte {
	n := 0
	for _, p := range v {
		n += len(p)
	}
	b := binary.BigEndian.AppendUint32([]byte{t}, uint32(n))
	for _, p := range v {
		b = append(b, p...)
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Every kind of message survives the round trip; an unknown optional
// field is skipped, an unknown critical one refused.
func TestMessageRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	id, target := e2e.MessageID{1}, e2e.MessageID{2}
	for _, m := range []e2e.Message{
		{ID: id, SentAt: at, Stream: 7, Number: 3, Body: "hello"},
		{ID: id, SentAt: at, Stream: 7, Number: 4, Body: "yes", ReplyTo: target},
		{ID: id, SentAt: at, Body: "hello, fixed", EditOf: target},
		{ID: id, SentAt: at, DeleteOf: target},
		{ID: id, SentAt: at, ReactTo: target, Emoji: "👍🏽"},
		{ID: id, SentAt: at, ReactTo: target},
		{ID: id, SentAt: at, Stream: 9, Number: 1, Body: "to the team", Group: [32]byte{7}},
		{ID: id, SentAt: at, ReactTo: target, Emoji: "👍", Group: [32]byte{7}},
	} {
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		got, err := e2e.ParseMessage(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	base := cat(msgHeader(id), field(0x01, []byte("hi")))
	if m, err := e2e.ParseMessage(cat(base, field(0x90, []byte("a later version's")))); err != nil || m.Body != "hi" {
		t.Fatalf("unknown optional field: %+v, %v", m, err)
	}
	if _, err := e2e.ParseMessage(cat(base, field(0x10, target[:]))); !errors.Is(err, e2e.ErrMalformed) || !strings.Contains(err.Error(), "critical") {
		t.Fatalf("unknown critical field: %v", err)
	}
}

// Invalid messages are refused with ErrMalformed, and Marshal refuses to
// write them.
func TestMessageRefused(t *testing.T) {
	id, target := e2e.MessageID{1}, e2e.MessageID{2}
	hdr := msgHeader(id)
	for name, in := range map[string][]byte{
		"no field":            hdr,
		"short header":        hdr[:39],
		"cut field header":    cat(hdr, []byte{1, 0, 0}),
		"overrun":             cat(hdr, []byte{1, 0, 0, 0, 9, 'a'}),
		"repeated":            cat(hdr, field(1, []byte("a")), field(1, []byte("b"))),
		"out of order":        cat(hdr, field(2, target[:]), field(1, []byte("b"))),
		"empty body":          cat(hdr, field(1)),
		"bad utf-8":           cat(hdr, field(1, []byte{0xff})),
		"short id":            cat(hdr, field(1, []byte("a")), field(2, target[:8])),
		"zero id":             cat(hdr, field(1, []byte("a")), field(2, make([]byte, 16))),
		"edit without body":   cat(hdr, field(3, target[:])),
		"delete with body":    cat(hdr, field(1, []byte("a")), field(4, target[:])),
		"edit and delete":     cat(hdr, field(1, []byte("a")), field(3, target[:]), field(4, target[:])),
		"reply to a reaction": cat(hdr, field(2, target[:]), field(5, target[:], []byte("x"))),
		"long emoji":          cat(hdr, field(5, target[:], bytes.Repeat([]byte("x"), e2e.MaxEmojiBytes+1))),
		"short group":         cat(hdr, field(1, []byte("a")), field(6, make([]byte, 31))),
		"zero group":          cat(hdr, field(1, []byte("a")), field(6, make([]byte, 32))),
		"group alone":         cat(hdr, field(6, bytes.Repeat([]byte{7}, 32))),
		"half numbered":       cat(id[:], make([]byte, 8), []byte{0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 8), field(1, []byte("a"))),
	} {
		m, err := e2e.ParseMessage(in)
		if !errors.Is(err, e2e.ErrMalformed) {
			t.Errorf("%s: %+v, %v; want ErrMalformed", name, m, err)
		}
	}
	if _, err := (e2e.Message{ID: id, DeleteOf: target, Body: "x"}).Marshal(); err == nil {
		t.Error("Marshal wrote a deletion with a body")
	}
}

// FuzzParseMessage: a message that parses is valid and marshals to bytes
// that parse to the same message; anything else is ErrMalformed.
func FuzzParseMessage(f *testing.F) {
	id, target := e2e.MessageID{1}, e2e.MessageID{2}
	hdr := msgHeader(id)
	f.Add(cat(hdr, field(1, []byte("hello"))))
	f.Add(cat(hdr, field(1, []byte("re")), field(2, target[:])))
	f.Add(cat(hdr, field(1, []byte("new")), field(3, target[:])))
	f.Add(cat(hdr, field(4, target[:])))
	f.Add(cat(hdr, field(5, target[:], []byte("🎉"))))
	f.Add(cat(hdr, field(1, []byte("x")), field(0x90, []byte("later"))))
	f.Add(cat(hdr, field(1, []byte("x")), field(0x10, []byte("critical"))))
	f.Add(cat(hdr, []byte{1, 0xff, 0xff, 0xff, 0xff}))
	f.Add(cat(hdr, field(1, []byte("team")), field(6, bytes.Repeat([]byte{7}, 32))))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := e2e.ParseMessage(in)
		if err != nil {
			if !errors.Is(err, e2e.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("a parsed message does not marshal: %v", err)
		}
		again, err := e2e.ParseMessage(out)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: %+v / %+v, %v", m, again, err)
		}
	})
}

// Settings and typing frames: what the flags say, strictly for typing.
func TestSettingsAndTyping(t *testing.T) {
	for _, s := range []e2e.Settings{{}, {ReadMarkers: true}, {Typing: true}, {ReadMarkers: true, Typing: true}} {
		if got, err := e2e.ParseSettings(s.Marshal()); err != nil || got != s {
			t.Fatalf("settings %+v: %+v, %v", s, got, err)
		}
	}
	if got, err := e2e.ParseSettings([]byte{0xff, 1, 2}); err != nil || !got.ReadMarkers || !got.Typing {
		t.Fatalf("a later version's settings: %+v, %v", got, err)
	}
	if _, err := e2e.ParseSettings(nil); !errors.Is(err, e2e.ErrMalformed) {
		t.Fatal("an empty settings frame was accepted")
	}
	for _, in := range [][]byte{nil, {2}, {1, 1}} {
		if _, err := e2e.ParseTyping(in); !errors.Is(err, e2e.ErrMalformed) {
			t.Fatalf("typing %x accepted", in)
		}
	}
	if ty, err := e2e.ParseTyping(e2e.Typing(true).Marshal()); err != nil || !bool(ty) {
		t.Fatal("typing round trip")
	}
}
