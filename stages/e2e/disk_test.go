package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestDiskFull deploys to a root on a small tmpfs, fills it up and
// deploys a release with a few megabytes of new files: the deploy is
// refused before anything is written, saying the disk is full, and the
// live release stays as it was. With space freed the deploy succeeds.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	mnt := smallDisk(t, "64m")
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}, Root: filepath.Join(mnt, "srv")})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Disk Full Guest")

	// Leave 1 MiB free, then deploy 3 MiB of new, incompressible files.
	filler := filepath.Join(mnt, "filler")
	fill(t, filler, freeBytes(t, mnt)-1<<20)
	addImage(t, p, "photo.jpg", 3<<20, 2)
	res := deployWith(t, p, pipeline.Options{})
	mustFail(t, res, exitcode.Failed, "disk full", "free")
	t.Logf("refused: %v", res.err)

	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current moved to %s", got)
	}
	mustNotExist(t, filepath.Join(p.Root, "releases", res.run.Plan.Release))
	mustNotExist(t, server.Layout{Root: p.Root}.IncomingPath(res.run.Plan.Release))
	mustNotExist(t, lockDir(p.Root))
	mustHaveReservations(t, p, p.Root, guest)
	if d := lastDeploy(t, p.Root); d.Result != server.ResultFailed || d.Stage != "ship" {
		t.Errorf("recorded %s at %s, want failed at ship", d.Result, d.Stage)
	}

	// Now with room for the release, but the disk fills up (another
	// writer, logs) once the upload has begun: the upload itself runs
	// out of space.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r, out := openRun(t, p, pipeline.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := r.Detect(ctx); err != nil {
		t.Fatal(err)
	}
	r.Hosts[0].Runner = &fillingRunner{Runner: r.Hosts[0].Runner, fill: func() { fill(t, filler, freeBytes(t, mnt)-512<<10) }}
	err := r.Deploy(ctx)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("deploy onto a disk filling up: %v, want a disk full error\n%s", err, out.String())
	}
	t.Logf("refused: %v", err)
	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current moved to %s", got)
	}
	l := server.Layout{Root: p.Root}
	mustNotExist(t, l.IncomingPath(r.Plan.Release))
	// The live release's archive went with the cleanup of its deploy.
	if entries, _ := os.ReadDir(l.IncomingDir()); len(entries) != 0 {
		t.Errorf("incoming/ holds %d files, want none", len(entries))
	}
	mustNotExist(t, lockDir(p.Root))
	mustHaveReservations(t, p, p.Root, guest)
	// Writing the state on the full disk failed, but never half-way.
	if s := state(t, p.Root); s.Current != id1 {
		t.Errorf("state says %s is live", s.Current)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	next := mustDeploy(t, p)
	if got := verifyLive(t, p.Root); got != next.run.Plan.Release {
		t.Errorf("current is %s after freeing space", got)
	}
	mustHaveReservations(t, p, p.Root, guest)
}

// smallDisk mounts a tmpfs of the given size on a temporary directory and
// unmounts it when the test ends (after the project's backends, started
// later, were stopped). Mounting needs root: without it the test fails
// under CI and is skipped elsewhere.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	why := ""
	if os.Geteuid() != 0 {
		why = "not root"
	} else if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		why = "mount -t tmpfs failed: " + string(out)
	}
	if why != "" {
		msg := "a small tmpfs for the disk-full test needs root (run the tests as root or with CAP_SYS_ADMIN): " + why
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; unmounting lazily", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// freeBytes is what an unprivileged writer may still write under dir.
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill writes a file of n bytes.
func fill(t *testing.T, path string, n int64) {
	t.Helper()
	if n <= 0 {
		t.Fatalf("no room left to fill: %d", n)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		m := int64(len(buf))
		if n < m {
			m = n
		}
		if _, err := f.Write(buf[:m]); err != nil {
			t.Fatalf("fill: %v", err)
		}
		n -= m
	}
}

// fillingRunner runs fill just before the archive upload starts.
type fillingRunner struct {
	remote.Runner
	fill func()
}

func (f *fillingRunner) Upload(ctx context.Context, r io.Reader, path string, progress func(n int)) error {
	if strings.HasSuffix(path, ".archive") {
		f.fill()
	}
	return f.Runner.Upload(ctx, r, path, progress)
}
