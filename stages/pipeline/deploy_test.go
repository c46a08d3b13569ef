package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

func TestDeploySucceedsOnEveryHost(t *testing.T) {
	for _, c := range []struct {
		name string
		env  string
	}{
		{"all hosts take the stream", ""},
		// Beyond Parallel, hosts get the written archive after the stream.
		{"one host takes the stream", "    parallel: 1\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := runtest.New(t, runtest.Options{Hosts: 3, Environment: c.env})
			r, err := deploy(context.Background(), t, e, run.Options{})
			if err != nil {
				t.Fatalf("deploy: %v\n%s", err, e.Log)
			}
			id := r.Plan.Release
			assertLive(t, e, id)
			assertUnlocked(t, e)
			assertRecorded(t, e, r, server.ResultSuccess, "")
			for i := range e.Names {
				assertServices(t, e, i, []string{"restart NEW"}, "", id)
				s := e.State(t, i)
				if rel, _ := s.Release(id); s.Current != id || s.Revision != r.Plan.Revision || rel.Status != server.StatusLive {
					t.Errorf("host %d state: current %s, revision %s, release %+v", i, s.Current, s.Revision, rel)
				}
				if d := lastDeploy(t, e, i); d.ID != id || d.BytesSent == 0 || d.Error != "" {
					t.Errorf("host %d recorded %+v", i, d)
				}
			}
			rep := readReport(t, r)
			if rep.Release != id || rep.ExitCode != 0 || len(rep.Hosts) != 3 {
				t.Errorf("report: release %s, exit %d, %d hosts", rep.Release, rep.ExitCode, len(rep.Hosts))
			}
			for _, h := range rep.Hosts {
				if h.After != id || h.Before != "" || h.BytesSent == 0 || h.FilesSent == 0 {
					t.Errorf("report of %s: %+v", h.Name, h)
				}
			}
			var stages []string
			for _, s := range rep.Stages {
				stages = append(stages, s.Name+":"+s.Result)
			}
			want := "detect:ok build:ok package:ok ship:ok swap:ok health:ok cleanup:ok"
			if got := strings.Join(stages, " "); got != want {
				t.Errorf("report stages %q, want %q", got, want)
			}
		})
	}
}

// A second deploy of the same revision touches nothing: no release, no
// service, and the history says so.
func TestDeployWithoutChangeTouchesNothing(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{Hosts: 2})
	id := mustDeploy(t, e)
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("second deploy: %v\n%s", err, e.Log)
	}
	assertLive(t, e, id)
	assertUnlocked(t, e)
	assertRecorded(t, e, r, server.ResultNoChange, "")
	for i := range e.Names {
		assertServices(t, e, i, []string{"restart NEW"}, "", id)
		if d := lastDeploy(t, e, i); d.ID != id {
			t.Errorf("host %d recorded the no-change deploy as %s, want the live %s", i, d.ID, id)
		}
		if n := len(e.State(t, i).Releases); n != 1 {
			t.Errorf("host %d has %d releases", i, n)
		}
	}
	if rep := readReport(t, r); rep.Release != "" || rep.ExitCode != 0 {
		t.Errorf("report: release %q, exit %d", rep.Release, rep.ExitCode)
	}
	if !strings.Contains(e.Log.String(), "nothing changed since") {
		t.Errorf("the log does not say nothing changed:\n%s", e.Log)
	}
}

// deployFault is a fault injected into the deploy of a second release,
// with what every host must show afterwards. In live and services, OLD
// and NEW stand for the first and the second release.
type deployFault struct {
	name      string
	shape     shape // of the project; default 3 hosts
	previous  bool  // the deploy names the live revision as Options.Previous
	fault     func(t *testing.T, e *runtest.Env, marker string)
	code      int
	result    string   // the fleet's, recorded everywhere; "" when nothing is
	hosts     []string // each host's own result; default result everywhere
	stage     string
	says      []string   // what the error says
	live      []string   // per host; default OLD everywhere
	services  [][]string // per host; default untouched
	discarded bool       // the second release is on no host
}

func (c deployFault) project() shape {
	s := c.shape
	if s.hosts == 0 {
		s.hosts = 3
	}
	return s
}

// untouched is the services log of a host the second deploy did not touch.
var untouched = []string{"restart OLD"}

// rolledBack is the services log of a host that switched and went back.
var rolledBack = []string{"restart OLD", "stop OLD", "restart NEW", "restart OLD"}

