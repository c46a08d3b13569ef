package pack

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/ui"
)

func packageProject(t *testing.T) *config.Config {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"frontend/dist/index.html":         "<html>v1</html>",
		"frontend/dist/assets/app-11aa.js": "console.log('v1')",
		"frontend/dist/assets/logo.svg":    "<svg/>",
		"backend/dist/server":              "\x7fELF v1",
		"backend/dist/migrations/001.sql":  "create table t(x);",
		"backend/dist/migrations/.gitkeep": "",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(dir, "backend/dist/server"), 0o755)
	if err := os.Symlink("assets/app-11aa.js", filepath.Join(dir, "frontend/dist/app.js")); err != nil {
		t.Fatal(err)
	}
	return &config.Config{Dir: dir, Components: []config.Component{
		{Name: "frontend", Output: "frontend/dist", Dest: "frontend"},
		{Name: "backend", Output: "backend/dist", Dest: "server"},
	}}
}

func packagePlan(release string, changed ...string) *run.Plan {
	p := &run.Plan{Revision: "rev-" + release, Release: release}
	for _, name := range []string{"frontend", "backend"} {
		c := false
		for _, n := range changed {
			c = c || n == name
		}
		p.Components = append(p.Components, run.ComponentChange{Name: name, Changed: c})
	}
	return p
}

// archived lists the non-directory entries of a package's archive and
// checks the archive against its manifest.
func packageEntries(t *testing.T, p *run.Packaged) []string {
	t.Helper()
	data, err := os.ReadFile(p.ArchivePath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if p.Manifest.Archive.SHA256 != hex.EncodeToString(sum[:]) || p.Manifest.Archive.Size != int64(len(data)) {
		t.Errorf("manifest archive info %+v does not match the file", p.Manifest.Archive)
	}
	f, _ := os.Open(p.ManifestPath)
	defer f.Close()
	onDisk, err := archive.ReadManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(onDisk, p.Manifest) {
		t.Errorf("manifest.json differs from the returned manifest")
	}
	zr, err := gzip.NewReader(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeDir {
			names = append(names, h.Name)
		}
	}
	return names
}

func packagePaths(files []archive.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, f.Path)
	}
	return out
}

func TestPackageFirstDeploy(t *testing.T) {
	cfg := packageProject(t)
	p, err := Package(context.Background(), cfg, packagePlan("r1", "frontend", "backend"), nil, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"frontend/app.js", "frontend/assets/app-11aa.js", "frontend/assets/logo.svg", "frontend/index.html",
		"server/migrations/.gitkeep", "server/migrations/001.sql", "server/server",
	}
	if got := packagePaths(p.Manifest.Files); !reflect.DeepEqual(got, want) {
		t.Errorf("manifest files %v, want %v", got, want)
	}
	if got := packageEntries(t, p); !reflect.DeepEqual(got, want) {
		t.Errorf("archive entries %v, want %v", got, want)
	}
	if len(p.Reuse) != 0 || p.Manifest.Base != "" || p.Manifest.Reused != nil {
		t.Errorf("first deploy reuses something: %+v", p.Manifest)
	}
	if f, _ := p.Manifest.Lookup("server/server"); f.Mode != 0o755 {
		t.Errorf("server mode %#o, want 0755", f.Mode)
	}
	if p.Dir != filepath.Join(cfg.Dir, ".stagecoach", "packages", "r1") || p.Manifest.Revision != "rev-r1" {
		t.Errorf("Dir %s, revision %s", p.Dir, p.Manifest.Revision)
	}
	if p.Bytes != 15+17+6+7+18 {
		t.Errorf("Bytes = %d", p.Bytes)
	}
	checkHashes(t, p)
}

