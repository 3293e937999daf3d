package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/transfer"
)

// Files: the flags and settings of received files, `chat send --file`,
// and the daemon's file commands and events (docs/DAEMON.md).

// fileOptions are the file flags of commands that run a node.
type fileOptions struct {
	send       string // chat send --file
	downloads  string
	autoAccept string
	rate       string
}

// defaultAutoAccept is the largest file taken without asking from a
// verified or CA-verified contact when neither flag nor setting says.
const defaultAutoAccept = 16 << 20

func fileFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.node.files.downloads, "downloads", "", "folder for received files; also \"downloads\" in home/config.json (default: $XDG_DOWNLOAD_DIR, else ~/Downloads if it exists, else home/downloads)")
	fs.StringVar(&o.node.files.autoAccept, "auto-accept", "", "take files up to this size (\"16MiB\", \"0\": always ask) from verified and CA-verified contacts without asking; also \"auto_accept\" in home/config.json (default 16MiB)")
	fs.StringVar(&o.node.files.rate, "file-rate", "", "send each file at most this fast, per second (\"1MiB\"; default: as fast as the path allows)")
}

// fileSettings are the node's settings for files.
type fileSettings struct {
	downloads  string
	autoAccept int64
	rate       int64
}

// fileSettings resolves the downloads folder and the automatic
// acceptance size (the flag, else the setting, else the default) and
// the sending rate.
func (c *ctx) fileSettings(h identity.Home, conf config) (fileSettings, error) {
	var fset fileSettings
	var err error
	if r := c.opts.node.files.rate; r != "" {
		if fset.rate, err = parseSize(r); err != nil {
			return fset, fmt.Errorf("file-rate: %w", err)
		}
	}
	dir := c.opts.node.files.downloads
	if dir == "" {
		dir = conf.Downloads
	}
	if dir == "" {
		dir = defaultDownloads(h)
	}
	if fset.downloads, err = filepath.Abs(dir); err != nil {
		return fset, err
	}
	size := c.opts.node.files.autoAccept
	if size == "" {
		size = conf.AutoAccept
	}
	fset.autoAccept = defaultAutoAccept
	if size != "" {
		if fset.autoAccept, err = parseSize(size); err != nil {
			return fset, fmt.Errorf("auto-accept: %w", err)
		}
	}
	return fset, nil
}

// defaultDownloads is the user's download folder ($XDG_DOWNLOAD_DIR, or
// ~/Downloads if it exists), else "downloads" in the certchat home.
func defaultDownloads(h identity.Home) string {
	if d := os.Getenv("XDG_DOWNLOAD_DIR"); d != "" && filepath.IsAbs(d) {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		d := filepath.Join(home, "Downloads")
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
	}
	return h.Path("downloads")
}

// parseSize reads a size: bytes, or a number with KiB, MiB, GiB (or KB,
// MB, GB, K, M, G, taken as the binary units).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || n*float64(mult) > transfer.MaxFileSize {
		return 0, fmt.Errorf("%q is not a size (such as 16MiB, 500KiB or 0)", s)
	}
	return int64(n * float64(mult)), nil
}

// The daemon's file commands.

func missingFileField(c request) string {
	switch {
	case c.Cmd == "send_file" && c.To == "":
		return "to"
	case c.Cmd == "send_file" && c.Path == "":
		return "path"
	case (c.Cmd == "file_accept" || c.Cmd == "file_cancel") && c.ID == "":
		return "id"
	}
	return ""
}

type evFileOffer struct {
	Event string `json:"event"`
	ID    string `json:"id"`
	From  string `json:"from"`
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	Trust string `json:"trust"` // the sender's trust state
}

type evFileProgress struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Bytes  int64  `json:"bytes"`
	Size   int64  `json:"size"`
	Notice string `json:"notice,omitempty"` // why it waits
}

type evFileDone struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

type evFileFailed struct {
	Event  string `json:"event"`
	ID     string `json:"id"`
	Reason string `json:"reason"`
	State  string `json:"state"` // declined, cancelled or failed
}

