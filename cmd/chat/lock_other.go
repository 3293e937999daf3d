//go:build !unix

package main

// fileLocked cannot tell without flock: only the control socket shows a
// running process.
func fileLocked(path string) bool { return false }
