package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

func TestParseDiskFree(t *testing.T) {
	out := "Filesystem     1024-blocks      Used Available Capacity Mounted on\n/dev/sda1         40000000  30000000   8000000      79% /\n"
	u, err := ParseDiskFree([]byte(out))
	if err != nil || u.AvailKB != 8000000 || u.TotalKB != 40000000 || u.UsedKB != 30000000 || u.Mount != "/" || u.Filesystem != "/dev/sda1" {
		t.Errorf("%+v %v", u, err)
	}
	for _, bad := range []string{"", "Filesystem\n", "h\n/dev/x a b c 1% /\n"} {
		if _, err := ParseDiskFree([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestDiskFreeRuns(t *testing.T) {
	l := Layout{Root: filepath.Join(t.TempDir(), "not", "yet")}
	res := mustRun(t, DiskFree(l).Cmd, nil)
	if u, err := ParseDiskFree(res.Stdout); err != nil || u.AvailKB <= 0 {
		t.Errorf("%+v %v", u, err)
	}
}

func TestCheckTools(t *testing.T) {
	mustRun(t, CheckTools(Layout{}), nil)
	// With an empty PATH nothing is found, and the error names the tools.
	cmd := CheckTools(Layout{})
	cmd.Script = "PATH=/nonexistent\n" + cmd.Script
	_, err := run(t, cmd)
	if ExitCode(err) != ExitToolsMissing || !strings.Contains(err.Error(), "missing tools on the server: tar gzip sha256sum") {
		t.Errorf("%v", err)
	}
}

func TestVerifyArchive(t *testing.T) {
	testenv.RequireTool(t, "openssl", "apt-get install openssl")
	broken := t.TempDir()
	writeFile(t, filepath.Join(broken, "openssl"), "#!/bin/sh\necho 'not a hash *stdin'\n")
	if err := os.Chmod(filepath.Join(broken, "openssl"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := newRoot(t)
	id := "20260101T000000Z-aaaaaaa"
	p := l.IncomingPath(id)
	for _, c := range []struct {
		name, env string
		size      int
	}{
		{"small, sha256sum", "", 100},
		{"large, openssl", "", fastHashMin},
		{"large, openssl failing", "PATH=" + broken + ":$PATH\n", fastHashMin},
	} {
		data := strings.Repeat("archive bytes ", c.size/14+1)
		writeFile(t, p, data)
		sum := sha256.Sum256([]byte(data))
		good := hex.EncodeToString(sum[:])
		verify := func(want string) error {
			op := VerifyArchive(p, want, int64(len(data)), "")
			op.Cmd.Script = c.env + op.Cmd.Script
			_, err := op.Decode(run(t, op.Cmd))
			return err
		}
		if err := verify(good); err != nil {
			t.Errorf("%s: intact archive: %v", c.name, err)
		}
		bad := strings.Repeat("0", 64)
		err := verify(bad)
		var mismatch *ArchiveMismatchError
		if !errors.As(err, &mismatch) || mismatch.Expected != bad || mismatch.Actual != good {
			t.Fatalf("%s: mismatch: %v", c.name, err)
		}
		want := "archive " + p + " is corrupt or was tampered with in transit: sha256 " + good + ", expected " + bad
		if msg := err.Error(); msg != want {
			t.Errorf("%s: got  %s\nwant %s", c.name, msg, want)
		}
	}
}

func TestIsDiskFull(t *testing.T) {
	full := &remote.ExitError{Code: 2, Stderr: "tar: ./a: Cannot write: No space left on device\n"}
	if !IsDiskFull(full) || !IsDiskFull(errors.Join(errors.New("stage"), full)) {
		t.Error("ENOSPC not recognised")
	}
	if IsDiskFull(&remote.ExitError{Code: 1, Stderr: "permission denied"}) || IsDiskFull(nil) {
		t.Error("false positive")
	}
	if ExitCode(errors.New("x")) != -1 || ExitCode(full) != 2 {
		t.Error("ExitCode")
	}
}

// TestPrepareDeployed: the lock's round trip readies only a root deployed
// to before, and a first deploy's root is left as it was.
func TestPrepareDeployed(t *testing.T) {
	for _, deployed := range []bool{false, true} {
		root := filepath.Join(t.TempDir(), "srv")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		l := Layout{Root: root}
		if deployed {
			if err := os.Mkdir(l.ReleasesDir(), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		p, err := Run(context.Background(), remote.NewLocal(), PrepareDeployed(l))
		if err != nil {
			t.Fatal(err)
		}
		entries, _ := os.ReadDir(root)
		switch {
		case p.Done != deployed:
			t.Errorf("deployed %v: Done %v", deployed, p.Done)
		case deployed && (p.Usage.TotalKB == 0 || len(entries) < 2):
			t.Errorf("deployed root: usage %+v, %d entries in the root, want the usage and the deploy directories", p.Usage, len(entries))
		case !deployed && len(entries) != 0:
			t.Errorf("first deploy's root has %d entries, want none made", len(entries))
		}
	}
}

// TestPrepareReportsZstd: Prepare says whether the server can unpack zstd
// archives, beside the free space.
func TestPrepareReportsZstd(t *testing.T) {
	testenv.RequireTool(t, "zstd", "apt-get install zstd")
	for _, c := range []struct {
		name string
		path string
		want bool
	}{{"with zstd", os.Getenv("PATH"), true}, {"without", pathWithout(t, "zstd"), false}} {
		l := newRoot(t)
		ready, err := Prepare(l).Decode(run(t, withPath(Prepare(l).Cmd, c.path)))
		if err != nil || ready.Zstd != c.want || ready.Usage.AvailKB <= 0 {
			t.Errorf("%s: %+v, %v; want Zstd %v", c.name, ready, err, c.want)
		}
		prepared, err := PrepareDeployed(l).Decode(run(t, withPath(PrepareDeployed(l).Cmd, c.path)))
		if err != nil || !prepared.Done || prepared.Zstd != c.want {
			t.Errorf("%s, deployed root: %+v, %v; want Zstd %v", c.name, prepared, err, c.want)
		}
	}
}
