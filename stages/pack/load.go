package pack

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
)

// Load returns the package of release id that an earlier run kept under
// the project's PackagesDir, for a retry: its manifest, and its archive,
// checked against the manifest's size and SHA-256, so that the hosts get
// the very bytes the first deploy sent.
func Load(projectDir, id string) (*run.Packaged, error) {
	if err := server.ValidID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(projectDir, filepath.FromSlash(run.PackagesDir), id)
	p := &run.Packaged{Dir: dir, ManifestPath: filepath.Join(dir, "manifest.json")}
	f, err := os.Open(p.ManifestPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the package of %s is gone from %s (pruned, or made on another machine): deploy again for a new release", id, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("load package %s: %w", id, err)
	}
	defer f.Close()
	if p.Manifest, err = archive.ReadManifest(f); err != nil {
		return nil, fmt.Errorf("load package %s: %w", id, err)
	}
	if p.Manifest.Release != id {
		return nil, fmt.Errorf("load package %s: its manifest is of release %q", id, p.Manifest.Release)
	}
	Compress(p, p.Manifest.Archive.Codec())
	if err := checkArchive(p.ArchivePath, p.Manifest.Archive); err != nil {
		return nil, fmt.Errorf("load package %s: %w; deploy again for a new release", id, err)
	}
	reused := map[string]bool{}
	for _, r := range p.Manifest.Reuse {
		reused[r.Path] = true
	}
	for _, file := range p.Manifest.Files {
		if !reused[file.Path] {
			p.Send = append(p.Send, file)
			p.Bytes += file.Size
		}
	}
	p.Reuse = p.Manifest.Reuse
	return p, nil
}

// checkArchive checks the archive at path is the one the manifest names.
func checkArchive(path string, want archive.ArchiveInfo) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read archive: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != want.Size || got != want.SHA256 {
		return fmt.Errorf("archive %s is not the one its manifest names (%d bytes, sha256 %.12s; want %d bytes, %.12s)", path, n, got, want.Size, want.SHA256)
	}
	return nil
}
