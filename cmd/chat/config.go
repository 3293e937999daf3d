package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/ui"
)

// config is home/config.json: settings remembered between runs.
type config struct {
	// Relays are circuit relay multiaddrs; `--relay` adds to them.
	Relays []string `json:"relays,omitempty"`
	// RequirePostQuantum refuses peers that offer no hybrid post-quantum
	// key exchange, as `--require-pq` does for one run. Set by hand.
	RequirePostQuantum bool `json:"require_post_quantum,omitempty"`
	// Notify is how the chat window posts desktop notifications: auto,
	// osc777, osc9, osc99 or off (`--notify` and $CERTCHAT_NOTIFY win).
	Notify string `json:"notify,omitempty"`
	// NoBell and NoTitle turn off the window's bell and the unread count
	// in the terminal's title.
	NoBell  bool `json:"no_bell,omitempty"`
	NoTitle bool `json:"no_title,omitempty"`
	// NotifyText puts the message text in desktop notifications; by
	// default they name the sender only.
	NotifyText bool `json:"notify_text,omitempty"`
	// Muted are the chats /mute silenced (peer IDs). The window saves it.
	Muted []string `json:"muted,omitempty"`
	// ReadMarkers and Typing: whether we take part in read markers
	// ("seen") and typing indications (docs/PROTOCOL.md §10); absent
	// means on. The window's /seen and /typing set them.
	ReadMarkers *bool `json:"read_markers,omitempty"`
	Typing      *bool `json:"typing,omitempty"`
	// NoForward: we neither write other members' group copies onward nor
	// are sent ours through another member (docs/PROTOCOL.md §14.7); our
	// group messages go to each member directly. Set by hand.
	NoForward bool `json:"no_forward,omitempty"`
	// Downloads is the folder received files go to, as `--downloads`.
	Downloads string `json:"downloads,omitempty"`
	// AutoAccept is the largest file taken without asking from a
	// verified or CA-verified contact ("16MiB", "0" to always ask), as
	// `--auto-accept`.
	AutoAccept string `json:"auto_accept,omitempty"`
}

// on reads an optional setting that is on when absent.
func on(b *bool) bool { return b == nil || *b }

// saveIndications remembers the window's /seen and /typing.
func saveIndications(h identity.Home, s e2e.Settings) error {
	c, err := loadConfig(h)
	if err != nil {
		return err
	}
	c.ReadMarkers, c.Typing = &s.ReadMarkers, &s.Typing
	return saveConfig(h, c)
}

const maxConfigFile = 1 << 20

func loadConfig(h identity.Home) (config, error) {
	var c config
	data, err := identity.ReadFileLimited(h.Path("config.json"), maxConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("%s: %w (fix or delete the file)", h.Path("config.json"), err)
	}
	return c, nil
}

func saveConfig(h identity.Home, c config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return identity.WriteFileAtomic(h.Path("config.json"), append(data, '\n'), 0o600)
}

// relaysFor merges the relays given on the command line into the
// remembered ones, saves them, and returns them all. `--relay none`
// forgets every remembered relay.
func relaysFor(h identity.Home, given []string) ([]string, error) {
	c, err := loadConfig(h)
	if err != nil {
		return nil, err
	}
	if slices.Contains(given, "none") {
		c.Relays = nil
		return nil, saveConfig(h, c)
	}
	changed := false
	for _, r := range given {
		if _, err := node.ParseRelayAddr(r); err != nil {
			return nil, err
		}
		if !slices.Contains(c.Relays, r) {
			c.Relays = append(c.Relays, r)
			changed = true
		}
	}
	if changed {
		if err := saveConfig(h, c); err != nil {
			return nil, err
		}
	}
	return c.Relays, nil
}

// notifyOptions are the chat window's notification settings: the config
// file's, with the desktop protocol given by flag or environment first.
// /mute and /unmute save the muted chats back to the config file.
func notifyOptions(h identity.Home, flagValue string) (ui.NotifyOptions, error) {
	c, err := loadConfig(h)
	if err != nil {
		return ui.NotifyOptions{}, err
	}
	d, err := ui.ParseDesktop(c.Notify)
	if err != nil {
		return ui.NotifyOptions{}, fmt.Errorf("%s: %w", h.Path("config.json"), err)
	}
	if flagValue != "" {
		if d, err = ui.ParseDesktop(flagValue); err != nil {
			return ui.NotifyOptions{}, usageErr("--notify or $CERTCHAT_NOTIFY: %v", err)
		}
	}
	return ui.NotifyOptions{
		NoBell: c.NoBell, NoTitle: c.NoTitle, Desktop: d, ShowText: c.NotifyText, Muted: c.Muted,
		SaveMuted: func(muted []string) error {
			c, err := loadConfig(h)
			if err != nil {
				return err
			}
			c.Muted = muted
			return saveConfig(h, c)
		},
	}, nil
}
