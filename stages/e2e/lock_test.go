package e2e

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestConcurrentDeployRefused starts a second deploy while a first one,
// slowed by its frontend build, holds the lock: the second is refused,
// naming the holder, and the first completes and releases the lock.
func TestConcurrentDeployRefused(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	deploys := len(state(t, p.Root).Deploys)

	pkg := readFile(t, filepath.Join(p.Dir, "frontend/package.json"))
	slow := strings.Replace(pkg, `"build": "node build.mjs"`, `"build": "sleep 3 && node build.mjs"`, 1)
	if slow == pkg {
		t.Fatal("frontend/package.json has no build script to slow down: update this test")
	}
	p.Write("frontend/package.json", slow)
	p.Commit("a slow frontend build")

	first := make(chan deployResult, 1)
	go func() { first <- deployWith(t, p, pipeline.Options{}) }()
	waitFor(t, "the first deploy to take the lock", func() bool {
		_, err := os.Stat(filepath.Join(lockDir(p.Root), "info.json"))
		return err == nil
	})

	second := deployWith(t, p, pipeline.Options{})
	u, _ := user.Current()
	mustFail(t, second, exitcode.Locked, "deploy locked by "+u.Username+"@", "pid")
	t.Logf("second deploy refused: %v", second.err)

	res := <-first
	if res.err != nil {
		t.Fatalf("the first deploy failed: %v\n%s", res.err, res.log)
	}
	if got := verifyLive(t, p.Root); got == id1 || got != res.run.Plan.Release {
		t.Errorf("current is %s, want the first deploy's %s", got, res.run.Plan.Release)
	}
	mustNotExist(t, lockDir(p.Root))
	if n := len(state(t, p.Root).Deploys); n != deploys+1 {
		t.Errorf("%d deploys recorded, want %d: the refused one must not write state", n, deploys+1)
	}
}

// TestStaleLock leaves a lock behind as a crashed deploy would: it is
// refused while fresh even with BreakLock, refused when stale without
// BreakLock, and broken with it, which the deploy history records.
func TestStaleLock(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	changeFrontend(t, p, "deployed over a stale lock")

	l := server.Layout{Root: p.Root}
	take, err := server.Lock(l, server.LockInfo{Holder: "ghost@old-laptop", PID: 4242,
		Started: time.Now().Add(-10 * time.Minute).UTC(), Token: "ghost-token", Command: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Run(context.Background(), remote.NewLocal(), take); err != nil {
		t.Fatal(err)
	}

	fresh := deployWith(t, p, pipeline.Options{BreakLock: true})
	mustFail(t, fresh, exitcode.Locked, "deploy locked by ghost@old-laptop (pid 4242)")
	if strings.Contains(fresh.err.Error(), "stale") {
		t.Errorf("a fresh lock was called stale: %v", fresh.err)
	}

	old := time.Now().Add(-10 * time.Minute)
	if err := os.Chtimes(filepath.Join(l.LockDir(), "info.json"), old, old); err != nil {
		t.Fatal(err)
	}
	refused := deployWith(t, p, pipeline.Options{})
	mustFail(t, refused, exitcode.Locked, "stale lock", "ghost@old-laptop", "STAGECOACH_BREAK_LOCK")
	t.Logf("stale lock refused: %v", refused.err)
	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current moved to %s", got)
	}

	broke := deployWith(t, p, pipeline.Options{BreakLock: true})
	if broke.err != nil {
		t.Fatalf("deploy breaking the stale lock: %v\n%s", broke.err, broke.log)
	}
	if got := verifyLive(t, p.Root); got != broke.run.Plan.Release {
		t.Errorf("current is %s, want %s", got, broke.run.Plan.Release)
	}
	d := lastDeploy(t, p.Root)
	if d.Result != server.ResultSuccess || !strings.Contains(d.BrokeLock, "ghost@old-laptop (pid 4242)") {
		t.Errorf("deploy history: %+v, want a success that broke ghost@old-laptop's lock", d)
	}
	mustNotExist(t, lockDir(p.Root))
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
