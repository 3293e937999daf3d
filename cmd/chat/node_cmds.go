package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/certchat/certchat/group"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/internal/logcap"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/libp2p/go-libp2p/core/peer"
)

// nodeOptions are the flags of commands that run a node.
type nodeOptions struct {
	listen  stringList
	relays  stringList
	noMDNS  bool
	noDHT   bool
	relayN  int
	pq      bool
	logFile string
	to      string
	wait    time.Duration
	limit   int
	files   fileOptions // file_cmds.go
}

// relayCount is node.Config.RelayCount for --relay-count n: 0 means only
// the configured relays.
func relayCount(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// fromEnv splits a comma-separated environment variable.
func fromEnv(name string) stringList {
	var out stringList
	for _, v := range strings.Split(os.Getenv(name), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func nodeFlags(fs *flag.FlagSet, o *options) {
	o.node.listen = fromEnv("CERTCHAT_LISTEN")
	o.node.relays = fromEnv("CERTCHAT_RELAY")
	fs.Var(&o.node.listen, "listen", "multiaddr to listen on, repeatable; \"none\": reachable only through relays ($CERTCHAT_LISTEN, comma-separated; default: TCP and QUIC on all interfaces)")
	fs.Var(&o.node.relays, "relay", "circuit relay multiaddr with /p2p/, repeatable, remembered in home/config.json; \"none\" forgets them ($CERTCHAT_RELAY)")
	fs.BoolVar(&o.node.noMDNS, "no-mdns", false, "do not discover or announce peers on the LAN")
	fs.IntVar(&o.node.relayN, "relay-count", node.DefaultRelayCount, "keep reservations on this many relays, adding relays found in the DHT while fewer of yours have one (0: only yours)")
	fs.BoolVar(&o.node.noDHT, "no-dht", false, "stay out of the certchat DHT that relays run: peers are found only by address, on the LAN or through a shared relay")
	fs.BoolVar(&o.node.pq, "require-pq", false, "refuse peers that offer no post-quantum key exchange (X25519MLKEM768); also \"require_post_quantum\": true in home/config.json")
	fs.StringVar(&o.node.logFile, "log", os.Getenv("CERTCHAT_LOG"), "write logs to this file, rotated at 10 MiB to FILE.1 ($CERTCHAT_LOG; default: stderr, or home/chat.log for the chat window)")
	fileFlags(fs, o)
}

func nodeCommands() []*command {
	return []*command{
		{
			name:    "daemon",
			args:    "[--json] [--listen MULTIADDR] [--relay MULTIADDR] [--require-pq]",
			summary: "run the node without a window: events out, commands in",
			help: `With --json, every event is one JSON object per line on stdout and
commands are read as JSON lines on stdin. An optional "ref" in a command is
echoed in its answer. The commands:

  {"cmd":"send","to":"<peer id or contact name>","text":"hi"}
      send a message; answers {"event":"accepted","id",...}; with
      "reply_to":"<message id>" (and no "to") it replies to that message
  {"cmd":"edit","id":"<message id>","text":"new text"}
  {"cmd":"delete","id":"<message id>"}
      your own message, within 24 h of sending; answers "accepted"
  {"cmd":"react","id":"<message id>","emoji":"👍"}
      any message; "emoji":"" takes yours back; answers "accepted"
  {"cmd":"mark_seen","peer":"<peer id or contact name>"}
      the conversation was read (optional "ids"); answers "ok"
  {"cmd":"typing","peer":"<peer id or contact name>","typing":true}
      you type (or stopped); answers "ok"
  {"cmd":"connect","addr":"/ip4/192.0.2.7/tcp/4001/p2p/<peer id>"}
      dial an invitation, a multiaddr or a peer ID; answers {"event":"peer",...}
  {"cmd":"add","addr":"CERTCHAT:...","name":"bob"}
      add a contact by invitation, multiaddr or peer ID (pin its key,
      remember its addresses) and connect; answers {"event":"peer",...}
  {"cmd":"trust","peer":"<peer id>","verified":false}
      pin the peer's key (verified: fingerprint compared); answers "ok"
  {"cmd":"block","peer":"<peer id>"}
      reject the peer's key; answers "ok"
  {"cmd":"peers"}
      one {"event":"peer",...} per known peer, then "ok"
  {"cmd":"history","peer":"<peer id or contact name>","limit":100}
      answers {"event":"history","messages":[...]}
  {"cmd":"id"}
      answers {"event":"id","peer_id","name","fingerprint","addrs"}
  {"cmd":"invite"}
      answers {"event":"invite","text":"CERTCHAT:...","peer_id"}: share it
  {"cmd":"send_file","to":"<peer id or contact name>","path":"/abs/file"}
      offer a file; answers {"event":"accepted","id",...}
  {"cmd":"file_accept","id":"<transfer id>"}
      receive an offered file; answers "ok"
  {"cmd":"file_cancel","id":"<transfer id>"}
      decline an offer or cancel a transfer; answers "ok"
  {"cmd":"files"}
      one {"event":"file",...} per transfer, then "ok"
  {"cmd":"group_create","name":"team","members":["bob","carol"]}
      make a group (send and history take its ID or name); answers
      {"event":"group","id","name","members","admins","version",...};
      with "ca":"Acme Root" (a CA you trust, by name or fingerprint)
      every member must hold a certificate that CA issued
  {"cmd":"group_add","group":"team","peer":"dave"}
  {"cmd":"group_remove","group":"team","peer":"dave"}
  {"cmd":"group_admin","group":"team","peer":"bob"}
  {"cmd":"group_keep","group":"team","peer":"carol"}
  {"cmd":"group_rename","group":"team","name":"crew"}
  {"cmd":"group_leave","group":"team"}
      change the group (group_keep: write to a member whose removal
      was undone, "undone" in the group event); each answers
      {"event":"group",...}
  {"cmd":"groups"}
      one {"event":"group",...} per group, then "ok"
  {"cmd":"quit"}
      answers "ok" and stops the daemon

Events: ` + wrapList(daemonEvents, len("Events: "), 72) + `.
docs/DAEMON.md describes every command, event and field. Logs go to stderr
or --log, never to stdout. While the daemon runs, ` + "`chat send` and `chat\nhistory`" + ` use it through home/run/control.sock, which speaks the same
protocol. It stops on SIGINT or SIGTERM, or {"cmd":"quit"}.`,
			flags: func(fs *flag.FlagSet, o *options) {
				nodeFlags(fs, o)
				fs.BoolVar(&o.json, "json", false, "JSON lines on stdout and stdin")
			},
			run: runDaemon,
		},
		{
			name:    "send",
			args:    "--to PEER TEXT | --to PEER - | --to PEER --file PATH",
			summary: "send one message and wait for the receipt",
			help: `PEER is a peer ID or a contact's name, or a group's name or ID
(to every member; a name two groups share is refused with their IDs).
The peer must be a trusted contact. With - instead of TEXT the message is read from standard input
(one final line break dropped): other users of the machine can read a
command's arguments in the process list, not its input.

Exit status:
  0  delivered: the peer stored the message (its receipt came); to a
     group: every member did
  1  not sent: an error, the peer is untrusted or its key changed
  2  usage error
  3  queued: the message is stored but not delivered within --wait;
     it was deposited at a relay's mailbox, or waits in the outbox for
     the peer and is delivered by the next chat or daemon run (or the
     running daemon). Standard output says "queued ID".

While ` + "`chat daemon`" + ` runs on this home, the message goes through it
(home/run/control.sock). While a chat window has the home open, send refuses
before asking for a passphrase: the message database is in use; send from
the window instead.`,
			flags: func(fs *flag.FlagSet, o *options) {
				nodeFlags(fs, o)
				fs.StringVar(&o.node.to, "to", "", "peer ID or contact name, or a group's name or ID")
				fs.DurationVar(&o.node.wait, "wait", 15*time.Second, "how long to wait for the receipt (with --file: for the peer to have the file)")
				fs.StringVar(&o.node.files.send, "file", "", "send this file instead of a text")
			},
			run: runSend,
		},
		{
			name:    "history",
			args:    "PEER|GROUP [--json] [--limit N]",
			summary: "print a stored conversation",
			help: `PEER is a peer ID or a contact's name; the peer's messages are shown
under the contact's name. GROUP is a group's name or ID (its first 8
digits or more): its members' messages are shown under their names. While ` + "`chat daemon`" + ` runs on this home, the
history comes from it; while a chat window has the home open, history
refuses: the message database is in use.`,
			flags: func(fs *flag.FlagSet, o *options) {
				fs.BoolVar(&o.json, "json", false, "print JSON")
				fs.IntVar(&o.node.limit, "limit", historyDefault, "how many of the latest messages")
			},
			run: runHistory,
		},
	}
}

// logger opens the log destination: --log FILE, rotated at
// logcap.DefaultMaxSize, else def. Repeated lines are dropped (logcap).
// The libraries' warnings and errors go there too (libLogsTo).
func (c *ctx) logger(def io.Writer) (*slog.Logger, func(), error) {
	w, closeFile := def, func() {}
	if c.opts.node.logFile != "" {
		f, err := logcap.OpenFile(c.opts.node.logFile, logcap.DefaultMaxSize)
		if err != nil {
			return nil, nil, err
		}
		w, closeFile = f, func() { f.Close() }
	}
	h := logcap.NewHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}), logcap.DefaultLimits)
	libs := logcap.NewHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}), logcap.DefaultLimits)
	stopLibs := libLogsTo(libs)
	return slog.New(h), func() {
		stopLibs()
		h.Close()
		libs.Close()
		closeFile()
	}, nil
}

// startNode loads the identity and starts a node with the command's flags.
func (c *ctx) startNode(log *slog.Logger, mdns bool) (*node.Node, identity.Home, error) {
	n, h, err := c.makeNode(log, mdns)
	if err != nil {
		return nil, h, err
	}
	if err := n.Start(); err != nil {
		n.Close()
		return nil, h, err
	}
	return n, h, nil
}

// makeNode loads the identity and makes a node with the command's flags
// and the home's settings, not started yet.
func (c *ctx) makeNode(log *slog.Logger, mdns bool) (*node.Node, identity.Home, error) {
	id, h, err := c.loadIdentity()
	if err != nil {
		return nil, h, err
	}
	trust, err := h.TrustStore()
	if err != nil {
		return nil, h, err
	}
	relays, err := relaysFor(h, c.opts.node.relays)
	if err != nil {
		return nil, h, err
	}
	conf, err := loadConfig(h)
	if err != nil {
		return nil, h, err
	}
	files, err := c.fileSettings(h, conf)
	if err != nil {
		return nil, h, err
	}
	n, err := node.New(node.Config{
		Home: h, Identity: id, Trust: trust, Logger: log,
		Listen: c.opts.node.listen, Relays: relays, MDNS: mdns, NoDHT: c.opts.node.noDHT, RelayCount: relayCount(c.opts.node.relayN),
		RequirePostQuantum: c.opts.node.pq || conf.RequirePostQuantum,
		NoReadMarkers:      !on(conf.ReadMarkers), NoTyping: !on(conf.Typing), NoForward: conf.NoForward,
		Downloads: files.downloads, AutoAcceptFiles: files.autoAccept, FileRate: files.rate,
	})
	return n, h, err
}

// startSubscribed starts a node subscribed to its events from before its
// start: what Start sets going (a resumed file's puller, the mailbox
// loops, the outbox, the groups it reads) may emit before Start returns,
// and a subscription made after would never see that.
func (c *ctx) startSubscribed(log *slog.Logger, mdns bool) (*node.Node, *node.Subscription, identity.Home, error) {
	n, h, err := c.makeNode(log, mdns)
	if err != nil {
		return nil, nil, h, err
	}
	sub := n.Subscribe()
	if err := n.Start(); err != nil {
		sub.Close()
		n.Close()
		return nil, nil, h, err
	}
	return n, sub, h, nil
}

func runDaemon(c *ctx) error {
	if err := c.wantArgs(0); err != nil {
		return err
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	warning := c.warnReadableHome(h.Dir)
	log, closeLog, err := c.logger(c.io.err)
	if err != nil {
		return err
	}
	defer closeLog()
	if warning != "" {
		log.Warn(warning)
	}
	n, sub, h, err := c.startSubscribed(log, !c.opts.node.noMDNS)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hd := &handler{n: n, quit: stop}
	if l, err := listenControl(h); err != nil {
		log.Warn("no control socket: one-shot commands cannot use this daemon", "err", err)
	} else {
		defer l.Close()
		go serveControl(l, hd)
	}
	out := &lineWriter{w: c.io.out}
	printed := make(chan struct{})
	go func() {
		defer close(printed)
		es := newEventStream(out, hd.name, n.ID().String())
		plain := hd.plain(c.io.out)
		es.delivery = n.Groups().Delivery
		for e := range sub.C {
			if c.opts.json {
				es.event(e)
			} else {
				plain.event(e)
			}
		}
	}()
	if c.opts.json {
		go hd.serve(c.io.in, out, false)
	}
	<-ctx.Done()
	log.Info("shutting down")
	err = n.Close()
	<-printed
	return err
}

// plainOut is the daemon's plain-text output, one line an event, for a
// person to read (scripts read --json). A message or status in a group
// names the group; a group's change says who is in it now.
type plainOut struct {
	w     io.Writer
	name  func(store.Message) string // whom a message is from or to
	peer  func(peer.ID) string       // a member, as the user knows it
	self  peer.ID                    // this node, "you" in a member list
	group func(store.GroupID) string // a group's name ("" if unknown)
	last  map[peer.ID]string         // each peer's last line, not printed again
}

// plain is the plain-text output to w, with names from the node.
func (h *handler) plain(w io.Writer) plainOut {
	return plainOut{w: w, name: h.name, self: h.n.ID(), last: map[peer.ID]string{}, peer: func(p peer.ID) string { return h.n.PeerInfo(p).Name },
		group: func(id store.GroupID) string {
			if g, ok := h.n.Groups().Get(group.ID(id)); ok {
				return g.Name
			}
			return ""
		}}
}

func (o plainOut) event(e node.Event) {
	ts, w := e.Time.Format("15:04:05"), o.w
	switch e.Kind {
	case node.EventListening:
		n := 0
		for _, a := range e.Addrs {
			if !strings.HasPrefix(a, "/p2p/") { // a bare peer ID: no address
				fmt.Fprintf(w, "%s listening on %s\n", ts, a)
				n++
			}
		}
		if n == 0 {
			fmt.Fprintf(w, "%s listening on no address: reachable only through a relay, once it takes a reservation\n", ts)
		}
	case node.EventPeer:
		p := e.Peer
		state := "offline"
		if p.Online {
			state = "online via " + string(p.Path)
		}
		line := fmt.Sprintf("peer %s (%s): %s, %s", p.Name, p.ID, p.Trust, state)
		if o.last[p.ID] != line { // a connection's flurry of events says it once
			o.last[p.ID] = line
			fmt.Fprintf(w, "%s %s\n", ts, line)
		}
	case node.EventMessage:
		m := e.Message
		fmt.Fprintf(w, "%s message from %s%s%s: %s\n", ts, o.name(*m), o.in(m.Group), gapNote(m.Late, m.Missing), identity.SanitizeText(m.Body, false))
	case node.EventStatus:
		if m := e.Message; m.Status != store.StatusSending && m.GroupChanges == nil {
			fmt.Fprintf(w, "%s %s %s to %s%s\n", ts, m.Status, m.ID, m.Peer, o.in(m.Group))
		}
	case node.EventGroup:
		fmt.Fprintf(w, "%s %s\n", ts, o.groupLine(*e.Group))
	case node.EventLAN:
		if e.LAN.On {
			fmt.Fprintf(w, "%s LAN discovery is on\n", ts)
		} else {
			fmt.Fprintf(w, "%s LAN discovery is off: %s\n", ts, e.LAN.Reason)
		}
	case node.EventUpdate:
		if a := e.Action; a != nil {
			fmt.Fprintf(w, "%s %s%s\n", ts, updateLine(*e.Message, *a, o.name), o.in(e.Message.Group))
		}
	case node.EventSeen:
		fmt.Fprintf(w, "%s seen %s by %s\n", ts, e.Message.ID, e.Message.Peer)
	case node.EventError:
		fmt.Fprintf(w, "%s error: %s\n", ts, e.Err)
	case node.EventFileOffer, node.EventFileProgress, node.EventFileDone, node.EventFileFailed:
		printFileEvent(w, ts, e)
	}
}

// in is " in NAME" for a message of a group, "" for a private one.
func (o plainOut) in(id store.GroupID) string {
	if id == (store.GroupID{}) {
		return ""
	}
	name := o.group(id)
	if name == "" {
		name = fmt.Sprintf("group %x", id[:4])
	}
	return " in " + identity.SanitizeText(name, false)
}

// groupLine says what a group is after a change: its members and admins
// by name, its version, or that we are no longer in it.
func (o plainOut) groupLine(g node.GroupInfo) string {
	name := identity.SanitizeText(g.Name, false)
	if !g.Member {
		return fmt.Sprintf("group %s (%s): you are not a member (version %d)", name, g.ID.Short(), g.Version)
	}
	names := func(ps []peer.ID) string {
		out := make([]string, len(ps))
		for i, p := range ps {
			out[i] = "you"
			if p != o.self {
				out[i] = identity.SanitizeText(o.peer(p), false)
			}
		}
		return strings.Join(out, ", ")
	}
	return fmt.Sprintf("group %s (%s): %d members: %s; admins: %s (version %d)", name, g.ID.Short(), len(g.Members), names(g.Members), names(g.Admins), g.Version)
}

// updateLine says what an edit, deletion or reaction did to message m.
func updateLine(m, a store.Message, name func(store.Message) string) string {
	who := "you"
	if a.Direction == store.Incoming {
		who = name(a)
	}
	switch a.Kind {
	case store.KindEdit:
		return fmt.Sprintf("%s edited %s: %s", who, m.ID, identity.SanitizeText(m.Body, false))
	case store.KindDelete:
		return fmt.Sprintf("%s deleted %s", who, m.ID)
	}
	if a.Emoji == "" {
		return fmt.Sprintf("%s took back a reaction to %s", who, m.ID)
	}
	return fmt.Sprintf("%s reacted %s to %s", who, identity.SanitizeText(a.Emoji, false), m.ID)
}

func runSend(c *ctx) error {
	if c.opts.node.files.send != "" {
		return runSendFile(c)
	}
	if c.opts.node.to == "" || len(c.args) == 0 {
		return usageErr("chat send needs --to PEER and the text (or - to read it from standard input)")
	}
	text, err := c.sendText()
	if err != nil {
		return err
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	if conn, err := dialControl(h); err == nil {
		defer conn.Close()
		return sendVia(c, conn, text)
	}
	if err := databaseFree(h); err != nil {
		return err
	}
	return sendDirect(c, text)
}

// sendText is the message: the arguments, or with "-" standard input
// (one final line break dropped), which keeps it out of the process list
// that other users of the machine can read.
func (c *ctx) sendText() (string, error) {
	if len(c.args) != 1 || c.args[0] != "-" {
		return strings.Join(c.args, " "), nil
	}
	if c.tty != nil {
		fmt.Fprintln(c.io.err, "Type the message; end it with Ctrl+D at the start of a line.")
	}
	data, err := c.readInput("-")
	if err != nil {
		return "", err
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if text == "" {
		return "", usageErr("chat send: standard input held no text")
	}
	return text, nil
}

// sendVia sends through a running daemon and waits for the receipt.
func sendVia(c *ctx, conn io.ReadWriter, text string) error {
	req, _ := json.Marshal(request{Cmd: "send", Ref: "send", To: c.opts.node.to, Text: text})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	lines := daemonLines(conn)
	var id string
	// Events and answers travel separately in the daemon, so the receipt
	// may be written before the answer that names the message.
	delivered := map[string]bool{}
	// --wait bounds the wait for the receipt; the daemon's answer (the
	// message is stored) is waited for longer, so a busy daemon is not
	// taken for a dead one.
	timeout := time.After(c.opts.node.wait)
	answerBy := time.After(max(c.opts.node.wait, daemonAnswerWait))
	waited := false
	queued := func() error {
		c.printf("queued %s\n", id)
		return exitStatus{exitQueued, fmt.Sprintf("%s has not stored the message yet; the running daemon keeps trying (exit status 3: queued)", c.opts.node.to)}
	}
	for {
		select {
		case ev, ok := <-lines:
			if !ok {
				return errors.New("the daemon closed the connection")
			}
			switch {
			case ev["event"] == "error" && ev["ref"] == "send":
				return fmt.Errorf("%v", ev["error"])
			case ev["event"] == "accepted" && ev["ref"] == "send" && ev["group"] != nil:
				return waitGroupVia(c, conn, lines, ev, timeout)
			case ev["event"] == "accepted" && ev["ref"] == "send":
				id, _ = ev["id"].(string)
				switch {
				case delivered[id]:
					c.printf("delivered %s\n", id)
					return nil
				case waited:
					return queued()
				}
			case ev["event"] == "delivered" && id != "" && ev["id"] == id:
				c.printf("delivered %s\n", id)
				return nil
			case ev["event"] == "delivered" && id == "":
				if s, ok := ev["id"].(string); ok {
					delivered[s] = true
				}
			}
		case <-timeout:
			waited = true
			if id != "" {
				return queued()
			}
		case <-answerBy:
			return errors.New("the daemon did not answer")
		}
	}
}

// daemonAnswerWait is how long chat send waits for the daemon to say it
// stored the message, whatever --wait says about the receipt.
const daemonAnswerWait = 15 * time.Second

// daemonLines reads the daemon's answer and event lines from conn, each
// a JSON object, until it closes; a line that is not one is skipped.
func daemonLines(conn io.Reader) <-chan map[string]any {
	lines := make(chan map[string]any)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(conn)
		sc.Buffer(nil, maxCommandLine)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				lines <- ev
			}
		}
	}()
	return lines
}

// sendDirect runs a node just for this message.
func sendDirect(c *ctx, text string) error {
	log, closeLog, err := c.logger(io.Discard)
	if err != nil {
		return err
	}
	defer closeLog()
	n, _, err := c.startNode(log, !c.opts.node.noMDNS)
	if err != nil {
		return err
	}
	defer n.Close()
	ct, g, isGroup, err := contactOrGroup(n, c.opts.node.to)
	switch {
	case err != nil:
		return err
	case isGroup:
		return sendGroupDirect(c, n, g, text)
	}
	sub := n.Subscribe()
	defer sub.Close()
	m, err := n.Send(ct.PeerID, text)
	if err != nil {
		return fmt.Errorf("send to %s: %w", c.opts.node.to, err)
	}
	timeout := time.After(c.opts.node.wait)
	atRelay := false
	for {
		select {
		case e := <-sub.C:
			if e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusQueued {
				atRelay = true
			}
			if e.Kind == node.EventStatus && e.Message.ID == m.ID && e.Message.Status == store.StatusDelivered {
				c.printf("delivered %s\n", m.ID)
				return nil
			}
			if e.Kind == node.EventPeer && e.Peer.ID == ct.PeerID && e.Peer.Changed != nil {
				return fmt.Errorf("send to %s: %w (message %s stays queued)", c.opts.node.to, node.ErrKeyChanged, m.ID)
			}
		case <-timeout:
			c.printf("queued %s\n", m.ID)
			if atRelay {
				return exitStatus{exitQueued, fmt.Sprintf("%s is not reachable now; the message waits at a relay's mailbox until they fetch it (exit status 3: queued)", c.opts.node.to)}
			}
			return exitStatus{exitQueued, fmt.Sprintf("%s is not reachable now; the message stays in the outbox and is delivered by the next `chat` or `chat daemon` run (exit status 3: queued)", c.opts.node.to)}
		}
	}
}

