package node

import (
	"sync"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
)

// fileSums computes the SHA-256 of the outgoing files offered without it
// (transfer.Offer.SumLater, PROTOCOL §15.1) as their chunks are sent, one
// per transfer, shared by its streams, until the sum is stored with the
// offer.
type fileSums struct {
	*core
	mu   sync.Mutex
	sums map[transfer.ID]*transfer.FileSum
}

func newFileSums(c *core) *fileSums {
	return &fileSums{core: c, sums: map[transfer.ID]*transfer.FileSum{}}
}

// feed makes src feed the sum of its transfer with the chunks it reads,
// if the offer did not carry it.
func (fs *fileSums) feed(src *transfer.Source, o *transfer.Offer) {
	if !o.SumLater {
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	s := fs.sums[o.ID]
	if s == nil {
		s = transfer.NewFileSum()
		fs.sums[o.ID] = s
	}
	src.SumWith(s)
}

// sealed is the file's SHA-256 sealed for the end frame (PROTOCOL
// §15.5). A SumLater offer's is computed from the chunks as they were
// read for sending (and the rest of the file, read now, after a resume)
// and then stored with the offer, so that later streams and the file's
// record have it.
func (fs *fileSums) sealed(src *transfer.Source, o *transfer.Offer) ([]byte, error) {
	if !o.SumLater {
		return src.SealSum(o.SHA256), nil
	}
	sum, err := src.Sum()
	if err != nil {
		return nil, err
	}
	_, err = fs.store.Transfers().UpdateTransfer(e2e.MessageID(o.ID), func(t *store.Transfer) error {
		if so, err := transfer.ParseOffer(t.Offer); err == nil && so.SumLater {
			t.Offer = so.WithSum(sum).Marshal()
		}
		return nil
	})
	if err != nil {
		fs.log.Warn("store a file's SHA-256", "err", err)
	} else {
		fs.drop(o.ID)
	}
	return src.SealSum(sum), nil
}

// drop forgets a transfer's sum: stored, or the transfer is over.
func (fs *fileSums) drop(id transfer.ID) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.sums, id)
}
