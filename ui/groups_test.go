package ui

import (
	"testing"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
)

func TestGroupSummary(t *testing.T) {
	v := node.PeerInfo{Trust: identity.StateVerified}
	ca := node.PeerInfo{Trust: identity.StateCAVerified}
	tofu := node.PeerInfo{Trust: identity.StateTOFU}
	changed := node.PeerInfo{Trust: identity.StateChanged}
	for _, tc := range []struct {
		in   []node.PeerInfo
		want string
		tone tone
	}{
		{[]node.PeerInfo{v, ca, v, v, v, tofu}, "6 members: 5 verified, 1 unverified", toneWarn},
		{[]node.PeerInfo{v}, "1 member: 1 verified", toneGood},
		{[]node.PeerInfo{v, changed}, "2 members: 1 verified, 1 KEY CHANGED (sending blocked until you decide)", toneBad},
	} {
		got, tn := groupSummary(tc.in)
		if got != tc.want || tn != tc.tone {
			t.Errorf("groupSummary: %q %v, want %q %v", got, tn, tc.want, tc.tone)
		}
	}
}

// /group create, /groups, /members and a refused /invite by a non-admin,
// in real windows on real nodes.
func TestGroupCommands(t *testing.T) {
	t.Parallel()
	alice, bob, wa, wb := talkingBoth(t)
	_ = bob
	wa.enter("/group create team bob")
	wa.waitText("Group team made with 2 members")
	wb.waitFor("the group at bob", func(string) bool {
		_, err := bob.n.Groups().Find("team")
		return err == nil
	})
	wa.enter("/members team")
	wa.waitText("Members of team", "1 member: 1 unverified", "you (admin)", "bob — unverified: trusted on first use")
	wa.key(27, 0, 0) // Esc
	wa.waitGone("Members of team")
	wa.enter("/groups")
	wa.waitText("team  2 members")
	wa.key(27, 0, 0)
	wb.enter("/invite team " + alice.peerID().String())
	wb.waitText("/invite: only an admin of the group can do that")
}
