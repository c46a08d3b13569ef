package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// held runs steps one after another under one hold of the locks, as a
// chain of Mage targets does, and stops at the first failure.
func held(t *testing.T, r *Run, steps ...func(context.Context) error) error {
	t.Helper()
	ctx := context.Background()
	release, err := r.Hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// The targets run each step on its own; chained, they deploy, and the
// rollback target goes back to the release named.
func TestStepsOneByOne(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2, Health: "      - command: 'true'\n"}, false)
	r := open(t, e, run.Options{})
	// Detect looks without the locks; the chain then takes them over the
	// same connections.
	if err := r.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := held(t, r, r.Build, r.Package, r.Ship, r.Swap, r.Health, r.Cleanup); err != nil {
		t.Fatalf("steps: %v\n%s", err, e.Log)
	}
	id := r.Plan.Release
	assertLive(t, e, id)
	assertUnlocked(t, e)

	back := open(t, e, run.Options{Release: old})
	if err := held(t, back, back.Rollback); err != nil {
		t.Fatalf("rollback: %v\n%s", err, e.Log)
	}
	assertLive(t, e, old)
	for i := range e.Names {
		assertServices(t, e, i, []string{"restart OLD", "stop OLD", "restart NEW", "restart OLD"}, old, id)
		if d := lastDeploy(t, e, i); d.Result != server.ResultRollback || d.ID != old {
			t.Errorf("host %d recorded %s of %s, want a rollback to %s", i, d.Result, d.ID, old)
		}
	}

	rep, err := open(t, e, run.Options{}).Check(context.Background())
	if err != nil || rep.Result != "ok" {
		t.Errorf("check after the rollback: %v, %+v", err, rep)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{})
	r, err := Open(Options{ConfigPath: e.Config, Environment: "test"}, ui.Discard())
	if err != nil || r.Env.Name != "test" || len(r.Env.Hosts) != 1 {
		t.Fatalf("open: %v", err)
	}
	if _, err := Open(Options{ConfigPath: e.Config, Environment: "staging"}, ui.Discard()); exitcode.Of(err) != exitcode.BadConfig {
		t.Errorf("open of an unknown environment: %v, want a config error", err)
	}
}

// The swap target, run on its own, rolls out as a deploy does: the
// canary first, then batches gated on health, and a failure handled as
// on_failure says; here stop keeps the canary and the healthy host of
// the failed batch and switches no more.
func TestSwapTargetFollowsStrategy(t *testing.T) {
	t.Parallel()
	f := newRolloutFixture(t, "{canary: 1, batch: 2, on_failure: stop}", false)
	e, old := f.restore(t), f.old
	sick(t, e, 1, old)
	r := open(t, e, run.Options{}, quickHealth)
	if err := r.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := held(t, r, r.Build, r.Package, r.Ship, r.Swap)
	assertCode(t, e, err, exitcode.Partial, "on_failure stop: the rollout stopped", "health of deploy@web2")
	id := r.Plan.Release
	for i, want := range []string{id, old, id, old} {
		if got := e.Live(t, i); got != want {
			t.Errorf("host %d runs %s, want %s", i, got, want)
		}
	}
	if got := f.checked(t, e, id); !strings.HasPrefix(got, "1") || !strings.Contains(got, "2") || !strings.Contains(got, "3") || strings.Contains(got, "4") {
		t.Errorf("health checks of the new release by host: %q, want the canary's, then the batch's", got)
	}
	if !strings.Contains(e.Log.String(), "canary: activating") {
		t.Errorf("the log does not name the canary:\n%s", e.Log)
	}
	assertUnlocked(t, e)
	assertRecorded(t, e, r, server.ResultStopped, "health", server.ResultSuccess, server.ResultRolledBack, server.ResultSuccess, server.ResultAborted)
}
