package ui

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/certchat/certchat/e2e"
	"github.com/certchat/certchat/identity"
	"github.com/certchat/certchat/node"
	"github.com/certchat/certchat/store"
	"github.com/certchat/certchat/transfer"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rivo/tview"
)

// Files in the window: /send PATH (Tab completes the path), /accept,
// /decline, /cancel and /files; under each file's offer in the
// conversation, its state: a progress bar with percentage, speed and
// time left while it moves, the path (with its type and size) once it
// arrived, or why it waits or ended.

// transfers is the files' part of the window: what it knows of each
// transfer, fed by the node's file events. It belongs to the event loop.
type transfers struct {
	*UI

	files map[transfer.ID]*fileView
}

// fileView is what the window knows of one transfer.
type fileView struct {
	info node.FileInfo
	// The speed: bytes per second, smoothed, from the progress events of
	// this run.
	at    time.Time
	bytes int64
	speed float64
	kind  string // a received file's type, once done
	// preview is a received image's, once decoded (preview.go).
	preview *preview
}

// initFiles hooks the transfers into the conversation.
func (u *transfers) initFiles() {
	u.files = map[transfer.ID]*fileView{}
	u.conv.fileRows = u.fileRows
}

// loadFiles reads the stored transfers (off the event loop: the pump).
func (u *transfers) loadFiles() {
	fs, err := u.b.Files().List()
	if err != nil {
		u.log.Warn("read file transfers", "err", err)
	}
	kinds := make([]string, len(fs))
	for i, f := range fs {
		kinds[i] = fileKind(f)
	}
	u.post(func() {
		for i, f := range fs {
			if _, ok := u.files[f.ID]; !ok {
				fv := &fileView{info: f, kind: kinds[i]}
				u.files[f.ID] = fv
				u.conv.fileChanged(e2e.MessageID(f.ID))
				u.loadPreview(fv)
			}
		}
	})
}

// onFile takes a file event: the offer's rows show it.
func (u *transfers) onFile(kind node.EventKind, f node.FileInfo) {
	now := u.now()
	fv, ok := u.files[f.ID]
	if !ok {
		fv = &fileView{}
		u.files[f.ID] = fv
	}
	if kind == node.EventFileProgress && fv.info.State.Final() {
		// Progress reported from the stream can come after the end from
		// the control message: the end stands.
		return
	}
	if kind == node.EventFileProgress && f.Bytes > fv.bytes && !fv.at.IsZero() {
		if dt := now.Sub(fv.at).Seconds(); dt > 0 {
			rate := float64(f.Bytes-fv.bytes) / dt
			if fv.speed == 0 {
				fv.speed = rate
			} else {
				fv.speed = 0.7*fv.speed + 0.3*rate
			}
		}
	}
	if f.Bytes != fv.bytes || fv.at.IsZero() {
		fv.at, fv.bytes = now, f.Bytes
	}
	if f.Trust == "" {
		f.Trust = fv.info.Trust
	}
	fv.info = f
	switch kind {
	case node.EventFileDone:
		fv.kind = fileKind(f)
		u.loadPreview(fv)
		if f.Direction == store.Incoming {
			u.notes.inform("Received " + oneLine(f.Name) + ": " + oneLine(f.Path))
		}
	case node.EventFileFailed:
		u.notes.showError(fmt.Sprintf("File %s: %s", oneLine(f.Name), oneLine(f.Error)))
	case node.EventFileOffer:
		if f.State == store.TransferOffered {
			u.notes.inform(fmt.Sprintf("%s offers %s (%s): /accept or /decline", oneLine(u.peerName(f.Peer)), oneLine(f.Name), sizeText(f.Size)))
		}
	}
	u.conv.fileChanged(e2e.MessageID(f.ID))
}

// fileChanged drops the rows of a transfer's offer, drawn again.
func (c *convView) fileChanged(id e2e.MessageID) {
	if e := c.byID[id]; e != nil {
		e.rows = nil
	}
}

// fileRows are the rows under a file offer: its state now.
func (u *transfers) fileRows(m store.Message, w, indent int) []line {
	fv, ok := u.files[transfer.ID(m.ID)]
	if !ok {
		return nil
	}
	text, t := fileState(fv, u.peerName(m.Peer))
	style := u.th.toned(t, u.th.dim)
	pad := strings.Repeat(" ", indent)
	var rows []line
	for _, r := range wrap(text, max(1, w-indent)) {
		rows = append(rows, line{{pad, u.th.text}, {r, style}})
	}
	if fv.preview != nil && fv.info.State == store.TransferDone && w-indent >= fv.preview.w {
		rows = append(rows, fv.preview.rows(pad, u.th.text)...)
	}
	return rows
}

