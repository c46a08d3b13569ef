package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// Shellcheck runs shellcheck on files, scripts by name, as POSIX sh (the
// shell they run in on a server) and fails t on any finding, style
// included. Without shellcheck the test fails under CI (env CI set) and
// is skipped elsewhere.
func Shellcheck(t testing.TB, files map[string][]byte) {
	t.Helper()
	bin, err := exec.LookPath("shellcheck")
	if err != nil {
		missing(t, "install shellcheck (apt-get install shellcheck)")
		return
	}
	if len(files) == 0 {
		t.Fatal("shellcheck: no scripts given")
	}
	// Written out under their names, so the findings name them.
	dir := t.TempDir()
	var names []string
	for name, src := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	// --norc: a shellcheckrc on this machine must not switch checks off.
	cmd := exec.Command(bin, append([]string{"--norc", "--shell=sh", "--severity=style"}, names...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
