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
	mustRun(t, Prepare(l), nil)
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
