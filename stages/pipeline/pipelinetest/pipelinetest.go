// Package pipelinetest drives the pipeline over runtest's fake hosts, for
// the unit tests of the steps: a whole deploy, or a run taken as far as
// the step under test. It is not part of runtest because the pipeline's
// own tests (package pipeline) use runtest, and runtest importing the
// pipeline would make that an import cycle.
package pipelinetest

import (
	"context"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// Deploy runs a whole deploy of e's HEAD and returns the release that
// went live; tweak, when given, changes the run's context first.
func Deploy(t testing.TB, e *runtest.Env, tweak ...func(*run.Context)) string {
	t.Helper()
	r := pipeline.New(e.Open(t, run.Options{}, tweak...))
	if err := r.Deploy(context.Background()); err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	return r.Plan.Release
}

// Packaged returns a run of e that has read the hosts' state, built and
// packaged the release, ready to ship, and is closed when t ends. It takes
// no deploy lock, so the calls on the fakes are only the test's and the
// state reads.
func Packaged(t testing.TB, e *runtest.Env) *pipeline.Run {
	t.Helper()
	r := pipeline.New(e.Open(t, run.Options{}))
	t.Cleanup(r.Close)
	Steps(t, e, r.Detect, r.Build, r.Package)
	return r
}

// Shipped is Packaged with the release shipped too, ready to stage.
func Shipped(t testing.TB, e *runtest.Env) *pipeline.Run {
	t.Helper()
	r := Packaged(t, e)
	Steps(t, e, r.Ship)
	return r
}

// Steps runs steps, a run of e's methods, in order, and fails t with e's
// log at the first error.
func Steps(t testing.TB, e *runtest.Env, steps ...func(context.Context) error) {
	t.Helper()
	for _, step := range steps {
		if err := step(context.Background()); err != nil {
			t.Fatalf("%v\n%s", err, e.Log)
		}
	}
}
