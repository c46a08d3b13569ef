package build

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// buildProject is a project directory with one component whose install
// appends to a counter file, so tests can see how often it ran.
func buildProject(t *testing.T) (*config.Config, *run.Plan) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "web"), 0o755)
	os.WriteFile(filepath.Join(dir, "web/package-lock.json"), []byte(`{"lockfileVersion": 3}`), 0o644)
	cfg := &config.Config{Dir: dir, Components: []config.Component{{
		Name:     "web",
		Lockfile: "web/package-lock.json",
		Install:  "mkdir -p node_modules && echo x >> ../installs",
		Build:    `mkdir -p dist && echo "$BUILD_VERSION $STAGECOACH_RELEASE" > dist/version && pwd > ../build-dir`,
		Output:   "web/dist",
	}}}
	plan := &run.Plan{Release: "20260102T030405Z-abcdef0", Components: []run.ComponentChange{{Name: "web", Changed: true}}}
	return cfg, plan
}

func installs(t *testing.T, cfg *config.Config) int {
	data, err := os.ReadFile(filepath.Join(cfg.Dir, "installs"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "x")
}

func TestBuildInstallCache(t *testing.T) {
	cfg, plan := buildProject(t)
	ctx := context.Background()
	lock := filepath.Join(cfg.Dir, "web/package-lock.json")
	stamp := filepath.Join(cfg.Dir, "web/node_modules/.timestamp")

	build := func(wantInstalls int, wantInstalled bool) {
		t.Helper()
		res, err := Build(ctx, cfg, plan, ui.Discard())
		if err != nil {
			t.Fatal(err)
		}
		b := res.Components[0]
		if !b.Built || b.Installed != wantInstalled || b.InstallCached == wantInstalled || b.Skipped {
			t.Errorf("result = %+v, want installed=%v", b, wantInstalled)
		}
		if got := installs(t, cfg); got != wantInstalls {
			t.Errorf("install ran %d times, want %d", got, wantInstalls)
		}
	}

	// First build: no node_modules yet, install runs.
	build(1, true)
	if v, _ := os.ReadFile(filepath.Join(cfg.Dir, "web/dist/version")); string(v) != plan.Release+" "+plan.Release+"\n" {
		t.Errorf("build saw BUILD_VERSION and STAGECOACH_RELEASE as %q", v)
	}
	if d, _ := os.ReadFile(filepath.Join(cfg.Dir, "build-dir")); strings.TrimSpace(string(d)) != filepath.Join(cfg.Dir, "web") {
		t.Errorf("build ran in %q, want the lockfile's directory", d)
	}

	// Lockfile unchanged: skipped.
	build(1, false)

	// Lockfile touched (a checkout) but the same content: skipped, and the
	// timestamp refreshed so the next build need not hash it again.
	past := time.Now().Add(-time.Hour)
	os.Chtimes(stamp, past, past)
	build(1, false)
	lockInfo, _ := os.Stat(lock)
	if st, _ := os.Stat(stamp); st.ModTime().Before(lockInfo.ModTime()) {
		t.Errorf("timestamp %v not refreshed past the lockfile %v", st.ModTime(), lockInfo.ModTime())
	}

	// Content changed: install runs again.
	os.WriteFile(lock, []byte(`{"lockfileVersion": 3, "packages": {}}`), 0o644)
	os.Chtimes(stamp, past, past)
	build(2, true)

	// node_modules removed: the cache is gone with it, install runs.
	os.RemoveAll(filepath.Join(cfg.Dir, "web/node_modules"))
	build(3, true)
}

func TestBuildSkipsUnchanged(t *testing.T) {
	cfg, plan := buildProject(t)
	plan.Components[0].Changed = false
	res, err := Build(context.Background(), cfg, plan, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if b := res.Components[0]; !b.Skipped || b.Built || installs(t, cfg) != 0 {
		t.Errorf("result = %+v", b)
	}
}

func TestBuildFailureShowsOutputTail(t *testing.T) {
	cfg, plan := buildProject(t)
	cfg.Components[0].Build = `for i in $(seq 1 30); do echo "line $i"; done; echo "SyntaxError: secret-token-123" >&2; exit 2`
	var logs bytes.Buffer
	log := ui.New(&logs, true)
	log.AddSecret("secret-token-123")
	_, err := Build(context.Background(), cfg, plan, log)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "build web: exit status 2: ") || !strings.HasSuffix(msg, "line 30\nSyntaxError: ***") {
		t.Errorf("error = %q", msg)
	}
	if strings.Contains(msg, "line 11\n") || !strings.Contains(msg, "line 12\n") {
		t.Errorf("error should carry the last 20 lines: %q", msg)
	}
	if !strings.Contains(logs.String(), "web | line 1\n") {
		t.Errorf("verbose log lacks the build output:\n%s", logs.String())
	}
}

func TestBuildOutputChecks(t *testing.T) {
	cfg, plan := buildProject(t)
	cfg.Components[0].Build = "true"
	_, err := Build(context.Background(), cfg, plan, ui.Discard())
	if err == nil || err.Error() != `build web: output web/dist was not created by "true"` {
		t.Errorf("missing output: %v", err)
	}
	cfg.Components[0].Build = "mkdir -p dist"
	_, err = Build(context.Background(), cfg, plan, ui.Discard())
	if err == nil || err.Error() != `build web: output web/dist is empty after "mkdir -p dist"` {
		t.Errorf("empty output: %v", err)
	}
}

func TestBuildMissingLockfile(t *testing.T) {
	cfg, plan := buildProject(t)
	os.Remove(filepath.Join(cfg.Dir, "web/package-lock.json"))
	_, err := Build(context.Background(), cfg, plan, ui.Discard())
	if err == nil || !strings.Contains(err.Error(), "build web: lockfile web/package-lock.json not found") {
		t.Errorf("err = %v", err)
	}
}

func TestBuildCancelKillsProcessGroup(t *testing.T) {
	cfg, plan := buildProject(t)
	pidFile := filepath.Join(cfg.Dir, "child.pid")
	// The long-running part is a grandchild, as with npm running a bundler.
	cfg.Components[0].Build = `sh -c 'echo $$ > ` + pidFile + `; exec sleep 60' & wait`
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, cfg, plan, ui.Discard())
		done <- err
	}()
	var pid string
	for i := 0; i < 500 && pid == ""; i++ {
		time.Sleep(10 * time.Millisecond)
		b, _ := os.ReadFile(pidFile)
		pid = strings.TrimSpace(string(b))
	}
	if pid == "" {
		t.Fatal("build did not start")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "build web") {
			t.Errorf("err = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled build did not return")
	}
	// The grandchild is gone too (or a zombie awaiting its reaper).
	for i := 0; i < 200; i++ {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("process %s survived the cancellation", pid)
}
