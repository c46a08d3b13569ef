package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Package hashes the build output of every changed component, takes the
// files of unchanged ones from the previous release's manifest prev (nil on
// a first deploy), and writes the archive of what the previous release does
// not already hold, plus the release's manifest, under PackagesDir.
func Package(ctx context.Context, cfg *config.Config, plan *run.Plan, prev *archive.Manifest, log *ui.Logger) (*run.Packaged, error) {
	defer log.Step("package " + plan.Release)()
	p, err := Plan(ctx, cfg, plan, prev, log)
	if err != nil {
		return nil, err
	}
	if err := Write(ctx, p, log); err != nil {
		return nil, err
	}
	return p, nil
}

// Plan is Package up to the archive: it scans the files, hashes those
// prev may hold, diffs them against prev and fills in the manifest, except
// the archive's size and SHA-256 and the hashes of the files left to
// Write, which Write adds.
func Plan(ctx context.Context, cfg *config.Config, plan *run.Plan, prev *archive.Manifest, log *ui.Logger) (*run.Packaged, error) {
	scanned, err := Scan(ctx, cfg, plan)
	if err != nil {
		return nil, err
	}
	return PlanScanned(cfg, plan, prev, scanned, log)
}

// Scanned is the files of the changed components' build outputs, by
// component name, as listed, with their hashing under way: PlanScanned
// ends it, and Stop when no plan will.
type Scanned struct {
	files   map[string][]archive.File
	hashing []*archive.Hashing
}

// Scan lists the build output of every component plan marks changed and
// starts hashing it: the part of Plan that reads the files, which needs no
// host.
func Scan(ctx context.Context, cfg *config.Config, plan *run.Plan) (Scanned, error) {
	if err := checkComponentDests(cfg.Components); err != nil {
		return Scanned{}, fmt.Errorf("package %s: %w", plan.Release, err)
	}
	scanned := Scanned{files: map[string][]archive.File{}}
	for _, c := range cfg.Components {
		if !plan.Changed(c.Name) {
			continue
		}
		out := filepath.Join(cfg.Dir, filepath.FromSlash(c.Output))
		if _, err := os.Stat(out); errors.Is(err, fs.ErrNotExist) {
			scanned.Stop()
			return Scanned{}, fmt.Errorf("package %s: component %s: output directory %s does not exist (did its build run and write to output: %s?)", plan.Release, c.Name, out, c.Output)
		}
		files, err := archive.List(ctx, out, componentDest(c))
		if err != nil {
			scanned.Stop()
			return Scanned{}, fmt.Errorf("package %s: component %s: %w", plan.Release, c.Name, err)
		}
		scanned.files[c.Name] = files
		scanned.hashing = append(scanned.hashing, archive.Hash(ctx, out, componentDest(c), files))
	}
	return scanned, nil
}

// settle ends the hashing. Only a file of the size and mode of one of
// prev's can be reused from it, so only then are the hashes waited for;
// else the hashing stops where it is, and the archive's writer hashes the
// rest as it reads them. On a first deploy the upload thus starts without
// reading the files twice.
func (s Scanned) settle(prev *archive.Manifest) error {
	may := false
	for _, files := range s.files {
		may = may || archive.MayReuse(files, prev)
	}
	if !may {
		s.Stop()
		return nil
	}
	for _, h := range s.hashing {
		if err := h.Wait(); err != nil {
			s.Stop()
			return err
		}
	}
	return nil
}

// Stop ends the hashing the scan started, keeping the hashes made.
func (s Scanned) Stop() {
	for _, h := range s.hashing {
		h.Stop()
	}
}

// PlanScanned is Plan of the files Scan found.
func PlanScanned(cfg *config.Config, plan *run.Plan, prev *archive.Manifest, scanned Scanned, log *ui.Logger) (*run.Packaged, error) {
	m := &archive.Manifest{
		Release:  plan.Release,
		Revision: plan.Revision,
		Created:  time.Now().UTC().Format(time.RFC3339),
	}
	p := &run.Packaged{Manifest: m}
	if err := scanned.settle(prev); err != nil {
		return nil, fmt.Errorf("package %s: %w", plan.Release, err)
	}
	for _, c := range cfg.Components {
		dest := componentDest(c)
		var files []archive.File
		src := archive.Source{Prefix: dest}
		if plan.Changed(c.Name) {
			files = scanned.files[c.Name]
			src.Dir = filepath.Join(cfg.Dir, filepath.FromSlash(c.Output))
		} else {
			if prev == nil {
				return nil, fmt.Errorf("package %s: component %s is unchanged but there is no previous release to reuse it from", plan.Release, c.Name)
			}
			files = prev.Under(dest)
			if len(files) == 0 {
				return nil, fmt.Errorf("package %s: component %s is unchanged but previous release %s has nothing under %s/ to reuse; deploy it as changed", plan.Release, c.Name, prev.Release, dest)
			}
			if m.Reused == nil {
				m.Reused = map[string]string{}
			}
			m.Reused[dest] = prev.Release
			// Symlinks and empty files are always sent and need no local
			// copy: src.Dir stays empty so that nothing is read from disk.
		}
		send, reuse := archive.Diff(files, prev)
		src.Files = send
		p.Sources = append(p.Sources, src)
		m.Files = append(m.Files, files...)
		p.Send = append(p.Send, send...)
		p.Reuse = append(p.Reuse, reuse...)
		log.Debugf("package %s: %d files, %d to send, %d reused", c.Name, len(files), len(send), len(reuse))
	}
	archive.SortFiles(m.Files)
	archive.SortFiles(p.Send)
	for _, f := range p.Send {
		p.Bytes += f.Size
	}
	if len(p.Reuse) > 0 {
		m.Base = prev.Release
		m.Reuse = p.Reuse
	}
	p.Dir = filepath.Join(cfg.Dir, filepath.FromSlash(run.PackagesDir), plan.Release)
	p.ManifestPath = filepath.Join(p.Dir, "manifest.json")
	Compress(p, archive.Gzip)
	return p, nil
}

