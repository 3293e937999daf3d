package mailbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// callTimeout bounds one request to a relay.
const callTimeout = 20 * time.Second

// Client talks to relays' mailboxes from a node's host. Streams go over a
// direct connection to the relay, never a relayed one.
type Client struct{ Host host.Host }

// call sends one request and reads its answer. The request ends when
// ctx does: its stream is reset, even while it waits for the answer.
func (c Client) call(ctx context.Context, relay peer.ID, t e2e.FrameType, payload []byte, want e2e.FrameType) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	s, err := c.Host.NewStream(ctx, relay, Protocol)
	if err != nil {
		return nil, fmt.Errorf("mailbox at %s: %w", identity.ShortID(relay), err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	req, err := e2e.AppendFrame(nil, t, payload)
	if err != nil {
		return nil, err
	}
	if _, err := s.Write(req); err != nil {
		s.Reset()
		return nil, streamErr(ctx, relay, err)
	}
	s.CloseWrite()
	f, err := e2e.ReadFrame(s)
	if err != nil {
		s.Reset()
		return nil, streamErr(ctx, relay, err)
	}
	switch f.Type {
	case want:
		return f.Payload, nil
	case TypeError:
		e, err := ParseError(f.Payload)
		if err != nil {
			return nil, fmt.Errorf("mailbox at %s: %w", identity.ShortID(relay), err)
		}
		e.Message = identity.SanitizeText(e.Message, false)
		return nil, e
	}
	return nil, fmt.Errorf("mailbox at %s: %w: answer of type %s", identity.ShortID(relay), ErrMalformed, f.Type)
}

// streamErr is the error of a request to relay whose stream failed
// with err: with ctx's error when ctx ended (the stream was reset).
func streamErr(ctx context.Context, relay peer.ID, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("mailbox at %s: %w: %w", identity.ShortID(relay), cerr, err)
	}
	return fmt.Errorf("mailbox at %s: %w", identity.ShortID(relay), err)
}

// Publish registers our mailbox and uploads prekeys.
func (c Client) Publish(ctx context.Context, relay peer.ID, m Publish) (OK, error) {
	p, err := c.call(ctx, relay, TypePublish, m.Marshal(), TypeOK)
	if err != nil {
		return OK{}, err
	}
	return ParseOK(p)
}

// FetchBundle gets a peer's bundle.
func (c Client) FetchBundle(ctx context.Context, relay, of peer.ID) ([]byte, error) {
	p, err := c.call(ctx, relay, TypeFetchBundle, FetchBundle{Peer: of}.Marshal(), TypeBundle)
	if err != nil {
		return nil, err
	}
	a, err := ParseBundleAnswer(p)
	return a.Bundle, err
}

// Deposit leaves an envelope for a peer and returns the item's id.
func (c Client) Deposit(ctx context.Context, relay, to peer.ID, envelope []byte) (uint64, error) {
	if len(envelope) > MaxEnvelope {
		return 0, ErrTooLarge
	}
	p, err := c.call(ctx, relay, TypeDeposit, Deposit{To: to, Envelope: envelope}.Marshal(), TypeOK)
	if err != nil {
		return 0, err
	}
	ok, err := ParseOK(p)
	return ok.ID, err
}

// Fetch gets up to max of our items, oldest first.
func (c Client) Fetch(ctx context.Context, relay peer.ID, max int) (Items, error) {
	p, err := c.call(ctx, relay, TypeFetch, Fetch{Max: max}.Marshal(), TypeItems)
	if err != nil {
		return Items{}, err
	}
	return ParseItems(p)
}

// Ack deletes items we have stored.
func (c Client) Ack(ctx context.Context, relay peer.ID, ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) > MaxFetch {
		return errors.New("mailbox: too many ids in one ack")
	}
	_, err := c.call(ctx, relay, TypeAck, Ack{IDs: ids}.Marshal(), TypeOK)
	return err
}
