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
// Options come from STAGECOACH_* variables, for cron and CI, and from the
// called target's Mage flags, for interactive use; a flag given wins over
// its variable (mage deploy -env=production -allowDirty, mage rollback
// -release=<id> -restoreDB, mage check -json=<path>). mage -h <target>
// lists a target's flags. A bare bool flag (-allowDirty) is true;
// -allowDirty=false overrides STAGECOACH_ALLOW_DIRTY=1.
//
//	flag        variable                meaning
//	-config     STAGECOACH_CONFIG       config file (default stagecoach.yml)
//	-env        STAGECOACH_ENV          environment to deploy (default: the first one)
//	-hosts      STAGECOACH_HOSTS        only these hosts: names or tag:NAME, comma-separated; failed: those that failed last
//	-allowDirty STAGECOACH_ALLOW_DIRTY  1 to deploy uncommitted changes
//	-force      STAGECOACH_FORCE        1 for a full deploy when the deployed revision is unknown to git
//	            STAGECOACH_PREVIOUS     treat this revision as the last deployed one
//	-breakLock  STAGECOACH_BREAK_LOCK   1 to break a stale deploy lock (its holder stopped its heartbeat)
//	-lockWait   STAGECOACH_LOCK_WAIT    how long to wait for a held deploy lock, e.g. 2m (default 0: fail at once)
//	-release    STAGECOACH_RELEASE      rollback: the release id to go back to (default: the previous one)
//	-restoreDB  STAGECOACH_RESTORE_DB   rollback: 1 to also restore the database backup taken before the release being left
//	-report     STAGECOACH_REPORT       where Deploy writes its JSON report (default .stagecoach/reports/<release>.json)
//	-json       STAGECOACH_JSON         check: 1 (or -) prints the result as JSON on stdout; a path writes it there
//
// Every target takes -env, -config and -hosts; detect, build, package, ship, swap,
// plan and deploy take -allowDirty and -force; the targets that take the
// deploy lock (ship, swap, health, cleanup, rollback, maintenance, deploy) take -breakLock and
// -lockWait. Mage dependencies take no arguments, so the chain (swap runs
// ship, which runs package ...) goes through unexported argument-less
// functions: each exported target records its flags, then runs its body,
// and the run the chain shares is opened once with the called target's
// options. A later target on the same command line (mage build swap) may
// repeat those options but not change them.
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

	// called holds the flags of the target that was called, applied over
	// the STAGECOACH_* variables when current opens the run; opened is
	// what it was opened with.
	called flags
	opened *pipeline.Options

	// open opens a run; tests replace it.
	open = pipeline.Open
)

// flags are a target's Mage flags; nil is a flag not given, which leaves
// the option its variable set.
type flags struct {
	Env, Config       *string
	Hosts             *string
	AllowDirty, Force *bool
	BreakLock         *bool
	LockWait          *time.Duration
	Release           *string
	RestoreDB         *bool
	Report            *string
	JSON              *string // check only: not a pipeline option
}

// apply overlays the flags given on opts.
func (f flags) apply(opts pipeline.Options) (pipeline.Options, error) {
	setString(&opts.Environment, f.Env)
	setString(&opts.ConfigPath, f.Config)
	setString(&opts.Hosts, f.Hosts)
	setBool(&opts.AllowDirty, f.AllowDirty)
	setBool(&opts.Force, f.Force)
	setBool(&opts.BreakLock, f.BreakLock)
	if f.LockWait != nil {
		if *f.LockWait < 0 {
			return opts, exitcode.Errorf(exitcode.BadConfig, "-lockWait=%v is negative", *f.LockWait)
		}
		opts.LockWait = *f.LockWait
	}
	setString(&opts.Release, f.Release)
	setBool(&opts.RestoreDB, f.RestoreDB)
	setString(&opts.ReportPath, f.Report)
	return opts, nil
}

