package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// checkRun is one `mage check` and what it printed.
type checkRun struct {
	rep *check.Report
	err error
	log string
}

// runCheck runs the check on p's test environment as the Check target does.
func runCheck(t *testing.T, p *testenv.Project, verbose bool) checkRun {
	t.Helper()
	out := &testenv.SyncBuffer{}
	log := ui.New(out, verbose)
	r, err := pipeline.Open(pipeline.Options{ConfigPath: p.Config, Environment: "test"}, log)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := r.Check(ctx)
	if rep == nil {
		t.Fatalf("check returned no report: %v\n%s", err, out.String())
	}
	return checkRun{rep: rep, err: err, log: out.String()}
}

// expect fails the test unless the check exited with code and logged
// every one of wants.
func (c checkRun) expect(t *testing.T, code int, wants ...string) {
	t.Helper()
	if testing.Verbose() && c.log != "" {
		t.Logf("check printed:\n%s", c.log)
	}
	if got := exitcode.Of(c.err); got != code || c.rep.ExitCode != code {
		t.Fatalf("exit code %d (report %d), want %d: %v\n%s", got, c.rep.ExitCode, code, c.err, c.log)
	}
	for _, w := range wants {
		if !strings.Contains(c.log, w) {
			t.Errorf("log lacks %q:\n%s", w, c.log)
		}
	}
}

// result returns the check named name, failing the test when absent.
func (c checkRun) result(t *testing.T, name string) check.Result {
	t.Helper()
	for _, r := range c.rep.Checks {
		if r.Check == name || (name == check.KindHealth && r.Kind == check.KindHealth) {
			return r
		}
	}
	t.Fatalf("no %s check in the report: %+v", name, c.rep.Checks)
	return check.Result{}
}

// deployed starts an sshd, makes a project with opts and deploys it.
func deployed(t *testing.T, opts testenv.ProjectOptions) (*testenv.Host, *testenv.Project) {
	t.Helper()
	host := testenv.StartSSHD(t)
	opts.Hosts = []*testenv.Host{host}
	p := testenv.NewProject(t, opts)
	mustDeploy(t, p)
	return host, p
}

// TestCheckHealthy: all passing prints nothing and exits 0; -v lists every
// check with its duration; the JSON and the Prometheus textfile say the same.
func TestCheckHealthy(t *testing.T) {
	prom := filepath.Join(t.TempDir(), "textfile", "stagecoach.prom")
	host, p := deployed(t, testenv.ProjectOptions{Environment: fmt.Sprintf("    check: { prometheus: %q }\n", prom)})

	c := runCheck(t, p, false)
	c.expect(t, exitcode.OK)
	if c.log != "" {
		t.Errorf("a healthy check printed:\n%s", c.log)
	}
	for _, r := range c.rep.Checks {
		want := check.StatusOK
		if r.Kind == check.KindService {
			want = check.StatusSkipped // the command manager has no status
		}
		if r.Status != want || r.Host != host.Target() {
			t.Errorf("%s on %s: %s (%s)", r.Check, r.Host, r.Status, r.Message)
		}
	}
	for _, kind := range []string{check.KindConnect, check.KindState, check.KindLock, check.KindDisk, check.KindIntegrity, check.KindService, check.KindHealth} {
		c.result(t, kind)
	}
	if d := c.result(t, check.KindDisk).Disk; d == nil || d.FreeBytes <= 0 || d.TotalBytes < d.FreeBytes {
		t.Errorf("disk space %+v", d)
	}

	v := runCheck(t, p, true)
	v.expect(t, exitcode.OK, "HOST", "DURATION", "integrity", "every file of releases/", "disk", "lock", "no deploy running", "health[0] GET http://", "check test: ok in ")

	data, err := c.rep.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		Result   string `json:"result"`
		ExitCode int    `json:"exit_code"`
		Checks   []struct {
			Check, Status string
		} `json:"checks"`
	}
	if err := json.Unmarshal(data, &decoded); err != nil || decoded.Result != "ok" || len(decoded.Checks) != len(c.rep.Checks) {
		t.Errorf("JSON %+v %v:\n%s", decoded, err, data)
	}

	text, err := os.ReadFile(prom)
	if err != nil {
		t.Fatalf("prometheus textfile: %v", err)
	}
	labels := fmt.Sprintf(`{app="restaurant",env="test",host=%q,check="integrity"}`, host.Target())
	for _, want := range []string{"stagecoach_check_ok" + labels + " 1\n", "stagecoach_check_last_success_timestamp_seconds" + labels + " ", "stagecoach_disk_free_bytes{"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("textfile lacks %q:\n%s", want, text)
		}
	}
}

