// Package store is certchat's message database: the one package that
// touches bbolt for a node's data. Callers ask it for operations (store a
// message, queue it, mark it delivered, page history, keep ratchet state
// together with the message it produced); no transaction ever leaves it.
//
// # Parts
//
// Store holds messages, conversations, the outbox and peer records. The
// rest is kept by its parts, handles on the same Store (one file, one
// transaction per write, whichever part writes): Groups (groups.go),
// Transfers (transfers.go), Ratchets (ratchet.go) and Actions
// (actions.go), got with the Store method of the same name; migration
// (migrate.go) updates an older file once, at Open.
//
// # Schema
//
// One bbolt file (chat.db in the home) with these buckets:
//
//	meta       "version" → 5; "keycheck" → a sealed known value, to detect
//	           a database opened with the wrong identity; "listen-ports" →
//	           the ports the listeners got, to ask for again at the next
//	           start: JSON, listen address as configured (port 0) → port;
//	           "gdeliv-sealed" → 1 once group deliveries are sealed
//	convs      peer ID → conversation summary and numbering state (sealed JSON)
//	msgs/<id>  one bucket per peer: 8-byte big-endian sequence → message (sealed JSON)
//	ids        message ID (16) → peer ID || sequence, for dedupe and receipts
//	outbox     peer ID || 0 || sequence → message ID: not yet acknowledged
//	peers      peer ID → what we last knew of the peer (sealed JSON)
//	ratchet    "local" → the local ratchet keys; "set/" + peer ID → that
//	           peer's session set (sealed)
//	pending    target message ID (16) || action message ID (16) → peer ID
//	           || sequence: an incoming edit, deletion or reaction whose
//	           target has not arrived yet (actions.go)
//	transfers  "t/" + transfer ID → a file transfer, its offer and key
//	           included; "c/" + message ID → the file control an outgoing
//	           message carries (both sealed JSON; the bucket is made when
//	           first written, so the version stayed 3: transfers.go)
//	groups, gmsgs/<id>, gids, gqueue, gdeliv, gmembers, gpending
//	           group chats (groups.go): made on first use, so the
//	           version is unchanged; an older program ignores them.
//	           gmembers lists an outgoing group message's members in one
//	           sealed record, so that gdeliv holds a record only for a
//	           copy past sending. gpending is the pending bucket of
//	           groups: target message ID (16) || action message ID (16)
//	           → group ID || sequence (groups_actions.go). Version 5
//	           keeps the group outbox by message (gqueue,
//	           groups_queue.go), where version 4 kept an entry per
//	           member and message (goutbox), moved at Open
//	gcount, grecv
//	           what each group message changes, apart from the group's
//	           record (groups_counts.go): per group, our numbering in it,
//	           its unread and message counts and last time; per group
//	           and sender, what arrived of the sender's numbering. Their
//	           keys are blinded: HMAC-SHA256, under a key derived from
//	           the storage key, of "gcount/" + group ID and "grecv/" +
//	           group ID + sender peer ID
//
// Every value but the index entries and the listen ports is sealed:
// XChaCha20-Poly1305 under a key derived from the identity key
// ("storage"), with the record's place as associated data ("msgs/" + peer
// ID + sequence, "convs/" + peer ID, "peers/" + peer ID, the ratchet key),
// so a record cannot be read without the key, nor moved to another place
// (a group's counts are bound to the group ID and sender their blinded
// key hides). What the file shows is its shape: the peer IDs one has
// conversations with and the group IDs (as keys), which peers an
// outgoing group message went to, message IDs, how many messages each
// conversation holds, and their sizes; no name, text or time, and not
// who sent in which group (the counts' keys show only how many groups
// and (group, sender) pairs have counts). Every
// operation is one bbolt transaction, fsynced on commit: a message
// accepted by AddOutgoing, or acknowledged to a sender, survives a crash,
// and a new ratchet state is written in the same transaction as the
// message it produced or consumed.
//
// A message record is a text or an action (edit, deletion, reaction)
// on a text of its conversation; actions are applied to their target in
// the transaction that stores them and keep no body once applied, so a
// deleted text is in no record (actions.go). An incoming action whose
// target has not arrived is stored sealed like any record, with its
// body, and indexed in pending (private) or gpending (groups) until the
// target arrives, at most maxPendingPerTarget per target; it is then
// applied or refused in the transaction that stores the target. A message ID names one conversation: an action
// whose target is (or arrives) in another is refused.
//
// Version 5 keeps the group outbox as one record per message (gqueue)
// instead of an entry per member and message (goutbox), moved in the
// transaction that opens a version 4 database (groups_queue.go); an
// older program refuses the file rather than missing the queue.
// Version 4 moved what each group message changes (the numbering, the
// windows, the unread and message counts, the last time) out of the
// group's record, which holds its signed membership log and grows with
// its members, so a message no longer rewrites it: opening a version 3
// database moves them in the transaction that opens it (groups_counts.go).
// Version 3 added actions, replies and read markers: new fields and the
// pending bucket; a version 2 database only has its number changed.
// Version 1 sealed message bodies only. Opening a version 1 database
// seals the rest in one transaction, then rewrites the file so that no
// freed page keeps what version 1 left readable (migrate.go).
//
// # Errors
//
// No storage error is swallowed. A record that cannot be read is a
// *CorruptError naming it (bucket and key); operations that would build on
// it fail and change nothing, so a corrupt record never silently resets
// state that the next write would persist. Listing operations (Peers,
// Conversations) return every readable record together with a
// *CorruptError for each one that is not, joined: the caller decides
// whether to go on with the rest. One record is rebuilt instead: a group
// message's queue record (gqueue) that does not open is rewritten when
// the store opens, from the message's member list and delivery records,
// with every copy not decided queued again (a member may get one twice,
// and drops it as a duplicate), so that no copy is left unsent without a
// word (groupQueue.repair).
package store
