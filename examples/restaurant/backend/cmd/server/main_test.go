package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the server when this variable is set, so the
// serve tests exercise the real process: signals, pidfile, exit code.
func TestMain(m *testing.M) {
	if os.Getenv("RESTAURANT_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestResolveVersion(t *testing.T) {
	withFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(withFile, "VERSION"), []byte(" 20300101-abc123 \nextra\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "APP_VERSION" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name, flag, env, dir, want string
	}{
		{"flag wins", "v1", "v2", withFile, "v1"},
		{"env next", "", "v2", withFile, "v2"},
		{"VERSION file", "", "", withFile, "20300101-abc123"},
		{"default", "", "", t.TempDir(), "dev"},
		{"blank values ignored", "  ", " ", "", "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := resolveVersion(tt.flag, env(tt.env), tt.dir); got != tt.want {
				t.Fatalf("resolveVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDefaultAddr(t *testing.T) {
	for port, want := range map[string]string{"": "127.0.0.1:8080", "8082": "127.0.0.1:8082", " 9000 ": "127.0.0.1:9000"} {
		getenv := func(k string) string {
			if k == "PORT" {
				return port
			}
			return ""
		}
		if got := defaultAddr(getenv); got != want {
			t.Errorf("defaultAddr with PORT=%q = %q, want %q", port, got, want)
		}
	}
}

func runCmd(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"launch"},
		{"serve", "-nope"},
		{"migrate", "extra-arg"},
		{"backup", "-db", "x"},
	} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Errorf("server %v exit = %d, want 2", args, code)
		}
	}
	if code, _, _ := runCmd("migrate"); code != 1 {
		t.Errorf("migrate without a database exit = %d, want 1", code)
	}
}

func TestMigrateCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "data", "r.sqlite3")

	code, out, errOut := runCmd("migrate", "-status", "-db", db)
	if code != 0 || !strings.Contains(out, "pending  0001_init.sql") {
		t.Fatalf("status before = %d %q %q", code, out, errOut)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("migrate -status created the database")
	}

	code, out, errOut = runCmd("migrate", "-db", db)
	if code != 0 || !strings.Contains(out, "applied 0001_init.sql") || !strings.Contains(out, "applied 0002_allergens.sql") {
		t.Fatalf("migrate = %d %q %q", code, out, errOut)
	}

	t.Setenv("DATABASE_PATH", db)
	code, out, _ = runCmd("migrate")
	if code != 0 || !strings.Contains(out, "up to date (schema 2)") {
		t.Fatalf("second migrate = %d %q", code, out)
	}
	code, out, _ = runCmd("migrate", "-status")
	if code != 0 || strings.Contains(out, "pending") || !strings.Contains(out, "applied  0002_allergens.sql") {
		t.Fatalf("status after = %d %q", code, out)
	}

	copyPath := filepath.Join(t.TempDir(), "copy.sqlite3")
	if code, out, errOut := runCmd("backup", "-out", copyPath); code != 0 {
		t.Fatalf("backup = %d %q %q", code, out, errOut)
	}
	code, out, _ = runCmd("migrate", "-status", "-db", copyPath)
	if code != 0 || strings.Contains(out, "pending") {
		t.Fatalf("status of the backup = %d %q", code, out)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestServeProcess(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "r.sqlite3")
	if code, _, errOut := runCmd("migrate", "-db", db); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}
	addr := freeAddr(t)
	pidfile := filepath.Join(dir, "server.pid")
	var logs bytes.Buffer
	// The address comes from PORT, as in a deploy slot.
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(os.Args[0], "serve", "-pidfile", pidfile, "-version", "v-proc")
	cmd.Env = append(os.Environ(), "RESTAURANT_RUN_MAIN=1", "DATABASE_PATH="+db, "PORT="+port)
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(pidfile)
		if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pidfile after 10s; logs:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Status, Version string
		Schema          int
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || h.Status != "ok" || h.Version != "v-proc" || h.Schema != 2 {
		t.Fatalf("healthz = %d %+v %v", resp.StatusCode, h, err)
	}
	if v := resp.Header.Get("X-App-Version"); v != "v-proc" {
		t.Errorf("X-App-Version = %q, want v-proc", v)
	}
	if code, _, errOut := runCmd("healthcheck", "-url", "http://"+addr+"/healthz"); code != 0 {
		t.Fatalf("healthcheck against a live server = %d %s", code, errOut)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("server exited with %v after SIGTERM; logs:\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("server still running 15s after SIGTERM")
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile left behind: %v", err)
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("logs do not show a graceful stop:\n%s", logs.String())
	}
	if code, _, _ := runCmd("healthcheck", "-url", "http://"+addr+"/healthz", "-timeout", "1s"); code != 1 {
		t.Errorf("healthcheck against a stopped server = %d, want 1", code)
	}
}

func TestServeRefusesMissingStaticDir(t *testing.T) {
	code, _, errOut := runCmd("serve", "-db", filepath.Join(t.TempDir(), "r.sqlite3"), "-static", t.TempDir(), "-addr", freeAddr(t))
	if code != 1 || !strings.Contains(errOut, "index.html") {
		t.Fatalf("serve with an empty static dir = %d %q", code, errOut)
	}
}