// TestCheckIntegrity: a file of current modified, deleted or added on the
// server is named, exit 3; once put back, the check is silent again.
func TestCheckIntegrity(t *testing.T) {
	_, p := deployed(t, testenv.ProjectOptions{})
	cur := filepath.Join(p.Root, "current")
	index := filepath.Join(cur, "frontend", "index.html")
	orig, err := os.ReadFile(index)
	if err != nil {
		t.Fatalf("the release has no frontend/index.html: %v", err)
	}
	for _, tc := range []struct {
		name    string
		break_  func() error
		restore func() error
		kind    string // in the log: "1 modified (frontend/index.html)"
		files   func(*check.FileDiffs) []string
		path    string
	}{
		{"modified", func() error { return os.WriteFile(index, append(orig, "<!-- defaced -->"...), 0o644) },
			func() error { return os.WriteFile(index, orig, 0o644) }, "1 modified", func(f *check.FileDiffs) []string { return f.Modified }, "frontend/index.html"},
		{"deleted", func() error { return os.Remove(index) },
			func() error { return os.WriteFile(index, orig, 0o644) }, "1 missing", func(f *check.FileDiffs) []string { return f.Missing }, "frontend/index.html"},
		{"added", func() error { return os.WriteFile(filepath.Join(cur, "frontend", "shell.php"), []byte("<?php"), 0o644) },
			func() error { return os.Remove(filepath.Join(cur, "frontend", "shell.php")) }, "1 extra", func(f *check.FileDiffs) []string { return f.Extra }, "frontend/shell.php"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.break_(); err != nil {
				t.Fatal(err)
			}
			c := runCheck(t, p, false)
			if err := tc.restore(); err != nil {
				t.Fatal(err)
			}
			c.expect(t, exitcode.Unhealthy, "integrity: releases/", tc.kind+" ("+tc.path+")", "what to do:")
			r := c.result(t, check.KindIntegrity)
			if r.Status != check.StatusFailed || r.Files == nil || strings.Join(tc.files(r.Files), ",") != tc.path {
				t.Errorf("integrity result %+v", r)
			}
			if !strings.Contains(c.err.Error(), "integrity on ") {
				t.Errorf("error %q does not name the check", c.err)
			}
			runCheck(t, p, false).expect(t, exitcode.OK)
		})
	}
}

// TestCheckServiceDown: with the backend killed, the health check fails.
func TestCheckServiceDown(t *testing.T) {
	_, p := deployed(t, testenv.ProjectOptions{})
	data, err := os.ReadFile(filepath.Join(p.Root, "shared", "backend.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		t.Fatalf("backend pid %q", data)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	c := runCheck(t, p, false)
	c.expect(t, exitcode.Unhealthy, "health[0] GET http://", "connection refused", "what to do:")
	if r := c.result(t, check.KindHealth); r.Status != check.StatusFailed {
		t.Errorf("health %+v", r)
	}
	if r := c.result(t, check.KindIntegrity); r.Status != check.StatusOK {
		t.Errorf("integrity of an intact release: %+v", r)
	}
}

// TestCheckSlowHealth: an endpoint that answers after its timeout fails.
func TestCheckSlowHealth(t *testing.T) {
	var slow atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	_, p := deployed(t, testenv.ProjectOptions{Health: fmt.Sprintf("      - http: %q\n        timeout: 300ms\n", srv.URL+"/healthz")})
	runCheck(t, p, false).expect(t, exitcode.OK)
	slow.Store(true)
	c := runCheck(t, p, false)
	c.expect(t, exitcode.Unhealthy, "health[0] GET "+srv.URL+"/healthz: no answer within 300ms")
}

// TestCheckUnreachable: a host whose sshd is down could not be checked:
// exit 4, naming the host, while the other host is still checked; the
// textfile keeps when the lost host's checks last passed.
func TestCheckUnreachable(t *testing.T) {
	prom := filepath.Join(t.TempDir(), "stagecoach.prom")
	hosts := []*testenv.Host{testenv.StartSSHD(t), testenv.StartSSHD(t, testenv.WithAddr("127.0.0.2"))}
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: hosts, Root: filepath.Join(t.TempDir(), "{host}", "srv"),
		Environment: fmt.Sprintf("    check: { prometheus: %q }\n", prom)})
	mustDeploy(t, p)
	runCheck(t, p, false).expect(t, exitcode.OK)
	lost, kept := hosts[1], hosts[0]
	lost.Stop()
	c := runCheck(t, p, false)
	c.expect(t, exitcode.Unreachable, lost.Target()+": connect: ", "what to do:")
	for _, r := range c.rep.Checks {
		switch {
		case r.Host == lost.Target() && (r.Kind != check.KindConnect || r.Status != check.StatusError):
			t.Errorf("unreachable host: %s %s", r.Check, r.Status)
		case r.Host == kept.Target() && r.Status != check.StatusOK && r.Status != check.StatusSkipped:
			t.Errorf("reachable host: %s %s: %s", r.Check, r.Status, r.Message)
		}
	}
	if n := len(c.rep.Checks); n < 6 {
		t.Errorf("only %d checks: the reachable host was not checked", n)
	}
	text, _ := os.ReadFile(prom)
	labels := fmt.Sprintf(`{app="restaurant",env="test",host=%q,check="integrity"}`, lost.Target())
	if !strings.Contains(string(text), "stagecoach_check_last_success_timestamp_seconds"+labels) ||
		!strings.Contains(string(text), fmt.Sprintf(`stagecoach_check_ok{app="restaurant",env="test",host=%q,check="connect"} 0`, lost.Target())) ||
		!strings.Contains(string(text), fmt.Sprintf(`stagecoach_check_ok{app="restaurant",env="test",host=%q,check="integrity"} 1`, kept.Target())) {
		t.Errorf("textfile after a host went away:\n%s", text)
	}
}

