package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestSummaryListsHostsInConfigOrder: the hosts finish their cleanup in
// reverse order, which is when the report first meets them; the summary
// and the JSON report still list them as the config does.
func TestSummaryListsHostsInConfigOrder(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{Hosts: 3})
	for i := range e.Names {
		e.Fake(i).On("clean up old releases").Delay(time.Duration(len(e.Names)-i) * 150 * time.Millisecond).Pass()
	}
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	var names []string
	for _, h := range readReport(t, r).Hosts {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, e.Names) {
		t.Errorf("report lists the hosts %q, want %q", names, e.Names)
	}
	var summary strings.Builder
	r.Report.PrintSummary(&summary)
	var rows []string
	for _, line := range strings.Split(summary.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "deploy@") {
			rows = append(rows, f[0])
		}
	}
	if !slices.Equal(rows, e.Names) {
		t.Errorf("summary rows %q, want %q\n%s", rows, e.Names, summary.String())
	}
}

// TestSummaryShowsEachHostsOutcome: staging fails on web2 only. Its row
// says it failed after the ship, with its own error; the others staged,
// did nothing wrong and were aborted; every row has the time its host
// took, and the JSON report says the same.
func TestSummaryShowsEachHostsOutcome(t *testing.T) {
	t.Parallel()
	e, old := deployed(t, runtest.Options{Hosts: 3}, false)
	e.Fake(1).On("stage release").Exit(1, "tar: short read")
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err == nil {
		t.Fatal("deploy succeeded")
	}
	want := []struct{ phase, result string }{
		{fleet.PhaseStage, server.ResultAborted},
		{fleet.PhaseShip, server.ResultFailed},
		{fleet.PhaseStage, server.ResultAborted},
	}
	rep := readReport(t, r)
	for i, hr := range rep.Hosts {
		if hr.Name != e.Names[i] || hr.Phase != want[i].phase || hr.Result != want[i].result || hr.Before != old || hr.After != old {
			t.Errorf("report row %d: %s %s %s %s -> %s, want %s %s %s %s -> %s", i, hr.Name, hr.Phase, hr.Result, hr.Before, hr.After,
				e.Names[i], want[i].phase, want[i].result, old, old)
		}
		if hr.Duration <= 0 || hr.Duration > rep.Duration {
			t.Errorf("report row %d: duration %v (the deploy took %v)", i, hr.Duration, rep.Duration)
		}
		if (i == 1) != strings.Contains(hr.Error, "short read") {
			t.Errorf("report row %d: error %q", i, hr.Error)
		}
	}
	var summary strings.Builder
	r.Report.PrintSummary(&summary)
	var rows [][]string
	for _, line := range strings.Split(summary.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "deploy@") {
			rows = append(rows, f)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("summary has %d host rows:\n%s", len(rows), summary.String())
	}
	for i, f := range rows {
		if got := []string{f[0], f[1], f[2], f[3], f[4]}; !slices.Equal(got, []string{e.Names[i], want[i].phase, old, old, want[i].result}) {
			t.Errorf("summary row %d = %q\n%s", i, got, summary.String())
		}
	}
	if !strings.Contains(summary.String(), "HOST  ") || !strings.Contains(summary.String(), "PHASE") || !strings.Contains(summary.String(), "DURATION") {
		t.Errorf("summary header:\n%s", summary.String())
	}
}
