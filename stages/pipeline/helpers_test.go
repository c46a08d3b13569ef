package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// open opens a run of e; tweak, when given, changes its context.
func open(t *testing.T, e *runtest.Env, opts run.Options, tweak ...func(*run.Context)) *Run {
	t.Helper()
	return New(e.Open(t, opts, tweak...))
}

// deploy runs one deploy of e's HEAD (see open).
func deploy(ctx context.Context, t *testing.T, e *runtest.Env, opts run.Options, tweak ...func(*run.Context)) (*Run, error) {
	t.Helper()
	r := open(t, e, opts, tweak...)
	return r, r.Deploy(ctx)
}

// mustDeploy deploys e's HEAD and returns the release it made live.
func mustDeploy(t *testing.T, e *runtest.Env) string {
	t.Helper()
	r, err := deploy(context.Background(), t, e, run.Options{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, e.Log)
	}
	return r.Plan.Release
}

// deployed is a project whose hosts run its first release, with a change
// of the web component committed on top; with migration, the change adds
// a migration too. It returns the live release.
func deployed(t *testing.T, opts runtest.Options, migration bool) (*runtest.Env, string) {
	t.Helper()
	e := runtest.New(t, opts)
	old := mustDeploy(t, e)
	e.Write(t, "site/index.html", "<h1>v2</h1>\n")
	if migration {
		e.Write(t, "app/migrations/002.sql", "alter table t add column c int;\n")
	}
	e.Commit(t, "v2")
	return e, old
}

// shape is what a fixture's project is: its hosts, YAML added to its
// environment, and whether the change waiting to be deployed migrates.
type shape struct {
	hosts     int
	env       string
	migration bool
}

// fixture is a project deployed once (see deployed) and saved, so that
// each case of a table starts from the same hosts and work tree without
// deploying again: a deploy costs a dozen shells per host. Its health
// check fails while marker exists.
type fixture struct {
	env    *runtest.Env
	old    string // the release live on every host
	marker string
	saved  string // a copy of the work tree and of each host's root
}

// fixtures makes one fixture of each shape, for the cases of one test
// run one after another: they share the fixture's directories.
func fixtures(t *testing.T, shapes ...shape) map[shape]*fixture {
	t.Helper()
	out := map[shape]*fixture{}
	for _, s := range shapes {
		if out[s] != nil {
			continue
		}
		marker := filepath.Join(t.TempDir(), "unhealthy")
		e, old := deployed(t, runtest.Options{Hosts: s.hosts, Environment: s.env,
			Health: "      - command: test ! -e " + marker + "\n"}, s.migration)
		f := &fixture{env: e, old: old, marker: marker, saved: t.TempDir()}
		for i, dir := range f.dirs() {
			copyTree(t, dir, filepath.Join(f.saved, strconv.Itoa(i)))
		}
		out[s] = f
	}
	return out
}

func (f *fixture) dirs() []string { return append([]string{f.env.Dir}, f.env.Roots...) }

// restore puts the work tree and the hosts back as they were saved, and
// returns the project with new fake hosts (no rules, no calls) and log.
func (f *fixture) restore(t *testing.T) *runtest.Env {
	t.Helper()
	for i, dir := range f.dirs() {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		copyTree(t, filepath.Join(f.saved, strconv.Itoa(i)), dir)
	}
	if err := os.Remove(f.marker); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return f.env.Fresh()
}

// copyTree copies the directory src to dst, which must not exist, with
// its symlinks, hard links and modes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// removeSite deletes the web component's sources from the work tree, so
// its build fails.
func removeSite(t *testing.T, e *runtest.Env) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(e.Dir, "site")); err != nil {
		t.Fatal(err)
	}
}

// lastDeploy is the newest entry of host i's deploy history.
func lastDeploy(t *testing.T, e *runtest.Env, i int) server.Deploy {
	t.Helper()
	s := e.State(t, i)
	if len(s.Deploys) == 0 {
		t.Fatalf("host %d recorded no deploy", i)
	}
	return s.Deploys[len(s.Deploys)-1]
}

