//go:build linux

package node_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certchat/certchat/internal/testproc"
	"golang.org/x/sys/unix"
)

// TestLAN's environment (root, iproute2, the chat binary's environment)
// and its network: namespaces joined by a bridge (topology in lan_test.go).

// ---- environment ----

func lanRequire(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (to create network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		missing = append(missing, "the ip command (iproute2)")
	}
	if len(missing) == 0 {
		return
	}
	testproc.SkipUnlessCI(t, "LAN discovery test needs "+strings.Join(missing, " and "))
}

// lanEnv is the environment for chat commands: ours without CERTCHAT_*
// settings, which would change what the daemons do.
func lanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CERTCHAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// ---- the network ----

type lanNet struct {
	prefix string
}

func (ln *lanNet) ns(role string) string { return ln.prefix + role }

func lanIP(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func lanNewNet(t *testing.T) *lanNet {
	ln := &lanNet{prefix: fmt.Sprintf("cclan%dr%d", os.Getpid(), lanRuns.Add(1))}
	sw := ln.ns("switch")
	for _, role := range []string{"switch", "alice", "bob", "carol", "island"} {
		ns := ln.ns(role)
		exec.Command("ip", "netns", "del", ns).Run() // a leftover from a crashed run with this PID
		lanIP(t, "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
			}
		})
		lanIP(t, "-n", ns, "link", "set", "lo", "up")
	}
	// The switch: snooping off, so the bridge floods multicast to every port.
	lanIP(t, "-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	lanIP(t, "-n", sw, "addr", "add", lanSwitchIP+"/24", "dev", "br0")
	lanIP(t, "-n", sw, "link", "set", "br0", "up")
	lanIP(t, "-n", sw, "route", "add", "224.0.0.0/4", "dev", "br0")
	for i, host := range []string{"alice", "bob", "carol"} {
		ns, port := ln.ns(host), "p"+host[:1]
		lanIP(t, "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		lanIP(t, "-n", sw, "link", "set", port, "master", "br0", "up")
		lanIP(t, "-n", ns, "addr", "add", fmt.Sprintf("%s%d/24", lanPrefix, i+1), "dev", "eth0")
		lanIP(t, "-n", ns, "link", "set", "eth0", "up")
		lanIP(t, "-n", ns, "route", "add", "default", "via", lanSwitchIP)
		lanIP(t, "-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0")
	}
	// carol's second network: a veth to a namespace nobody else is on.
	carol, island := ln.ns("carol"), ln.ns("island")
	lanIP(t, "-n", carol, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", island)
	lanIP(t, "-n", carol, "addr", "add", lanIslandIP+"/24", "dev", "eth1")
	lanIP(t, "-n", carol, "link", "set", "eth1", "up")
	lanIP(t, "-n", island, "addr", "add", lanIsland2IP+"/24", "dev", "eth0")
	lanIP(t, "-n", island, "link", "set", "eth0", "up")
	return ln
}

// lanInNetns runs f on an OS thread inside the named network namespace.
// Sockets f creates belong to that namespace for their whole life.
func lanInNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := lanSetns(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", ns, err)
			return
		}
		ferr := f()
		if err := lanSetns(self); err != nil {
			// The thread stays locked and ends with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leave %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func lanSetns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }
