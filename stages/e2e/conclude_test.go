package e2e

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// restartUnless is a services block whose restart fails for every release
// but the one shared/only-release names, when it names one.
const restartUnless = `    services:
      manager: command
      stop: ['true']
      restart: ['test ! -s ../../shared/only-release || test "$STAGECOACH_RELEASE" = "$(cat ../../shared/only-release)"']
`

// TestOneHostConcludesInTheSwapsRoundTrip: over a real sshd, a deploy to
// one host with no health checks activates the release, cleans up,
// records the deploy and releases the lock in one round trip, so a small
// change costs 6; a restart failing after the switch leaves the lock to
// the rollback, which puts the live release back and records it.
func TestOneHostConcludesInTheSwapsRoundTrip(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}, NoHealth: true, Services: restartUnless})
	mustDeploy(t, p)

	changeFrontend(t, p, "a small change")
	res := mustDeploy(t, p)
	id := res.run.Plan.Release
	hr := hostReport(t, report(t, p, id), host.Target())
	heartbeats := math.Floor(hr["duration_ns"].(float64) / float64(fleet.DefaultLease.Heartbeat))
	if trips := hr["round_trips"].(float64); trips > 6+heartbeats {
		t.Errorf("small change: %v round trips, want at most 6 (and %v heartbeats)\n%s", trips, heartbeats, res.log)
	}
	assertConcluded(t, p, id, server.ResultSuccess)

	if err := os.WriteFile(filepath.Join(p.Root, "shared", "only-release"), []byte(id), 0o644); err != nil {
		t.Fatal(err)
	}
	changeFrontend(t, p, "a change whose restart fails")
	failed := deploy(t, t.Context(), p, pipeline.Options{})
	if exitcode.Of(failed.err) != exitcode.RolledBack {
		t.Fatalf("exit code %d (%v), want %d\n%s", exitcode.Of(failed.err), failed.err, exitcode.RolledBack, failed.log)
	}
	if got := live(t, p.Root); got != id {
		t.Errorf("live release %s after the rollback, want %s", got, id)
	}
	assertConcluded(t, p, id, server.ResultRolledBack)
	if s := state(t, p.Root); s.Deploys[len(s.Deploys)-1].ID != failed.run.Plan.Release {
		t.Errorf("the last deploy recorded is %s, want the failed %s", s.Deploys[len(s.Deploys)-1].ID, failed.run.Plan.Release)
	}
}

// assertConcluded fails unless the host's lock is released and its state
// has current at live and records the last deploy with result.
func assertConcluded(t *testing.T, p *testenv.Project, live, result string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(p.Root, ".stagecoach", "lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the deploy lock is still held (%v)", err)
	}
	s := state(t, p.Root)
	if s.Current != live {
		t.Errorf("state's current %s, want %s", s.Current, live)
	}
	if d := s.Deploys[len(s.Deploys)-1]; d.Result != result {
		t.Errorf("the last deploy recorded %s, want %s", d.Result, result)
	}
}
