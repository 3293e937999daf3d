//go:build linux

// The report of TestRelayScale: its results and the machine they were
// measured on.

package relay_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// scaleReport collects the figures for docs/BENCHMARKS.md, "Relay".
type scaleReport struct {
	cfg                                         scaleConfig
	relayStart, relayReserved, relayChats       procSample
	relayEnd                                    procSample
	clientStart, clientReserved, clientEnd      procSample
	relayPeak                                   int64
	heapStart, heapReserved, heapChats, heapEnd int64
	reserved, chats, heldAtEnd                  int
	reserveFails, extraFails, chatFails         map[string]int
	reserveWall, chatWall                       time.Duration
	reserveUse, chatUse                         usage
	reserveLat, chatSetup                       []time.Duration
	steady, max                                 *phaseResult
}

// failures lists failure counts by reason.
func failures(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var out []string
	for k, n := range m {
		out = append(out, fmt.Sprintf("%d × %s", n, k))
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// mibOr is mib, or "n/a" for a negative size.
func mibOr(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func (r *scaleReport) String() string {
	var b strings.Builder
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	slices.Sort(r.reserveLat)
	slices.Sort(r.chatSetup)
	perRsv := "n/a"
	if r.reserved > 0 {
		perRsv = fmt.Sprintf("%.1f KiB", float64(r.relayReserved.rss-r.relayStart.rss)/1024/float64(r.reserved))
	}
	fmt.Fprintf(&b, "| measure | value |\n|---|---|\n")
	row("reservations held (asked)", fmt.Sprintf("%d (%d), still held at the end: %d", r.reserved, r.cfg.reservations, r.heldAtEnd))
	row("reservation failures", failures(r.reserveFails))
	if r.extraFails != nil {
		row(fmt.Sprintf("%d more on the full relay", r.cfg.extra), failures(r.extraFails))
	}
	row("time to reserve all", fmt.Sprintf("%v (%d parallel); relay CPU %v", r.reserveWall.Round(time.Millisecond), r.cfg.parallel, r.reserveUse.relayCPU))
	row("  CPU while reserving", r.reserveUse.describe(r.reserveWall))
	row("connect + reserve, p50 / p99 / max", fmt.Sprintf("%v / %v / %v", pct(r.reserveLat, .5), pct(r.reserveLat, .99), pct(r.reserveLat, 1)))
	row("relayed chats held (asked)", fmt.Sprintf("%d (%d)", r.chats, r.cfg.chats))
	row("chat set-up (circuit + e2e handshake), p50 / p99 / max", fmt.Sprintf("%v / %v / %v; all in %v; relay CPU %v",
		pct(r.chatSetup, .5), pct(r.chatSetup, .99), pct(r.chatSetup, 1), r.chatWall.Round(time.Millisecond), r.chatUse.relayCPU))
	row("relay RSS: idle / reserved / chats open / end", fmt.Sprintf("%s / %s / %s / %s", mib(r.relayStart.rss), mib(r.relayReserved.rss), mib(r.relayChats.rss), mib(r.relayEnd.rss)))
	row("relay live heap at the last GC: idle / reserved / chats open / end", fmt.Sprintf("%s / %s / %s / %s",
		mibOr(r.heapStart), mibOr(r.heapReserved), mibOr(r.heapChats), mibOr(r.heapEnd)))
	row("relay RSS peak (sampled 4/s) / VmHWM", fmt.Sprintf("%s / %s", mib(r.relayPeak), mib(r.relayEnd.hwm)))
	row("relay memory per reservation", perRsv+" (RSS reserved − idle) / reservations")
	if r.chats > 0 {
		row("relay memory per relayed chat", fmt.Sprintf("%.1f KiB (RSS chats open − reserved) / chats", float64(r.relayChats.rss-r.relayReserved.rss)/1024/float64(r.chats)))
	}
	row("relay threads / fds (reserved)", fmt.Sprintf("%d / %d", r.relayReserved.threads, r.relayReserved.fds))
	row("client process RSS: start / reserved / end", fmt.Sprintf("%s / %s / %s", mib(r.clientStart.rss), mib(r.clientReserved.rss), mib(r.clientEnd.rss)))
	for _, ph := range []*phaseResult{r.steady, r.max} {
		if ph == nil {
			continue
		}
		what := fmt.Sprintf("%.0f msg/s per chat (%.0f msg/s offered)", r.cfg.rate, r.cfg.rate*float64(r.chats))
		if ph.name == "maximum" {
			what = fmt.Sprintf("closed loop, %d in flight per chat", r.cfg.window)
		}
		row(ph.name+" phase", fmt.Sprintf("%s, %v, %d-byte texts", what, ph.wall.Round(time.Millisecond), r.cfg.body))
		row("  messages sent / acknowledged / lost", fmt.Sprintf("%d / %d / %d (drained in %v)", ph.sent, ph.acked, ph.lost, ph.drain.Round(time.Millisecond)))
		row("  messages per second (all chats)", fmt.Sprintf("%.0f", ph.rate()))
		row("  round trip p50 / p90 / p99 / p99.9 / max", fmt.Sprintf("%v / %v / %v / %v / %v",
			pct(ph.lat, .5), pct(ph.lat, .9), pct(ph.lat, .99), pct(ph.lat, .999), pct(ph.lat, 1)))
		row("  CPU", ph.use.describe(ph.wall+ph.drain))
		row("  relay RSS end / peak", fmt.Sprintf("%s / %s", mib(ph.relayRSS), mib(ph.relayPeak)))
		row("  client RSS", mib(ph.clientRSS))
	}
	return b.String()
}

// numCPU counts the machine's CPUs (runtime.NumCPU would count only those
// this process may run on).
func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
			n++
		}
	}
	return n
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	data, _ := os.ReadFile("/proc/meminfo")
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.Join(strings.Fields(line), " ")
}
