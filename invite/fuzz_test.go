package invite

import "testing"

// FuzzDecode feeds Decode untrusted text (seeds in testdata/fuzz/FuzzDecode
// and below). Whatever it accepts verifies, keeps to the limits and
// encodes back to the same invitation.
func FuzzDecode(f *testing.F) {
	inv, key := sample(f)
	text, err := Encode(inv, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(text)
	inv.Relays, inv.Name = nil, ""
	bare, _ := Encode(inv, key)
	f.Add(bare)
	f.Add(Prefix)
	f.Add(Prefix + "AE")
	f.Add("certchat:" + text[len(Prefix):len(Prefix)+40])
	f.Fuzz(func(t *testing.T, text string) {
		got, err := Decode(text)
		if err != nil {
			return
		}
		if len(got.Addrs) > MaxAddrs || len(got.Relays) > MaxRelays {
			t.Fatalf("accepted beyond the limits: %+v", got)
		}
		body, err := marshal(got)
		if err != nil {
			t.Fatalf("accepted %q, which does not encode again: %v", text, err)
		}
		if _, err := unmarshal(body); err != nil {
			t.Fatal(err)
		}
		if _, err := got.Fingerprint(); err != nil {
			t.Fatal(err)
		}
		_ = got.DialAddrs()
	})
}

// FuzzUnmarshal reaches the binary parser without the signature in the
// way: any body either is refused or encodes back to the same bytes.
func FuzzUnmarshal(f *testing.F) {
	inv, _ := sample(f)
	body, err := marshal(inv)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add([]byte{Version, 0, 0, 0, 0, 0})
	f.Add([]byte{Version})
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := unmarshal(body)
		if err != nil {
			return
		}
		again, err := marshal(got)
		if err != nil {
			t.Fatalf("accepted a body that does not encode again: %v", err)
		}
		if string(again) != string(body) {
			t.Fatalf("body %x encodes back as %x", body, again)
		}
	})
}
