package swap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/swap"
)

func TestStageVerifiesAndFurnishesWithoutTouchingLive(t *testing.T) {
	t.Setenv("API_TOKEN", "s3cret-value")
	e := runtest.New(t, runtest.Options{Environment: "    env: { vars: {GREETING: hello world}, secrets: [API_TOKEN] }\n"})
	r := pipelinetest.Shipped(t, e)
	id, h := r.Plan.Release, r.Hosts[0]
	mark := len(e.Fake(0).Calls())

	if err := swap.Stage(context.Background(), r.Context, h); err != nil {
		t.Fatalf("stage: %v\n%s", err, e.Log)
	}
	if !h.Staged || h.Switched {
		t.Errorf("Staged %v, Switched %v", h.Staged, h.Switched)
	}
	e.CheckCalls(t, 0, mark, "stage release "+id, "link shared paths, carry assets, write shared/.env into "+id)
	l := h.Layout
	if got := runtest.ReadFile(t, filepath.Join(l.ReleaseDir(id), "web", "index.html")); got != "<h1>v1</h1>\n" {
		t.Errorf("web/index.html is %q", got)
	}
	if runtest.Exists(t, l.StagingDir(id)) {
		t.Error("staging directory left behind")
	}
	if target, err := os.Readlink(filepath.Join(l.ReleaseDir(id), "data")); err != nil || target != "../../shared/data" {
		t.Errorf("data links to %q (%v), want ../../shared/data", target, err)
	}
	if fi, err := os.Stat(filepath.Join(l.SharedDir(), "data")); err != nil || !fi.IsDir() {
		t.Errorf("shared/data is not a directory: %v", err)
	}
	env, err := os.Stat(l.EnvPath())
	if err != nil {
		t.Fatal(err)
	}
	if env.Mode().Perm() != 0o600 {
		t.Errorf("shared/.env has mode %v, want owner-only", env.Mode().Perm())
	}
	if got, want := runtest.ReadFile(t, l.EnvPath()), "API_TOKEN=s3cret-value\nGREETING='hello world'\n"; got != want {
		t.Errorf("shared/.env is %q, want %q", got, want)
	}
	if strings.Contains(e.Log.String(), "s3cret-value") {
		t.Error("the secret reached the log")
	}
	if e.Live(t, 0) != "" || e.Services(t, 0) != nil {
		t.Errorf("staging changed what is live: current %q, services %v", e.Live(t, 0), e.Services(t, 0))
	}
}

func TestStageReusesLiveFilesAndCarriesItsAssets(t *testing.T) {
	e := runtest.New(t, runtest.Options{Environment: "    assets: { dir: web/assets, versions: 2 }\n"})
	change(t, e, map[string]string{"site/assets/app-1.js": "one\n"})
	live := pipelinetest.Deploy(t, e)
	if err := os.Remove(filepath.Join(e.Dir, "site", "assets", "app-1.js")); err != nil {
		t.Fatal(err)
	}
	change(t, e, map[string]string{"site/assets/app-2.js": "two\n"})
	r := pipelinetest.Shipped(t, e)
	id, l := r.Plan.Release, r.Hosts[0].Layout

	if err := swap.Stage(context.Background(), r.Context, r.Hosts[0]); err != nil {
		t.Fatalf("stage: %v\n%s", err, e.Log)
	}
	// app is unchanged: its files are the live release's, hard-linked.
	if !sameFile(t, filepath.Join(l.ReleaseDir(id), "app", "migrate.sh"), filepath.Join(l.ReleaseDir(live), "app", "migrate.sh")) {
		t.Error("app/migrate.sh was not reused from the live release")
	}
	// A page loaded before the switch still finds the asset it references.
	if !sameFile(t, filepath.Join(l.ReleaseDir(id), "web", "assets", "app-1.js"), filepath.Join(l.ReleaseDir(live), "web", "assets", "app-1.js")) {
		t.Error("the live release's asset was not carried")
	}
	if got := runtest.ReadFile(t, filepath.Join(l.ReleaseDir(id), "web", "assets", "app-2.js")); got != "two\n" {
		t.Errorf("new asset is %q", got)
	}
}

