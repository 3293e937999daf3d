package node

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/certchat/certchat/e2e/ratchet"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Mail that does not open is told once per sender with its reasons; mail
// sealed for a session this node does not hold is said as what it is
// and what comes of it, not as the session's ID (the user saw "ratchet:
// unknown session: 000001a2…"), and errors.Is still finds every reason.
func TestDiscardedMailSaysWhy(t *testing.T) {
	p := peer.ID("alice")
	lost := fmt.Errorf("%w: 000001a24924dcfe0b2312b3043282e3", ratchet.ErrUnknownSession)
	auth := fmt.Errorf("%w: envelope", ratchet.ErrAuth)
	for _, tc := range []struct {
		n       int
		reasons []error
		want    string
	}{
		{1, []error{lost}, "a sealed message from " + identity.ShortID(p) + " could not be opened and was discarded: sealed for a session this node does not hold (lost in a restart, or not the sender's); the sender still has it and sends it again when you are both online"},
		{3, []error{auth, lost, fmt.Errorf("%w: 2", ratchet.ErrUnknownSession)}, "3 sealed messages from " + identity.ShortID(p) + " could not be opened and were discarded: " + auth.Error() + "; sealed for a session this node does not hold"},
		{3, []error{lost, auth, fmt.Errorf("%w: 2", ratchet.ErrUnknownSession)}, "3 sealed messages from " + identity.ShortID(p) + " could not be opened and were discarded: sealed for a session this node does not hold (lost in a restart, or not the sender's); the sender still has it and sends it again when you are both online; " + auth.Error()},
	} {
		err := discarded(tc.n, p, tc.reasons)
		if !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "000001a2") || strings.Count(err.Error(), "does not hold") != 1 {
			t.Errorf("discarded(%d, %v):\n got %q\nwant %q…", tc.n, tc.reasons, err, tc.want)
		}
		for _, r := range tc.reasons {
			if !errors.Is(err, r) {
				t.Errorf("discarded(%d): errors.Is does not find %v", tc.n, r)
			}
		}
	}
}
