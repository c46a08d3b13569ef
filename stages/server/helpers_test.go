package server

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// run executes cmd with /bin/sh on this machine, the way a Runner would.
func run(t *testing.T, cmd remote.Command) (remote.Result, error) {
	t.Helper()
	c := exec.Command("/bin/sh", "-c", cmd.Script)
	c.Stdin = cmd.Stdin
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	res := remote.Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = ee.ExitCode()
		return res, &remote.ExitError{Target: "local", Desc: cmd.Desc, Code: res.ExitCode, Stderr: errb.String()}
	}
	if err != nil {
		t.Fatalf("%s: %v", cmd.Desc, err)
	}
	return res, nil
}

// mustRun runs cmd and fails the test when it does not succeed.
func mustRun(t *testing.T, cmd remote.Command, err error) remote.Result {
	t.Helper()
	if err != nil {
		t.Fatalf("build %q: %v", cmd.Desc, err)
	}
	res, rerr := run(t, cmd)
	if rerr != nil {
		t.Fatalf("%v\nstdout: %s", rerr, res.Stdout)
	}
	return res
}

func newRoot(t *testing.T) Layout {
	t.Helper()
	l := Layout{Root: filepath.Join(t.TempDir(), "srv root")} // a space, to prove quoting
	mustRun(t, Prepare(l).Cmd, nil)
	return l
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func benchWrite(b *testing.B, path, content string) {
	b.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		b.Fatal(err)
	}
}

// mustMkRelease makes an empty verified release id and returns the args of
// Switch to it.
func mustMkRelease(t *testing.T, l Layout, id string) (Layout, string) {
	t.Helper()
	if err := os.MkdirAll(l.ReleaseDir(id), 0o755); err != nil {
		t.Fatal(err)
	}
	return l, id
}

func mustCmd[T any](c T, err error) T {
	if err != nil {
		panic(err)
	}
	return c
}

// withPath makes cmd look its commands up in path. The scripts run by
// /bin/sh, so path need not hold a shell.
func withPath(cmd remote.Command, path string) remote.Command {
	cmd.Script = "PATH=" + remote.Quote(path) + "; export PATH\n" + cmd.Script
	return cmd
}

// fakeTools writes fake commands into a new directory and returns it with
// the log they append to: one line per call, "name [arg] [arg]...", after
// which the fake runs its body, if any, with the same arguments.
func fakeTools(t *testing.T, fakes map[string]string) (bin, log string) {
	t.Helper()
	bin = t.TempDir()
	log = filepath.Join(t.TempDir(), "calls")
	for name, body := range fakes {
		script := "#!/bin/sh\n{ printf '%s' \"${0##*/}\"; for a do printf ' [%s]' \"$a\"; done; echo; } >> " +
			remote.Quote(log) + "\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin, log
}

// calls returns what the fakes of fakeTools logged.
func calls(t *testing.T, log string) string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// pathWithout returns a directory of links to every command on PATH except
// the named ones, to run a script as on a server that lacks them.
func pathWithout(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	hide := map[string]bool{}
	for _, n := range names {
		hide[n] = true
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if hide[e.Name()] {
				continue
			}
			// The first on PATH wins, as in a lookup; later ones fail to link.
			os.Symlink(filepath.Join(d, e.Name()), filepath.Join(dir, e.Name()))
		}
	}
	return dir
}

// cmdOf is the command of an op a builder returned, with the builder's error.
func cmdOf[T any](o Op[T], err error) (remote.Command, error) { return o.Cmd, err }
