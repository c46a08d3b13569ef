package rollback_test

import (
	"errors"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestRollbackIsAllOrNothing: when one host cannot roll back, the hosts
// that did are put back on the release they ran, their database and
// history as they were, and the rollback fails saying so. Regression
// (chaos driver, 2 chains in 1,000 runs): each host rolled back on its
// own, so one failing left the fleet split, and the next rollback, which
// reported success, took each host one step further back from where it
// was, leaving them on different releases.
func TestRollbackIsAllOrNothing(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, "")
	p.seed(3, 1, 3)
	dbs := []string{p.db(0), p.db(1)}
	states := []*server.State{p.State(p.t, 0), p.State(p.t, 1)}
	p.Fake(1).On("switch current").Times(1).Exit(1, "No space left on device")
	_, err := p.rollBack(run.Options{RestoreDB: true}, nil)
	wantErr(t, err, "roll back deploy@web2")
	wantErr(t, err, "every host was put back on the release it ran")
	if exitcode.Of(err) != exitcode.Failed {
		t.Errorf("exit %d, want %d", exitcode.Of(err), exitcode.Failed)
	}
	p.wantLive(rel(3))
	for i := range p.Names {
		if p.db(i) != dbs[i] {
			t.Errorf("host %d: database %q, want %q as it was", i, p.db(i), dbs[i])
		}
		if st := p.State(p.t, i); st.Current != states[i].Current || len(st.Deploys) != len(states[i].Deploys) {
			t.Errorf("host %d: state says %s live after %d deploys, want %s after %d", i, st.Current, len(st.Deploys), states[i].Current, len(states[i].Deploys))
		}
	}
	// With the fault gone, the same rollback goes through on both.
	if _, err := p.rollBack(run.Options{RestoreDB: true}, nil); err != nil {
		t.Fatal(err)
	}
	p.wantLive(rel(2))
}

// TestRollbackOfASplitFleet: hosts on different releases (a rollback that
// could not put a host back, a rollout stopped part-way) have no one
// previous release; a plain rollback refuses, changing nothing, and one
// naming the release moves only the hosts not on it already.
func TestRollbackOfASplitFleet(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, "")
	p.seed(3)
	if _, err := p.rollBack(run.Options{Hosts: "deploy@web1"}, nil); err != nil {
		t.Fatal(err)
	}
	if p.Live(p.t, 0) != rel(2) || p.Live(p.t, 1) != rel(3) {
		t.Fatalf("hosts run %s and %s, want %s and %s", p.Live(p.t, 0), p.Live(p.t, 1), rel(2), rel(3))
	}
	_, err := p.rollBack(run.Options{}, nil)
	wantErr(t, err, "the hosts would go to different releases")
	wantErr(t, err, "STAGECOACH_RELEASE")
	if exitcode.Of(err) != exitcode.BadConfig {
		t.Errorf("exit %d, want %d", exitcode.Of(err), exitcode.BadConfig)
	}
	if p.Live(p.t, 0) != rel(2) || p.Live(p.t, 1) != rel(3) {
		t.Fatalf("a refused rollback moved hosts: %s and %s", p.Live(p.t, 0), p.Live(p.t, 1))
	}
	if _, err := p.rollBack(run.Options{Release: rel(2)}, nil); err != nil {
		t.Fatal(err)
	}
	p.wantLive(rel(2))
}

// TestRollbackRestoresWithTheSwitch: the database backup is restored in
// the same command as the switch, which a client dying does not stop, so
// a client that dies right after the restore leaves the host on the
// release the restored database belongs to. Regression (chaos seed 7): a
// client crashed between the restore and the switch left the live release
// on the database of an older one, and the next deploy, seeing no
// migration pending, kept it so.
func TestRollbackRestoresWithTheSwitch(t *testing.T) {
	t.Parallel()
	p := newProject(t, 1, "")
	p.seed(3, 1, 3)
	crashed := errors.New("client crashed")
	f := p.Fake(0)
	f.On("restore files backed up before").Times(1).Then(func() { f.On("").Err(crashed) }).Pass()
	_, err := p.rollBack(run.Options{RestoreDB: true}, nil)
	wantErr(t, err, "client crashed")
	p.wantLive(rel(2))
	if p.db(0) != rel(1)+"\n" {
		t.Errorf("database %q under %s, want %q as it was before %s", p.db(0), rel(2), rel(1)+"\n", rel(3))
	}
}

// TestRollbackWithoutBackupMovesNoHost: asked to restore the database
// while the live release took no backup (it migrated nothing), a rollback
// refuses before any host moves. Regression (chaos driver, seed 4): each
// host found the backup missing only as it restored, after saving its
// database; a fault while putting one back then left exit 8, "hosts may
// run different releases", for what was a request that could not be met.
func TestRollbackWithoutBackupMovesNoHost(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, "")
	p.seed(3, 1, 2) // rel(3), live, migrated nothing
	dbs := []string{p.db(0), p.db(1)}
	_, err := p.rollBack(run.Options{RestoreDB: true}, nil)
	wantErr(t, err, "no database backup of")
	wantErr(t, err, "roll back without restoring the database")
	if exitcode.Of(err) != exitcode.Failed {
		t.Errorf("exit %d, want %d", exitcode.Of(err), exitcode.Failed)
	}
	p.wantLive(rel(3))
	for i := range p.Names {
		if n := p.Fake(i).Count("save files before rolling back"); n != 0 {
			t.Errorf("host %d saved its database %d times before the rollback was refused", i, n)
		}
		if p.db(i) != dbs[i] {
			t.Errorf("host %d: database %q, want %q as it was", i, p.db(i), dbs[i])
		}
	}
	// Without the restore, the same rollback goes through.
	if _, err := p.rollBack(run.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	p.wantLive(rel(2))
}

// TestRollbackPutBackUnhealthy: a host put back whose release then fails
// its health checks is still on the release it ran, so the hosts agree:
// the rollback fails as unhealthy (exit 3), not as hosts that may run
// different releases (exit 8), and that host's state says what is live.
// Regression (chaos seed 19, under heavy load): a put-back's health check
// timing out made the rollback exit 8 with every host on one release.
func TestRollbackPutBackUnhealthy(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, healthy)
	p.seed(3, 1, 3)
	states := []*server.State{p.State(p.t, 0), p.State(p.t, 1)}
	p.Fake(1).On("switch current").Times(1).Exit(1, "No space left on device")
	// web1's first check passes (the rollback), every later one fails (the
	// put back).
	p.Fake(0).On("health check").Times(1).Pass()
	p.Fake(0).On("health check").Exit(1, "502 bad gateway")
	_, err := p.rollBack(run.Options{}, nil)
	wantErr(t, err, "roll back deploy@web2")
	wantErr(t, err, "every host was put back on the release it ran, but")
	wantErr(t, err, "put back deploy@web1: release "+rel(3)+" is not healthy after the rollback either")
	if exitcode.Of(err) != exitcode.Unhealthy {
		t.Errorf("exit %d, want %d", exitcode.Of(err), exitcode.Unhealthy)
	}
	p.wantLive(rel(3))
	for i := range p.Names {
		if st := p.State(p.t, i); st.Current != states[i].Current || len(st.Deploys) != len(states[i].Deploys) {
			t.Errorf("host %d: state says %s live after %d deploys, want %s after %d", i, st.Current, len(st.Deploys), states[i].Current, len(states[i].Deploys))
		}
	}
}
