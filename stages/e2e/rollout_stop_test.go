package e2e

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestRolloutStopAndInterrupt deploys to three sshd hosts in network
// namespaces with a canary and batches of one, and checks what the README
// documents for on_failure stop and for an interrupt during the pause
// after the canary: a real SIGINT to a deploying process of its own
// (TestDeployTargetProcess). Under revert the canary goes back and the
// process exits 5; under stop the canary stays on the new release, no
// other host switches and the process exits 8; a health failure of a
// batch under stop keeps the hosts switched before it and exits 8. After
// each, every host serves the release it should, as its current and its
// backend show, and no host keeps a lock, a staging directory or an
// upload; a plain deploy then brings the hosts together again.
func TestRolloutStopAndInterrupt(t *testing.T) {
	t.Parallel()
	b := newFleetBed(t)
	cfg := readFile(t, b.p.Config)
	strategy := func(s string) {
		b.p.Write("stagecoach.yml", strings.Replace(cfg, "strategy: { canary: 1, batch: 1 }", "strategy: "+s, 1))
	}
	// want checks that host i runs want[i] and its state says so.
	want := func(t *testing.T, want ...string) {
		t.Helper()
		for i, got := range b.live(t) {
			if got != want[i] {
				t.Errorf("host %d runs %s, want %s", i+1, got, want[i])
			}
			if s := state(t, b.roots[i]); s.Current != want[i] {
				t.Errorf("host %d's state says %s is live, want %s", i+1, s.Current, want[i])
			}
		}
	}
	// lastResult is the fleet's result host i recorded for the last deploy.
	lastResult := func(t *testing.T, i int) server.Deploy {
		t.Helper()
		s := state(t, b.roots[i])
		if len(s.Deploys) == 0 {
			t.Fatalf("host %d records no deploy", i+1)
		}
		return s.Deploys[len(s.Deploys)-1]
	}
	// interrupted deploys in a process of its own and sends it SIGINT
	// once the canary passed and the pause began; it returns the exit
	// code, the release the deploy was making and the output.
	interrupted := func(t *testing.T) (int, string, string) {
		t.Helper()
		out := &testenv.SyncBuffer{}
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeployTargetProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), "STAGECOACH_E2E_DEPLOY_PROCESS=1", "STAGECOACH_CONFIG="+b.p.Config, "STAGECOACH_ENV=test")
		cmd.Dir = b.p.Dir
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A loaded machine may take long to get there: the pause is long.
		deadline := time.Now().Add(4 * time.Minute)
		for !strings.Contains(out.String(), "canary healthy; pausing") {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the deploy never paused after its canary:\n%s", out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		id := state(t, b.roots[0]).Deploys
		return cmd.ProcessState.ExitCode(), id[len(id)-1].ID, out.String()
	}
	step := func(name string, fn func(t *testing.T, old string)) {
		old := live(t, b.roots[0])
		changeFrontend(t, b.p, name)
		if !t.Run(name, func(t *testing.T) { fn(t, old) }) {
			t.FailNow() // the hosts may disagree now; later steps would not say much
		}
	}

	step("an interrupt during the pause reverts the canary", func(t *testing.T, old string) {
		strategy("{ canary: 1, batch: 1, pause: 10m }")
		b.p.Commit("a pause after the canary")
		code, id, out := interrupted(t)
		if code != exitcode.RolledBack || !strings.Contains(out, "pause after the canary") {
			t.Fatalf("the interrupted deploy exited %d, want %d (rolled back)\n%s", code, exitcode.RolledBack, out)
		}
		want(t, old, old, old)
		b.clean(t, id)
		if d := lastResult(t, 0); d.Fleet != server.ResultRolledBack {
			t.Errorf("host 1 recorded the fleet's result %s, want %s", d.Fleet, server.ResultRolledBack)
		}
	})
	step("an interrupt during the pause under stop keeps the canary", func(t *testing.T, old string) {
		strategy("{ canary: 1, batch: 1, pause: 10m, on_failure: stop }")
		b.p.Commit("on_failure stop")
		code, id, out := interrupted(t)
		if code != exitcode.Partial || !strings.Contains(out, "the rollout stopped") {
			t.Fatalf("the interrupted deploy exited %d, want %d (stopped)\n%s", code, exitcode.Partial, out)
		}
		want(t, id, old, old)
		b.clean(t, id)
		if d := lastResult(t, 1); d.Fleet != server.ResultStopped {
			t.Errorf("host 2 recorded the fleet's result %s, want %s", d.Fleet, server.ResultStopped)
		}
	})
	step("a deploy brings the hosts together again", func(t *testing.T, _ string) {
		strategy("{ canary: 1, batch: 1, on_failure: stop }")
		b.p.Commit("no pause")
		r, err, out := b.deploy(t, nil)
		if err != nil {
			t.Fatalf("deploy: %v\n%s", err, out)
		}
		id := r.Plan.Release
		want(t, id, id, id)
		b.clean(t, id)
	})
	step("health fails on the first batch under stop", func(t *testing.T, old string) {
		b.sick(t, 1, old)
		r, err, out := b.deploy(t, nil)
		if exitcode.Of(err) != exitcode.Partial || !strings.Contains(err.Error(), "on_failure stop: the rollout stopped") {
			t.Fatalf("deploy: %v (exit %d), want the rollout stopped (8)\n%s", err, exitcode.Of(err), out)
		}
		id := r.Plan.Release
		want(t, id, old, old)
		b.clean(t, id)
		if log := servicesLog(t, b.roots[2]); strings.Contains(strings.Join(log, "\n"), id) {
			t.Errorf("host 3 was activated after the batch before it failed: %q", log)
		}
	})
}
