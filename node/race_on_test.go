//go:build race

package node_test

// raceEnabled: the tests run with -race, so the chat binary is built with
// it too.
const raceEnabled = true
