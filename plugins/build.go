package plugins

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// BinDir is where Build puts plugins built from a Go package directory,
// relative to the project root: a plugin named hello becomes plugins/bin/hello.
const BinDir = "plugins/bin"

// Executable returns the program to start for spec. When spec.Path is a
// directory it is a Go package, and the program is BinDir/<name> under
// projectDir; needsBuild then reports that the binary is missing or older
// than a .go file (or go.mod) in that directory. Otherwise spec.Path is the
// program itself, resolved against projectDir when relative.
func Executable(projectDir string, spec config.Plugin) (path string, needsBuild bool) {
	path = spec.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(projectDir, path)
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.IsDir() {
		return path, false
	}
	bin := filepath.Join(projectDir, BinDir, spec.Name)
	if !filepath.IsAbs(bin) {
		if abs, err := filepath.Abs(bin); err == nil {
			bin = abs
		}
	}
	built, err := os.Stat(bin)
	if err != nil {
		return bin, true
	}
	newer, err := newerSource(path, built.ModTime())
	return bin, err != nil || newer
}

// newerSource reports whether a Go source under dir changed after t.
func newerSource(dir string, t time.Time) (bool, error) {
	newer := false
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".go") && d.Name() != "go.mod" && d.Name() != "go.sum" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.ModTime().After(t) {
			newer = true
			return filepath.SkipAll
		}
		return nil
	})
	return newer, err
}

// Build compiles every plugin whose Path is a Go package directory into
// BinDir under projectDir, skipping those whose binary is newer than their
// sources. The package is built from projectDir, so it resolves imports
// through the project's go.mod. Run finds the binaries through Executable;
// specs are not changed.
func Build(ctx context.Context, projectDir string, specs []config.Plugin, log *ui.Logger) error {
	for _, spec := range specs {
		bin, needsBuild := Executable(projectDir, spec)
		src := spec.Path
		if fi, err := os.Stat(resolve(projectDir, src)); err != nil || !fi.IsDir() {
			continue // a ready-made executable: nothing to build
		}
		if !needsBuild {
			log.Debugf("plugin %s: %s is up to date", spec.Name, display(projectDir, bin))
			continue
		}
		if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
			return fmt.Errorf("build plugin %s: %w", spec.Name, err)
		}
		start := time.Now()
		pkg := src
		if !filepath.IsAbs(pkg) && !strings.HasPrefix(pkg, ".") {
			pkg = "./" + filepath.ToSlash(pkg) // a path, not an import path
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
		cmd.Dir = projectDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("build plugin %s from %s: %w: %s", spec.Name, src, err, remote.Tail(string(out), 20))
		}
		log.Infof("built plugin %s into %s in %s", spec.Name, display(projectDir, bin), ui.Round(time.Since(start)))
	}
	return nil
}

func resolve(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
