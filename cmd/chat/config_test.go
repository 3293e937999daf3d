package main

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/ui"
)

// The window's notification settings come from config.json, --notify
// (or $CERTCHAT_NOTIFY) wins for the protocol, a bad value is a clear
// error, and /mute's list is saved back without losing other settings.
func TestNotifyOptions(t *testing.T) {
	h := identity.Home{Dir: t.TempDir()}
	o, err := notifyOptions(h, "")
	if err != nil || o.Desktop != ui.DesktopAuto || o.NoBell || o.NoTitle || o.ShowText || len(o.Muted) != 0 {
		t.Fatalf("without a config: %+v, %v", o, err)
	}
	cfg := `{"relays": ["/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWS86RMaM6ADJiLABnWEba5MZEC7M93LUVsAWSmQjDEeh9"],
		"notify": "osc9", "no_bell": true, "notify_text": true, "muted": ["a"]}`
	if err := os.WriteFile(h.Path("config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err = notifyOptions(h, "")
	if err != nil || o.Desktop != ui.DesktopOSC9 || !o.NoBell || o.NoTitle || !o.ShowText || !slices.Equal(o.Muted, []string{"a"}) {
		t.Fatalf("from the config: %+v, %v", o, err)
	}
	if o, err = notifyOptions(h, "off"); err != nil || o.Desktop != ui.DesktopOff {
		t.Fatalf("--notify off: %+v, %v", o, err)
	}
	if _, err := notifyOptions(h, "growl"); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--notify") {
		t.Fatalf("--notify growl: %v", err)
	}
	if err := o.SaveMuted([]string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(h)
	if err != nil || !slices.Equal(c.Muted, []string{"b", "c"}) || len(c.Relays) != 1 || c.Notify != "osc9" {
		t.Fatalf("after /mute the config is %+v, %v", c, err)
	}
	if err := os.WriteFile(h.Path("config.json"), []byte(`{"notify": "loud"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := notifyOptions(h, ""); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("a bad notify in config.json: %v", err)
	}
}
