package node

import (
	"bytes"
	"testing"

	"github.com/certchat/certchat/transfer"
)

// FuzzFileStream reads untrusted bytes as the frames of a file stream and
// as the fields of file frames: errors, never a panic or a huge
// allocation, and what parses encodes back the same.
func FuzzFileStream(f *testing.F) {
	var id transfer.ID
	f.Add(wantPayload(id, 0, [][2]int{{0, 3}, {5, 9}}))
	f.Add(wantPayload(id, 1<<20, nil))
	f.Add([]byte{fsChunk, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{fsError, 0, 0, 0, 3, 2, 'n', 'o'})
	f.Add([]byte{fsAck, 0xff, 0xff, 0xff, 0xff})
	f.Add(make([]byte, msgHeaderLen+17))
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, held, ranges, err := parseWant(b); err == nil {
			if got := wantPayload(id, held, ranges); !bytes.Equal(got, b) {
				t.Fatalf("want %x encodes back as %x", b, got)
			}
			for _, r := range ranges {
				if r[0] < 0 || r[0] >= r[1] {
					t.Fatalf("range %v", r)
				}
			}
		}
		r := bytes.NewReader(b)
		for {
			_, payload, err := readFS(r, nil)
			if err != nil {
				break
			}
			if len(payload) > fsMaxPayload {
				t.Fatalf("a frame of %d bytes", len(payload))
			}
		}
		if m, rest, err := parseMsgHeader(b); err == nil {
			if got := append(appendMsgHeader(nil, m), rest...); !bytes.Equal(got, b) && m.SentAt.UnixMilli() >= 0 {
				t.Fatalf("header %x encodes back as %x", b, got)
			}
		}
	})
}
