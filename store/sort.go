package store

import "slices"

func sortConversations(cs []Conversation) {
	slices.SortFunc(cs, func(a, b Conversation) int { return b.Last.Compare(a.Last) })
}

func sortNewestFirst(ms []Message) {
	slices.SortFunc(ms, func(a, b Message) int { return b.StoredAt.Compare(a.StoredAt) })
}
