package transfer

// DirectForTest says whether p writes past the page cache.
func (p *Partial) DirectForTest() bool { return p.direct != nil }

// SetDirectForTest turns the writes past the page cache off or on again
// (for benchmarks side by side).
func SetDirectForTest(on bool) { noDirect = !on }

// BreakDirectForTest makes p's writes past the page cache fail (not for
// a full disk).
func (p *Partial) BreakDirectForTest() { p.direct.f.Close() }

// BlocksUnlisted is how many chunks a checkpoint may leave to the next:
// the blocks being written past the page cache and the one filling.
const BlocksUnlisted = (blocksInFlight + 1) * blockChunks