// readReport decodes the JSON report the run wrote: where its options
// say, or by default under the project's reports directory, named after
// the release.
func readReport(t *testing.T, r *Run) *run.Report {
	t.Helper()
	path := r.Opts.ReportPath
	if path == "" {
		name := "latest.json"
		if r.Report.Release != "" {
			name = r.Report.Release + ".json"
		}
		path = filepath.Join(r.Cfg.Dir, run.ReportsDir, name)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var rep run.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	return &rep
}

// lockPath is host i's deploy lock directory.
func lockPath(e *runtest.Env, i int) string {
	return filepath.Join(e.Roots[i], ".stagecoach", "lock")
}

// assertUnlocked fails unless every host's deploy lock is free.
func assertUnlocked(t *testing.T, e *runtest.Env) {
	t.Helper()
	for i := range e.Names {
		if runtest.Exists(t, lockPath(e, i)) {
			t.Errorf("host %d is still locked", i)
		}
	}
}

// assertLive fails unless current points at id on every host.
func assertLive(t *testing.T, e *runtest.Env, id string) {
	t.Helper()
	for i := range e.Names {
		if got := e.Live(t, i); got != id {
			t.Errorf("host %d runs %q, want %q", i, got, id)
		}
	}
}

// assertIntact fails unless release id on every host matches its
// manifest, file by file, as the check's integrity test sees it.
func assertIntact(t *testing.T, e *runtest.Env, id string) {
	t.Helper()
	for i, root := range e.Roots {
		verify, err := server.VerifyRelease(server.Layout{Root: root}, id, server.VerifySpec{Shared: []string{"data"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.Run(context.Background(), remote.NewLocal(), verify); err != nil {
			t.Errorf("host %d: release %s is not intact: %v", i, id, err)
		}
	}
}

// assertAbsent fails when release id, staged or complete, is on any host.
func assertAbsent(t *testing.T, e *runtest.Env, id string) {
	t.Helper()
	for i, root := range e.Roots {
		for _, p := range []string{filepath.Join(root, "releases", id), filepath.Join(root, "releases", ".staging-"+id)} {
			if runtest.Exists(t, p) {
				t.Errorf("host %d keeps %s", i, p)
			}
		}
	}
}

// assertCode fails unless err carries code and, when wants are given,
// says each of them.
func assertCode(t *testing.T, e *runtest.Env, err error, code int, wants ...string) {
	t.Helper()
	if got := exitcode.Of(err); got != code {
		t.Fatalf("exit code %d (%v), want %d\n%s", got, err, code, e.Log)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// assertRecorded fails unless the run's report and every host's newest
// deploy record say the fleet's result, at stage; with hosts, unless each
// host's own result (in its state and its report row) is hosts[i].
func assertRecorded(t *testing.T, e *runtest.Env, r *Run, result, stage string, hosts ...string) {
	t.Helper()
	rep := readReport(t, r)
	if rep.Result != result {
		t.Errorf("report result %q, want %q", rep.Result, result)
	}
	for i := range e.Names {
		if d := lastDeploy(t, e, i); d.Fleet != result || d.Stage != stage {
			t.Errorf("host %d recorded the fleet's %s at %q, want %s at %q", i, d.Fleet, d.Stage, result, stage)
		}
		if hosts == nil {
			continue
		}
		if d := lastDeploy(t, e, i); d.Result != hosts[i] {
			t.Errorf("host %d recorded its own %s, want %s", i, d.Result, hosts[i])
		}
		if got := rep.Hosts[i].Result; got != hosts[i] {
			t.Errorf("report row %d (%s): %s, want %s", i, rep.Hosts[i].Name, got, hosts[i])
		}
	}
}

// expand replaces OLD and NEW in the lines of want by release ids.
func expand(want []string, old, new string) []string {
	out := make([]string, len(want))
	for i, w := range want {
		out[i] = strings.NewReplacer("OLD", old, "NEW", new).Replace(w)
	}
	return out
}

// assertServices fails unless host i's services got exactly the
// operations of want, OLD and NEW standing for the release ids.
func assertServices(t *testing.T, e *runtest.Env, i int, want []string, old, new string) {
	t.Helper()
	if got, w := e.Services(t, i), expand(want, old, new); !slices.Equal(got, w) {
		t.Errorf("host %d services got %q, want %q", i, got, w)
	}
}

// cancelOn is a log that cancels the run when a line containing a text is
// written: an interrupt at a point the log shows, where no remote call is
// made to hang a fake rule on.
type cancelOn struct {
	io.Writer
	text   string
	cancel context.CancelFunc
	once   sync.Once
}

func (c *cancelOn) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.text) {
		c.once.Do(c.cancel)
	}
	return c.Writer.Write(p)
}

// logTo makes the run log to w, its hosts included.
func logTo(w io.Writer) func(*run.Context) {
	return func(rc *run.Context) {
		rc.Log = ui.New(w, true)
		rc.Fleet.Log = rc.Log
	}
}
