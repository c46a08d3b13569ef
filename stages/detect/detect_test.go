package detect

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/ui"
)

func TestDecide(t *testing.T) {
	frontend := config.Component{Name: "frontend", Watch: []string{"frontend/**", "!frontend/**/*.md", "!frontend/docs/**"}}
	backend := config.Component{Name: "backend", Watch: []string{"backend/**", "go.mod", "go.sum"}}
	assets := config.Component{Name: "assets", Watch: []string{"**/*.{png,svg}"}}
	components := []config.Component{frontend, backend, assets}
	migrations := &config.Migrations{Watch: []string{"backend/migrations/*.sql"}}

	tests := []struct {
		name      string
		changed   []string
		want      map[string][]string // changed component -> its listed files
		migration []string
	}{
		{"no change", nil, map[string][]string{}, nil},
		{"unrelated file", []string{"README.md", "docs/x.txt"}, map[string][]string{}, nil},
		{"double star deep", []string{"frontend/src/app/main.js"},
			map[string][]string{"frontend": {"frontend/src/app/main.js"}}, nil},
		{"excluded by extension", []string{"frontend/README.md", "frontend/src/notes.md"}, map[string][]string{}, nil},
		{"excluded directory", []string{"frontend/docs/guide.html"}, map[string][]string{}, nil},
		{"excluded and included mixed", []string{"frontend/README.md", "frontend/index.html"},
			map[string][]string{"frontend": {"frontend/index.html"}}, nil},
		{"exact file pattern", []string{"go.sum"}, map[string][]string{"backend": {"go.sum"}}, nil},
		{"root file does not match dir pattern", []string{"backend"}, map[string][]string{"backend": {"backend"}}, nil},
		{"prefix is not a directory", []string{"backend-tools/x.go"}, map[string][]string{}, nil},
		{"one file, two components", []string{"frontend/logo.svg"},
			map[string][]string{"frontend": {"frontend/logo.svg"}, "assets": {"frontend/logo.svg"}}, nil},
		{"migrations", []string{"backend/migrations/002_add.sql", "backend/main.go"},
			map[string][]string{"backend": {"backend/migrations/002_add.sql", "backend/main.go"}},
			[]string{"backend/migrations/002_add.sql"}},
		{"files listed are the first three", []string{"backend/a", "backend/b", "backend/c", "backend/d"},
			map[string][]string{"backend": {"backend/a", "backend/b", "backend/c"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, mig := decide(tt.changed, components, migrations)
			if len(got) != len(components) {
				t.Fatalf("got %d changes for %d components", len(got), len(components))
			}
			for i, c := range got {
				if c.Name != components[i].Name {
					t.Errorf("change %d is %s, want config order", i, c.Name)
				}
				files, want := tt.want[c.Name]
				if c.Changed != want {
					t.Errorf("%s changed = %v, want %v (%s)", c.Name, c.Changed, want, c.Reason)
				}
				if want && !reflect.DeepEqual(c.Files, files) {
					t.Errorf("%s files = %q, want %q", c.Name, c.Files, files)
				}
				if !want && c.Reason != ReasonUnchanged {
					t.Errorf("%s reason = %q", c.Name, c.Reason)
				}
			}
			if mig.Pending != (tt.migration != nil) || !reflect.DeepEqual(mig.Files, tt.migration) {
				t.Errorf("migrations = %+v, want files %q", mig, tt.migration)
			}
		})
	}

	got, _ := decide([]string{"backend/a", "backend/b", "backend/c", "backend/d"}, components, nil)
	if got[1].Reason != "4 files changed" || got[1].Matched != 4 {
		t.Errorf("reason = %q, matched = %d", got[1].Reason, got[1].Matched)
	}
	if _, mig := decide([]string{"x"}, nil, nil); mig.Pending || mig.Reason != "" {
		t.Errorf("no migrations configured: %+v", mig)
	}
}

func TestReleaseID(t *testing.T) {
	now := time.Date(2026, 11, 28, 13, 26, 5, 0, time.FixedZone("CET", 3600))
	if got := ReleaseID(now, "b609e69c0ffee"); got != "20261128T122605Z-b609e69" {
		t.Errorf("ReleaseID = %q", got)
	}
}

// repo is a temporary git repository for tests.
type repo struct {
	t   *testing.T
	dir string
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("git is required (apt-get install git)")
		}
		t.Skip("git not installed (apt-get install git)")
	}
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *repo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit writes files, commits everything and returns the commit's SHA.
func (r *repo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	r.write(files)
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

func testConfig(dir string) *config.Config {
	return &config.Config{
		Dir: dir,
		App: "shop",
		Components: []config.Component{
			{Name: "frontend", Watch: []string{"frontend/**", "!frontend/**/*.md"}, Output: "frontend/dist"},
			{Name: "backend", Watch: []string{"backend/**"}, Output: "backend/dist"},
		},
		Migrations: &config.Migrations{Watch: []string{"backend/migrations/**"}, Run: "true"},
	}
}

func changedNames(p *run.Plan) []string {
	var out []string
	for _, c := range p.Components {
		if c.Changed {
			out = append(out, c.Name)
		}
	}
	return out
}

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestDetectWholeRangeSinceLastDeploy(t *testing.T) {
	r := newRepo(t)
	deployed := r.commit("initial", map[string]string{
		"frontend/index.html": "v1", "backend/main.go": "v1", ".gitignore": "*.log\n",
	})
	// Two commits since the deploy: only the first touches the backend.
	r.commit("backend fix", map[string]string{"backend/main.go": "v2"})
	head := r.commit("frontend tweak", map[string]string{"frontend/index.html": "v2", "frontend/README.md": "docs"})

	plan, err := Detect(context.Background(), testConfig(r.dir), DetectOptions{Previous: deployed, Now: testNow}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if got := changedNames(plan); !reflect.DeepEqual(got, []string{"frontend", "backend"}) {
		t.Fatalf("changed = %v, want both (the backend changed in the first of two commits)", got)
	}
	if plan.Revision != head || plan.Previous != deployed || plan.Dirty {
		t.Errorf("plan = %+v", plan)
	}
	if plan.Release != "20260102T030405Z-"+head[:7] {
		t.Errorf("release = %q", plan.Release)
	}
	if b := plan.Components[1]; b.Reason != "1 file changed" || !reflect.DeepEqual(b.Files, []string{"backend/main.go"}) {
		t.Errorf("backend = %+v", b)
	}
	if f := plan.Components[0]; !reflect.DeepEqual(f.Files, []string{"frontend/index.html"}) {
		t.Errorf("frontend files = %q (README.md is excluded)", f.Files)
	}
	if plan.Migrations.Pending {
		t.Errorf("migrations = %+v", plan.Migrations)
	}

	// Deployed at head: nothing changed.
	plan, err = Detect(context.Background(), testConfig(r.dir), DetectOptions{Previous: head}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if got := changedNames(plan); len(got) != 0 {
		t.Errorf("changed = %v, want none", got)
	}

	// A rename moves a file out of the backend: its old path counts.
	r.git("mv", "backend/main.go", "main.go")
	r.git("commit", "-q", "-m", "move")
	plan, err = Detect(context.Background(), testConfig(r.dir), DetectOptions{Previous: head}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if got := changedNames(plan); !reflect.DeepEqual(got, []string{"backend"}) {
		t.Errorf("after rename changed = %v, want backend", got)
	}
}

func TestDetectFirstDeploy(t *testing.T) {
	r := newRepo(t)
	head := r.commit("initial", map[string]string{"README": "x"})
	plan, err := Detect(context.Background(), testConfig(r.dir), DetectOptions{Revision: "main", Now: testNow}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if plan.Revision != head {
		t.Errorf("revision = %s, want %s", plan.Revision, head)
	}
	for _, c := range plan.Components {
		if !c.Changed || c.Reason != ReasonFirstDeploy {
			t.Errorf("%+v", c)
		}
	}
	if !plan.Migrations.Pending || plan.Migrations.Reason != ReasonFirstDeploy {
		t.Errorf("migrations = %+v", plan.Migrations)
	}

	if _, err := Detect(context.Background(), testConfig(r.dir), DetectOptions{Revision: "nope"}, ui.Discard()); err == nil ||
		!strings.Contains(err.Error(), `"nope" is not a commit`) {
		t.Errorf("unknown revision error = %v", err)
	}
}

func TestDetectDirtyTree(t *testing.T) {
	r := newRepo(t)
	r.commit("initial", map[string]string{"backend/main.go": "v1", ".gitignore": "*.log\nnode_modules/\n"})
	// Ignored files never make the tree dirty.
	r.write(map[string]string{"debug.log": "x", "node_modules/a/b.js": "x"})
	cfg := testConfig(r.dir)
	if _, err := Detect(context.Background(), cfg, DetectOptions{}, ui.Discard()); err != nil {
		t.Fatalf("ignored files made the tree dirty: %v", err)
	}

	r.write(map[string]string{"backend/main.go": "v2", "backend/new.go": "untracked"})
	_, err := Detect(context.Background(), cfg, DetectOptions{}, ui.Discard())
	if err == nil || !strings.Contains(err.Error(), "uncommitted changes (backend/main.go, backend/new.go)") {
		t.Fatalf("dirty error = %v", err)
	}

	var logs bytes.Buffer
	plan, err := Detect(context.Background(), cfg, DetectOptions{AllowDirty: true}, ui.New(&logs, false))
	if err != nil {
		t.Fatal(err)
	}
	if !plan.Dirty || !strings.Contains(logs.String(), "WARN deploying a work tree with uncommitted changes") {
		t.Errorf("dirty = %v, log:\n%s", plan.Dirty, logs.String())
	}
	cfg.AllowDirty = true
	if _, err := Detect(context.Background(), cfg, DetectOptions{}, ui.Discard()); err != nil {
		t.Errorf("allow_dirty in config: %v", err)
	}
}

// TestDetectDirtyFiles: tracked changes anywhere make the tree dirty,
// staged or not; untracked files only inside the watch patterns of a
// component or of the migrations.
func TestDetectDirtyFiles(t *testing.T) {
	cfg := func(dir string) *config.Config {
		return &config.Config{
			Dir: dir, File: filepath.Join(dir, "stagecoach.yml"), App: "shop",
			Components: []config.Component{
				{Name: "frontend", Watch: []string{"frontend/**", "!frontend/**/*.md"}, Output: "frontend/dist"},
				{Name: "backend", Watch: []string{"backend/**"}, Output: "backend/dist"},
			},
			Migrations: &config.Migrations{Watch: []string{"db/migrations/**"}, Run: "true"},
		}
	}
	tests := []struct {
		name  string
		setup func(r *repo)
		dirty []string // nil: clean
	}{
		{"clean", func(r *repo) {}, nil},
		{"untracked outside the watch paths", func(r *repo) {
			r.write(map[string]string{
				"stagecoach": "a compiled binary", "magefiles/stagecoach": "another",
				"README.md~": "editor backup", ".idea/workspace.xml": "x", "docs/draft.txt": "x",
			})
		}, nil},
		{"untracked but excluded by a ! pattern", func(r *repo) {
			r.write(map[string]string{"frontend/notes.md": "x"})
		}, nil},
		{"ignored inside the watch paths", func(r *repo) {
			r.write(map[string]string{"frontend/dist/app.js": "built", "backend/server.log": "x"})
		}, nil},
		{"untracked inside a component's watch paths", func(r *repo) {
			r.write(map[string]string{"frontend/src/new.js": "x", "stagecoach": "binary"})
		}, []string{"frontend/src/new.js"}},
		{"untracked inside the migrations' watch paths", func(r *repo) {
			r.write(map[string]string{"db/migrations/002.sql": "x"})
		}, []string{"db/migrations/002.sql"}},
		{"modified tracked file inside the watch paths", func(r *repo) {
			r.write(map[string]string{"backend/main.go": "v2"})
		}, []string{"backend/main.go"}},
		{"modified tracked file outside the watch paths", func(r *repo) {
			r.write(map[string]string{"README.md": "v2"})
		}, []string{"README.md"}},
		{"staged modification", func(r *repo) {
			r.write(map[string]string{"README.md": "v2"})
			r.git("add", "README.md")
		}, []string{"README.md"}},
		{"staged new file outside the watch paths", func(r *repo) {
			r.write(map[string]string{"docs/new.txt": "x"})
			r.git("add", "docs/new.txt")
		}, []string{"docs/new.txt"}},
		{"deleted tracked file", func(r *repo) {
			if err := os.Remove(filepath.Join(r.dir, "docs/guide.txt")); err != nil {
				t.Fatal(err)
			}
		}, []string{"docs/guide.txt"}},
		{"staged deletion", func(r *repo) {
			r.git("rm", "-q", "frontend/index.html")
		}, []string{"frontend/index.html"}},
		{"staged rename", func(r *repo) {
			r.git("mv", "docs/guide.txt", "guide.txt")
		}, []string{"guide.txt"}},
		{"rename of an intent-to-add file in the work tree", func(r *repo) {
			if err := os.Rename(filepath.Join(r.dir, "docs/guide.txt"), filepath.Join(r.dir, "guide.txt")); err != nil {
				t.Fatal(err)
			}
			r.git("add", "-N", "guide.txt")
		}, []string{"guide.txt"}},
		{"tracked file's mode changed", func(r *repo) {
			if err := os.Chmod(filepath.Join(r.dir, "README.md"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, []string{"README.md"}},
	}
	guide := strings.Repeat("a line long enough for git to detect the rename\n", 10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			r.commit("initial", map[string]string{
				"frontend/index.html": "v1", "backend/main.go": "v1", "db/migrations/001.sql": "v1",
				"README.md": "v1", "docs/guide.txt": guide, ".gitignore": "dist/\n*.log\n",
			})
			tt.setup(r)
			plan, err := Detect(context.Background(), cfg(r.dir), DetectOptions{}, ui.Discard())
			if tt.dirty == nil {
				if err != nil {
					t.Fatalf("want a clean tree: %v", err)
				}
				if plan.Dirty {
					t.Error("plan.Dirty for a clean tree")
				}
				return
			}
			want := "the work tree has uncommitted changes (" + strings.Join(tt.dirty, ", ") + "); "
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want %q", err, want)
			}
			plan, err = Detect(context.Background(), cfg(r.dir), DetectOptions{AllowDirty: true}, ui.Discard())
			if err != nil || !plan.Dirty {
				t.Fatalf("allowed: dirty = %v, err = %v", plan != nil && plan.Dirty, err)
			}
		})
	}
}

// TestDetectDirtyMessage: the error says how to allow a dirty deploy, by
// the variable and by the config key, and names the first files.
func TestDetectDirtyMessage(t *testing.T) {
	r := newRepo(t)
	r.commit("initial", map[string]string{"backend/main.go": "v1"})
	r.write(map[string]string{
		"backend/a.go": "x", "backend/b.go": "x", "backend/c.go": "x", "backend/d.go": "x",
		"backend/e.go": "x", "backend/f.go": "x", "backend/main.go": "v2",
	})
	cfg := testConfig(r.dir)
	cfg.File = filepath.Join(r.dir, "deploy.yml")
	_, err := Detect(context.Background(), cfg, DetectOptions{}, ui.Discard())
	want := "detect: the work tree has uncommitted changes (backend/main.go, backend/a.go, backend/b.go, backend/c.go, backend/d.go and 2 more); " +
		"commit or stash them, or deploy them anyway with STAGECOACH_ALLOW_DIRTY=1 (or allow_dirty: true in deploy.yml)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

func TestDetectUnknownPrevious(t *testing.T) {
	r := newRepo(t)
	r.commit("initial", map[string]string{"backend/main.go": "v1"})
	gone := "0123456789abcdef0123456789abcdef01234567"
	_, err := Detect(context.Background(), testConfig(r.dir), DetectOptions{Previous: gone}, ui.Discard())
	if !errors.Is(err, ErrPreviousUnknown) || !strings.Contains(err.Error(), gone) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v", err)
	}
	plan, err := Detect(context.Background(), testConfig(r.dir), DetectOptions{Previous: gone, Force: true}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range plan.Components {
		if !c.Changed || c.Reason != ReasonForced {
			t.Errorf("%+v", c)
		}
	}
}

func TestDetectProjectInSubdirectory(t *testing.T) {
	r := newRepo(t)
	deployed := r.commit("initial", map[string]string{"app/backend/main.go": "v1", "other/backend/x.go": "v1"})
	r.commit("outside", map[string]string{"other/backend/x.go": "v2", "other/frontend/y": "v1"})
	cfg := testConfig(filepath.Join(r.dir, "app"))
	// A dirty file outside the project does not block its deploy.
	r.write(map[string]string{"other/dirty": "x"})

	plan, err := Detect(context.Background(), cfg, DetectOptions{Previous: deployed}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if got := changedNames(plan); len(got) != 0 {
		t.Errorf("changed = %v; changes outside the project root must not count", got)
	}

	r.commit("inside", map[string]string{"app/backend/main.go": "v2", "other/dirty": "x"})
	plan, err = Detect(context.Background(), cfg, DetectOptions{Previous: deployed}, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if got := changedNames(plan); !reflect.DeepEqual(got, []string{"backend"}) || plan.Components[1].Files[0] != "backend/main.go" {
		t.Errorf("changed = %v %+v, want backend with project-relative paths", got, plan.Components)
	}

	r.write(map[string]string{"app/backend/main.go": "v3"})
	if _, err := Detect(context.Background(), cfg, DetectOptions{}, ui.Discard()); err == nil ||
		!strings.Contains(err.Error(), "(backend/main.go)") {
		t.Errorf("dirty error = %v, want project-relative path", err)
	}
}

func TestDetectMigrationsCommand(t *testing.T) {
	r := newRepo(t)
	deployed := r.commit("initial", map[string]string{"backend/main.go": "v1"})
	r.commit("change", map[string]string{"backend/main.go": "v2"})
	for _, tt := range []struct {
		script  string
		pending bool
		err     string
	}{
		{`test "$STAGECOACH_PREVIOUS" = ` + deployed, true, ""},
		{"exit 1", false, ""},
		{"echo broken database url; exit 3", false, "exit status 3: broken database url"},
	} {
		cfg := testConfig(r.dir)
		cfg.Migrations.Detect = tt.script
		plan, err := Detect(context.Background(), cfg, DetectOptions{Previous: deployed}, ui.Discard())
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.script, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if plan.Migrations.Pending != tt.pending {
			t.Errorf("%s: migrations = %+v", tt.script, plan.Migrations)
		}
	}
}

func TestPrintPlan(t *testing.T) {
	plan := &run.Plan{
		Revision: "def5678aaaa", Previous: "abc1234bbbb", Release: "20260102T030405Z-def5678",
		Components: []run.ComponentChange{
			{Name: "frontend", Changed: true, Reason: "5 files changed", Files: []string{"frontend/a", "frontend/b", "frontend/c"}, Matched: 5},
			{Name: "backend", Reason: ReasonUnchanged},
		},
		Migrations: run.MigrationChange{Reason: ReasonNoMigrations},
	}
	var b bytes.Buffer
	if err := PrintPlan(&b, plan); err != nil {
		t.Fatal(err)
	}
	want := `release 20260102T030405Z-def5678 (abc1234..def5678)
COMPONENT     CHANGED  WHY
---------     -------  ---
frontend      yes      5 files changed: frontend/a, frontend/b, frontend/c, ...
backend       no       unchanged
(migrations)  no       none pending
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestNextReleaseID: a new release id sorts after every release the hosts
// know, even when made in the same second or by a client whose clock is
// behind.
func TestNextReleaseID(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 26, 5, 0, time.UTC)
	for _, tc := range []struct{ after, want string }{
		{"", "20261128T122605Z-b609e69"},
		{"20261128T122604Z-fffffff", "20261128T122605Z-b609e69"},
		{"20261128T122605Z-c000000", "20261128T122606Z-b609e69"},
		{"20261128T122605Z-b609e69", "20261128T122606Z-b609e69"},
		{"20261201T000000Z-0000000", "20261201T000001Z-b609e69"},
		{"not-an-id", "20261128T122605Z-b609e69"},
	} {
		if got := NextReleaseID(now, "b609e69c0ffee", tc.after); got != tc.want {
			t.Errorf("NextReleaseID(after %q) = %q, want %q", tc.after, got, tc.want)
		}
	}
}