func TestStageFailures(t *testing.T) {
	tests := []struct {
		name    string
		archive []entry                  // replaces the verified upload, when set
		fake    func(f *remotetest.Fake) // rules for the host, when set
		change  func(r *pipeline.Run)    // what the run holds, when set
		want    string                   // in the error; "" for success
		unsafe  bool                     // the error is an *server.UnsafeArchiveError
		is      error                    // the error wraps it, when set
		staged  bool                     // releases/<id> exists after
		calls   func(id string) []string // what the host was asked for
	}{{
		name:    "tree does not match the manifest",
		archive: []entry{{name: "web/index.html", body: "<h1>tampered</h1>\n"}},
		want:    "does not match its manifest: 1 modified (web/index.html); 2 missing (app/migrate.sh, app/migrations/001.sql)",
		calls:   stageOnly,
	}, {
		// GNU tar skips such a member and fails by itself, without
		// listing it: the script lists the archive again to name it.
		name:    "archive entry with ..",
		archive: []entry{{name: "../escape", body: "x"}},
		want:    "unsafe archive entry ../escape",
		unsafe:  true,
		calls:   stageOnly,
	}, {
		name:    "archive entry with an absolute name",
		archive: []entry{{name: "/escape", body: "x"}},
		want:    "refused",
		unsafe:  true,
		calls:   stageOnly,
	}, {
		name:    "archive symlink leaving the release",
		archive: []entry{{name: "web/passwd", link: "../../../../../etc/passwd"}},
		want:    "refused",
		unsafe:  true,
		calls:   stageOnly,
	}, {
		name:  "disk full while unpacking",
		fake:  func(f *remotetest.Fake) { f.On("stage release").Exit(1, "tar: Cannot write: No space left on device") },
		want:  "disk full on deploy@web1 at ",
		calls: stageOnly,
	}, {
		name:  "connection lost while unpacking",
		fake:  func(f *remotetest.Fake) { f.On("stage release").LoseConnection() },
		is:    remote.ErrConnectionLost,
		calls: stageOnly,
	}, {
		name:   "disk full while furnishing",
		fake:   func(f *remotetest.Fake) { f.On("link shared paths").Exit(1, "ln: No space left on device") },
		want:   "disk full on deploy@web1 at ",
		staged: true,
		calls:  stageAndFurnish,
	}, {
		name:   "variable name sh cannot source",
		change: func(r *pipeline.Run) { r.EnvValues = map[string]string{"BAD-NAME": "x"} },
		want:   `environment variable name "BAD-NAME" is not a valid shell name`,
		calls:  noCall, // refused before anything runs on the host
	}, {
		name:   "shared path leaving the release",
		change: func(r *pipeline.Run) { r.Env.Shared = []string{"../data"} },
		want:   "link shared paths of ",
		calls:  noCall, // refused before anything runs on the host
	}, {
		name:   "absolute assets dir",
		change: func(r *pipeline.Run) { r.Env.Assets.Dir = "/web/assets" },
		want:   "carry assets: ",
		calls:  noCall, // refused before anything runs on the host
	}, {
		name:   "release id unusable as a directory",
		change: func(r *pipeline.Run) { r.Packaged.Manifest.Release = "../x" },
		want:   "../x",
		calls:  func(string) []string { return nil },
	}, {
		name:   "nothing to furnish",
		change: func(r *pipeline.Run) { r.Env.Shared = nil },
		staged: true,
		calls:  stageOnly,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := runtest.New(t, runtest.Options{})
			r := pipelinetest.Shipped(t, e)
			id, h := r.Plan.Release, r.Hosts[0]
			if tt.archive != nil {
				writeArchive(t, h.Layout.IncomingPath(id), tt.archive...)
			}
			if tt.fake != nil {
				tt.fake(e.Fake(0))
			}
			if tt.change != nil {
				tt.change(r)
			}
			mark := len(e.Fake(0).Calls())

			err := swap.Stage(context.Background(), r.Context, h)
			if tt.want == "" && tt.is == nil && err != nil {
				t.Fatalf("stage: %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("error %v, want it to say %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			var unsafe *server.UnsafeArchiveError
			var ee *remote.ExitError
			if tt.unsafe && (!errors.As(err, &unsafe) || unsafe.Release != id || !errors.As(err, &ee) || ee.Code != server.ExitUnsafeArchive) {
				t.Errorf("error %#v is not an unsafe archive of %s", err, id)
			}
			e.CheckCalls(t, 0, mark, tt.calls(id)...)
			if h.Staged != tt.staged || runtest.Exists(t, h.Layout.ReleaseDir(id)) != tt.staged {
				t.Errorf("Staged %v, releases/%s exists %v; want both %v", h.Staged, id, runtest.Exists(t, h.Layout.ReleaseDir(id)), tt.staged)
			}
			if runtest.Exists(t, h.Layout.StagingDir(id)) {
				t.Error("staging directory left behind")
			}
			// Nothing an unsafe archive holds may land outside the release.
			for _, p := range []string{filepath.Join(h.Layout.ReleasesDir(), "escape"), filepath.Join(h.Layout.Root, "escape")} {
				if runtest.Exists(t, p) {
					t.Errorf("%s was written", p)
				}
			}
			if e.Live(t, 0) != "" {
				t.Errorf("current points at %s", e.Live(t, 0))
			}
		})
	}
}

func stageOnly(id string) []string { return []string{"stage release " + id} }

// noCall is no remote call at all.
func noCall(string) []string { return nil }

func stageAndFurnish(id string) []string {
	return []string{"stage release " + id, "link shared paths, carry assets, write shared/.env into " + id}
}