// fileState says where a transfer is, in words or as a bar.
func fileState(fv *fileView, peerName string) (string, tone) {
	f := fv.info
	switch f.State {
	case store.TransferOffered:
		return "offered: /accept to receive it, /decline to refuse", toneWarn
	case store.TransferWaiting, store.TransferActive:
		if f.Notice != "" && (f.State == store.TransferWaiting || fv.speed == 0) {
			return progressBar(f.Bytes, f.Size, 12) + " " + f.Notice, toneWarn
		}
		if f.State == store.TransferWaiting {
			if f.Direction == store.Outgoing {
				return "waiting for " + peerName + " to accept", toneNone
			}
			return progressBar(f.Bytes, f.Size, 12) + " waiting for " + peerName, toneNone
		}
		s := progressBar(f.Bytes, f.Size, 20)
		if fv.speed > 0 {
			s += fmt.Sprintf("  %s/s  %s left", sizeText(int64(fv.speed)), durationText(time.Duration(float64(f.Size-f.Bytes)/fv.speed*float64(time.Second))))
		}
		return s, toneNone
	case store.TransferDone:
		if f.Direction == store.Outgoing {
			return "received by " + peerName, toneGood
		}
		what := sizeText(f.Size)
		if fv.kind != "" {
			what = fv.kind + ", " + what
		}
		return fmt.Sprintf("saved: %s (%s)", f.Path, what), toneGood
	case store.TransferDeclined:
		return "declined", toneWarn
	case store.TransferCancelled:
		return "cancelled", toneWarn
	}
	return "failed: " + f.Error, toneBad
}

// progressBar is "[█████░░░░░]  45%" for n of size, width cells wide.
func progressBar(n, size int64, width int) string {
	frac := 1.0
	if size > 0 {
		frac = min(1, float64(n)/float64(size))
	}
	full := int(frac * float64(width))
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("█", full), strings.Repeat("░", width-full), int(frac*100))
}

