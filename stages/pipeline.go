package stages

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Options are a run's settings. Mage targets take no flags, so the targets
// package reads them from STAGECOACH_* environment variables.
type Options struct {
	ConfigPath  string // default stagecoach.yml
	Environment string // default: the first environment in the config
	AllowDirty  bool   // deploy uncommitted changes
	Force       bool   // full deploy when the deployed revision is unknown to git
	Previous    string // override the last deployed revision (normally read from the server)
	BreakLock   bool   // break a stale deploy lock (one whose holder stopped its heartbeat)
	Release     string // rollback: the release to go back to (default: the previous one)
	RestoreDB   bool   // rollback: also restore the database backup taken before the release being left
	ReportPath  string // where the JSON report goes (default .stagecoach/reports/<release>.json)
}

// Run is one invocation of the pipeline: the config, what each stage
// produced so far, and the log. Stages are methods so that Mage targets
// can run any prefix of the chain and share the results.
type Run struct {
	Opts Options
	Cfg  *config.Config
	Env  *config.Environment
	Log  *ui.Logger

	Plan     *Plan
	Built    BuildResult
	Packaged *Packaged
	// Previous is the manifest of the release live on the targets, nil when
	// there is none (first deploy) or the hosts disagree.
	Previous *archive.Manifest

	// Hosts are the environment's targets, connected by the first stage
	// that needs them.
	Hosts []*Host
	// Command names what this run does, for the lock holder's record.
	Command string

	envValues map[string]string // what shared/.env receives, secrets included
	connected bool
	holds     int
	started   time.Time
	report    *Report
}

// Open loads the config, selects the environment and registers its secrets
// with the logger so they are masked from then on.
func Open(opts Options, log *ui.Logger) (*Run, error) {
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
	values, secrets, err := env.LoadEnv(cfg.Dir, os.LookupEnv)
	if err != nil {
		return nil, exitcode.With(exitcode.BadConfig, err)
	}
	for _, s := range secrets {
		log.AddSecret(s)
	}
	r := &Run{Opts: opts, Cfg: cfg, Env: env, Log: log, Command: "deploy", started: time.Now(), envValues: values}
	r.report = &Report{App: cfg.App, Environment: env.Name, Started: r.started, redact: log.Redact}
	return r, nil
}

// peek connects and reads the hosts' state without taking their locks, for
// stages that only look (Detect, Plan) when no deploy holds the run.
func (r *Run) peek(ctx context.Context) error {
	if r.connected {
		return nil
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	return r.eachHost(ctx, r.Hosts, "read state of", r.loadState)
}

// previousRevision is what Detect diffs against: the revision every host
// recorded for its live release. When the hosts disagree, or the live
// release's manifest is missing, nothing can be reused: deploy everything.
func (r *Run) previousRevision() string {
	if r.Opts.Previous != "" || len(r.Hosts) == 0 {
		return r.Opts.Previous
	}
	first := r.Hosts[0]
	for _, h := range r.Hosts {
		if h.State.Revision != first.State.Revision || h.Live != first.Live || h.LiveManifest == nil {
			if h.Live != "" {
				r.Log.Warnf("hosts disagree on the live release or its manifest is missing: deploying everything")
			}
			return ""
		}
	}
	r.Previous = first.LiveManifest
	return first.State.Revision
}

// Detect decides what changed since the last successful deploy.
func (r *Run) Detect(ctx context.Context) error {
	if err := r.peek(ctx); err != nil {
		return err
	}
	plan, err := Detect(ctx, r.Cfg, DetectOptions{
		Previous:   r.previousRevision(),
		AllowDirty: r.Opts.AllowDirty,
		Force:      r.Opts.Force,
	}, r.Log)
	if err != nil {
		return err
	}
	r.Plan = plan
	var table strings.Builder
	PrintPlan(&table, plan)
	r.Log.Infof("%s", table.String())
	return nil
}

// Build builds the changed components.
func (r *Run) Build(ctx context.Context) error {
	built, err := Build(ctx, r.Cfg, r.Plan, r.Log)
	r.Built = built
	return err
}

// Package archives the release and writes its manifest.
func (r *Run) Package(ctx context.Context) error {
	p, err := Package(ctx, r.Cfg, r.Plan, r.Previous, r.Log)
	if err != nil {
		return err
	}
	r.Packaged = p
	return nil
}

// Redact returns err with every registered secret masked in its message,
// keeping its exit code, so that what Mage prints reveals no secret either.
func (r *Run) Redact(err error) error {
	if err == nil {
		return nil
	}
	msg := r.Log.Redact(err.Error())
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
