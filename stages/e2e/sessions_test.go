package e2e

import (
	"math"
	"testing"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestSessionsPerDeploy counts what a full, a small-change and a no-change
// deploy cost one host in SSH sessions (each starts the account's login
// shell) and round trips, from the deploy report: commands share one
// remote shell, the upload takes that shell over while a second one starts
// for the commands after it, and each phase of a host's deploy is one
// round trip or a few.
func TestSessionsPerDeploy(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	for _, sc := range []struct {
		name       string
		change     string
		sessions   float64 // at most
		roundTrips float64 // at most, heartbeats aside
	}{{"full", "", 2, 8}, {"small change", "a small change", 2, 7}, {"no change", "", 1, 3}} {
		if sc.change != "" {
			changeFrontend(t, p, sc.change)
		}
		res := mustDeploy(t, p)
		release := res.run.Plan.Release
		if sc.name == "no change" {
			release = "latest"
		}
		hr := hostReport(t, report(t, p, release), host.Target())
		t.Logf("%s deploy: %v connections, %v sessions, %v round trips", sc.name, hr["connections"], hr["sessions"], hr["round_trips"])
		if hr["connections"] != 1.0 || hr["sessions"].(float64) > sc.sessions {
			t.Errorf("%s deploy: %v connections and %v sessions, want 1 and at most %v", sc.name, hr["connections"], hr["sessions"], sc.sessions)
		}
		heartbeats := math.Floor(hr["duration_ns"].(float64) / float64(fleet.DefaultLease.Heartbeat))
		if trips := hr["round_trips"].(float64); trips > sc.roundTrips+heartbeats {
			t.Errorf("%s deploy: %v round trips, want at most %v (and %v heartbeats)", sc.name, trips, sc.roundTrips, heartbeats)
		}
	}
}
