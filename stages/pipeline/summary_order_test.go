package pipeline

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
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
