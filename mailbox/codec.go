package mailbox

import (
	"math"
	"time"
)

// Encodings (all integers big-endian, blobs u32-length-prefixed):
//
//	Publish      blob bundle, u32 n, n×blob, u32 m, m×blob
//	FetchBundle  blob peer ID
//	Deposit      blob recipient peer ID, blob envelope
//	Fetch        u32 max
//	Ack          u32 n, n×u64 id
//	OK           u32 prekeys EC, u32 prekeys KEM, u64 id
//	Bundle       blob bundle
//	Items        u8 more, u32 n, n×(u64 id, blob from, u64 deposited unix ms, blob envelope)
//	Error        u8 code, u32 retry-after seconds, blob message (UTF-8)

func (m Publish) Marshal() []byte {
	var w writer
	w.blob(m.Bundle)
	w.blobs(m.OneTimeEC)
	w.blobs(m.OneTimeKEM)
	return w.b
}

func ParsePublish(p []byte) (Publish, error) {
	r := reader{b: p}
	var m Publish
	m.Bundle = r.blob(maxBlob)
	m.OneTimeEC = r.blobs(MaxPrekeysPerPublish, maxBlob)
	m.OneTimeKEM = r.blobs(MaxPrekeysPerPublish, maxBlob)
	return m, r.done()
}

func (m FetchBundle) Marshal() []byte {
	var w writer
	w.blob([]byte(m.Peer))
	return w.b
}

func ParseFetchBundle(p []byte) (FetchBundle, error) {
	r := reader{b: p}
	m := FetchBundle{Peer: r.peerID()}
	return m, r.done()
}

func (m Deposit) Marshal() []byte {
	var w writer
	w.blob([]byte(m.To))
	w.blob(m.Envelope)
	return w.b
}

func ParseDeposit(p []byte) (Deposit, error) {
	r := reader{b: p}
	m := Deposit{To: r.peerID(), Envelope: r.blob(maxBlob)}
	return m, r.done()
}

func (m Fetch) Marshal() []byte {
	var w writer
	w.u32(uint32(m.Max))
	return w.b
}

func ParseFetch(p []byte) (Fetch, error) {
	r := reader{b: p}
	m := Fetch{Max: int(r.u32())}
	if m.Max < 1 || m.Max > MaxFetch {
		m.Max = MaxFetch
	}
	return m, r.done()
}

func (m Ack) Marshal() []byte {
	var w writer
	w.u32(uint32(len(m.IDs)))
	for _, id := range m.IDs {
		w.u64(id)
	}
	return w.b
}

func ParseAck(p []byte) (Ack, error) {
	r := reader{b: p}
	var m Ack
	for i, n := 0, r.count(MaxFetch, 8); i < n; i++ {
		m.IDs = append(m.IDs, r.u64())
	}
	return m, r.done()
}

func (m OK) Marshal() []byte {
	var w writer
	w.u32(m.PrekeysEC)
	w.u32(m.PrekeysKEM)
	w.u64(m.ID)
	return w.b
}

func ParseOK(p []byte) (OK, error) {
	r := reader{b: p}
	m := OK{PrekeysEC: r.u32(), PrekeysKEM: r.u32(), ID: r.u64()}
	return m, r.done()
}

func (m BundleAnswer) Marshal() []byte {
	var w writer
	w.blob(m.Bundle)
	return w.b
}

func ParseBundleAnswer(p []byte) (BundleAnswer, error) {
	r := reader{b: p}
	m := BundleAnswer{Bundle: r.blob(maxBlob)}
	return m, r.done()
}

func (m Items) Marshal() []byte {
	var w writer
	more := uint8(0)
	if m.More {
		more = 1
	}
	w.u8(more)
	w.u32(uint32(len(m.Items)))
	for _, it := range m.Items {
		w.u64(it.ID)
		w.blob([]byte(it.From))
		w.u64(uint64(it.Deposited.UnixMilli()))
		w.blob(it.Envelope)
	}
	return w.b
}

func ParseItems(p []byte) (Items, error) {
	r := reader{b: p}
	var m Items
	switch r.u8() {
	case 0:
	case 1:
		m.More = true
	default:
		return m, ErrMalformed
	}
	for i, n := 0, r.count(MaxFetch, 24); i < n; i++ {
		it := Item{ID: r.u64(), From: r.peerID()}
		it.Deposited = time.UnixMilli(int64(r.u64()))
		it.Envelope = r.blob(MaxEnvelope)
		m.Items = append(m.Items, it)
	}
	return m, r.done()
}

func (e *Error) Marshal() []byte {
	var w writer
	w.u8(uint8(e.Code))
	// Whole seconds, rounded up: a wait under a second is not "retry now".
	secs := (e.RetryAfter + time.Second - 1) / time.Second
	w.u32(uint32(min(max(secs, 0), math.MaxUint32)))
	w.blob([]byte(e.Message))
	return w.b
}

func ParseError(p []byte) (*Error, error) {
	r := reader{b: p}
	e := &Error{Code: ErrorCode(r.u8()), RetryAfter: time.Duration(r.u32()) * time.Second}
	e.Message = string(r.blob(1024))
	if err := r.done(); err != nil {
		return nil, err
	}
	return e, nil
}
