package rollback_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/rollback"
	"github.com/stagecoach/stagecoach/stages/run"
)

func TestAfterFailureWithNoTouchedHostDoesNothing(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, "")
	p.seed(1)
	r, release := p.hold(run.Options{})
	defer release()
	before := len(p.Fake(0).Calls()) + len(p.Fake(1).Calls())
	if err := rollback.AfterFailure(context.Background(), r.Context); err != nil {
		t.Fatal(err)
	}
	if after := len(p.Fake(0).Calls()) + len(p.Fake(1).Calls()); after != before {
		t.Errorf("%d calls to roll back hosts nothing touched", after-before)
	}
}

// wantRolledBack checks that every host of r runs id again, with the
// database db, its services restarted, and nothing left to undo.
func (p *project) wantRolledBack(r *pipeline.Run, id, db string) {
	p.t.Helper()
	p.wantLive(id)
	for i, h := range r.Hosts {
		if p.db(i) != db {
			p.t.Errorf("host %d: database %q, want %q as %s left it", i, p.db(i), db, id)
		}
		if got := p.lastService(i); got != "restart "+id {
			p.t.Errorf("host %d: last service operation %q, want restart %s", i, got, id)
		}
		if h.Switched || h.Migrated {
			p.t.Errorf("host %d still marked switched %v, migrated %v", i, h.Switched, h.Migrated)
		}
	}
}

// TestAfterFailureGoesBackToTheLiveRelease: after a real deploy's swap,
// the host gets the release that was live, its database as that release
// left it, its services restarted, and its health checked.
func TestAfterFailureGoesBackToTheLiveRelease(t *testing.T) {
	t.Parallel()
	p := newProject(t, 1, healthy)
	v1 := p.deploy("v1", false)
	r, err := p.activate("v2", true)
	if err != nil {
		t.Fatal(err)
	}
	v2 := r.Plan.Release
	for i := range p.Names {
		if p.Live(t, i) != v2 || p.db(i) != v1+"\n"+v2+"\n" {
			t.Fatalf("host %d after the swap: live %s, db %q", i, p.Live(t, i), p.db(i))
		}
	}
	if err := rollback.AfterFailure(context.Background(), r.Context); err != nil {
		t.Fatal(err)
	}
	p.wantRolledBack(r, v1, v1+"\n")
	if len(r.Report.Health) != 1 {
		t.Errorf("%d health results reported, want 1", len(r.Report.Health))
	}
}

func TestAfterFailureNotHealthyAfterTheRollbackEither(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, healthy)
	p.seed(1, 1)
	r, release := p.hold(run.Options{})
	defer release()
	p.seedSwap(r, rel(2), true)
	p.Fake(1).On("health check").Exit(1, "502 bad gateway")
	err := rollback.AfterFailure(context.Background(), r.Context)
	wantErr(t, err, "roll back deploy@web2: release "+rel(1)+" is not healthy after the rollback either: unhealthy")
	if strings.Contains(err.Error(), "deploy@web1") {
		t.Errorf("error %q blames web1, which is healthy", err)
	}
	p.wantRolledBack(r, rel(1), rel(1)+"\n")
	if len(r.Report.Health) != 2 {
		t.Errorf("%d health results reported, want one per host", len(r.Report.Health))
	}
}

// TestAfterFailureRestoresAMigratedHostThatDidNotSwitch: a host whose
// switch failed after its migrations ran gets its database back too.
func TestAfterFailureRestoresAMigratedHostThatDidNotSwitch(t *testing.T) {
	t.Parallel()
	p := newProject(t, 2, "")
	p.seed(1, 1)
	r, release := p.hold(run.Options{})
	defer release()
	p.seedSwap(r, rel(2), true)
	web2 := r.Hosts[1]
	p.point(web2.Layout, rel(1))
	web2.Switched = false
	if err := rollback.AfterFailure(context.Background(), r.Context); err != nil {
		t.Fatal(err)
	}
	p.wantRolledBack(r, rel(1), rel(1)+"\n")
}

