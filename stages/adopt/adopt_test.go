package adopt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/adopt"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

const block = `    adopt:
      app: { web: www, app: /ROOT/opt/app }
      data: { data: var/db }
      web_root: web
`

var id = adopt.ReleaseID(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))

// project is a runtest project whose one host serves the app from plain
// directories: www/, an absolute opt/app/ and its data in var/db/.
func project(t *testing.T, health string) *runtest.Env {
	t.Helper()
	e := runtest.New(t, runtest.Options{Environment: strings.ReplaceAll(block, "/ROOT", "{root}"), Health: health})
	root := e.Roots[0]
	// The config cannot know the temporary root: write it in.
	data, _ := os.ReadFile(e.Config)
	os.WriteFile(e.Config, []byte(strings.ReplaceAll(string(data), "{root}", root)), 0o644)
	for p, content := range map[string]string{"www/index.html": "<h1>old</h1>\n", "opt/app/run.sh": "echo app\n", "var/db/db": "rows\n"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func adoptRun(t *testing.T, e *runtest.Env) (*pipeline.Run, error) {
	t.Helper()
	r := pipeline.New(e.Open(t, run.Options{}))
	r.Command = "adopt"
	release, err := r.Hold(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	return r, adopt.Run(context.Background(), r.Context, id)
}

func TestAdopt(t *testing.T) {
	e := project(t, "      - command: test -f web/index.html && test -f data/db\n")
	r, err := adoptRun(t, e)
	if err != nil {
		t.Fatalf("adopt: %v\n%s", err, e.Log)
	}
	root := e.Roots[0]
	if e.Live(t, 0) != id || r.Hosts[0].Live != id {
		t.Fatalf("live %s", e.Live(t, 0))
	}
	st := e.State(t, 0)
	if rel, ok := st.Release(id); !ok || rel.Status != server.StatusLive || st.Current != id || st.Deploys[0].Result != server.ResultAdopt {
		t.Errorf("state %+v", st)
	}
	for p, want := range map[string]string{"web/index.html": "<h1>old</h1>\n", "app/run.sh": "echo app\n", "data/db": "rows\n"} {
		if got := runtest.ReadFile(t, filepath.Join(root, "releases", id, p)); got != want {
			t.Errorf("release 0 %s: %q", p, got)
		}
	}
	if got := runtest.ReadFile(t, filepath.Join(root, ".stagecoach", "manifests", id+".sha256")); strings.Count(got, "\n") != 2 {
		t.Errorf("sums list:\n%s", got)
	}
	if target, _ := os.Readlink(filepath.Join(root, "shared", "data")); target != "../var/db" {
		t.Errorf("shared/data -> %q", target)
	}
	log := e.Log.String()
	for _, want := range []string{"adopted the live tree as release " + id + ": 2 files",
		"`root " + root + "/www;` becomes `root " + root + "/current/web;`"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if len(r.Report.Health) != 1 {
		t.Errorf("health results %+v", r.Report.Health)
	}
}

func TestAdoptFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  string // a call of the host that fails
		health string
		want   string
		code   int
		live   bool // current points at release 0 after
	}{
		{name: "take-over fails", fault: "take the live tree over", want: "injected", code: exitcode.Failed},
		{name: "manifest not written", fault: "write the manifest of", want: "release " + id + ": ", code: exitcode.Failed},
		{name: "verification fails", fault: "verify release", want: "release " + id + ": ", code: exitcode.Failed},
		{name: "switch fails", fault: "switch current", want: "release " + id + ": ", code: exitcode.Failed},
		{name: "unhealthy", health: "      - command: \"false\"\n", want: "adopted as release " + id + ", but the health checks fail", code: exitcode.Unhealthy, live: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := project(t, tc.health)
			if tc.fault != "" {
				e.Fake(0).On(tc.fault).Exit(1, "injected failure")
			}
			_, err := adoptRun(t, e)
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitcode.Of(err) != tc.code {
				t.Fatalf("adopt = %v (exit %d), want %q, exit %d", err, exitcode.Of(err), tc.want, tc.code)
			}
			_, lerr := os.Readlink(filepath.Join(e.Roots[0], "current"))
			if (lerr == nil) != tc.live {
				t.Errorf("current exists %v, want %v", lerr == nil, tc.live)
			}
			if _, err := os.Stat(filepath.Join(e.Roots[0], "releases", id)); (err == nil) != tc.live {
				t.Errorf("release 0 there %v, want %v: a failed adoption discards it", err == nil, tc.live)
			}
			if _, err := os.Stat(filepath.Join(e.Roots[0], "releases", ".staging-"+id)); err == nil {
				t.Error("the staging directory is left")
			}
			if got := runtest.ReadFile(t, filepath.Join(e.Roots[0], "www", "index.html")); got != "<h1>old</h1>\n" {
				t.Errorf("the live tree changed: %q", got)
			}
		})
	}
}

func TestAdoptWithoutABlock(t *testing.T) {
	e := runtest.New(t, runtest.Options{})
	_, err := adoptRun(t, e)
	if exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), "environment test has no adopt: block") {
		t.Errorf("adopt = %v", err)
	}
}

func TestAdoptRefusesADeployedRoot(t *testing.T) {
	e := project(t, "")
	if _, err := adoptRun(t, e); err != nil {
		t.Fatal(err)
	}
	_, err := adoptRun(t, e)
	var refused *server.AdoptRefusedError
	if !errors.As(err, &refused) {
		t.Errorf("second adopt = %v", err)
	}
}

func TestManifestAndInstructions(t *testing.T) {
	m := adopt.Manifest(id, []server.LiveFile{
		{Path: "web/z.js", Mode: 0o600, Size: 3, SHA256: strings.Repeat("a", 64)},
		{Path: "app/run", Mode: 0o700, Size: 2, SHA256: strings.Repeat("b", 64)},
		{Path: "web/a", Link: "z.js", Mode: 0o777},
	}, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	if m.Release != id || m.Created != "2026-03-01T12:00:00Z" || len(m.Files) != 3 ||
		m.Files[0].Path != "app/run" || m.Files[0].Mode != 0o755 || m.Files[1].Link != "z.js" || m.Files[2].Mode != 0o644 {
		t.Errorf("manifest %+v", m)
	}
	l := server.Layout{Root: "/srv/shop"}
	got := strings.Join(adopt.Instructions(&config.Adopt{App: map[string]string{"web": "/var/www/shop"}, WebRoot: "web"}, l, id), "\n")
	if !strings.Contains(got, "`root /var/www/shop;` becomes `root /srv/shop/current/web;`") {
		t.Errorf("instructions:\n%s", got)
	}
	if got := adopt.Instructions(&config.Adopt{App: map[string]string{"web": "www"}}, l, id); len(got) != 1 || !strings.Contains(got[0], "rollback target") {
		t.Errorf("without web_root: %q", got)
	}
}