func exitError(desc string) error {
	return &remote.ExitError{Target: "fake", Desc: desc, Code: 1, Stderr: desc + " failed"}
}

func TestDeployFaults(t *testing.T) {
	t.Parallel()
	cases := []deployFault{
		{
			name:  "the work tree is dirty",
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Write(t, "site/draft.html", "uncommitted") },
			code:  exitcode.Failed, says: []string{"uncommitted changes"}, discarded: true,
		},
		{
			name: "build fails",
			fault: func(t *testing.T, e *runtest.Env, _ string) {
				removeSite(t, e)
				e.Commit(t, "no site")
			},
			code: exitcode.Failed, result: server.ResultFailed, stage: "build", says: []string{"build web"}, discarded: true,
		},
		{
			// Named by hand, the previous revision comes without the
			// live release's manifest, so the unchanged app has nothing
			// to be reused from.
			name:     "package fails",
			previous: true,
			fault:    func(t *testing.T, e *runtest.Env, _ string) {},
			code:     exitcode.Failed, result: server.ResultFailed, stage: "package", says: []string{"no previous release to reuse"}, discarded: true,
		},
		{
			name:  "staging fails on one host",
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Fake(1).On("stage release").Exit(1, "tar: short read") },
			code:  exitcode.Failed, result: server.ResultFailed, stage: "swap", says: []string{"stage", "web2", "short read"},
			hosts:     []string{server.ResultAborted, server.ResultFailed, server.ResultAborted},
			discarded: true,
		},
		{
			// Readying the hosts for the upload is part of the lock's
			// round trip: the deploy fails before it has a plan, and
			// nothing is recorded.
			name: "prepare fails on one host",
			fault: func(t *testing.T, e *runtest.Env, _ string) {
				e.Fake(1).On("prepare server").Exit(1, "read-only file system")
			},
			code: exitcode.Failed, says: []string{"read-only"},
		},
		{
			name:  "upload fails on one host",
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Fake(2).On("as it arrives").Exit(1, "quota exceeded") },
			code:  exitcode.Failed, result: server.ResultFailed, stage: "ship", says: []string{"web3", "quota"},
			hosts:     []string{server.ResultAborted, server.ResultAborted, server.ResultFailed},
			discarded: true,
		},
		{
			name:  "upload after the stream fails",
			shape: shape{env: "    parallel: 1\n"},
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Fake(2).On("as it arrives").Exit(1, "quota exceeded") },
			code:  exitcode.Failed, result: server.ResultFailed, stage: "ship", says: []string{"web3", "quota"},
			hosts:     []string{server.ResultAborted, server.ResultAborted, server.ResultFailed},
			discarded: true,
		},
		{
			name:  "restart fails on one host",
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Fake(1).On("restart").Nth(1).Exit(1, "unit failed") },
			code:  exitcode.RolledBack, result: server.ResultRolledBack, stage: "swap", says: []string{"rolled back", "unit failed"},
			hosts:    []string{server.ResultRolledBack, server.ResultRolledBack, server.ResultRolledBack},
			services: [][]string{rolledBack, {"restart OLD", "stop OLD", "restart OLD"}, rolledBack},
		},
		{
			name: "switch fails on one host",
			fault: func(t *testing.T, e *runtest.Env, _ string) {
				e.Fake(1).On("switch current to").Nth(1).Exit(1, "rename: input/output error")
			},
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "swap", says: []string{"rolled back", "input/output error"},
			hosts:    []string{server.ResultRolledBack, server.ResultFailed, server.ResultRolledBack},
			services: [][]string{rolledBack, {"restart OLD", "stop OLD", "restart OLD"}, rolledBack},
		},
		{
			name: "the rollback's switch fails too",
			fault: func(t *testing.T, e *runtest.Env, _ string) {
				e.Fake(1).On("restart").Nth(1).Exit(1, "unit failed")
				e.Fake(1).On("switch current to").Nth(2).Exit(1, "rename: input/output error")
			},
			code: exitcode.RollbackFailed, result: server.ResultRollbackFailed, stage: "swap",
			says: []string{"rollback failed too", "input/output error"},
			// Only web2 failed to go back: the others say they did.
			hosts:    []string{server.ResultRolledBack, server.ResultRollbackFailed, server.ResultRolledBack},
			live:     []string{"OLD", "NEW", "OLD"},
			services: [][]string{rolledBack, {"restart OLD", "stop OLD"}, rolledBack},
		},
		{
			name: "health fails everywhere",
			fault: func(t *testing.T, e *runtest.Env, marker string) {
				// The old release is healthy again once the rollback
				// switches back to it.
				for i := range e.Names {
					e.Fake(i).On("switch current to").Nth(2).Then(func() { os.Remove(marker) }).Pass()
				}
				touch(t, marker)
			},
			code: exitcode.RolledBack, result: server.ResultRolledBack, stage: "health", says: []string{"health failed", "rolled back"},
			services: [][]string{rolledBack, rolledBack, rolledBack},
		},
		{
			name:  "the old release is unhealthy after the rollback too",
			fault: func(t *testing.T, e *runtest.Env, marker string) { touch(t, marker) },
			code:  exitcode.RollbackFailed, result: server.ResultRollbackFailed, stage: "health",
			says:     []string{"not healthy after the rollback either"},
			services: [][]string{rolledBack, rolledBack, rolledBack},
		},
		{
			name:  "migration fails on one of three hosts",
			shape: shape{migration: true},
			// The migration runs, then fails: the backup must undo it.
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Fake(1).On("migrate").Pass().Err(exitError("migrate")) },
			code:  exitcode.RolledBack, result: server.ResultRolledBack, stage: "swap", says: []string{"migration failed", "database restored"},
			hosts:    []string{server.ResultRolledBack, server.ResultFailed, server.ResultRolledBack},
			services: [][]string{rolledBack, {"restart OLD", "restart OLD"}, rolledBack},
		},
		{
			name:  "migration fails on the only host",
			shape: shape{hosts: 1, migration: true},
			fault: func(t *testing.T, e *runtest.Env, _ string) { e.Fake(0).On("migrate").Pass().Err(exitError("migrate")) },
			code:  exitcode.Failed, result: server.ResultFailed, stage: "swap", says: []string{"migration failed", "database restored"},
			services: [][]string{{"restart OLD", "restart OLD"}},
		},
	}
	var shapes []shape
	for _, c := range cases {
		shapes = append(shapes, c.project())
	}
	projects := fixtures(t, shapes...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, projects[c.project()]) })
	}
}

