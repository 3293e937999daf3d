package ui

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/gdamore/tcell/v2"
)

// tone is how a piece of status should be read: fine, take care, or danger.
type tone int

const (
	toneNone tone = iota
	toneGood
	toneWarn
	toneBad
)

func (th theme) toned(t tone, base tcell.Style) tcell.Style {
	switch t {
	case toneGood:
		return onBar(th.good, base)
	case toneWarn:
		return onBar(th.warn, base)
	case toneBad:
		return onBar(th.bad, base)
	}
	return base
}

// expiryWindow is how early a certificate's coming expiry is flagged.
const expiryWindow = 30 * 24 * time.Hour

// displayName is the name to show for a peer. A changed key shows the
// name it claims.
func displayName(info node.PeerInfo) string {
	name := info.Name
	if info.Changed != nil && info.Changed.Name != "" {
		name = info.Changed.Name
	}
	if name == "" {
		name = identity.ShortID(info.ID)
	}
	return oneLine(identity.SanitizeName(name))
}

// trustTitle spells out a peer's trust state for the title bar.
func trustTitle(info node.PeerInfo) (string, tone) {
	switch info.Trust {
	case identity.StateCAVerified:
		if iss := oneLine(info.Issuer); iss != "" && iss != "self-signed" {
			return "verified: issued by " + identity.SanitizeName(iss), toneGood
		}
		return "verified: " + oneLine(info.Reason), toneGood
	case identity.StateVerified:
		return "verified: fingerprint compared", toneGood
	case identity.StateTOFU:
		return "unverified: trusted on first use", toneWarn
	case identity.StateChanged:
		return "KEY CHANGED", toneBad
	case identity.StateUntrusted:
		reason := oneLine(info.Reason)
		if strings.HasPrefix(reason, "replaced:") {
			return reason, toneWarn
		}
		if reason == "" {
			reason = "you rejected this key"
		}
		return "blocked: " + reason, toneBad
	case identity.StateExpired:
		return "certificate expired", toneBad
	}
	return "unknown: not in your contacts", toneWarn
}

// trustBadge is the short trust mark in the chat list.
func trustBadge(info node.PeerInfo) (string, tone) {
	switch info.Trust {
	case identity.StateCAVerified:
		return "✓ CA", toneGood
	case identity.StateVerified:
		return "✓ verified", toneGood
	case identity.StateTOFU:
		return "~ unverified", toneWarn
	case identity.StateChanged:
		return "! KEY CHANGED", toneBad
	case identity.StateUntrusted:
		return "✗ blocked", toneBad
	case identity.StateExpired:
		return "✗ expired", toneBad
	}
	return "? unknown", toneWarn
}

// pathText says whether and how a peer is reachable.
func pathText(info node.PeerInfo) string {
	if !info.Online {
		return "offline"
	}
	if info.Path == node.PathNone {
		return "online"
	}
	return string(info.Path)
}

// expiryNote flags a certificate that expired or expires within 30 days.
func expiryNote(notAfter, now time.Time) (string, tone) {
	if notAfter.IsZero() {
		return "", toneNone
	}
	left := notAfter.Sub(now)
	switch {
	case left <= 0:
		return "certificate EXPIRED " + notAfter.Format("2 Jan 2006"), toneBad
	case left < 24*time.Hour:
		return "certificate expires today", toneWarn
	case left <= expiryWindow:
		days := int(math.Ceil(left.Hours() / 24))
		return fmt.Sprintf("certificate expires in %d days", days), toneWarn
	}
	return "", toneNone
}

// mayType says whether the input may send to a peer now, and if not why,
// as a sentence. The node would refuse the same cases; refusing first keeps
// the text in the input line.
func mayType(info node.PeerInfo) error {
	switch info.Trust {
	case identity.StateCAVerified, identity.StateVerified, identity.StateTOFU:
		return nil
	case identity.StateChanged:
		return node.ErrKeyChanged
	case identity.StateUntrusted:
		return node.ErrBlocked
	}
	return node.ErrNotTrusted
}
