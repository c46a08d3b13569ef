package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestDeployInterruptedWhileUploading: Ctrl-C while the archive streams
// to the hosts is recorded, in every host's history and in the report, as
// an interrupted deploy at ship, not as a failed package; the exit code
// stays Failed, nothing live changed and the upload is discarded.
func TestDeployInterruptedWhileUploading(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 2}, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.Fake(0).On("as it arrives").Then(cancel)
	r, err := deploy(ctx, t, e, run.Options{})
	assertCode(t, e, err, exitcode.Failed, "deploy test interrupted", "context canceled")
	assertLive(t, e, old)
	assertUnlocked(t, e)
	assertAbsent(t, e, r.Plan.Release)
	assertRecorded(t, e, r, server.ResultInterrupted, "ship")
	for i := range e.Names {
		if d := lastDeploy(t, e, i); !strings.Contains(d.Error, "context canceled") {
			t.Errorf("host %d recorded the error %q", i, d.Error)
		}
	}
	rep := readReport(t, r)
	if rep.ExitCode != exitcode.Failed {
		t.Errorf("report exit code %d, want %d", rep.ExitCode, exitcode.Failed)
	}
	var stages []string
	for _, s := range rep.Stages {
		stages = append(stages, s.Name+":"+s.Result)
	}
	// The archive was written whole; its upload was cut short.
	if got, want := strings.Join(stages, " "), "detect:ok build:ok package:ok ship:interrupted"; got != want {
		t.Errorf("report stages %q, want %q", got, want)
	}
	var out strings.Builder
	if err := open(t, e, run.Options{}).ShowReleases(context.Background(), &out, 1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "interrupted at ship") {
		t.Errorf("releases do not tell the interrupt:\n%s", out.String())
	}
}
