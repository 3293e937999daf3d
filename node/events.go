package node

import (
	"slices"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// EventKind names an event.
type EventKind string

const (
	// EventListening: the node's full addresses changed.
	EventListening EventKind = "listening"
	// EventPeer: something about a peer changed (found, connected,
	// verified, trust, path, gone).
	EventPeer EventKind = "peer"
	// EventMessage: a new incoming message was stored.
	EventMessage EventKind = "message"
	// EventStatus: an outgoing message changed state (sent, queued,
	// delivered, failed).
	EventStatus EventKind = "status"
	// EventError: something went wrong that the user should see.
	EventError EventKind = "error"
	// EventLAN: LAN discovery came on or went off (LANStatus says why).
	EventLAN EventKind = "lan"
	// EventUpdate: a stored text changed: an edit, deletion or reaction
	// (ours or the peer's) was applied to it. Message is the text as it
	// stands, Action what changed it.
	EventUpdate EventKind = "update"
	// EventTyping: the peer PeerID started (Typing) or stopped typing to
	// us. Live only; the node says stopped when the peer's session ends
	// or it turns typing off, the window also forgets it after a while.
	EventTyping EventKind = "typing"
	// EventSeen: the peer's window showed an outgoing message (read
	// markers): Message, now Seen (and delivered).
	EventSeen EventKind = "seen"
	// EventGroup: a group was created, or its membership or name changed
	// (Group).
	EventGroup EventKind = "group"
)

// Path is how a peer is reached.
type Path string

const (
	PathNone   Path = ""
	PathLAN    Path = "lan"
	PathDirect Path = "direct"
	PathRelay  Path = "relay"
)

// PeerInfo is what the node knows about a peer right now.
type PeerInfo struct {
	ID          peer.ID
	Name        string
	Fingerprint identity.Fingerprint
	Trust       identity.State
	Reason      string
	Issuer      string
	// IssuerTrusted: a CA root the user trusts issued the certificate
	// (Issuer is its name); otherwise Issuer is only what the certificate
	// claims.
	IssuerTrusted bool
	NotAfter      time.Time
	Online        bool // a verified chat session is open
	// PostQuantum: the newest live session's key exchange is hybrid
	// post-quantum (X25519MLKEM768). False when offline, and for a session
	// whose peer offered X25519 only.
	PostQuantum bool
	Path        Path
	Discovered  bool // seen on the LAN
	// Contact: the user decided about this key (it is in the trust store:
	// pinned, verified or blocked), so it can be renamed or removed.
	Contact bool
	// Changed is set while a key claims the name of a contact with
	// another key, until the user decides: the new key's verdict, whose
	// Previous is the known contact. It is evaluated from the key's last
	// certificate when asked, online or not, in this run or a later one.
	Changed *identity.Verdict
	// CertName is, for a contact, the name its certificate now says when
	// that differs from Name, the label the user knows it by (which a
	// new certificate never changes).
	CertName string
}

// Event is one notification from the node.
type Event struct {
	Kind    EventKind
	Time    time.Time
	Addrs   []string       // listening
	Peer    *PeerInfo      // peer
	Message *store.Message // message, status, update
	Action  *store.Message // update: the edit, deletion or reaction applied
	Err     string         // error
	// Cause is the error itself (error), for callers in this process that
	// branch on it (errors.Is, errors.As: ErrStrangerFull, ErrNoReceipt);
	// Err is its text, which is what the daemon's JSON carries.
	Cause  error
	PeerID peer.ID    // error: the peer concerned, if any; typing: who
	LAN    *LANStatus // lan
	Typing bool       // typing: started (else stopped)
	File   *FileInfo  // file_offer, file_progress, file_done, file_failed
	Group  *GroupInfo // group
}

// broker fans events out to subscribers. Each subscriber has its own
// unbounded queue, so a slow reader never loses an event and never blocks
// the node. mu guards subs; any goroutine publishes, and publish takes
// each Subscription.mu under it (the one nesting of the event locks).
type broker struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// Subscription receives events until Close.
type Subscription struct {
	C <-chan Event

	b      *broker
	mu     sync.Mutex
	queue  []Event
	wake   chan struct{}
	done   chan struct{} // closed by Close: stop now
	closed bool          // set by closeAll: drain, then stop
	// listening is the addresses of the last listening event queued: a
	// listening event with the same addresses tells nothing and is dropped.
	listening []string
	listened  bool
}

func newBroker() *broker { return &broker{subs: map[*Subscription]struct{}{}} }

// subscribe adds a subscriber whose queue starts with first: nothing
// published meanwhile can come before them.
func (b *broker) subscribe(first ...Event) *Subscription {
	c := make(chan Event)
	s := &Subscription{C: c, b: b, wake: make(chan struct{}, 1), done: make(chan struct{})}
	for _, e := range first {
		s.enqueue(e)
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	go s.pump(c)
	return s
}

func (b *broker) publish(e Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.push(e)
	}
}

// closeAll ends every subscription after it has delivered what is queued.
func (b *broker) closeAll() {
	b.mu.Lock()
	subs := b.subs
	b.subs = map[*Subscription]struct{}{}
	b.mu.Unlock()
	for s := range subs {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.signal()
	}
}

func (s *Subscription) push(e Event) {
	s.mu.Lock()
	queued := s.enqueue(e)
	s.mu.Unlock()
	if queued {
		s.signal()
	}
}

// enqueue adds e to the queue unless it is a listening event with the
// addresses of the previous one: the node announces its addresses from
// several places (the subscription's first event, start, libp2p's address
// updates, relay reservations), and the subscriber should hear only of
// changes. It reports whether e was queued. Callers hold s.mu, or own s.
func (s *Subscription) enqueue(e Event) bool {
	if e.Kind == EventListening {
		addrs := slices.Sorted(slices.Values(e.Addrs)) // the same set in another order is no change
		if s.listened && slices.Equal(s.listening, addrs) {
			return false
		}
		s.listening, s.listened = addrs, true
	}
	s.queue = append(s.queue, e)
	return true
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// maxSpareEvents is the most events a subscription's spare queue keeps
// room for: a burst larger than this does not hold its memory after.
const maxSpareEvents = 1024

// pump delivers queued events in order. After closeAll it drains the queue
// and closes C; after Close it stops at once. It takes the queue and
// leaves the one it delivered last in its place, emptied (its events
// cleared, so the messages they point to can go): the two slices take
// turns, and a steady stream of events allocates no queue.
func (s *Subscription) pump(c chan<- Event) {
	defer close(c)
	var spare []Event
	for {
		s.mu.Lock()
		q, closed := s.queue, s.closed
		s.queue = spare
		s.mu.Unlock()
		for i, e := range q {
			select {
			case c <- e:
				q[i] = Event{}
			case <-s.done:
				return
			}
		}
		if spare = q[:0]; cap(spare) > maxSpareEvents {
			spare = nil
		}
		if closed && len(q) == 0 {
			return
		}
		if closed {
			continue
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}

// Close ends the subscription without delivering what is queued; C is
// closed soon after.
func (s *Subscription) Close() {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

// peerEvents publishes peer events. libp2p's notification callbacks must
// not block, so they only mark a peer (changed); one goroutine (run)
// publishes the marked ones, each computed when it is sent, so the last
// event about a peer is its current state and a burst about one peer
// comes out as one event. now publishes at once, for the node's own
// changes. mu guards dirty; it is a leaf. pubMu guards tickets and
// inFlight, and is held while an event is published (it takes broker.mu).
type peerEvents struct {
	*core
	info    func(peer.ID) PeerInfo // the peer's state now
	isRelay func(peer.ID) bool     // connections to relays are no peer events
	// read, if set, is called between reading a peer's state and
	// publishing it (tests: the state changes meanwhile).
	read func(peer.ID)

	mu    sync.Mutex
	dirty map[peer.ID]struct{} // peers with an event to publish
	wake  chan struct{}

	pubMu    sync.Mutex
	tickets  uint64                    // taken so far, one for each read of a peer's state
	inFlight map[peer.ID]*peerInFlight // peers whose state is being read
}

// peerInFlight is what is being published of one peer: how many reads of
// its state are under way, and the ticket of the newest read published.
type peerInFlight struct {
	reads     int
	published uint64
}

func newPeerEvents(c *core) *peerEvents {
	return &peerEvents{core: c, dirty: map[peer.ID]struct{}{}, wake: make(chan struct{}, 1), inFlight: map[peer.ID]*peerInFlight{}}
}

// now publishes p's state, unless a read of it begun later was published
// first: what this read found is older than what that one did. Reads
// and publications of the same peer cross (run's, and the node's own
// changes': a key found changed in a handshake while identify ran on its
// connection); before (found 2026-12-06), a state read before a change
// came out after the change's own event, and stayed the last one: a
// window showed a key that claims a contact's name as a stranger's, with
// no KEY CHANGED (TestPeerEventLastIsCurrent).
func (pe *peerEvents) now(p peer.ID) {
	pe.pubMu.Lock()
	pe.tickets++
	ticket := pe.tickets
	f := pe.inFlight[p]
	if f == nil {
		f = &peerInFlight{}
		pe.inFlight[p] = f
	}
	f.reads++
	pe.pubMu.Unlock()

	info := pe.info(p)
	if pe.read != nil {
		pe.read(p)
	}

	pe.pubMu.Lock()
	defer pe.pubMu.Unlock()
	if f.reads--; f.reads == 0 {
		delete(pe.inFlight, p)
	}
	if ticket < f.published {
		return
	}
	f.published = ticket
	pe.emit(Event{Kind: EventPeer, Peer: &info})
}

// changed queues an event about p, unless p is one of our relays:
// connections to them are infrastructure, not chat peers (Relays reports
// them).
func (pe *peerEvents) changed(p peer.ID) {
	if pe.isRelay(p) {
		return
	}
	pe.mu.Lock()
	pe.dirty[p] = struct{}{}
	pe.mu.Unlock()
	signal(pe.wake)
}

// run publishes the queued peer events until the node stops.
func (pe *peerEvents) run() {
	for {
		select {
		case <-pe.wake:
		case <-pe.ctx.Done():
			return
		}
		pe.mu.Lock()
		dirty := pe.dirty
		pe.dirty = map[peer.ID]struct{}{}
		pe.mu.Unlock()
		for p := range dirty {
			pe.now(p)
		}
	}
}