func setString(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// use records the flags of the target that was called, before its body
// (and the chain of targets it runs) opens the shared run. A target named
// after another on the same command line (mage build swap) finds the run
// open: its flags may repeat the options but not change them, which is a
// BadConfig error.
func use(f flags) error {
	if sharedErr != nil {
		return nil // the run failed to open; the target's current() returns why
	}
	if opened == nil {
		called = f
		return nil
	}
	opts, err := f.apply(*opened)
	if err != nil {
		return err
	}
	if opts != *opened {
		return exitcode.Errorf(exitcode.BadConfig, "the flags of a later target would change the options of the run the first target opened: give them to the first target")
	}
	called.JSON = f.JSON
	return nil
}

// current opens the run shared by every target of this process, so that a
// chain of targets loads the config once and passes results along. Its
// options are the STAGECOACH_* variables overlaid with the called
// target's flags.
func current() (*pipeline.Run, error) {
	runOnce.Do(func() {
		opts, err := options()
		if err != nil {
			sharedErr = err
			return
		}
		opened = &opts
		shared, sharedErr = open(opts, ui.Default())
	})
	return shared, sharedErr
}

// options are the STAGECOACH_* variables overlaid with the called target's flags.
func options() (pipeline.Options, error) {
	env, err := optionsFromEnv()
	if err != nil {
		return env, err
	}
	return called.apply(env)
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
		Hosts:       os.Getenv("STAGECOACH_HOSTS"),
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
func Detect(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	allowDirty *bool, // deploy uncommitted changes (STAGECOACH_ALLOW_DIRTY)
	force *bool, // full deploy when the deployed revision is unknown to git (STAGECOACH_FORCE)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, AllowDirty: allowDirty, Force: force}); err != nil {
		return err
	}
	return detect(ctx)
}

func detect(ctx context.Context) error {
	r, err := current()
	if err != nil {
		return err
	}
	return r.Detect(ctx)
}

// Build builds the components that changed (npm install only when the lockfile did).
func Build(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	allowDirty *bool, // deploy uncommitted changes (STAGECOACH_ALLOW_DIRTY)
	force *bool, // full deploy when the deployed revision is unknown to git (STAGECOACH_FORCE)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, AllowDirty: allowDirty, Force: force}); err != nil {
		return err
	}
	return build(ctx)
}

func build(ctx context.Context) error {
	mg.CtxDeps(ctx, detect)
	r, err := current()
	if err != nil {
		return err
	}
	return r.Build(ctx)
}

// Package writes the release archive and its SHA-256 manifest.
func Package(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	allowDirty *bool, // deploy uncommitted changes (STAGECOACH_ALLOW_DIRTY)
	force *bool, // full deploy when the deployed revision is unknown to git (STAGECOACH_FORCE)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, AllowDirty: allowDirty, Force: force}); err != nil {
		return err
	}
	return packageRelease(ctx)
}

func packageRelease(ctx context.Context) error {
	mg.CtxDeps(ctx, build)
	r, err := current()
	if err != nil {
		return err
	}
	return r.Package(ctx)
}

// Ship uploads the release to every host and verifies its SHA-256 there.
func Ship(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	allowDirty *bool, // deploy uncommitted changes (STAGECOACH_ALLOW_DIRTY)
	force *bool, // full deploy when the deployed revision is unknown to git (STAGECOACH_FORCE)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, AllowDirty: allowDirty, Force: force, BreakLock: breakLock, LockWait: lockWait}); err != nil {
		return err
	}
	return ship(ctx)
}

func ship(ctx context.Context) error {
	return holding(ctx, "ship", func(ctx context.Context, r *pipeline.Run) error {
		mg.CtxDeps(ctx, packageRelease)
		return r.Ship(ctx)
	})
}

// Swap unpacks and verifies the release, migrates, and switches current to it.
func Swap(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	allowDirty *bool, // deploy uncommitted changes (STAGECOACH_ALLOW_DIRTY)
	force *bool, // full deploy when the deployed revision is unknown to git (STAGECOACH_FORCE)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, AllowDirty: allowDirty, Force: force, BreakLock: breakLock, LockWait: lockWait}); err != nil {
		return err
	}
	return holding(ctx, "swap", func(ctx context.Context, r *pipeline.Run) error {
		mg.CtxDeps(ctx, ship)
		return r.Swap(ctx)
	})
}

