package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// legacy is a server that served the example app from plain directories
// before Stagecoach: root/frontend/dist, root/backend/server and
// root/data/restaurant.sqlite3, its backend running on the project's port.
type legacy struct {
	root string
	pid  int
}

// startLegacy builds p's frontend and backend by hand, lays them out
// under root as a hand-made deploy would, migrates the database and starts
// the backend from there. Its pidfile is shared/backend.pid, where the
// project's restart command finds the running backend to replace it.
func startLegacy(t *testing.T, p *testenv.Project, root string) *legacy {
	t.Helper()
	front := filepath.Join(p.Dir, "frontend")
	sh(t, front, nil, "npm", "ci", "--prefer-offline", "--no-audit", "--no-fund")
	sh(t, front, nil, "npm", "run", "build")
	for _, d := range []string{"frontend", "backend", "data", "shared"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh(t, root, nil, "cp", "-a", filepath.Join(front, "dist"), filepath.Join(root, "frontend", "dist"))
	sh(t, filepath.Join(p.Dir, "backend"), []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", filepath.Join(root, "backend", "server"), "./cmd/server")
	sh(t, root, nil, "./backend/server", "migrate", "-db", "data/restaurant.sqlite3")
	pidfile := filepath.Join(root, "shared", "backend.pid")
	srv := exec.Command("./backend/server", "serve", "-addr", "127.0.0.1:"+strconv.Itoa(p.Port),
		"-db", "data/restaurant.sqlite3", "-static", "frontend/dist", "-version", "legacy", "-pidfile", pidfile)
	srv.Dir = root
	srv.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	go srv.Wait()
	l := &legacy{root: root, pid: srv.Process.Pid}
	t.Cleanup(func() { syscall.Kill(l.pid, syscall.SIGTERM) })
	for i := 0; ; i++ {
		if strings.Contains(tryHealthz(p.Port), `"status":"ok"`) {
			break
		}
		if i == 200 {
			t.Fatal("the hand-deployed backend did not come up")
		}
		time.Sleep(25 * time.Millisecond)
	}
	return l
}

// sh runs a command in dir, with env added, and fails the test on error.
func sh(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Dir, c.Env = dir, append(os.Environ(), env...)
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// tryHealthz is the body of the backend's /healthz, "" when it does not answer.
func tryHealthz(port int) string {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b := make([]byte, 512)
	n, _ := resp.Body.Read(b)
	return string(b[:n])
}

// rows counts the reservations in the sqlite database at path, read by
// the sqlite3 CLI rather than through the app.
func rows(t *testing.T, path string) int {
	t.Helper()
	testenv.RequireTool(t, "sqlite3", "apt-get install -y sqlite3")
	out, err := exec.Command("sqlite3", path, "SELECT count(*) FROM reservations").CombinedOutput()
	if err != nil {
		t.Fatalf("count the rows of %s: %v\n%s", path, err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