// durationText writes a duration as h:mm:ss or m:ss.
func durationText(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// sizeText writes bytes as B, KiB, MiB or GiB.
func sizeText(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// fileKind is a received file's type: from its first bytes, else its
// extension. Empty for files not received.
func fileKind(f node.FileInfo) string {
	if f.Direction != store.Incoming || f.State != store.TransferDone || f.Path == "" {
		return ""
	}
	kind := mime.TypeByExtension(filepath.Ext(f.Path))
	if fh, err := os.Open(f.Path); err == nil {
		head := make([]byte, 512)
		n, _ := fh.Read(head)
		fh.Close()
		if sniffed := http.DetectContentType(head[:n]); sniffed != "application/octet-stream" || kind == "" {
			kind = sniffed
		}
	}
	kind, _, _ = strings.Cut(kind, ";")
	return kind
}

// Commands.

func (u *transfers) cmdSend(arg string) {
	c := u.cmds.openChatOrSay("send")
	if c == nil {
		return
	}
	if arg == "" {
		u.notes.showError("/send PATH: the file to send (Tab completes the path).")
		return
	}
	path := expandHome(arg)
	if c.grp != nil {
		u.gc.sendGroupFile(c, path)
		return
	}
	p := c.info.ID
	u.spawn(func() {
		f, err := u.b.Files().Send(p, path)
		u.post(func() {
			if err != nil {
				u.notes.showError("Not sent: " + describe(err))
				return
			}
			u.files[f.ID] = &fileView{info: f}
			u.notes.inform(fmt.Sprintf("Offered %s (%s) to %s.", oneLine(f.Name), sizeText(f.Size), oneLine(c.info.Name)))
		})
	})
}

// pickFile finds the transfer an /accept, /decline or /cancel means: the
// ID (or its start) given, else the newest in the open chat that ok
// takes.
func (u *transfers) pickFile(cmd, arg string, ok func(*fileView) bool) (transfer.ID, bool) {
	var found []*fileView
	for _, fv := range u.files {
		switch {
		case arg != "" && strings.HasPrefix(fv.info.ID.String(), strings.ToLower(arg)):
		case arg == "" && fv.info.Peer == u.open && ok(fv):
		default:
			continue
		}
		found = append(found, fv)
	}
	slices.SortFunc(found, func(a, b *fileView) int { return strings.Compare(a.info.ID.String(), b.info.ID.String()) })
	if len(found) == 0 {
		u.notes.showError("/" + cmd + ": no such file in this chat; /files lists them.")
		return transfer.ID{}, false
	}
	if arg != "" && len(found) > 1 {
		u.notes.showError("/" + cmd + ": more than one file starts with " + oneLine(arg) + ".")
		return transfer.ID{}, false
	}
	return found[len(found)-1].info.ID, true
}

func offered(fv *fileView) bool {
	return fv.info.Direction == store.Incoming && fv.info.State == store.TransferOffered
}

func (u *transfers) cmdAccept(arg string) {
	id, ok := u.pickFile("accept", arg, offered)
	if !ok {
		return
	}
	u.fileCall("accept", func() error { return u.b.Files().Accept(id) })
}

func (u *transfers) cmdDecline(arg string) {
	id, ok := u.pickFile("decline", arg, offered)
	if !ok {
		return
	}
	u.fileCall("decline", func() error { return u.b.Files().Cancel(id) })
}

func (u *transfers) cmdCancel(arg string) {
	id, ok := u.pickFile("cancel", arg, func(fv *fileView) bool { return !fv.info.State.Final() })
	if !ok {
		return
	}
	u.fileCall("cancel", func() error { return u.b.Files().Cancel(id) })
}

// fileCall runs /cmd's node call off the event loop and shows its
// error. A transfer that ended before the call reached it (the peer
// cancelled a moment before, or /cancel named a file done already) is
// no failure of /cancel or /decline: the note says how it ended.
func (u *transfers) fileCall(cmd string, f func() error) {
	u.spawn(func() {
		err := f()
		if err == nil {
			return
		}
		u.post(func() {
			var over *node.TransferOverError
			switch {
			case errors.As(err, &over) && cmd != "accept":
				u.notes.inform("Nothing to " + cmd + ": the file transfer is over (" + string(over.State) + ").")
			case errors.As(err, &over):
				u.notes.showError("Too late to accept: the file transfer is over (" + string(over.State) + ").")
			default:
				u.notes.showError(describe(err))
			}
		})
	})
}

// cmdFiles lists every transfer.
func (u *transfers) cmdFiles(string) {
	fs := make([]*fileView, 0, len(u.files))
	for _, fv := range u.files {
		fs = append(fs, fv)
	}
	if len(fs) == 0 {
		u.notes.inform("No files sent or received yet: /send PATH sends one to the open chat.")
		return
	}
	slices.SortFunc(fs, func(a, b *fileView) int { return strings.Compare(a.info.ID.String(), b.info.ID.String()) })
	var b strings.Builder
	for _, fv := range fs {
		f := fv.info
		arrow := "→"
		if f.Direction == store.Incoming {
			arrow = "←"
		}
		state, _ := fileState(fv, u.peerName(f.Peer))
		fmt.Fprintf(&b, "%s %s  %s  %s  [::d]%s[::-]\n    %s\n", arrow, tview.Escape(u.peerName(f.Peer)), tview.Escape(f.Name), sizeText(f.Size), f.ID.String()[:8], tview.Escape(state))
	}
	u.dlg.show(u.dlg.textDialog("Files", strings.TrimRight(b.String(), "\n"), true, button{"Close (Esc)", nil}))
}

// Completion of /send's path.

// completeSend completes the path of a "/send " line on Tab, and
// reports whether the line was one.
func (u *transfers) completeSend() bool {
	text := u.in.GetText()
	if !strings.HasPrefix(text, "/send ") {
		return false
	}
	arg := strings.TrimLeft(strings.TrimPrefix(text, "/send "), " ")
	done, matches := completePath(arg)
	u.in.SetText("/send " + done)
	switch {
	case len(matches) == 0:
		u.notes.showError("No file matches " + oneLine(arg) + ".")
	case len(matches) > 1:
		if len(matches) > 12 {
			matches = append(matches[:12], "…")
		}
		u.notes.inform(strings.Join(matches, "  "))
	}
	return true
}

// completePath completes a typed path as far as it is unambiguous and
// returns the names that match. A folder gets its "/".
func completePath(typed string) (string, []string) {
	dir, base := filepath.Split(typed)
	entries, err := os.ReadDir(expandHome(dir + "."))
	if err != nil {
		return typed, nil
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, base) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		if e.IsDir() {
			name += "/"
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return typed, nil
	}
	common := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, common) {
			common = common[:len(common)-1]
		}
	}
	return dir + common, names
}

// expandHome turns a leading "~/" into the user's home.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

// peerName is how the window names a peer in file rows.
func (u *transfers) peerName(p peer.ID) string {
	if c := u.roster.get(p); c != nil && c.info.Name != "" {
		return oneLine(c.info.Name)
	}
	return identity.ShortID(p)
}
