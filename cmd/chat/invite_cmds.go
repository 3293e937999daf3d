package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Invitations on the command line: `chat id` prints one, `chat contacts
// add` takes one (or an address), through a running daemon when there is
// one, else with a node of its own for the moment.

// addTimeout bounds `chat contacts add`'s dial and handshake.
const addTimeout = 20 * time.Second

// errWindowOpen: a chat window holds the home, and only it can tell its
// addresses or dial.
var errWindowOpen = errors.New("a chat window has this home open: use /id there to share your invitation")

// daemonCall sends one command to a running daemon and returns its answer
// (the first line with the command's ref), or its error.
func daemonCall(conn io.ReadWriter, req request) (json.RawMessage, error) {
	req.Ref = "cli-" + req.Cmd
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(nil, maxCommandLine)
	for sc.Scan() {
		var probe struct{ Event, Ref, Error string }
		if json.Unmarshal(sc.Bytes(), &probe) != nil || probe.Ref != req.Ref {
			continue
		}
		if probe.Event == "error" {
			return nil, errors.New(probe.Error)
		}
		return json.RawMessage(slices.Clone(sc.Bytes())), nil
	}
	return nil, errors.New("the daemon closed the connection")
}

// invitation is this home's invitation: the running daemon's, or, when
// nothing runs on the home, one made by a node started for the moment on
// the addresses the next `chat` or `chat daemon` run listens on (the
// remembered ports, or --listen) and the configured relays. It needs the
// key, so it may ask for the passphrase.
func (c *ctx) invitation(h identity.Home) (string, error) {
	if conn, err := dialControl(h); err == nil {
		defer conn.Close()
		ans, err := daemonCall(conn, request{Cmd: "invite"})
		if err != nil {
			return "", err
		}
		var ev evInvite
		if err := json.Unmarshal(ans, &ev); err != nil {
			return "", fmt.Errorf("daemon: %w", err)
		}
		return ev.Text, nil
	}
	if homeInUse(h) {
		return "", errWindowOpen
	}
	n, err := c.newNode(slog.New(slog.DiscardHandler), false)
	if err != nil {
		return "", err
	}
	defer n.Close()
	return n.Invitation()
}

// newNode loads the identity and makes a node with the command's flags
// without starting it: it listens, but neither dials nor announces. The
// libraries' logs go where log does.
func (c *ctx) newNode(log *slog.Logger, mdns bool) (*node.Node, error) {
	libLogsTo(log.Handler())
	id, h, err := c.loadIdentity()
	if err != nil {
		return nil, err
	}
	trust, err := h.TrustStore()
	if err != nil {
		return nil, err
	}
	relays, err := relaysFor(h, c.opts.node.relays)
	if err != nil {
		return nil, err
	}
	return node.New(node.Config{Home: h, Identity: id, Trust: trust, Logger: log,
		Listen: c.opts.node.listen, Relays: relays, MDNS: mdns})
}

// printInvitation prints the invitation, whole on one line (a terminal
// wraps it; copied, it reads the same), and its QR code.
func (c *ctx) printInvitation(text string) error {
	qr, err := identity.QRCodeCompact(text)
	if err != nil {
		return err
	}
	c.printf("\nInvitation: share it; the other side runs `chat contacts add INVITATION` or /add INVITATION.\n%s\n\n%s", text, qr)
	return nil
}

// configuredRelay reports whether p is one of the home's relays.
func configuredRelay(h identity.Home, p peer.ID) bool {
	conf, err := loadConfig(h)
	if err != nil {
		return false
	}
	for _, r := range conf.Relays {
		if info, err := node.ParseRelayAddr(r); err == nil && info.ID == p {
			return true
		}
	}
	return false
}

// addByAddress runs `chat contacts add` for an invitation or an address:
// pin the key, remember the addresses, connect, through the running
// daemon or a node of its own. With a chat window open on the home, the
// key is pinned and the window is left to connect.
func addByAddress(c *ctx, target string, p peer.ID, suggested string) error {
	h, err := c.home()
	if err != nil {
		return err
	}
	if me, err := ownPeerID(h); err != nil {
		return err
	} else if me == p {
		return node.ErrSelf
	}
	if configuredRelay(h, p) {
		return node.ErrIsRelay
	}
	if conn, err := dialControl(h); err == nil {
		defer conn.Close()
		ans, err := daemonCall(conn, request{Cmd: "add", Addr: target, Name: c.opts.name})
		if err != nil {
			return err
		}
		var ev evPeer
		if err := json.Unmarshal(ans, &ev); err != nil {
			return fmt.Errorf("daemon: %w", err)
		}
		return c.reportAdded(ev.Name, p, ev.Trust, ev.Online, ev.Error)
	}
	if homeInUse(h) {
		return pinOnly(c, p, suggested)
	}
	n, err := c.newNode(slog.New(slog.DiscardHandler), false)
	if err != nil {
		return err
	}
	defer n.Close()
	if err := n.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), addTimeout)
	defer cancel()
	info, err := n.Add(ctx, target, c.opts.name)
	if info.ID == "" {
		return err
	}
	errText := ""
	if err != nil {
		errText = err.Error()
	}
	return c.reportAdded(info.Name, p, string(info.Trust), info.Online, errText)
}

func (c *ctx) reportAdded(name string, p peer.ID, trust string, online bool, errText string) error {
	label := fmt.Sprintf("%s (%s)", identity.SanitizeName(name), p)
	if online {
		c.printf("Added %s as %s and connected.\n", label, trust)
		return nil
	}
	c.printf("Added %s as %s; not reachable now (%s). Its addresses are remembered: the next `chat` or `chat daemon` run connects.\n",
		label, trust, strings.TrimSuffix(oneLine(errText), "."))
	return nil
}

// ownPeerID is the home's peer ID, from its certificate.
func ownPeerID(h identity.Home) (peer.ID, error) {
	chain, err := h.LoadChain()
	if err != nil {
		return "", err
	}
	return identity.CertPeerID(chain[0])
}

// daemonRuns reports whether a daemon answers on the home's control
// socket.
func daemonRuns(h identity.Home) bool {
	conn, err := dialControl(h)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// pinOnly is `chat contacts add` while a chat window holds the home: the
// key is pinned as node.Add would (a contact already trusted keeps its
// state), and the window is left to connect.
func pinOnly(c *ctx, p peer.ID, suggested string) error {
	t, err := c.trustStore()
	if err != nil {
		return err
	}
	ct, known, err := t.Contact(p)
	if err != nil {
		return err
	}
	switch {
	case known && ct.State.Trusted():
		if c.opts.name != "" {
			err = c.pin(t, p, c.opts.name, ct.State)
		}
	case !known && c.opts.name == "" && suggested != "":
		_, err = t.PinDistinct(p, identity.SanitizeName(suggested), identity.StateTOFU, c.now())
	default:
		err = c.pin(t, p, c.opts.name, identity.StateTOFU)
	}
	if err != nil {
		return err
	}
	ct, _, _ = t.Contact(p)
	c.printf("Added %s as %s. A chat window has this home open: /add the same there to connect and remember the addresses.\n", labelFor(t, p), ct.State)
	return nil
}
