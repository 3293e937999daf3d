//go:build !linux

package main

import "net"

// peerUID cannot tell here: the socket's folder and mode keep others out.
func peerUID(net.Conn) (int, bool) { return 0, false }