func runHistory(c *ctx) error {
	if err := c.wantArgs(1); err != nil {
		return err
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	// The peer's lines carry the contact's name, as the chat window shows.
	t, ct, err := c.resolveContact(c.args[0])
	if err != nil {
		if t == nil {
			return err
		}
		return runGroupHistory(c, h, t, c.args[0], err)
	}
	var msgs []jsonMessage
	if conn, err := dialControl(h); err == nil {
		defer conn.Close()
		msgs, err = historyVia(conn, ct.PeerID.String(), c.opts.node.limit)
		if err != nil {
			return err
		}
	} else if err := databaseFree(h); err != nil {
		return err
	} else if msgs, err = historyDirect(c, h, ct.PeerID); err != nil {
		return err
	}
	if c.opts.json {
		enc := json.NewEncoder(c.io.out)
		enc.SetIndent("", "  ")
		return enc.Encode(msgs)
	}
	for _, m := range msgs {
		printHistoryLine(c.io.out, m, ct.Label())
	}
	return nil
}

func historyVia(conn io.ReadWriter, peerArg string, limit int) ([]jsonMessage, error) {
	req, _ := json.Marshal(request{Cmd: "history", Ref: "history", Peer: peerArg, Limit: limit})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var probe struct {
			Event, Ref, Error string
		}
		if json.Unmarshal(sc.Bytes(), &probe) != nil || probe.Ref != "history" {
			continue
		}
		if probe.Event == "error" {
			return nil, errors.New(probe.Error)
		}
		var h evHistory
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			return nil, err
		}
		return h.Messages, nil
	}
	return nil, errors.New("the daemon closed the connection")
}

