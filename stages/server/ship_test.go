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
	l := newRoot(t)
	id := "20260101T000000Z-aaaaaaa"
	p := l.IncomingPath(id)
	writeFile(t, p, "archive bytes")
	sum := sha256.Sum256([]byte("archive bytes"))
	good := hex.EncodeToString(sum[:])
	mustRun(t, VerifyArchive(p, good).Cmd, nil)

	bad := strings.Repeat("0", 64)
	op := VerifyArchive(p, bad)
	_, err := op.Decode(run(t, op.Cmd))
	var mismatch *ArchiveMismatchError
	if !errors.As(err, &mismatch) || mismatch.Expected != bad || mismatch.Actual != good {
		t.Fatalf("mismatch: %v", err)
	}
	msg := err.Error()
	want := "archive " + p + " is corrupt or was tampered with in transit: sha256 " + good + ", expected " + bad
	if msg != want {
		t.Errorf("got  %s\nwant %s", msg, want)
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
