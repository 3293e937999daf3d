package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
)

// maxCommandLine bounds one JSON command line.
const maxCommandLine = 1 << 20

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) write(v any) {
	if v == nil {
		return
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.w.Write(mustJSON(v))
}

// eventStream writes node events as JSON lines, leaving out a peer event
// that says exactly what the last one about that peer said (connections
// come and go in bursts, and a bot wants changes).
type eventStream struct {
	w    *lineWriter
	name func(store.Message) string
	last map[string]string // peer ID → its last peer line
}

func newEventStream(w *lineWriter, name func(store.Message) string) *eventStream {
	return &eventStream{w: w, name: name, last: map[string]string{}}
}

func (es *eventStream) event(e node.Event) {
	v := eventJSON(e, es.name)
	if p, ok := v.(evPeer); ok {
		line := string(mustJSON(p))
		if es.last[p.PeerID] == line {
			return
		}
		es.last[p.PeerID] = line
	}
	es.w.write(v)
}

// handler runs daemon commands against a node.
type handler struct {
	n    *node.Node
	quit func()
}

// serve reads command lines from r and writes answers and, with events,
// every node event to w, until r ends or the node stops.
func (h *handler) serve(r io.Reader, w *lineWriter, events bool) {
	if events {
		sub := h.n.Subscribe()
		defer sub.Close()
		go func() {
			es := newEventStream(w, h.name)
			for e := range sub.C {
				es.event(e)
			}
		}()
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br, maxCommandLine)
		if len(line) > 0 {
			h.handle(line, w)
		}
		if errors.Is(err, errLineTooLong) {
			w.write(evError{Event: "error", Error: fmt.Sprintf("command line longer than %d bytes; ignored", maxCommandLine)})
			continue
		}
		if err != nil {
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one line without its newline, at most max bytes; a longer
// line is skipped whole and reported.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max+1 {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			line = line[:len(line)-1]
		}
		return line, err
	}
}

// missingField names the first field a command needs and lacks.
func missingField(c request) string {
	switch {
	case c.Cmd == "send" && c.To == "":
		return "to"
	case c.Cmd == "send" && c.Text == "":
		return "text"
	case c.Cmd == "connect" && c.Addr == "":
		return "addr"
	case (c.Cmd == "trust" || c.Cmd == "block" || c.Cmd == "history") && c.Peer == "":
		return "peer"
	}
	return missingFileField(c)
}

// name is a peer's display name for message events.
func (h *handler) name(m store.Message) string { return h.n.PeerInfo(m.Peer).Name }

func (h *handler) handle(line []byte, w *lineWriter) {
	var c request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		w.write(evError{Event: "error", Error: "bad command: " + oneLine(err.Error())})
		return
	}
	fail := func(err error) { w.write(evError{Event: "error", Ref: c.Ref, Error: oneLine(err.Error())}) }
	if missing := missingField(c); missing != "" {
		fail(fmt.Errorf("%s needs %q", c.Cmd, missing))
		return
	}
	switch c.Cmd {
	case "send":
		h.send(c, w, fail)
	case "connect":
		go h.connect(c, w, fail)
	case "trust", "block":
		p, err := identity.ParsePeerID(c.Peer)
		if err != nil {
			fail(err)
			return
		}
		if c.Cmd == "trust" {
			err = h.n.TrustPeer(p, c.Verified)
		} else {
			err = h.n.Block(p)
		}
		if err != nil {
			fail(err)
			return
		}
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
	case "peers":
		for _, p := range h.n.Peers() {
			w.write(peerEvent(p, c.Ref))
		}
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
	case "history":
		h.history(c, w, fail)
	case "id":
		id := h.n.Identity()
		w.write(evID{Event: "id", Ref: c.Ref, PeerID: id.PeerID().String(), Name: id.Name(), Fingerprint: id.Fingerprint().String(), Addrs: h.n.Addrs()})
	case "send_file", "file_accept", "file_cancel", "files":
		h.fileCommand(c, w, fail)
	case "quit":
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
		h.quit()
	default:
		fail(fmt.Errorf("unknown command %q (%s)", c.Cmd, strings.Join(daemonCommands, ", ")))
	}
}

func (h *handler) send(c request, w *lineWriter, fail func(error)) {
	ct, err := h.n.Trust().Resolve(c.To)
	if err != nil {
		fail(err)
		return
	}
	m, err := h.n.Send(ct.PeerID, c.Text)
	if err != nil {
		fail(fmt.Errorf("send to %s: %w", identity.ShortID(ct.PeerID), err))
		return
	}
	w.write(evStatus{Event: "accepted", Ref: c.Ref, ID: m.ID.String(), To: m.Peer.String()})
}

func (h *handler) connect(c request, w *lineWriter, fail func(error)) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := h.n.Connect(ctx, c.Addr)
	if err != nil {
		fail(fmt.Errorf("connect %s: %w", c.Addr, err))
		return
	}
	w.write(peerEvent(info, c.Ref))
}

// historyLimit is the default and maximum of messages a history answer holds.
const (
	historyDefault = 100
	historyMax     = 10000
)

func (h *handler) history(c request, w *lineWriter, fail func(error)) {
	ct, err := h.n.Trust().Resolve(c.Peer)
	if err != nil {
		fail(err)
		return
	}
	limit := c.Limit
	if limit <= 0 {
		limit = historyDefault
	}
	msgs, err := h.n.History(ct.PeerID, 0, min(limit, historyMax))
	if err != nil {
		fail(err)
		return
	}
	ev := evHistory{Event: "history", Ref: c.Ref, Peer: ct.PeerID.String(), Messages: []jsonMessage{}}
	for _, m := range msgs {
		ev.Messages = append(ev.Messages, messageJSON(m))
	}
	w.write(ev)
}