// historyDirect reads the database itself (no daemon running).
func historyDirect(c *ctx, h identity.Home, p peer.ID) ([]jsonMessage, error) {
	id, _, err := c.loadIdentity()
	if err != nil {
		return nil, err
	}
	db, err := store.OpenIdentity(h.Path(store.FileName), id)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	ms, err := db.History(p, 0, min(max(c.opts.node.limit, 1), historyMax))
	if err != nil {
		return nil, err
	}
	out := []jsonMessage{}
	for _, m := range ms {
		out = append(out, messageJSON(m))
	}
	return out, nil
}

// printHistoryLine prints one message of the conversation with the
// contact called name.
//
// The time is the sender's, as the window shows it, with the arrival
// when it differs by more than arrivalNote; a reply has the line it
// quotes above it; a deleted message is a tombstone; edits and reactions
// show after the text.
func printHistoryLine(w io.Writer, m jsonMessage, name string) {
	const indent = 18 // under the text: "2006-01-02 15:04  "
	ts, _ := time.Parse(time.RFC3339Nano, m.TS)
	stored, err := time.Parse(time.RFC3339Nano, m.Stored)
	if err != nil {
		stored = ts // not known: no note
	}
	who := name
	if m.Direction == string(store.Outgoing) {
		st := m.Status
		switch {
		case m.Members > 0: // a group's: how many of its members have it
			st = groupDelivery(m.Delivered, m.Members)
		case m.Seen != "":
			st = "seen"
		}
		who = "me (" + st + ")"
	}
	if m.QuoteFrom != "" {
		qwho := name
		if m.QuoteFrom == "me" {
			qwho = "me"
		}
		q := identity.SanitizeText(m.Quote, false)
		if q == "" {
			q = "[message deleted]"
		}
		fmt.Fprintf(w, "%s↪ %s: %s\n", strings.Repeat(" ", indent), qwho, q)
	}
	notes := gapNote(m.Late, m.Missing)
	if m.Direction == string(store.Incoming) {
		notes += arrivedNote(ts.Local(), stored.Local())
	}
	head := fmt.Sprintf("%s  %s%s: ", ts.Local().Format("2006-01-02 15:04"), who, notes)
	// Lines after the first are indented under the text, so a message's
	// lines stay together and apart from the next message.
	text := strings.ReplaceAll(identity.SanitizeText(m.Text, true), "\n", "\n"+strings.Repeat(" ", indent))
	switch {
	case m.Deleted:
		text = "[message deleted]"
	case m.Edited != "":
		text += " (edited)"
	}
	if len(m.Reactions) > 0 {
		var rs []string
		for _, r := range m.Reactions {
			from := name
			if r.From == "me" {
				from = "me"
			}
			rs = append(rs, identity.SanitizeText(r.Emoji, false)+" "+from)
		}
		text += "  [" + strings.Join(rs, ", ") + "]"
	}
	fmt.Fprintf(w, "%s%s\n", head, text)
}