// Compress sets the compression of the archive planned in p, and its path.
func Compress(p *run.Packaged, c archive.Compression) {
	p.Compression = c
	p.ArchivePath = filepath.Join(p.Dir, "release"+c.Ext())
}

// Write writes the archive planned in p to p.ArchivePath, and at the
// same time to every extra writer (Deploy streams it to the hosts), then
// the manifest with the archive's size and SHA-256. A failing extra writer
// fails the package: one that may fail alone must not return its errors.
func Write(ctx context.Context, p *run.Packaged, log *ui.Logger, extra ...io.Writer) error {
	m := p.Manifest
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return fmt.Errorf("package %s: %w", m.Release, err)
	}
	err := writePackageFile(p.ArchivePath, func(f *os.File) error {
		info, err := archive.Write(ctx, io.MultiWriter(append([]io.Writer{f}, extra...)...), p.Sources, p.Compression)
		m.Archive = info
		recordHashes(p)
		return err
	})
	if err != nil {
		return fmt.Errorf("package %s: %w", m.Release, err)
	}
	if err := writePackageFile(p.ManifestPath, func(f *os.File) error { return m.Encode(f) }); err != nil {
		return fmt.Errorf("package %s: %w", m.Release, err)
	}
	log.Infof("package %s: %d files, %d sent (%s), %d reused from %s; archive %s sha256 %s",
		m.Release, len(m.Files), len(p.Send), ui.Bytes(p.Bytes), len(p.Reuse), ui.Or(m.Base, "none"),
		ui.Bytes(m.Archive.Size), m.Archive.SHA256[:12])
	return nil
}

// Measure fills in the archive's size, SHA-256 and file count of the
// manifest planned in p by writing the archive to nowhere, through the same
// writer Write uses: what plan tells without leaving a package behind.
func Measure(ctx context.Context, p *run.Packaged) error {
	info, err := archive.Write(ctx, io.Discard, p.Sources, p.Compression)
	if err != nil {
		return fmt.Errorf("package %s: %w", p.Manifest.Release, err)
	}
	p.Manifest.Archive = info
	recordHashes(p)
	return nil
}

// recordHashes copies into the manifest and the files to send the SHA-256
// that the archive's writer filled into p.Sources for files the plan did
// not need hashed (see Scanned.settle).
func recordHashes(p *run.Packaged) {
	read := map[string]string{}
	for _, src := range p.Sources {
		for _, f := range src.Files {
			read[f.Path] = f.SHA256
		}
	}
	for _, files := range [][]archive.File{p.Manifest.Files, p.Send} {
		for i := range files {
			if files[i].SHA256 == "" {
				files[i].SHA256 = read[files[i].Path]
			}
		}
	}
}

// KeepPackages is how many packages of earlier releases Prune keeps
// besides the current one. A package is written for the run that ships
// it; no later run reads it (a rollback uses the releases on the hosts, a
// retry packages again under a new release id), so the newest few are
// kept only to look into or ship by hand.
const KeepPackages = 3

// Prune removes the packages under the project's PackagesDir but the
// KeepPackages newest ones (release ids sort in time order) and current's,
// and returns the release ids it removed. Entries that are not a release's
// package are left alone.
func Prune(projectDir, current string) ([]string, error) {
	dir := filepath.Join(projectDir, filepath.FromSlash(run.PackagesDir))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune packages: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != current && server.ValidID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(ids)))
	var removed []string
	for _, id := range ids[min(len(ids), KeepPackages):] {
		if err := os.RemoveAll(filepath.Join(dir, id)); err != nil {
			return removed, fmt.Errorf("prune packages: %w", err)
		}
		removed = append(removed, id)
	}
	return removed, nil
}

// componentDest is the component's place in the release, "" for the root.
func componentDest(c config.Component) string {
	d := c.Dest
	if d == "" {
		d = c.Name
	}
	d = path.Clean(d)
	if d == "." {
		return ""
	}
	return d
}

// checkComponentDests refuses dests that leave the release or nest inside one
// another: a component's files must be told apart by their path alone.
func checkComponentDests(cs []config.Component) error {
	for i, a := range cs {
		da := componentDest(a)
		if path.IsAbs(da) || da == ".." || strings.HasPrefix(da, "../") {
			return fmt.Errorf("component %s: dest %q must stay inside the release", a.Name, a.Dest)
		}
		for _, b := range cs[i+1:] {
			db := componentDest(b)
			if da == db || da == "" || db == "" || strings.HasPrefix(da, db+"/") || strings.HasPrefix(db, da+"/") {
				return fmt.Errorf("components %s and %s: dests %q and %q overlap", a.Name, b.Name, da, db)
			}
		}
	}
	return nil
}

// writePackageFile writes name through a temporary file renamed into place, so
// an interrupted package never leaves a truncated archive behind.
func writePackageFile(name string, write func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Step is Package as a pipeline step: it writes rc.Packaged.
type Step struct{}

func (Step) String() string { return "package" }

// Run packages rc.Plan against the live release's manifest.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	p, err := Package(ctx, rc.Cfg, rc.Plan, rc.Previous, rc.Log)
	if err != nil {
		return err
	}
	rc.Packaged = p
	return nil
}