// TestAfterFailureOfAFirstDeploy: with no release to go back to, the
// database is put back as it was (absent) and current stays.
func TestAfterFailureOfAFirstDeploy(t *testing.T) {
	t.Parallel()
	p := newProject(t, 1, "")
	r, err := p.activate("v1", false)
	if err != nil {
		t.Fatal(err)
	}
	v1 := r.Plan.Release
	err = rollback.AfterFailure(context.Background(), r.Context)
	wantErr(t, err, "roll back deploy@web1: first deploy: there is no earlier release to go back to")
	p.wantLive(v1)
	if p.db(0) != "" || r.Hosts[0].Migrated {
		t.Errorf("database %q, migrated %v; want it gone as before the deploy", p.db(0), r.Hosts[0].Migrated)
	}
	aside, _ := os.ReadFile(filepath.Join(p.Roots[0], "shared", "data", "db.before-rollback"))
	if string(aside) != v1+"\n" {
		t.Errorf("the migrated database set aside is %q", aside)
	}
}

// TestAfterFailureStopsAtAFailedStep: a rollback step that fails stops
// the host's rollback there, and the error says which host and step.
func TestAfterFailureStopsAtAFailedStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		step, want string
		live       int // the release the host runs after
	}{
		{"restore files", "roll back deploy@web1: restore database: restore files backed up before " + rel(2), 2},
		{"switch current to", "roll back deploy@web1: switch current to " + rel(1), 2},
		{"restart[", "roll back deploy@web1: restart services: ", 1},
	} {
		t.Run(tc.step, func(t *testing.T) {
			t.Parallel()
			p := newProject(t, 1, "")
			p.seed(1)
			r, release := p.hold(run.Options{})
			defer release()
			p.seedSwap(r, rel(2), true)
			p.Fake(0).On(tc.step).Exit(1, "injected failure")
			err := rollback.AfterFailure(context.Background(), r.Context)
			wantErr(t, err, tc.want)
			p.wantLive(rel(tc.live))
		})
	}
}

// TestAfterFailureOfAFirstDeployThatCannotRestore: the restore's failure
// is what the rollback reports, not the missing earlier release.
func TestAfterFailureOfAFirstDeployThatCannotRestore(t *testing.T) {
	t.Parallel()
	p := newProject(t, 1, "")
	r, release := p.hold(run.Options{})
	defer release()
	p.seedSwap(r, rel(1), true)
	p.Fake(0).On("restore files").Exit(1, "Read-only file system")
	err := rollback.AfterFailure(context.Background(), r.Context)
	wantErr(t, err, "roll back deploy@web1: restore files backed up before "+rel(1))
	if strings.Contains(err.Error(), "first deploy") || !r.Hosts[0].Migrated {
		t.Errorf("error %q, migrated %v: want the restore's failure, left to retry", err, r.Hosts[0].Migrated)
	}
	if p.db(0) != rel(1)+"\n" {
		t.Errorf("database %q", p.db(0))
	}
}

// TestAfterFailureOverALostConnection: the connection that failed the
// deploy is often gone when the rollback starts; the host is not. The
// rollback reconnects and goes back rather than leave the host on the
// release that failed. Found by the chaos driver.
func TestAfterFailureOverALostConnection(t *testing.T) {
	t.Parallel()
	p := newProject(t, 1, healthy)
	v1 := p.deploy("v1", false)
	r, err := p.activate("v2", true)
	if err != nil {
		t.Fatal(err)
	}
	p.Fake(0).On("").Times(1).LoseConnection()
	if err := rollback.AfterFailure(context.Background(), r.Context); err != nil {
		t.Fatalf("rollback: %v\n%s", err, p.Log)
	}
	p.wantRolledBack(r, v1, v1+"\n")
	if n := p.Dialer.Dials(p.Names[0]); n < 2 {
		t.Errorf("%d dials, want a reconnect", n)
	}
}
