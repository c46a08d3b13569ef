package pipeline

import (
	"context"
	"os"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestShipFailureDiscardsUploads: when one host cannot take the release,
// the hosts that did get its archive drop it at once rather than keep it
// until cleanup, as it may be what fills their disk.
func TestShipFailureDiscardsUploads(t *testing.T) {
	e := runtest.New(t, runtest.Options{Hosts: 2})
	e.Fake(1).On("as it arrives").Exit(1, "No space left on device")
	r := New(e.Open(t, run.Options{}))
	err := r.Deploy(context.Background())
	if exitcode.Of(err) != exitcode.Failed {
		t.Fatalf("deploy: %v (exit %d), want a failure before the swap\n%s", err, exitcode.Of(err), e.Log)
	}
	for i, root := range e.Roots {
		l := server.Layout{Root: root}
		for _, path := range []string{l.IncomingPath(r.Plan.Release), l.ManifestPath(r.Plan.Release)} {
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("host %d keeps %s (%v)", i, path, err)
			}
		}
		if live := e.Live(t, i); live != "" {
			t.Errorf("host %d went live with %s", i, live)
		}
	}
}
