package node

import "testing"

// TestReceiptHoldBelowTimers: a receipt held by a member (receipts_hold.go)
// reaches the sender well before any of the sender's timers that a late
// receipt sets off: the group copy's "sent" record (sentDelay), a
// new ratchet session and the copies written again (ResendAfter), and the
// send window never waits for held receipts.
func TestReceiptHoldBelowTimers(t *testing.T) {
	var cfg Config
	cfg.defaults()
	// Held; the sender's outbox workers hear of it when it comes
	// (receiptQueue.takeGroup), and its receipt queue records it up to
	// receiptGroupHold later.
	late := receiptHoldFor
	if late*4 > sentDelay {
		t.Errorf("a receipt can be %v late, too close to sentDelay (%v)", late, sentDelay)
	}
	if recorded := late + max(receiptGroupHold, receiptGatherMax); recorded*2 > sentDelay {
		t.Errorf("a receipt can be recorded %v late, too close to sentDelay (%v)", recorded, sentDelay)
	}
	// A new session costs a seed and every pending copy written again:
	// a receipt held for the whole hold must be far from setting it off.
	if late*20 > cfg.ResendAfter {
		t.Errorf("a receipt can be %v late, too close to ResendAfter (%v)", late, cfg.ResendAfter)
	}
	if receiptHoldBytes > sendWindow/4 {
		t.Errorf("receipts are held for up to %d bytes of envelopes; the sender's window is %d", receiptHoldBytes, sendWindow)
	}
	if receiptHoldMax < 2 {
		t.Errorf("receiptHoldMax %d holds nothing together", receiptHoldMax)
	}
}
