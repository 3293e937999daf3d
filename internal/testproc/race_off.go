//go:build !race

package testproc

// RaceEnabled reports whether this binary runs with the race detector;
// then the chat binary is built with it too.
const RaceEnabled = false
