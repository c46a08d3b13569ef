// Package targets is Stagecoach's Mage targets. A project adopts Stagecoach
// with a magefile that imports them:
//
//	//go:build mage
//	package main
//
//	import (
//		//mage:import
//		_ "github.com/stagecoach/stagecoach/stages/targets"
//	)
//
// Targets take no flags; these environment variables set their options:
//
//	STAGECOACH_CONFIG       config file (default stagecoach.yml)
//	STAGECOACH_ENV          environment to deploy (default: the first one)
//	STAGECOACH_ALLOW_DIRTY  1 to deploy uncommitted changes
//	STAGECOACH_FORCE        1 for a full deploy when the deployed revision is unknown to git
//	STAGECOACH_PREVIOUS     treat this revision as the last deployed one
//	STAGECOACH_BREAK_LOCK   1 to break a stale deploy lock (its holder stopped its heartbeat)
//	STAGECOACH_LOCK_WAIT    how long to wait for a held deploy lock, e.g. 2m (default 0: fail at once)
//	STAGECOACH_RELEASE      rollback: the release id to go back to (default: the previous one)
//	STAGECOACH_RESTORE_DB   rollback: 1 to also restore the database backup taken before the release being left
//	STAGECOACH_REPORT       where Deploy writes its JSON report (default .stagecoach/reports/<release>.json)
//	STAGECOACH_JSON         check: 1 prints the result as JSON on stdout; a path writes it there
//
// A deploy lock whose holder ran on this machine (same hostname, boot id
// and PID namespace, Linux only) and whose process is gone, a deploy
// killed with SIGKILL say, is broken at once without STAGECOACH_BREAK_LOCK,
// with a warning, and the deploy history records it. With
// STAGECOACH_LOCK_WAIT the targets poll a held lock until it is released,
// or breakable (stale with STAGECOACH_BREAK_LOCK=1, or its holder dead),
// or the wait ends.
package targets

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/magefile/mage/mg"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/ui"
)

var (
	runOnce   sync.Once
	shared    *pipeline.Run
	sharedErr error
)

// current opens the run shared by every target of this process, so that a
// chain of targets loads the config once and passes results along.
func current() (*pipeline.Run, error) {
	runOnce.Do(func() {
		opts, err := optionsFromEnv()
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = pipeline.Open(opts, ui.Default())
	})
	return shared, sharedErr
}

// optionsFromEnv reads the options from the STAGECOACH_* variables; a value
// that does not parse is an error with the BadConfig exit code.
func optionsFromEnv() (pipeline.Options, error) {
	wait, err := duration("STAGECOACH_LOCK_WAIT")
	if err != nil {
		return pipeline.Options{}, err
	}
	return pipeline.Options{
		ConfigPath:  os.Getenv("STAGECOACH_CONFIG"),
		Environment: os.Getenv("STAGECOACH_ENV"),
		AllowDirty:  flag("STAGECOACH_ALLOW_DIRTY"),
		Force:       flag("STAGECOACH_FORCE"),
		Previous:    os.Getenv("STAGECOACH_PREVIOUS"),
		BreakLock:   flag("STAGECOACH_BREAK_LOCK"),
		LockWait:    wait,
		Release:     os.Getenv("STAGECOACH_RELEASE"),
		RestoreDB:   flag("STAGECOACH_RESTORE_DB"),
		ReportPath:  os.Getenv("STAGECOACH_REPORT"),
	}, nil
}

// duration reads a variable holding a duration such as 2m or 90s; unset
// or empty is 0.
func duration(name string) (time.Duration, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, exitcode.Errorf(exitcode.BadConfig, "%s=%q is not a duration such as 2m or 90s", name, os.Getenv(name))
	}
	return d, nil
}

func flag(name string) bool {
	switch os.Getenv(name) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// Detect shows what changed since the last successful deploy, per component.
func Detect(ctx context.Context) error {
	r, err := current()
	if err != nil {
		return err
	}
	return r.Detect(ctx)
}

// Build builds the components that changed (npm install only when the lockfile did).
func Build(ctx context.Context) error {
	mg.CtxDeps(ctx, Detect)
	r, err := current()
	if err != nil {
		return err
	}
	return r.Build(ctx)
}

// Package writes the release archive and its SHA-256 manifest.
func Package(ctx context.Context) error {
	mg.CtxDeps(ctx, Build)
	r, err := current()
	if err != nil {
		return err
	}
	return r.Package(ctx)
}

// Ship uploads the release to every host and verifies its SHA-256 there.
func Ship(ctx context.Context) error {
	return holding(ctx, "ship", func(ctx context.Context, r *pipeline.Run) error {
		mg.CtxDeps(ctx, Package)
		return r.Ship(ctx)
	})
}

// Swap unpacks and verifies the release, migrates, and switches current to it.
func Swap(ctx context.Context) error {
	return holding(ctx, "swap", func(ctx context.Context, r *pipeline.Run) error {
		mg.CtxDeps(ctx, Ship)
		return r.Swap(ctx)
	})
}

// Health runs the environment's health checks against every host.
func Health(ctx context.Context) error {
	r, err := current()
	if err != nil {
		return err
	}
	release, err := r.Hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	return r.Redact(r.Health(ctx))
}

// Cleanup removes old releases, backups and stale uploads, and reports disk use.
func Cleanup(ctx context.Context) error {
	return holding(ctx, "cleanup", func(ctx context.Context, r *pipeline.Run) error {
		return r.Cleanup(ctx)
	})
}

// Rollback switches back to the previous release (or STAGECOACH_RELEASE) and restarts.
func Rollback(ctx context.Context) error {
	return holding(ctx, "rollback", func(ctx context.Context, r *pipeline.Run) error {
		return r.Rollback(ctx)
	})
}

// Deploy runs Detect, Build, Package, Ship, Swap, Health and Cleanup, rolling back on failure.
func Deploy(ctx context.Context) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	r, err := current()
	if err != nil {
		return err
	}
	r.Command = "deploy"
	return r.Deploy(ctx)
}

// holding runs fn under the hosts' deploy locks, taken before fn's own
// dependencies run so a chain of targets holds them throughout.
func holding(ctx context.Context, command string, fn func(context.Context, *pipeline.Run) error) error {
	ctx, stop := interruptible(ctx)
	defer stop()
	r, err := current()
	if err != nil {
		return err
	}
	r.Command = command
	release, err := r.Hold(ctx)
	if err != nil {
		return err
	}
	defer release()
	return r.Redact(fn(ctx, r))
}

// interruptible cancels ctx on SIGTERM as Mage does on SIGINT, so a killed
// deploy still rolls back what it started and releases its locks.
func interruptible(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
}

// Plan prints per host what a deploy would do (changes, bytes, migrations, cleanup); changes nothing.
func Plan(ctx context.Context) error {
	r, err := current()
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ShowPlan(ctx, os.Stdout)
}

// Releases lists every host's releases and its latest deploys.
func Releases(ctx context.Context) error {
	r, err := current()
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ShowReleases(ctx, os.Stdout, 10)
}

// Plugins builds the plugins configured as Go package directories into plugins/bin.
func Plugins(ctx context.Context) error {
	r, err := current()
	if err != nil {
		return err
	}
	return r.BuildPlugins(ctx)
}
