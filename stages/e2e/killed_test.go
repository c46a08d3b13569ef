package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/targets"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestKilledDeployRecovers kills a deploy with SIGKILL while it builds,
// holding the lock: nothing of it cleans up, and its lock is fresh. The
// next deploy from this machine, run at once and without BreakLock, finds
// the holder's process gone from this machine's boot and PID namespace,
// breaks the lock with a warning, goes live, and the history says so.
func TestKilledDeployRecovers(t *testing.T) {
	t.Parallel()
	if fleet.BootID() == "" {
		t.Skip("no boot id on this system: locks are never broken automatically")
	}
	host := testenv.StartSSHD(t)
	gate := t.TempDir()
	slow, building := filepath.Join(gate, "slow"), filepath.Join(gate, "building")
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host},
		// While the gate file exists the build says its process group
		// and hangs, so the test can kill the deploy mid-build.
		BackendBuild: fmt.Sprintf(`if [ -f %q ]; then echo $$ > %q; sleep 300; fi; CGO_ENABLED=0 go build -trimpath -o dist/server ./cmd/server`, slow, building)})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	p.Write("backend/NOTES.txt", "deployed after a killed deploy\n")
	p.Commit("a backend change")
	if err := os.WriteFile(slow, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	out := &testenv.SyncBuffer{}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledDeployProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STAGECOACH_E2E_KILLED_DEPLOY_PROCESS=1", "STAGECOACH_CONFIG="+p.Config, "STAGECOACH_ENV=test")
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill() })
	// The build may begin before the lock is taken (it runs ahead while
	// the deploy connects): wait for both.
	waitFor(t, "the killed deploy's build and lock", func() bool {
		data, err := os.ReadFile(building)
		lock, lerr := os.ReadFile(filepath.Join(lockDir(p.Root), "info.json"))
		return err == nil && strings.HasSuffix(string(data), "\n") && lerr == nil && json.Valid(lock)
	})
	info := lockInfo(t, p.Root)
	if info.PID != pid || info.BootID != fleet.BootID() || info.Holder != fleet.WhoAmI() {
		t.Fatalf("the deploy process %d holds the lock as %+v", pid, info)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the deploy process ended with %v, want killed\n%s", err, out)
	}
	// Its build hangs on in a process group of its own: kill that too.
	group, err := strconv.Atoi(strings.TrimSpace(readFile(t, building)))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-group, syscall.SIGKILL)
	if err := os.Remove(slow); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(lockDir(p.Root), "info.json")); err != nil {
		t.Fatalf("the killed deploy's lock is gone: %v", err)
	}
	if got := verifyLive(t, p.Root); got != id1 {
		t.Fatalf("current moved to %s under the killed deploy", got)
	}

	start := time.Now()
	next := deployWith(t, p, pipeline.Options{})
	if next.err != nil {
		t.Fatalf("the deploy after the killed one: %v\n%s", next.err, next.log)
	}
	t.Logf("deployed %v after the kill, breaking the dead deploy's lock", time.Since(start).Round(time.Millisecond))
	if got := verifyLive(t, p.Root); got != next.run.Plan.Release || got == id1 {
		t.Errorf("current is %s, want the new release %s", got, next.run.Plan.Release)
	}
	holder := fmt.Sprintf("%s (pid %d)", fleet.WhoAmI(), pid)
	if want := "broke the deploy lock of " + holder; !strings.Contains(next.log, want) {
		t.Errorf("the log does not warn %q:\n%s", want, next.log)
	}
	d := lastDeploy(t, p.Root)
	if d.Result != server.ResultSuccess || !strings.HasPrefix(d.BrokeLock, holder) || !strings.HasSuffix(d.BrokeLock, "process gone") {
		t.Errorf("deploy history: %+v, want a success that broke %s's lock", d, holder)
	}
	mustNotExist(t, lockDir(p.Root))
}

// TestKilledDeployProcess is the deploying process of
// TestKilledDeployRecovers: it runs the Deploy target as `mage deploy`
// would. It does nothing in a normal test run.
func TestKilledDeployProcess(t *testing.T) {
	if os.Getenv("STAGECOACH_E2E_KILLED_DEPLOY_PROCESS") == "" {
		t.Skip("run by TestKilledDeployRecovers")
	}
	err := targets.Deploy(context.Background(), nil, nil, nil, nil, nil, nil, nil, nil) // no flags: the STAGECOACH_* variables
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(exitcode.Of(err))
}

// TestDeployWaitsForTheLock: with LockWait a deploy waits while another
// holds the lock, and goes on once it is released; without, it is refused.
func TestDeployWaitsForTheLock(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	changeFrontend(t, p, "deployed after waiting for the lock")

	l := server.Layout{Root: p.Root}
	take, err := server.Lock(l, server.LockInfo{Holder: "alice@laptop", PID: 4242,
		Started: time.Now().UTC(), Token: "alice-token", Command: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.Run(context.Background(), remote.NewLocal(), take); err != nil {
		t.Fatal(err)
	}
	refused := deployWith(t, p, pipeline.Options{})
	mustFail(t, refused, exitcode.Locked, "deploy locked by alice@laptop (pid 4242)", "becomes breakable in")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, out := openRun(t, p, pipeline.Options{LockWait: time.Minute})
	r.Fleet.Lease.Heartbeat = 100 * time.Millisecond // polls as often
	// alice releases the lock once the deploy says it waits for it.
	const waiting = "waiting up to 1m0s for the deploy lock to be released: deploy locked by alice@laptop"
	released := make(chan struct{})
	go func() {
		defer close(released)
		for !strings.Contains(out.String(), waiting) {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // a few polls find it held
		if _, err := remote.NewLocal().Run(context.Background(), server.Unlock(l, "alice-token")); err != nil {
			t.Errorf("alice's unlock: %v", err)
		}
	}()
	err = r.Deploy(ctx)
	cancel()
	<-released
	if err != nil {
		t.Fatalf("the waiting deploy: %v\n%s", err, out)
	}
	if n := strings.Count(out.String(), "waiting up to"); n != 1 {
		t.Errorf("the deploy said %d times that it waits, want once:\n%s", n, out)
	}
	if got := verifyLive(t, p.Root); got != r.Plan.Release {
		t.Errorf("current is %s, want %s", got, r.Plan.Release)
	}
	if d := lastDeploy(t, p.Root); d.Result != server.ResultSuccess || d.BrokeLock != "" {
		t.Errorf("deploy history: %+v, want a success that broke no lock", d)
	}
	mustNotExist(t, lockDir(p.Root))
}

// lockInfo reads the holder of the deploy lock on root.
func lockInfo(t *testing.T, root string) server.LockInfo {
	t.Helper()
	var info server.LockInfo
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(lockDir(root), "info.json"))), &info); err != nil {
		t.Fatal(err)
	}
	return info
}
