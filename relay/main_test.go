package relay_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	chatBin   string
	buildErr  error
)

// chatBinary builds cmd/chat once for tests that run it as a process.
func chatBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "certchat-relay-test-")
		if err != nil {
			buildErr = err
			return
		}
		chatBin = filepath.Join(dir, "chat")
		out, err := exec.Command("go", "build", "-o", chatBin, "github.com/certchat/certchat/cmd/chat").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build chat: %v", buildErr)
	}
	return chatBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chatBin != "" {
		os.RemoveAll(filepath.Dir(chatBin))
	}
	os.Exit(code)
}
