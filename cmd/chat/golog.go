package main

import (
	"log/slog"

	golog "github.com/ipfs/go-log/v2"
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