func (c deployFault) run(t *testing.T, f *fixture) {
	e, old := f.restore(t), f.old
	var dbs []string
	for i := range e.Names {
		dbs = append(dbs, database(t, e, i))
	}
	before := historyLengths(t, e)
	c.fault(t, e, f.marker)
	var opts run.Options
	if c.previous {
		opts.Previous = e.State(t, 0).Revision
	}
	r, err := deploy(context.Background(), t, e, opts, quickHealth)
	assertCode(t, e, err, c.code, c.says...)
	var id string
	if r.Plan != nil {
		id = r.Plan.Release
	}
	for i := range e.Names {
		live := "OLD"
		if c.live != nil {
			live = c.live[i]
		}
		if got, want := e.Live(t, i), expand([]string{live}, old, id)[0]; got != want {
			t.Errorf("host %d runs %s, want %s", i, got, want)
		}
		svc := untouched
		if c.services != nil {
			svc = c.services[i]
		}
		assertServices(t, e, i, svc, old, id)
		if got := database(t, e, i); got != dbs[i] {
			t.Errorf("host %d database is %q, want %q as before the deploy", i, got, dbs[i])
		}
	}
	assertIntact(t, e, old)
	assertUnlocked(t, e)
	if c.result != "" {
		hosts := c.hosts
		if hosts == nil {
			hosts = slices.Repeat([]string{c.result}, len(e.Names))
		}
		assertRecorded(t, e, r, c.result, c.stage, hosts...)
	} else if got := historyLengths(t, e); !slices.Equal(got, before) {
		t.Errorf("history lengths %v, want %v as before", got, before)
	}
	if c.discarded && r.Plan != nil {
		assertAbsent(t, e, r.Plan.Release)
	}
	if rep := readReport(t, r); rep.ExitCode != c.code || rep.Error == "" {
		t.Errorf("report: exit %d, error %q", rep.ExitCode, rep.Error)
	}
}

// quickHealth gives up on failing health checks soon.
func quickHealth(rc *run.Context) { rc.Env.HealthWait.Deadline = 100 * time.Millisecond }

// database is host i's database file, which the migrations append to.
func database(t *testing.T, e *runtest.Env, i int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.Roots[i], "shared", "data", "db"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
