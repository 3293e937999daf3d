package main

import (
	"log/slog"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// goLogTo sends the logs of libraries that use go-log rather than slog
// (go-libp2p-kad-dht, the certchat DHT) to h, at warning level and above,
// instead of stderr, where they would write over the chat window. The
// function it returns sends them nowhere again.
func goLogTo(h slog.Handler) func() {
	w := slog.NewLogLogger(h, slog.LevelWarn).Writer()
	golog.SetPrimaryCore(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(w), zapcore.WarnLevel))
	return func() { golog.SetPrimaryCore(zapcore.NewNopCore()) }
}

// libLogsTo sends the logs of the libraries beneath the node to h: go-libp2p's
// (gologshim, which otherwise writes to stderr, at the level GOLOG_LOG_LEVEL
// gives) and go-log's (goLogTo). A one-shot command's stderr then carries
// only what the command says, not a libp2p listener's complaint as the
// node closes. It must be called before the node starts (gologshim takes
// the handler at a logger's first line); the function it returns stops
// go-log's.
func libLogsTo(h slog.Handler) func() {
	gologshim.SetDefaultHandler(h)
	return goLogTo(h)
}
