package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/shell"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Files the install cache keeps beside the installed dependencies; both
// vanish with node_modules, which forces the next install.
const (
	installStamp    = ".timestamp"
	installLockHash = ".stagecoach-lock-sha256"
	installDir      = "node_modules"
)

// Build runs the install and build commands of the components the plan
// marks changed, one after another in config order, and checks each
// produced its output directory. The commands see the process environment
// plus STAGECOACH_RELEASE and BUILD_VERSION, both the release id.
func Build(ctx context.Context, cfg *config.Config, plan *run.Plan, log *ui.Logger) (run.BuildResult, error) {
	defer log.Step("build")()
	var res run.BuildResult
	env := append(os.Environ(),
		"STAGECOACH_RELEASE="+plan.Release,
		"BUILD_VERSION="+plan.Release,
	)
	for i := range cfg.Components {
		c := &cfg.Components[i]
		if !plan.Changed(c.Name) {
			log.Debugf("build %s: unchanged, skipped", c.Name)
			res.Components = append(res.Components, run.ComponentBuild{Name: c.Name, Skipped: true})
			continue
		}
		b, err := buildComponent(ctx, cfg.Dir, c, append(env, "STAGECOACH_COMPONENT="+c.Name), log)
		res.Components = append(res.Components, b)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func buildComponent(ctx context.Context, root string, c *config.Component, env []string, log *ui.Logger) (run.ComponentBuild, error) {
	start := time.Now()
	b := run.ComponentBuild{Name: c.Name}
	workdir := root
	switch {
	case c.Workdir != "":
		workdir = filepath.Join(root, c.Workdir)
	case c.Lockfile != "":
		workdir = filepath.Join(root, filepath.Dir(c.Lockfile))
	}

	if c.Install != "" {
		ran, err := install(ctx, root, workdir, c, env, log)
		if err != nil {
			return b, err
		}
		b.Installed, b.InstallCached = ran, !ran
	}
	if c.Build != "" {
		log.Infof("build %s: %s", c.Name, c.Build)
		if err := runLogged(ctx, workdir, c.Build, env, c.Name, log); err != nil {
			return b, fmt.Errorf("build %s: %w", c.Name, err)
		}
		b.Built = true
	}
	if err := checkOutput(root, c); err != nil {
		return b, err
	}
	b.Duration = time.Since(start)
	log.Infof("build %s: done in %s", c.Name, ui.Round(b.Duration))
	return b, nil
}

// install runs the component's install command unless the lockfile is
// unchanged since the last install: not newer than the timestamp file, or
// newer (a checkout touched it) but with the same SHA-256 as recorded. A
// component with an install command but no lockfile installs every time.
func install(ctx context.Context, root, workdir string, c *config.Component, env []string, log *ui.Logger) (ran bool, err error) {
	if c.Lockfile == "" {
		log.Infof("build %s: %s", c.Name, c.Install)
		if err := runLogged(ctx, workdir, c.Install, env, c.Name, log); err != nil {
			return false, fmt.Errorf("build %s: install: %w", c.Name, err)
		}
		return true, nil
	}
	lock := filepath.Join(root, c.Lockfile)
	lockInfo, err := os.Stat(lock)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("build %s: lockfile %s not found (set lockfile to the file whose change runs %q)", c.Name, c.Lockfile, c.Install)
	}
	if err != nil {
		return false, fmt.Errorf("build %s: %w", c.Name, err)
	}
	deps := filepath.Join(filepath.Dir(lock), installDir)
	stamp := filepath.Join(deps, installStamp)
	hashFile := filepath.Join(deps, installLockHash)

	stampInfo, stampErr := os.Stat(stamp)
	if stampErr == nil && !lockInfo.ModTime().After(stampInfo.ModTime()) {
		log.Debugf("build %s: install skipped, %s older than its install", c.Name, c.Lockfile)
		return false, nil
	}
	sum, err := archive.FileSHA256(lock)
	if err != nil {
		return false, fmt.Errorf("build %s: hash lockfile: %w", c.Name, err)
	}
	if stampErr == nil {
		if recorded, err := os.ReadFile(hashFile); err == nil && strings.TrimSpace(string(recorded)) == sum {
			log.Debugf("build %s: install skipped, %s touched but its content is unchanged", c.Name, c.Lockfile)
			if err := touchAfter(stamp, lockInfo.ModTime()); err != nil {
				return false, fmt.Errorf("build %s: refresh install timestamp: %w", c.Name, err)
			}
			return false, nil
		}
	}

	log.Infof("build %s: %s (%s changed)", c.Name, c.Install, c.Lockfile)
	if err := runLogged(ctx, filepath.Dir(lock), c.Install, env, c.Name, log); err != nil {
		return false, fmt.Errorf("build %s: install: %w", c.Name, err)
	}
	// Hash before stamp: an interruption between the two leaves no stamp,
	// which only costs a reinstall.
	if err := os.MkdirAll(deps, 0o755); err != nil {
		return true, fmt.Errorf("build %s: record install: %w", c.Name, err)
	}
	if err := os.WriteFile(hashFile, []byte(sum+"\n"), 0o644); err != nil {
		return true, fmt.Errorf("build %s: record install: %w", c.Name, err)
	}
	if err := touchAfter(stamp, lockInfo.ModTime()); err != nil {
		return true, fmt.Errorf("build %s: record install: %w", c.Name, err)
	}
	return true, nil
}

// touchAfter creates or updates path with a modification time of now, or
// of notBefore when that is later (a lockfile dated in the future must not
// look newer than its install forever).
func touchAfter(path string, notBefore time.Time) error {
	t := time.Now()
	if notBefore.After(t) {
		t = notBefore
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(path, t, t)
}

// checkOutput fails when the component's output directory is missing or
// empty after its build.
func checkOutput(root string, c *config.Component) error {
	dir := filepath.Join(root, c.Output)
	by := "the build"
	if c.Build != "" {
		by = fmt.Sprintf("%q", c.Build)
	}
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("build %s: output %s was not created by %s", c.Name, c.Output, by)
	}
	if err != nil {
		return fmt.Errorf("build %s: output: %w", c.Name, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("build %s: output %s is a file; expected the directory %s writes", c.Name, c.Output, by)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("build %s: output: %w", c.Name, err)
	}
	if len(entries) == 0 {
		return fmt.Errorf("build %s: output %s is empty after %s", c.Name, c.Output, by)
	}
	return nil
}

// runLogged runs a shell command with its output streamed line by line into
// the log at debug level; on failure the error carries the output's tail.
func runLogged(ctx context.Context, dir, script string, env []string, name string, log *ui.Logger) error {
	var tail shell.Tail
	out := log.Writer(name+" | ", true)
	err := shell.Run(ctx, dir, script, env, io.MultiWriter(out, &tail))
	out.Close()
	if err != nil {
		return fmt.Errorf("%w%s", err, tail.Suffix(log))
	}
	return nil
}

// Step is Build as a pipeline step: it writes rc.Built.
type Step struct{}

func (Step) String() string { return "build" }

// Run builds the components rc.Plan marks changed.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	built, err := Build(ctx, rc.Cfg, rc.Plan, rc.Log)
	rc.Built = built
	return err
}
