package pipeline

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestBackendOnlyDeployKeepsTheOldFrontendsAssets: with assets.versions 2,
// a page loaded before the frontend deploy (its v1 assets) still finds its
// assets after a backend-only deploy that follows: the new release holds
// the live frontend's assets as its own and carries v1's, since a release
// that reused the frontend counts as no new version of it.
func TestBackendOnlyDeployKeepsTheOldFrontendsAssets(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{Environment: "    assets: { dir: web/assets, versions: 2 }\n"})
	// Release ids sort by their second, then by commit: one second apart,
	// they sort in deploy order.
	nextSecond := func() { time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) }
	e.Write(t, "site/assets/app-v1.js", "v1\n")
	e.Commit(t, "frontend v1")
	mustDeploy(t, e)

	nextSecond()
	if err := os.Remove(filepath.Join(e.Dir, "site", "assets", "app-v1.js")); err != nil {
		t.Fatal(err)
	}
	e.Write(t, "site/assets/app-v2.js", "v2\n")
	e.Commit(t, "frontend v2")
	v2 := mustDeploy(t, e)

	nextSecond()
	e.Write(t, "app/handler.txt", "backend change\n")
	e.Commit(t, "backend only")
	id := mustDeploy(t, e)

	for _, a := range []string{"app-v1.js", "app-v2.js"} {
		for _, rel := range []string{v2, id} {
			if _, err := os.Stat(filepath.Join(e.Roots[0], "releases", rel, "web", "assets", a)); err != nil {
				t.Errorf("release %s lacks %s: %v", rel, a, err)
			}
		}
	}
	if got := e.Live(t, 0); got != id {
		t.Errorf("live %s, want %s", got, id)
	}
	// The state records which build of each component a release holds.
	path := server.Layout{Root: e.Roots[0]}.StatePath()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.ParseState(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if rel, _ := s.Release(id); len(rel.Reused) != 1 || rel.Reused["web"] != v2 {
		t.Errorf("state of %s records reuse %v, want web from %s", id, rel.Reused, v2)
	}
}
