package plugins_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// bin returns the path of a plugin built from this module, building all of
// them once per test binary: one go build for every program saves links.
func bin(t testing.TB, name string) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "stagecoach-plugins-"); binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator),
			"./examples/smoketest", "./examples/deploynote", "./examples/webhook", "./internal/testplugins/testplugin", "./internal/testplugins/printsfirst")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = errors.New(err.Error() + ": " + string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("build plugins: %v", binErr)
	}
	return filepath.Join(binDir, name)
}

// target is a runner on a real sshd on loopback; its files are this
// machine's, so tests can check them directly too.
func target(t *testing.T) *remote.SSH {
	t.Helper()
	return testenv.StartSSHD(t).Dial(t)
}

// newLog is a Logger whose output tests can read.
func newLog(verbose bool) (*ui.Logger, *testenv.SyncBuffer) {
	b := &testenv.SyncBuffer{}
	return ui.New(b, verbose), b
}

// spec is a testplugin spec at after-swap with the given config.
func spec(t testing.TB, name string, cfg map[string]any) config.Plugin {
	return config.Plugin{Name: name, Path: bin(t, "testplugin"), At: "after-swap", Timeout: 30 * time.Second, Config: cfg}
}

func deployContext(t *testing.T) plugins.Context {
	root := t.TempDir()
	return plugins.Context{
		Environment: "test",
		Host:        "test-host",
		Release:     "20240102T030405Z-abc1234",
		ReleasePath: filepath.Join(root, "releases", "20240102T030405Z-abc1234"),
		Root:        root,
		Revision:    "abc1234def",
		Previous:    "0123456789",
		Changed:     []string{"backend", "frontend"},
		Dir:         t.TempDir(),
	}
}

// assertGone checks that the process whose id the plugin wrote to pidfile
// no longer exists: not running and not a zombie waiting to be reaped.
func assertGone(t *testing.T, pidfile string) {
	t.Helper()
	data, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("plugin wrote no pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pidfile: %v", err)
	}
	// A zombie still answers signal 0 and keeps its /proc entry.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		t.Fatalf("plugin process %d still exists (kill 0: %v): %s", pid, err, stat)
	}
}

func mustContain(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func fileSum(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}
