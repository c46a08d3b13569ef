package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestDeployInterrupted cancels the deploy's context, as Ctrl-C does, in
// each phase: before the switch nothing changes on the hosts, after it
// every host goes back; either way current points at a complete release,
// the locks are released and the error says the deploy was interrupted.
func TestDeployInterrupted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  string
		// at arranges the interrupt; it returns a change to the run, if
		// the interrupt comes through its log.
		at        func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context)
		code      int
		says      string
		result    string // recorded on every host; "" when nothing is
		stage     string
		discarded bool
	}{
		{
			// Run ahead while the locks are taken: the detect and
			// build are dropped, and nothing is recorded.
			name: "locks",
			at: func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context) {
				e.Fake(1).On("take deploy lock").Then(cancel)
				return nil
			},
			code: exitcode.Failed, says: "deploy test interrupted",
		},
		{
			// With no revision recorded by this checkout, detect runs
			// once the locks are held.
			name: "detect",
			at: func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context) {
				if err := os.RemoveAll(filepath.Join(e.Dir, ".stagecoach", "deployed")); err != nil {
					panic(err)
				}
				return logTo(&cancelOn{Writer: e.Log, text: "detect ...", cancel: cancel})
			},
			code: exitcode.Failed, says: "deploy test interrupted",
		},
		{
			name: "build",
			at: func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context) {
				return logTo(&cancelOn{Writer: e.Log, text: "build web:", cancel: cancel})
			},
			code: exitcode.Failed, says: "deploy test interrupted", result: server.ResultInterrupted, stage: "build",
		},
		{
			// Package and ship overlap as the archive streams: an
			// interrupt while the hosts receive it stops the ship.
			name: "ship",
			at: func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context) {
				e.Fake(0).On("as it arrives").Then(cancel)
				return nil
			},
			code: exitcode.Failed, says: "deploy test interrupted", result: server.ResultInterrupted, stage: "ship", discarded: true,
		},
		{
			// Staging runs in the ship's last round trip, which the
			// interrupt stops.
			name: "staging",
			at: func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context) {
				e.Fake(1).On("stage release").Then(cancel)
				return nil
			},
			code: exitcode.Failed, says: "deploy test interrupted", result: server.ResultInterrupted, stage: "ship", discarded: true,
		},
		{
			name: "activation",
			// One host at a time: each host is either done or not begun
			// when the interrupt comes, never between stop and switch.
			env: "    parallel: 1\n",
			at: func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context) {
				e.Fake(1).On("restart").Nth(1).Then(cancel)
				return nil
			},
			code: exitcode.RolledBack, says: "swap interrupted and the deploy was rolled back", result: server.ResultRolledBack, stage: "swap",
		},
		{
			name: "health",
			at: func(e *runtest.Env, cancel context.CancelFunc) func(*run.Context) {
				e.Fake(0).On("health check").Nth(1).Then(cancel)
				return nil
			},
			code: exitcode.RolledBack, says: "health interrupted and the deploy was rolled back", result: server.ResultRolledBack, stage: "health",
		},
	}
	var shapes []shape
	for _, c := range cases {
		shapes = append(shapes, shape{hosts: 2, env: c.env})
	}
	projects := fixtures(t, shapes...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := projects[shape{hosts: 2, env: c.env}]
			e, old := f.restore(t), f.old
			before := historyLengths(t, e)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var tweaks []func(*run.Context)
			if tweak := c.at(e, cancel); tweak != nil {
				tweaks = append(tweaks, tweak)
			}
			r, err := deploy(ctx, t, e, run.Options{}, tweaks...)
			assertCode(t, e, err, c.code, c.says)
			if ctx.Err() == nil {
				t.Fatal("the deploy ended before its interrupt")
			}
			assertLive(t, e, old)
			assertIntact(t, e, old)
			assertUnlocked(t, e)
			for i := range e.Names {
				if svc := e.Services(t, i); len(svc) == 0 || svc[len(svc)-1] != "restart "+old {
					t.Errorf("host %d services got %q, want the old release restarted last", i, svc)
				}
			}
			if c.result == "" {
				for i := range e.Names {
					if n := len(e.State(t, i).Deploys); n != before[i] {
						t.Errorf("host %d recorded a deploy interrupted before it had a plan", i)
					}
				}
			} else {
				assertRecorded(t, e, r, c.result, c.stage)
			}
			if c.discarded {
				assertAbsent(t, e, r.Plan.Release)
			}
			if rep := readReport(t, r); rep.ExitCode != c.code || !strings.Contains(rep.Error, "context canceled") {
				t.Errorf("report: exit %d, error %q", rep.ExitCode, rep.Error)
			}
		})
	}
}
