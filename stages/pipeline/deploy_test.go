package pipeline

import (
	"context"
	"testing"

	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

func TestDeployThreeHosts(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 3})
	r := New(e.Open(t, run.Options{}))
	if err := r.Deploy(context.Background()); err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	for i := range e.Names {
		if e.Live(t, i) != r.Plan.Release {
			t.Errorf("host %d runs %q", i, e.Live(t, i))
		}
		t.Logf("host %d: %v; %d calls", i, e.Services(t, i), len(e.Fake(i).Calls()))
	}
}
