package transfer

// DirectForTest says whether p writes past the page cache.
func (p *Partial) DirectForTest() bool { return p.direct != nil }
