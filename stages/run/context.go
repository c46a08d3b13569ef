package run

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Options are a run's settings. The targets package reads them from the
// STAGECOACH_* environment variables and the called target's flags.
type Options struct {
	ConfigPath  string        // default stagecoach.yml
	Environment string        // default: the first environment in the config
	AllowDirty  bool          // deploy uncommitted changes
	Force       bool          // full deploy when the deployed revision is unknown to git
	Previous    string        // override the last deployed revision (normally read from the server)
	BreakLock   bool          // break a stale deploy lock (one whose holder stopped its heartbeat)
	LockWait    time.Duration // wait this long for a held deploy lock to be released or become breakable; 0: not at all
	Release     string        // rollback: the release to go back to (default: the previous one)
	RestoreDB   bool          // rollback: also restore the database backup taken before the release being left
	ReportPath  string        // where the JSON report goes (default .stagecoach/reports/<release>.json)

	// Hosts selects the environment's hosts the run works on: names and
	// tag:NAME, comma-separated (config.Environment.Select), or "failed",
	// the hosts the last deploy did not bring to its release; "": all.
	Hosts string
}

// FailedHosts is the Options.Hosts value that selects the hosts the last
// deploy of the environment did not bring to its release.
const FailedHosts = "failed"

// Context is what one invocation's steps share: its settings, the hosts,
// and what each step produced so far. A step reads what it needs and
// writes only its own result.
type Context struct {
	Opts    Options
	Cfg     *config.Config
	Env     *config.Environment
	Log     *ui.Logger
	Fleet   *fleet.Fleet
	Command string // what this run does, for the lock holder's record
	Started time.Time
	Report  *Report
	// EnvValues is what shared/.env receives, secrets included.
	EnvValues map[string]string

	// Hosts are the environment's targets, connected by the first step
	// that needs them.
	Hosts []*fleet.Host

	Plan     *Plan       // Detect
	Built    BuildResult // Build
	Packaged *Packaged   // Package
	// Previous is the manifest of the release live on the targets, nil when
	// there is none (first deploy) or the hosts disagree.
	Previous *archive.Manifest
}

// Open loads the config, selects the environment and registers its secrets
// with the logger so they are masked from then on.
func Open(opts Options, log *ui.Logger) (*Context, error) {
	if opts.ConfigPath == "" {
		opts.ConfigPath = "stagecoach.yml"
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, exitcode.With(exitcode.BadConfig, err)
	}
	if opts.Environment == "" && len(cfg.Environments) > 0 {
		opts.Environment = cfg.Environments[0].Name
	}
	env, err := cfg.Environment(opts.Environment)
	if err != nil {
		return nil, exitcode.With(exitcode.BadConfig, err)
	}
	if opts.Hosts != "" && opts.Hosts != FailedHosts {
		hosts, err := env.Select(opts.Hosts)
		if err != nil {
			return nil, exitcode.With(exitcode.BadConfig, fmt.Errorf("%s: STAGECOACH_HOSTS=%s: %w", cfg.File, opts.Hosts, err))
		}
		env.Hosts = hosts
	}
	values, secrets, err := env.LoadEnv(cfg.Dir, os.LookupEnv)
	if err != nil {
		return nil, exitcode.With(exitcode.BadConfig, err)
	}
	for _, s := range secrets {
		log.AddSecret(s)
	}
	now := time.Now()
	f := fleet.New(env, log)
	f.LockWait = opts.LockWait
	if cfg.Migrations != nil {
		f.Databases = server.OutsideShared(cfg.Migrations.Backup)
	}
	return &Context{
		Opts: opts, Cfg: cfg, Env: env, Log: log, Fleet: f,
		Command: "deploy", Started: now, EnvValues: values,
		Report: &Report{App: cfg.App, Environment: env.Name, Started: now, redact: log.Redact},
	}, nil
}

// Redact returns err with every registered secret masked in its message,
// keeping its exit code, so that what Mage prints reveals no secret either.
func (c *Context) Redact(err error) error {
	if err == nil {
		return nil
	}
	msg := c.Log.Redact(err.Error())
	if msg == err.Error() {
		return err
	}
	return exitcode.With(exitcode.Of(err), &redacted{msg: msg, err: err})
}

// redacted is an error whose message has its secrets masked; errors.Is and
// errors.As still see the original.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Each runs fn on every host of the run, as Fleet.Each does.
func (c *Context) Each(ctx context.Context, doing string, fn func(context.Context, *fleet.Host) error) error {
	return c.Fleet.Each(ctx, c.Hosts, doing, fn)
}

// HostValues is what h's shared/.env receives: the environment's values
// with h's own vars over them, so that the services, migrations and
// command checks run on h (all through run_in.sh, which loads the file)
// see its values as variables.
func (c *Context) HostValues(h *fleet.Host) map[string]string {
	if len(h.Vars) == 0 {
		return c.EnvValues
	}
	values := make(map[string]string, len(c.EnvValues)+len(h.Vars))
	for k, v := range c.EnvValues {
		values[k] = v
	}
	for k, v := range h.Vars {
		values[k] = v
	}
	return values
}
