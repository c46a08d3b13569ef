package run

import (
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/fleet"
)

// TestReportHostsFollowTheGivenOrder: rows made in the order the hosts
// finished are put in config order; a row of a host the order does not
// name goes last.
func TestReportHostsFollowTheGivenOrder(t *testing.T) {
	rep := &Report{redact: func(s string) string { return s }}
	for _, name := range []string{"web3", "other", "web1", "web2"} {
		rep.Host(&fleet.Host{Name: name})
	}
	rep.SortHosts([]string{"web1", "web2", "web3"})
	var names []string
	for _, h := range rep.Hosts {
		names = append(names, h.Name)
	}
	if want := []string{"web1", "web2", "web3", "other"}; !slices.Equal(names, want) {
		t.Errorf("hosts %q, want %q", names, want)
	}
	var out strings.Builder
	rep.PrintSummary(&out)
	if i, j := strings.Index(out.String(), "web1"), strings.Index(out.String(), "web3"); i < 0 || j < i {
		t.Errorf("summary does not list web1 before web3:\n%s", out.String())
	}
}
