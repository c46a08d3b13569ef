package plugins_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/config"
)

func TestExecutable(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "plugins", "hello")
	os.MkdirAll(src, 0o755)
	old := time.Now().Add(-time.Hour)
	write := func(path string, mtime time.Time) {
		t.Helper()
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte("x"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(path, mtime, mtime)
	}
	write(filepath.Join(src, "main.go"), old)
	binPath := filepath.Join(dir, plugins.BinDir, "hello")
	hello := config.Plugin{Name: "hello", Path: "plugins/hello"}

	check := func(name string, spec config.Plugin, wantPath string, wantBuild bool) {
		t.Helper()
		path, needsBuild := plugins.Executable(dir, spec)
		if path != wantPath || needsBuild != wantBuild {
			t.Errorf("%s: Executable = %s, %v; want %s, %v", name, path, needsBuild, wantPath, wantBuild)
		}
	}
	check("executable as is", config.Plugin{Name: "x", Path: "bin/x"}, filepath.Join(dir, "bin/x"), false)
	check("absolute", config.Plugin{Name: "x", Path: "/usr/bin/x"}, "/usr/bin/x", false)
	check("never built", hello, binPath, true)
	write(binPath, old.Add(time.Minute))
	check("built after the sources", hello, binPath, false)
	write(filepath.Join(src, "testdata", "new.go"), time.Now())
	check("testdata ignored", hello, binPath, false)
	write(filepath.Join(src, "internal", "util.go"), time.Now())
	check("a source changed", hello, binPath, true)
}

// TestBuild builds a plugin from a package directory of a module of its
// own, then skips it while it is up to date.
func TestBuild(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not on PATH")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "tools", "hello")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/site\n\ngo 1.22\n"), 0o644)
	main := filepath.Join(src, "main.go")
	os.WriteFile(main, []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(main, old, old)
	specs := []config.Plugin{
		{Name: "hello", Path: "tools/hello", At: "after-swap"},
		{Name: "ready", Path: "/bin/true", At: "after-swap"},
	}
	log, out := newLog(true)
	if err := plugins.Build(context.Background(), dir, specs, log); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "plugins", "bin", "hello")
	if got, err := exec.Command(bin).CombinedOutput(); err != nil || string(got) != "hello\n" {
		t.Fatalf("built plugin: %q, %v", got, err)
	}
	if !strings.Contains(out.String(), "built plugin hello into plugins/bin/hello") {
		t.Errorf("log:\n%s", out)
	}
	if err := plugins.Build(context.Background(), dir, specs, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "plugin hello: plugins/bin/hello is up to date") {
		t.Errorf("second build not skipped:\n%s", out)
	}

	os.WriteFile(main, []byte("package main\n\nfunc main() { undefined() }\n"), 0o644)
	err := plugins.Build(context.Background(), dir, specs, log)
	mustContain(t, err, "build plugin hello from tools/hello: exit status 1", "undefined")

	// Run refuses a binary older than its sources rather than run stale code.
	dc := plugins.Context{Dir: dir}
	_, err = plugins.Run(context.Background(), specs[0], dc, nil, log)
	mustContain(t, err, "plugin hello: plugins/bin/hello is missing or older than its sources in tools/hello; build it with `mage plugins`")
}