// Health runs the environment's health checks against every host.
func Health(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, BreakLock: breakLock, LockWait: lockWait}); err != nil {
		return err
	}
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
func Cleanup(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, BreakLock: breakLock, LockWait: lockWait}); err != nil {
		return err
	}
	return holding(ctx, "cleanup", func(ctx context.Context, r *pipeline.Run) error {
		return r.Cleanup(ctx)
	})
}

// Rollback switches back to the previous release (or the one named by -release) and restarts.
func Rollback(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	release *string, // the release id to go back to (default: the previous one; STAGECOACH_RELEASE)
	restoreDB *bool, // also restore the database backup taken before the release being left (STAGECOACH_RESTORE_DB)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, Release: release, RestoreDB: restoreDB, BreakLock: breakLock, LockWait: lockWait}); err != nil {
		return err
	}
	return holding(ctx, "rollback", func(ctx context.Context, r *pipeline.Run) error {
		return r.Rollback(ctx)
	})
}

// Maintenance turns maintenance on or off (mage maintenance on|off): the slots' router answers every request with 503, Retry-After and shared/maintenance.html.
func Maintenance(ctx context.Context,
	state string, // on or off
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated (STAGECOACH_HOSTS)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
) error {
	on, err := maintenanceState(state)
	if err != nil {
		return err
	}
	if err := use(flags{Env: env, Config: config, Hosts: hosts, BreakLock: breakLock, LockWait: lockWait}); err != nil {
		return err
	}
	return holding(ctx, "maintenance "+state, func(ctx context.Context, r *pipeline.Run) error {
		return r.Maintenance(ctx, on)
	})
}

// maintenanceState reads mage maintenance's argument.
func maintenanceState(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, exitcode.Errorf(exitcode.BadConfig, "mage maintenance %q: want on or off (mage maintenance on, mage maintenance off)", s)
}

// Deploy runs Detect, Build, Package, Ship, Swap, Health and Cleanup, rolling back on failure.
func Deploy(ctx context.Context,
	env *string, // environment to deploy (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	allowDirty *bool, // deploy uncommitted changes (STAGECOACH_ALLOW_DIRTY)
	force *bool, // full deploy when the deployed revision is unknown to git (STAGECOACH_FORCE)
	breakLock *bool, // break a stale deploy lock (STAGECOACH_BREAK_LOCK)
	lockWait *time.Duration, // wait this long for a held deploy lock, e.g. 2m (STAGECOACH_LOCK_WAIT)
	report *string, // where to write the JSON report (default .stagecoach/reports/<release>.json; STAGECOACH_REPORT)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, AllowDirty: allowDirty, Force: force, BreakLock: breakLock, LockWait: lockWait, Report: report}); err != nil {
		return err
	}
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
func Plan(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
	allowDirty *bool, // plan with uncommitted changes (STAGECOACH_ALLOW_DIRTY)
	force *bool, // full deploy when the deployed revision is unknown to git (STAGECOACH_FORCE)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts, AllowDirty: allowDirty, Force: force}); err != nil {
		return err
	}
	r, err := current()
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ShowPlan(ctx, os.Stdout)
}

// Releases lists every host's releases and its latest deploys.
func Releases(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts}); err != nil {
		return err
	}
	r, err := current()
	if err != nil {
		return err
	}
	defer r.Close()
	return r.ShowReleases(ctx, os.Stdout, 10)
}

// Plugins builds the plugins configured as Go package directories into plugins/bin.
func Plugins(ctx context.Context,
	env *string, // environment (default: the first in the config; STAGECOACH_ENV)
	config *string, // config file (default stagecoach.yml; STAGECOACH_CONFIG)
	hosts *string, // only these hosts: names or tag:NAME, comma-separated; failed: those the last deploy left behind (STAGECOACH_HOSTS)
) error {
	if err := use(flags{Env: env, Config: config, Hosts: hosts}); err != nil {
		return err
	}
	r, err := current()
	if err != nil {
		return err
	}
	return r.BuildPlugins(ctx)
}