// arrivalNote is how far apart the sender's time and the arrival may be
// before the arrival is shown too (clocks differ a little; the mailbox
// and a peer offline make it more).
const arrivalNote = time.Minute

// arrivedNote says when an incoming message arrived, if that is not
// about when it was sent: the time, and the date when it is another day.
func arrivedNote(sent, stored time.Time) string {
	if d := stored.Sub(sent); d <= arrivalNote && d >= -arrivalNote {
		return ""
	}
	if sent.Format("2006-01-02") == stored.Format("2006-01-02") {
		return " (arrived " + stored.Format("15:04") + ")"
	}
	return " (arrived " + stored.Format("2006-01-02 15:04") + ")"
}

// groupDelivery is how far a message to a group got: "delivered to all
// 3", "delivered to 1 of 3".
func groupDelivery(delivered, members int) string {
	if delivered >= members {
		return fmt.Sprintf("delivered to all %d", members)
	}
	return fmt.Sprintf("delivered to %d of %d", delivered, members)
}

// gapNote says that a message came late, or that earlier ones are missing.
func gapNote(late bool, missing int) string {
	var notes []string
	if late {
		notes = append(notes, "late")
	}
	switch {
	case missing == 1:
		notes = append(notes, "1 earlier message not yet arrived")
	case missing > 1:
		notes = append(notes, fmt.Sprintf("%d earlier messages not yet arrived", missing))
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, ", ") + ")"
}