type evFile struct {
	Event  string `json:"event"`
	Ref    string `json:"ref,omitempty"`
	ID     string `json:"id"`
	Peer   string `json:"peer"`
	Dir    string `json:"dir"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	State  string `json:"state"`
	Bytes  int64  `json:"bytes"`
	Path   string `json:"path,omitempty"`
	Error  string `json:"error,omitempty"`
	Notice string `json:"notice,omitempty"`
}

// fileEventJSON is the line of a file event.
func fileEventJSON(e node.Event) any {
	f := e.File
	if f == nil {
		return nil
	}
	id := f.ID.String()
	switch e.Kind {
	case node.EventFileOffer:
		return evFileOffer{Event: "file_offer", ID: id, From: f.Peer.String(), Name: f.Name, Size: f.Size, Trust: string(f.Trust)}
	case node.EventFileProgress:
		return evFileProgress{Event: "file_progress", ID: id, Bytes: f.Bytes, Size: f.Size, Notice: f.Notice}
	case node.EventFileDone:
		return evFileDone{Event: "file_done", ID: id, Path: f.Path, SHA256: hex.EncodeToString(f.SHA256[:]), Size: f.Size}
	case node.EventFileFailed:
		return evFileFailed{Event: "file_failed", ID: id, Reason: f.Error, State: string(f.State)}
	}
	return nil
}

func fileJSON(f node.FileInfo, ref string) evFile {
	return evFile{Event: "file", Ref: ref, ID: f.ID.String(), Peer: f.Peer.String(), Dir: string(f.Direction), Name: f.Name,
		Size: f.Size, State: string(f.State), Bytes: f.Bytes, Path: f.Path, Error: f.Error, Notice: f.Notice}
}

// printFileEvent is the plain daemon's line for a file event.
func printFileEvent(w io.Writer, ts string, e node.Event) {
	f := e.File
	name := identity.SanitizeText(f.Name, false)
	switch e.Kind {
	case node.EventFileOffer:
		fmt.Fprintf(w, "%s file offered by %s (%s): %s, %d bytes, id %s\n", ts, f.Peer, f.Trust, name, f.Size, f.ID)
	case node.EventFileProgress:
		fmt.Fprintf(w, "%s file %s: %d of %d bytes %s\n", ts, name, f.Bytes, f.Size, f.Notice)
	case node.EventFileDone:
		fmt.Fprintf(w, "%s file %s done: %s\n", ts, name, f.Path)
	case node.EventFileFailed:
		fmt.Fprintf(w, "%s file %s %s: %s\n", ts, name, f.State, f.Error)
	}
}

func (h *handler) fileCommand(c request, w *lineWriter, fail func(error)) {
	switch c.Cmd {
	case "send_file":
		ct, err := h.n.Trust().Resolve(c.To)
		if err != nil {
			fail(err)
			return
		}
		if !filepath.IsAbs(c.Path) {
			fail(fmt.Errorf("send_file needs an absolute path, not %q", c.Path))
			return
		}
		f, err := h.n.Files().Send(ct.PeerID, c.Path)
		if err != nil {
			fail(fmt.Errorf("send a file to %s: %w", identity.ShortID(ct.PeerID), err))
			return
		}
		w.write(evStatus{Event: "accepted", Ref: c.Ref, ID: f.ID.String(), To: f.Peer.String()})
	case "file_accept", "file_cancel":
		id, err := transfer.ParseID(c.ID)
		if err != nil {
			fail(err)
			return
		}
		if c.Cmd == "file_accept" {
			err = h.n.Files().Accept(id)
		} else {
			err = h.n.Files().Cancel(id)
		}
		if err != nil {
			fail(err)
			return
		}
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
	case "files":
		files, err := h.n.Files().List()
		for _, f := range files {
			w.write(fileJSON(f, c.Ref))
		}
		if err != nil {
			fail(err)
			return
		}
		w.write(evOK{Event: "ok", Ref: c.Ref, Cmd: c.Cmd})
	}
}

// chat send --file.

func runSendFile(c *ctx) error {
	if c.opts.node.to == "" || len(c.args) != 0 {
		return usageErr("chat send --file PATH needs --to PEER and no text")
	}
	path, err := filepath.Abs(c.opts.node.files.send)
	if err != nil {
		return err
	}
	if st, err := os.Stat(path); err != nil {
		return err
	} else if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	h, err := c.home()
	if err != nil {
		return err
	}
	if conn, err := dialControl(h); err == nil {
		defer conn.Close()
		return sendFileVia(c, conn, path)
	}
	return sendFileDirect(c, path)
}

// sendFileVia offers the file through a running daemon and waits until
// the peer has it, or --wait.
func sendFileVia(c *ctx, conn io.ReadWriter, path string) error {
	req, _ := json.Marshal(request{Cmd: "send_file", Ref: "send", To: c.opts.node.to, Path: path})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("daemon: %w", err)
	}
	lines := daemonLines(conn)
	var id string
	over := map[string]map[string]any{} // file_done or file_failed seen before the answer
	end := func(ev map[string]any) error {
		if ev["event"] == "file_done" {
			c.printf("sent %s (%s)\n", id, path)
			return nil
		}
		return fmt.Errorf("file %s %v: %v", id, ev["state"], ev["reason"])
	}
	timeout := time.After(c.opts.node.wait)
	for {
		select {
		case ev, ok := <-lines:
			if !ok {
				return errors.New("the daemon closed the connection")
			}
			kind, _ := ev["event"].(string)
			evID, _ := ev["id"].(string)
			switch {
			case kind == "error" && ev["ref"] == "send":
				return fmt.Errorf("%v", ev["error"])
			case kind == "accepted" && ev["ref"] == "send":
				id = evID
				if e, ok := over[id]; ok {
					return end(e)
				}
			case kind == "file_done" || kind == "file_failed":
				if id == "" {
					over[evID] = ev
				} else if evID == id {
					return end(ev)
				}
			}
		case <-timeout:
			if id == "" {
				return errors.New("the daemon did not answer")
			}
			c.printf("offered %s: the peer does not have it yet; the running daemon goes on sending\n", id)
			return nil
		}
	}
}

// sendFileDirect runs a node just for this file: it offers it and, while
// it runs (--wait), serves it.
func sendFileDirect(c *ctx, path string) error {
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
	ct, err := n.Trust().Resolve(c.opts.node.to)
	if err != nil {
		return err
	}
	sub := n.Subscribe()
	defer sub.Close()
	f, err := n.Files().Send(ct.PeerID, path)
	if err != nil {
		return fmt.Errorf("send a file to %s: %w", c.opts.node.to, err)
	}
	timeout := time.After(c.opts.node.wait)
	for {
		select {
		case e := <-sub.C:
			if e.File == nil || e.File.ID != f.ID {
				continue
			}
			switch e.Kind {
			case node.EventFileDone:
				c.printf("sent %s (%s)\n", f.ID, path)
				return nil
			case node.EventFileFailed:
				return fmt.Errorf("file %s %s: %s", f.ID, e.File.State, e.File.Error)
			}
		case <-timeout:
			c.printf("offered %s: %s does not have it yet; it is sent while the next `chat` or `chat daemon` runs\n", f.ID, c.opts.node.to)
			return nil
		}
	}
}