// checkHashes: with no previous release to reuse from, the files are
// hashed as they are packed; the manifest, written and in memory, and the
// files sent still have every file's SHA-256.
func checkHashes(t *testing.T, p *run.Packaged) {
	t.Helper()
	want := map[string]string{}
	for _, src := range p.Sources {
		files, err := archive.Scan(context.Background(), src.Dir, src.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			want[f.Path] = f.SHA256
		}
	}
	f, err := os.Open(p.ManifestPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	written, err := archive.ReadManifest(f)
	if err != nil {
		t.Fatal(err)
	}
	for what, files := range map[string][]archive.File{"manifest": p.Manifest.Files, "written manifest": written.Files, "Send": p.Send} {
		for _, f := range files {
			if !f.IsLink() && f.SHA256 != want[f.Path] {
				t.Errorf("%s: %s has SHA-256 %q, want %q", what, f.Path, f.SHA256, want[f.Path])
			}
		}
	}
}

func TestPackageReusesUnchanged(t *testing.T) {
	cfg := packageProject(t)
	first, err := Package(context.Background(), cfg, packagePlan("r1", "frontend", "backend"), nil, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	// The frontend is unchanged and its output is gone (it was not built):
	// its files must come from the previous release, not from disk.
	if err := os.RemoveAll(filepath.Join(cfg.Dir, "frontend/dist")); err != nil {
		t.Fatal(err)
	}
	// One backend file changed.
	if err := os.WriteFile(filepath.Join(cfg.Dir, "backend/dist/server"), []byte("\x7fELF v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := Package(context.Background(), cfg, packagePlan("r2", "backend"), first.Manifest, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(packagePaths(p.Manifest.Files), packagePaths(first.Manifest.Files)) {
		t.Errorf("release files %v, want %v", packagePaths(p.Manifest.Files), packagePaths(first.Manifest.Files))
	}
	// Only the changed file, the symlink and the empty file travel.
	want := []string{"frontend/app.js", "server/migrations/.gitkeep", "server/server"}
	if got := packageEntries(t, p); !reflect.DeepEqual(got, want) {
		t.Errorf("archive entries %v, want %v", got, want)
	}
	if !reflect.DeepEqual(packagePaths(p.Send), want) {
		t.Errorf("Send %v, want %v", packagePaths(p.Send), want)
	}
	var reused []string
	for _, r := range p.Reuse {
		if r.From != r.Path {
			t.Errorf("reuse %s from %s, want the same path", r.Path, r.From)
		}
		reused = append(reused, r.Path)
	}
	sort.Strings(reused)
	wantReuse := []string{"frontend/assets/app-11aa.js", "frontend/assets/logo.svg", "frontend/index.html", "server/migrations/001.sql"}
	if !reflect.DeepEqual(reused, wantReuse) {
		t.Errorf("Reuse %v, want %v", reused, wantReuse)
	}
	if p.Manifest.Reused["frontend"] != "r1" || len(p.Manifest.Reused) != 1 || p.Manifest.Base != "r1" {
		t.Errorf("Reused %v, Base %q", p.Manifest.Reused, p.Manifest.Base)
	}
	if f, _ := p.Manifest.Lookup("server/server"); f.SHA256 == first.Manifest.Files[6].SHA256 {
		t.Error("changed server kept its old hash")
	}
}

func TestPackageErrors(t *testing.T) {
	t.Run("missing output", func(t *testing.T) {
		cfg := packageProject(t)
		os.RemoveAll(filepath.Join(cfg.Dir, "backend/dist"))
		_, err := Package(context.Background(), cfg, packagePlan("r1", "frontend", "backend"), nil, ui.Discard())
		want := "component backend: output directory " + filepath.Join(cfg.Dir, "backend/dist") + " does not exist"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error = %v, want it to contain %q", err, want)
		}
	})
	t.Run("unchanged on first deploy", func(t *testing.T) {
		cfg := packageProject(t)
		_, err := Package(context.Background(), cfg, packagePlan("r1", "backend"), nil, ui.Discard())
		if err == nil || !strings.Contains(err.Error(), "component frontend is unchanged but there is no previous release") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("unchanged but absent before", func(t *testing.T) {
		cfg := packageProject(t)
		prev := &archive.Manifest{Release: "r0"}
		_, err := Package(context.Background(), cfg, packagePlan("r1", "backend"), prev, ui.Discard())
		if err == nil || !strings.Contains(err.Error(), "previous release r0 has nothing under frontend/") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("nested dests", func(t *testing.T) {
		cfg := packageProject(t)
		cfg.Components[1].Dest = "frontend/api"
		_, err := Package(context.Background(), cfg, packagePlan("r1", "frontend", "backend"), nil, ui.Discard())
		if err == nil || !strings.Contains(err.Error(), "overlap") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("escaping symlink", func(t *testing.T) {
		cfg := packageProject(t)
		os.Symlink("../../../etc", filepath.Join(cfg.Dir, "frontend/dist/etc"))
		_, err := Package(context.Background(), cfg, packagePlan("r1", "frontend", "backend"), nil, ui.Discard())
		if err == nil || !strings.Contains(err.Error(), "component frontend") || !strings.Contains(err.Error(), "symlink etc -> ../../../etc escapes") {
			t.Fatalf("error = %v", err)
		}
	})
}
