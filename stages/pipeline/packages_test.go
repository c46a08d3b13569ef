package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// packages lists the release packages under the project's
// .stagecoach/packages/, sorted.
func packages(t *testing.T, e *runtest.Env) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.Dir, filepath.FromSlash(run.PackagesDir)))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

// TestDeployPrunesOldPackages: after a deploy, the local packages are
// those of the newest releases a retry or a rollback may want, and the
// deploy's own; what is not a package is left alone.
func TestDeployPrunesOldPackages(t *testing.T) {
	t.Parallel()
	e := runtest.New(t, runtest.Options{})
	dir := filepath.Join(e.Dir, filepath.FromSlash(run.PackagesDir))
	var old []string
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("20200101T00000%dZ-%07d", i, i)
		old = append(old, id)
		for _, f := range []string{"release.tar.gz", "manifest.json"} {
			writeUnder(t, filepath.Join(dir, id, f), "old package")
		}
	}
	writeUnder(t, filepath.Join(dir, "NOTES"), "not a package")
	id := mustDeploy(t, e)
	want := append(append([]string{}, old[5-pack.KeepPackages:]...), id, "NOTES")
	slices.Sort(want)
	if got := packages(t, e); !slices.Equal(got, want) {
		t.Errorf("packages after the deploy: %q, want %q", got, want)
	}
	// gzip or zstd, as the host has it.
	if archives, err := filepath.Glob(filepath.Join(dir, id, "release.tar.*")); err != nil || len(archives) != 1 {
		t.Errorf("the deployed release's package holds archives %q (%v), want one", archives, err)
	}
}

// TestShowPlanKeepsNoPackage: plan tells the bytes a deploy would send,
// the size of the very archive a deploy would write, without leaving one.
func TestShowPlanKeepsNoPackage(t *testing.T) {
	t.Parallel()
	e, _ := deployed(t, runtest.Options{}, false)
	before := packages(t, e)
	r := open(t, e, run.Options{})
	var out strings.Builder
	if err := r.ShowPlan(context.Background(), &out); err != nil {
		t.Fatalf("plan: %v\n%s", err, e.Log)
	}
	if got := packages(t, e); !slices.Equal(got, before) {
		t.Errorf("plan left packages %q, had %q", got, before)
	}
	// The package a deploy would write has the size the plan told.
	if err := r.Package(context.Background()); err != nil {
		t.Fatal(err)
	}
	size := r.Packaged.Manifest.Archive.Size
	if size == 0 || !strings.Contains(row(t, out.String(), e.Names[0]), ui.Bytes(size)+" (") {
		t.Errorf("plan does not tell the archive's %s:\n%s", ui.Bytes(size), out.String())
	}
}

func writeUnder(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
