// Package node turns an identity and the e2e channel into a messenger: a
// libp2p host built from the identity key (TCP and QUIC, TCP dialed
// first; identify, ping, a connection manager that protects chat peers,
// the resource manager), LAN
// discovery with mDNS, relay reservations and mailboxes, the chat protocol
// with message IDs, receipts and a persistent outbox retried with backoff,
// all on the message store (package store).
//
// A Node is used by the terminal UI, the headless daemon and one-shot
// commands alike; they see it through its methods and its event stream.
// cmd/chat runs them with the garbage collector's target at GCPercent
// (200) unless GOGC is set (SetGCPercent, runtime.go): a node's live heap
// is small, and at Go's default the collector ran every 20 or so group
// messages, for a tenth of the sender's CPU.
//
// # Parts
//
// Node coordinates parts that each own their state. core (core.go) is what
// they share, set up once by New and read-only after. Each part's doc says
// which goroutines touch it and what its lock guards. The parts callers use
// are exported and reached by one accessor each (Node.Groups, Files,
// Messages, Contacts, Indications); no type keeps more than 40 methods.
//
//	peerBook      peers.go      verdicts, pending key changes, certificates; stored peer records
//	sessions      sessions.go   live chat sessions and dials (dial.go, lifecycle.go, frames.go)
//	ratchetKeys   ratchet.go    the Double Ratchet state, committed with the store; strangers' sets held in memory until something of theirs is kept (ratchet_held.go)
//	outbox        outbox.go     one worker per peer with pending messages, holding its outbox in memory
//	receiptQueue  receipts.go   receipts read and not yet recorded
//	receiptHolds  receipts_hold.go  receipts of group envelopes held per session (chatSession.held) to be written together
//	forwardPlan   groups_forward.go  which members forward a group message's copies for us, and the forwarded copies waiting for receipts (of outbox)
//	forwarding    groups_forwarding.go  our side as a forwarder of other members' copies, and as a member sent copies through one (of sessions)
//	sentQueue     outbox_sent.go  messages and group copies written to live sessions, not yet recorded as sent (of outbox)
//	mailboxes     mailbox.go    relay mailboxes: publish, fetch, deposit (no state of its own)
//	transfers     transfers.go  file transfers (fileframes.go, filestream.go, filepull.go, fileserve.go, filemail.go); API: Node.Files
//	fileSums      filesums.go   the SHA-256 of large outgoing files, computed as they are sent (of transfers)
//	fileReach     filereach.go  the receivers of interrupted outgoing files, kept reachable while those wait (of transfers)
//	Groups        groups.go     the groups' logs and the group API (groups_ca.go, groups_recv.go, groups_seal.go, groups_strangers.go); Node.Groups
//	strangers     strangers.go  the bounds on what peers we may not message leave with us (their messages, and those in groups they made)
//	Indications   indications.go  read markers and typing: settings, frames, seen receipts waiting; Node.Indications
//	Messages      actions.go    sending texts, replies, edits, deletions, reactions (no state of its own); Node.Messages
//	Contacts      api.go        trust, block, rename, remove (no state of its own); Node.Contacts
//	relays        relay.go      relays (configured and found in the DHT) and their reservations
//	dhtNode       dht.go        the certchat DHT: our peer record, lookups, relays found there
//	holePuncher   holepunch.go  DCUtR: go-libp2p's service and the addresses peers observed for us
//	lan           discovery.go  mDNS, on while a LAN address is in use, and the peers it found
//	peerEvents    events.go     coalesced peer events; broker: subscribers
//	workers       workers.go    the node's goroutines, refused once Close began
//
// # Goroutines
//
// libp2p calls the stream handlers (sessions.handleStream, the mailbox
// notification), its connection notifications (Node.onConnected and
// onDisconnected, which must not block) and the address factory
// (relays.circuitAddrs). Every goroutine the node starts runs through
// workers.goDo, so Close waits for all of them: one read loop per live
// session and a direct-connection try for relayed ones; one outbox worker
// per peer with pending messages (it stays workerIdle after the last);
// one receipt drainer while receipts wait or it holds some (up to
// receiptGroupHold); one waiter per session holding
// receipts to write (receipts_hold.go); one recorder of group copies
// written (as sent, a second after each) while some wait;
// one reservation keeper and one mailbox loop per relay (those of a relay
// dropped end); one mDNS handshake per peer found and the LAN address watcher that
// turns mDNS on and off; the peer-event
// publisher; the address watcher; the identify watcher; the DHT's record
// publisher and relay keeper; the greeting of contacts at start; and one
// upgrade per new direct connection under a relayed chat. Outside them:
// kad-dht's and the hole punching service's own goroutines (closed by
// Close), the hole puncher's reader of identify results, and a hole punch
// in progress, which cannot be cancelled (holepunch.go).
//
// # Locks
//
// Each part's mutex guards only that part's fields, and no part calls
// another while holding its own lock, with these exceptions, which are the
// whole lock order (a lock may be held while taking those to its right):
//
//	receiptQueue.mu, receiptHold.mu, outbox.mu, sentQueue.mu, transfers.mu,
//	fileReach.mu, forwarding.mu →  workers.mu
//	Groups.postMu               →  ratchetKeys.mu, outbox.mu, fanout.mu, forwardPlan.mu
//	strangerGroups.mu           →  what Groups.receive takes (Groups.mu, peerBook.mu, the store, outbox.mu, broker.mu):
//	                               held while a group new to us is counted and kept
//	outbox.mu                   →  chatSession.mu (is everything a worker holds written on its session?)
//	outbox.mu, ratchetKeys.mu   →  the store (bbolt's own locks)
//	ratchetKeys.mu              →  Groups.mu, peerBook.mu (may the peer post to the group, may its message be kept, is its set held
//	                               in memory only: groupOK, keepOK, mayMessage)
//	peerEvents.pubMu            →  broker.mu (a peer event is published in the order its state was read)
//	broker.mu                   →  Subscription.mu
//	lan.runMu                   →  lan.mu, broker.mu (held while mDNS starts or stops)
//
// workers.mu, peerBook.mu, sessions.mu, lan.mu, relays.mu, peerEvents.mu,
// dhtNode.mu, holePuncher.mu, fanout.mu, forwardPlan.mu, strangers.mu, partialLogs.mu, wants.mu and chatSession.mu are leaves:
// nothing is taken under them.
// A transfer's disk lock (transfers.disk) is held while its partial file
// is used, never while another part's lock is.
package node
