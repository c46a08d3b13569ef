package swap_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// TestActivationShowsServiceOutput: the restart commands an activation
// runs in its one round trip still show their script and output with -v,
// and a failing one's output tail is in the error.
func TestActivationShowsServiceOutput(t *testing.T) {
	e := runtest.New(t, runtest.Options{Services: `    services:
      manager: command
      restart:
        - |
          echo "starting $STAGECOACH_RELEASE"
          echo "port 8080 in use" >&2
          exit 4
`})
	r := pipelinetest.Shipped(t, e)
	if err := swap.StageAll(context.Background(), r.Context); err != nil {
		t.Fatal(err)
	}
	err := swap.Activate(context.Background(), r.Context, r.Hosts[0], swap.MigrateEach(r.Context))
	if err == nil {
		t.Fatal("a failing restart activated")
	}
	for _, want := range []string{"restart services", "restart[0]", "exit status 4", "port 8080 in use", "output: starting " + r.Plan.Release} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "exit 4"); n != 0 {
		t.Errorf("the script is in the error %d times: %v", n, err)
	}
	log := e.Log.String()
	for _, want := range []string{"restart[0] runs: echo", "restart[0]: starting " + r.Plan.Release, "restart[0] stderr: port 8080 in use"} {
		if !strings.Contains(log, want) {
			t.Errorf("the -v log lacks %q", want)
		}
	}
}
