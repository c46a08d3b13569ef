package rollback_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// healthy is a command health check that passes on every host.
const healthy = `      - command: test -n "$PWD"` + "\n"

// project is a test project whose deploys the tests drive.
type project struct {
	*runtest.Env
	t *testing.T
}

func newProject(t *testing.T, hosts int, health string) *project {
	return &project{Env: runtest.New(t, runtest.Options{Hosts: hosts, Health: health}), t: t}
}

// change commits a new version of the site, with a new migration when
// migrate is set.
func (p *project) change(version string, migrate bool) {
	p.t.Helper()
	p.Write(p.t, "site/index.html", "<h1>shop "+version+"</h1>\n")
	if migrate {
		p.Write(p.t, "app/migrations/"+version+".sql", "alter table t add "+version+" int;\n")
	}
	p.Commit(p.t, version)
}

// deploy commits version and deploys it to every host; it returns the
// release id.
func (p *project) deploy(version string, migrate bool) string {
	p.t.Helper()
	p.change(version, migrate)
	return pipelinetest.Deploy(p.t, p.Env)
}

// hold opens a run with opts holding every host, as the rollback target
// and a deploy do, until release is called. Failed checks are retried
// only briefly.
func (p *project) hold(opts run.Options) (r *pipeline.Run, release func()) {
	p.t.Helper()
	r = pipeline.New(p.Open(p.t, opts))
	r.Env.HealthWait = config.Wait{Deadline: 50 * time.Millisecond, Interval: 10 * time.Millisecond}
	release, err := r.Hold(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	return r, release
}

// activate commits version and deploys it up to and including the swap,
// leaving the hosts as a deploy that fails right after it does, held
// until the test ends.
func (p *project) activate(version string, migrate bool) (*pipeline.Run, error) {
	p.t.Helper()
	p.change(version, migrate)
	r, release := p.hold(run.Options{})
	p.t.Cleanup(release)
	pipelinetest.Steps(p.t, p.Env, r.Detect, r.Build, r.Package, r.Ship)
	return r, r.Swap(context.Background())
}

// db is host i's database, "" when it has none.
func (p *project) db(i int) string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.Roots[i], "shared", "data", "db"))
	if err != nil && !os.IsNotExist(err) {
		p.t.Fatal(err)
	}
	return string(b)
}

// lastService is the last service operation on host i.
func (p *project) lastService(i int) string {
	p.t.Helper()
	ops := p.Services(p.t, i)
	if len(ops) == 0 {
		return ""
	}
	return ops[len(ops)-1]
}

// wantLive checks that every host runs id.
func (p *project) wantLive(id string) {
	p.t.Helper()
	for i := range p.Names {
		if got := p.Live(p.t, i); got != id {
			p.t.Errorf("host %d runs %q, want %q", i, got, id)
		}
	}
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" && err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// rel is the k-th release id of a seeded history.
func rel(k int) string { return fmt.Sprintf("20260102T0304%02dZ-%07x", k, k) }

// seed writes on every host what deploys of rel(1)..rel(n) would have left
// there, rel(n) live, without running them (a real deploy takes a good part
// of a second): the release directories, the state recording each deploy,
// and for each release in migrated, the backup of the database taken
// before its migration appended its id to it.
func (p *project) seed(n int, migrated ...int) {
	p.t.Helper()
	for _, root := range p.Roots {
		l := server.Layout{Root: root}
		if err := os.MkdirAll(l.SharedDir(), 0o755); err != nil {
			p.t.Fatal(err)
		}
		st := &server.State{Version: server.StateVersion, App: "shop"}
		for k := 1; k <= n; k++ {
			id := rel(k)
			p.put(filepath.Join(l.ReleaseDir(id), "index.html"), id+"\n")
			for _, m := range migrated {
				if m == k {
					p.migrate(l, id)
				}
			}
			st.AddRelease(server.Release{ID: id, Revision: fmt.Sprintf("%040x", k)})
			if err := st.RecordDeploy(server.Deploy{ID: id, Revision: fmt.Sprintf("%040x", k), Result: server.ResultSuccess}); err != nil {
				p.t.Fatal(err)
			}
		}
		data, err := st.Marshal()
		if err != nil {
			p.t.Fatal(err)
		}
		p.put(l.StatePath(), string(data))
		p.point(l, rel(n))
	}
}

// seedSwap leaves id on r's hosts as a deploy's swap does before a later
// step fails: staged, migrated when migrate is set, current switched to it.
func (p *project) seedSwap(r *pipeline.Run, id string, migrate bool) {
	p.t.Helper()
	r.Plan = &run.Plan{Release: id}
	for _, h := range r.Hosts {
		p.put(filepath.Join(h.Layout.ReleaseDir(id), "index.html"), id+"\n")
		if migrate {
			p.migrate(h.Layout, id)
		}
		p.point(h.Layout, id)
		h.Staged, h.Migrated, h.Switched = true, migrate, true
	}
}

// migrate backs up l's database as the migrations of id would find it,
// then appends id to it as they do.
func (p *project) migrate(l server.Layout, id string) {
	p.t.Helper()
	db := filepath.Join(l.SharedDir(), "data", "db")
	backup := filepath.Join(l.BackupDir(id), "shared", "data", "db")
	before, err := os.ReadFile(db)
	switch {
	case os.IsNotExist(err):
		p.put(backup+".absent", "")
	case err != nil:
		p.t.Fatal(err)
	default:
		p.put(backup, string(before))
	}
	p.put(db, string(before)+id+"\n")
}

// point makes l's current point at release id.
func (p *project) point(l server.Layout, id string) {
	p.t.Helper()
	tmp := l.CurrentLink() + ".tmp"
	if err := os.Symlink("releases/"+id, tmp); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, l.CurrentLink()); err != nil {
		p.t.Fatal(err)
	}
}

func (p *project) put(path, content string) {
	p.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}
