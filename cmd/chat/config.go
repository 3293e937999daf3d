package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
)

// config is home/config.json: settings remembered between runs.
type config struct {
	// Relays are circuit relay multiaddrs; `--relay` adds to them.
	Relays []string `json:"relays,omitempty"`
	// RequirePostQuantum refuses peers that offer no hybrid post-quantum
	// key exchange, as `--require-pq` does for one run. Set by hand.
	RequirePostQuantum bool `json:"require_post_quantum,omitempty"`
	// Downloads is the folder received files go to, as `--downloads`.
	Downloads string `json:"downloads,omitempty"`
	// AutoAccept is the largest file taken without asking from a
	// verified or CA-verified contact ("16MiB", "0" to always ask), as
	// `--auto-accept`.
	AutoAccept string `json:"auto_accept,omitempty"`
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
