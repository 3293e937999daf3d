// Package group owns the membership of a group chat: who is in it, who
// administers it, its name and the CA its members must hold a certificate
// from, as a log of signed changes that every member checks for itself
// (PROTOCOL §14).
//
// A group is a directed acyclic graph of changes. The first, a create,
// names the creator (the first admin) and the first members; the group's
// ID is the hash of that change, so nobody can make another group with
// the same ID. Every later change is signed by its author's identity key
// (the key the peer ID embeds) and names the changes its author had seen
// (its parents). A member accepts a change only if
//
//   - its signature verifies with the author's key,
//   - it belongs to this group,
//   - its author was an admin (a member, for a leave) in the membership
//     its parents describe, and the change made sense there (no adding a
//     member twice, no removing a non-member, no removing an admin senior
//     to the author: the creator first, then the admins in the order
//     they were made),
//   - it is not built on a membership more than StaleAfter versions older
//     than the member's newest one (an old version), unless a newer change
//     builds on it (for a removal, the changes its target signed crossing
//     it, and those built on them, do not count: the target cannot age
//     its own removal; nor, for a leave, those of its author),
//   - it was not signed beside a leave by its own author (one that
//     builds on every leave of the author's that the change builds
//     on), or a removal of its author by the creator, that the member
//     has seen (an honest client never signs the first), in the
//     membership that end ends (not after its author was added
//     again), unless a change by another
//     author builds on it: such changes take no effect, and a former
//     member could otherwise fill the log with them (Log.besideLeave); a
//     removal the creator signed beside its own leave lapses and ends
//     nobody (lapsedRemovals); of an author's leaves, a later one beside
//     an earlier stays if it voids a change the earlier builds on
//     (voidable),
//   - its author is the creator, or named (by the create or an add) by
//     a change it builds on that stands by these rules in turn, and, for
//     an admin's change, made an admin by one that stands (or by none
//     at all, or by none that took effect where it was built: an admin
//     by succession, successorAt), unless a change that stands
//     builds on it: otherwise its author is a stooge, a key only changes
//     that take no effect name or make an admin, whose changes take no
//     effect and vouch for none (stooge, authorized),
//   - while a removal of its author by an admin other than the creator
//     takes effect, and it crosses that removal, it is on the line of
//     its author's changes crossing it (by depth, then hash, each on the
//     last on the line; an honest client's are one line), unless a
//     change by another author builds on it: a removed admin could
//     otherwise fill the log with siblings on the version before its
//     removal (besideFlood); such changes are void while the removal
//     takes effect, and what was decided on one that stops is looked
//     at again (settle),
//   - it does not build on more than MaxVouched changes that take no
//     effect, through such changes only, nor on a change that does:
//     such a change is poisoned, takes no effect, vouches for none and
//     is kept out whatever builds on it, so that a member in league
//     cannot bring back a removed admin's chain of any length with one
//     leave (poisonedOut); a poisoned end (a leave, a removal by the
//     creator) counts nowhere, and a verdict is looked at again when a
//     change counted void may stand again (settle).
//
// Every member computes the membership from the graph with the same
// deterministic rule (Log.State): the changes are applied in topological
// order, ties broken by hash; a change whose author is not, at that point,
// an admin (or member, for a leave) is skipped, and so is every change
// made concurrently with one that removes its author ("removal wins"), so
// a removed admin cannot undo its removal by back-dating a change. An
// admin removes only its juniors, so a back-dated removal of the remover
// is refused; only a removal that takes effect voids others, and
// removals that cross are decided by their authors' seniority, so
// neither a stooge the removed admin made nor a junior's removal undoes
// a removal (folding.standing). Two
// admins' changes that cross in flight therefore converge to one
// membership on every member, whatever order they arrive in.
//
// The package is pure: no I/O, no clock, no networking. The node stores
// the changes, sends them to members, and decides who can read messages.
package group