// TestCheckDiskThreshold: less free space than check.min_free_disk fails.
func TestCheckDiskThreshold(t *testing.T) {
	_, p := deployed(t, testenv.ProjectOptions{Environment: "    check: { min_free_disk: \"99%\" }\n"})
	c := runCheck(t, p, false)
	c.expect(t, exitcode.Unhealthy, "disk: only ", "below the minimum 99%", "mage cleanup")
	if r := c.result(t, check.KindDisk); r.Status != check.StatusFailed || r.Disk == nil {
		t.Errorf("disk %+v", r)
	}
}

// TestCheckState: a missing state file is a warning, a corrupt one a
// failure, nothing deployed says so; none of them crashes the check.
func TestCheckState(t *testing.T) {
	_, p := deployed(t, testenv.ProjectOptions{})
	statePath := filepath.Join(p.Root, ".stagecoach", "state.json")
	orig, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(statePath); err != nil {
		t.Fatal(err)
	}
	c := runCheck(t, p, false)
	c.expect(t, exitcode.OK, "WARN ", "state: state file "+statePath+" is missing; current points at releases/", "next deploy ships every file")
	if r := c.result(t, check.KindIntegrity); r.Status != check.StatusOK {
		t.Errorf("integrity without a state file: %+v", r)
	}

	if err := os.WriteFile(statePath, []byte(`{"version": 1, "releases": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	c = runCheck(t, p, false)
	c.expect(t, exitcode.Unhealthy, "state: state file "+statePath+" is corrupt", "move it aside")
	if r := c.result(t, check.KindIntegrity); r.Status != check.StatusOK {
		t.Errorf("integrity with a corrupt state file: %+v", r)
	}
	if err := os.WriteFile(statePath, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	runCheck(t, p, false).expect(t, exitcode.OK)

	// A project never deployed.
	host := testenv.StartSSHD(t)
	fresh := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	c = runCheck(t, fresh, false)
	c.expect(t, exitcode.Unhealthy, "nothing deployed: no current release and no state under "+fresh.Root, "mage deploy")
}

// TestCheckStuckLock: a deploy lock older than check.lock_max_age is
// reported as stuck; a fresh one is a deploy in progress.
func TestCheckStuckLock(t *testing.T) {
	_, p := deployed(t, testenv.ProjectOptions{Environment: "    check: { lock_max_age: 10m }\n"})
	lock := filepath.Join(p.Root, ".stagecoach", "lock")
	info := `{"holder":"alice@laptop","pid":4242,"started":"2026-01-01T10:00:00Z","token":"t","command":"deploy"}`
	if err := os.MkdirAll(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"info.json": info, "token": "t\n"} {
		if err := os.WriteFile(filepath.Join(lock, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runCheck(t, p, true).expect(t, exitcode.OK, "deploy running for ", "alice@laptop")

	old := time.Now().Add(-2 * time.Hour)
	for _, path := range []string{lock, filepath.Join(lock, "info.json")} {
		if err := os.Chtimes(path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	c := runCheck(t, p, false)
	c.expect(t, exitcode.Unhealthy, "lock: deploy lock stuck: held for 2h0m", "longer than check.lock_max_age 10m0s", "alice@laptop (pid 4242)", "STAGECOACH_BREAK_LOCK=1")
	if _, err := os.Stat(filepath.Join(lock, "token")); err != nil {
		t.Errorf("the check touched the lock: %v", err)
	}
}

// TestCheckSelfHeal: with check.self_heal, a live release failing its
// health checks is rolled back to the previous one, which is checked again;
// the state records it and marks the failed release.
func TestCheckSelfHeal(t *testing.T) {
	_, p := deployed(t, testenv.ProjectOptions{Environment: "    check: { self_heal: true }\n"})
	v1 := live(t, p.Root)
	p.Write("frontend/src/app.js", readFile(t, filepath.Join(p.Dir, "frontend/src/app.js"))+"\n// v2\n")
	p.Commit("v2")
	mustDeploy(t, p)
	v2 := live(t, p.Root)
	if v2 == v1 {
		t.Fatal("second deploy did not switch")
	}
	runCheck(t, p, false).expect(t, exitcode.OK)

	// Break v2 for good: its backend is gone and cannot be restarted.
	if err := os.Remove(filepath.Join(p.Root, "releases", v2, "backend", "server")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(p.Root, "shared", "backend.pid"))
	if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}

	c := runCheck(t, p, false)
	c.expect(t, exitcode.RolledBack, "self-heal: releases/"+v2+" failed its health checks", "rolling back to "+v1, "rolled back from "+v2+" to "+v1)
	if len(c.rep.SelfHeal) != 1 || !c.rep.SelfHeal[0].OK || c.rep.SelfHeal[0].To != v1 {
		t.Errorf("self-heal %+v", c.rep.SelfHeal)
	}
	for _, r := range c.rep.Checks {
		if r.Status == check.StatusFailed || r.Status == check.StatusError {
			t.Errorf("after the self-heal %s: %s", r.Check, r.Message)
		}
	}
	if got := live(t, p.Root); got != v1 {
		t.Fatalf("current is %s, want %s", got, v1)
	}
	s := state(t, p.Root)
	last := s.Deploys[len(s.Deploys)-1]
	if last.Result != server.ResultSelfHeal || last.ID != v1 || !strings.Contains(last.Error, v2) {
		t.Errorf("last deploy entry %+v", last)
	}
	r1, _ := s.Release(v1)
	r2, _ := s.Release(v2)
	if s.Current != v1 || r1.Status != server.StatusLive || r2.Status != server.StatusFailed || s.Revision != r1.Revision {
		t.Errorf("state: current %s revision %s, %s %s, %s %s", s.Current, s.Revision, v1, r1.Status, v2, r2.Status)
	}
	if _, err := os.Stat(filepath.Join(p.Root, ".stagecoach", "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("self-heal left the deploy lock: %v", err)
	}
	// Healthy again, and no previous release left to go back to but v2
	// (failed): the next check is silent.
	runCheck(t, p, false).expect(t, exitcode.OK)
}

// TestCheckBinary builds the targets into one binary with mage -compile and
// runs `check` with it through the README's cron line, in cron's
// bare environment.
func TestCheckBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a mage binary")
	}
	bin := filepath.Join(t.TempDir(), "stagecoach")
	compiled := make(chan error, 1)
	go func() {
		cmd := exec.Command("go", "run", "mage.go", "-compile", bin)
		cmd.Dir = testenv.RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("go run mage.go -compile: %v\n%s", err, out)
		}
		compiled <- err
	}()
	_, p := deployed(t, testenv.ProjectOptions{})
	if err := <-compiled; err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin, filepath.Join(p.Dir, "stagecoach")); err != nil {
		t.Fatal(err)
	}
	// The README's cron line, with cron's bare environment.
	line := "cd " + remote.Quote(p.Dir) + " && STAGECOACH_ENV=test ./stagecoach check"
	run := func(env ...string) (int, string, string) {
		cmd := exec.Command("/bin/sh", "-c", line)
		cmd.Env = append([]string{"HOME=" + os.Getenv("HOME"), "PATH=/usr/bin:/bin", "SHELL=/bin/sh", "LOGNAME=" + os.Getenv("LOGNAME")}, env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%s: %v", line, err)
		}
		return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
	}

	if code, stdout, stderr := run(); code != 0 || stdout != "" || stderr != "" {
		t.Fatalf("healthy: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	index := filepath.Join(p.Root, "current", "frontend", "index.html")
	orig := readFile(t, index)
	if err := os.WriteFile(index, []byte(orig+"<!-- defaced -->"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run()
	if testing.Verbose() {
		t.Logf("%s printed:\n%s", line, stderr)
	}
	if code != exitcode.Unhealthy || !strings.Contains(stderr, "1 modified (frontend/index.html)") {
		t.Fatalf("modified: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	code, stdout, _ = run("STAGECOACH_JSON=1")
	var rep struct {
		Result   string `json:"result"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != exitcode.Unhealthy || rep.Result != "unhealthy" || rep.ExitCode != exitcode.Unhealthy {
		t.Fatalf("STAGECOACH_JSON=1: exit %d, %+v %v, stdout:\n%s", code, rep, err, stdout)
	}
	out := filepath.Join(t.TempDir(), "check.json")
	if code, stdout, _ = run("STAGECOACH_JSON=" + out); code != exitcode.Unhealthy || stdout != "" {
		t.Fatalf("STAGECOACH_JSON=<path>: exit %d, stdout %q", code, stdout)
	}
	if err := json.Unmarshal([]byte(readFile(t, out)), &rep); err != nil || rep.Result != "unhealthy" {
		t.Fatalf("JSON file: %+v %v", rep, err)
	}
}

// BenchmarkCheck2000Files runs the whole check over a real sshd against a
// live release of 2,000 files and 50 MB (log-uniform sizes, page cache
// warm): state, lock, disk, integrity and one health check, on one
// connection, side by side with `ssh host true` (check/ssh-true is the
// ratio; the goal is a check under 300 ms). BenchmarkCheckIntegrity in
// stages/server isolates the hashing.
func BenchmarkCheck2000Files(b *testing.B) {
	host := testenv.StartSSHD(b)
	root := filepath.Join(b.TempDir(), "srv")
	l := server.Layout{Root: root}
	const id = "20260101T000000Z-aaaaaaa"
	rng := rand.New(rand.NewSource(42))
	weights := make([]float64, 2000)
	var sum float64
	for i := range weights {
		weights[i] = math.Exp(rng.Float64() * math.Log(5000))
		sum += weights[i]
	}
	var entries []server.TreeEntry
	for i, w := range weights {
		rel := fmt.Sprintf("web/d%02d/s%d/f%05d.bin", i%37, i%5, i)
		data := make([]byte, int64(w/sum*(50<<20)))
		rng.Read(data)
		path := filepath.Join(l.ReleaseDir(id), rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
		h := sha256.Sum256(data)
		entries = append(entries, server.TreeEntry{Path: rel, SHA256: hex.EncodeToString(h[:])})
	}
	sums, links, err := server.TreeLists(entries)
	if err != nil {
		b.Fatal(err)
	}
	st := &server.State{Version: server.StateVersion, App: "bench", Current: id, Releases: []server.Release{{ID: id, Status: server.StatusLive}}}
	stateJSON, _ := st.Marshal()
	for path, data := range map[string][]byte{l.SumsPath(id): sums, l.LinksPath(id): links, l.StatePath(): stateJSON} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Symlink("releases/"+id, l.CurrentLink()); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "stagecoach.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`app: bench
components:
  web: { watch: ["web/**"], build: "true", output: web }
environments:
  test:
    hosts: [%q]
    root: %q
    ssh: { known_hosts: %q, identities: [%q] }
    health:
      - http: %q
`, host.Target(), root, host.KnownHostsFile, host.IdentityFile, srv.URL)), 0o644); err != nil {
		b.Fatal(err)
	}
	r, err := pipeline.Open(pipeline.Options{ConfigPath: cfg, Environment: "test"}, ui.Discard())
	if err != nil {
		b.Fatal(err)
	}
	// The baseline, side by side in the same loop: the cheapest thing a
	// check could be, one OpenSSH login that runs true.
	route := host.Direct()
	ssh := append(route.OpenSSHArgs(), "-o", "LogLevel=ERROR", route.User+"@"+route.Addr, "true")
	var checkTook, sshTook time.Duration
	b.SetBytes(50 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rep, err := r.Check(context.Background())
		if err != nil {
			b.Fatalf("check: %v\n%+v", err, rep.Checks)
		}
		checkTook += time.Since(start)
		start = time.Now()
		if out, err := exec.Command("ssh", ssh...).CombinedOutput(); err != nil {
			b.Fatalf("ssh true: %v\n%s", err, out)
		}
		sshTook += time.Since(start)
	}
	b.ReportMetric(float64(checkTook.Milliseconds())/float64(b.N), "check-ms/op")
	b.ReportMetric(float64(sshTook.Milliseconds())/float64(b.N), "ssh-true-ms/op")
	b.ReportMetric(float64(checkTook)/float64(sshTook), "check/ssh-true")
}
