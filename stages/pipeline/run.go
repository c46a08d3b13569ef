// Package pipeline runs Stagecoach's steps in order: the ordered deploy
// with its two phases across hosts and its automatic rollback, and the
// middleware every step runs in (plugin hooks, timing, the report). The
// Mage targets drive it through Run.
package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/stagecoach/stagecoach/stages/build"
	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/checkout"
	"github.com/stagecoach/stagecoach/stages/cleanup"
	"github.com/stagecoach/stagecoach/stages/detect"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/health"
	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/rollback"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ship"
	"github.com/stagecoach/stagecoach/stages/slots"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Step is one stage of the pipeline. It reads what it needs from the run
// context and writes only its own result there.
type Step interface {
	String() string
	Run(ctx context.Context, rc *run.Context) error
}

// Options are a run's settings.
type Options = run.Options

// ReportsDir is where deploy reports are written, relative to the project.
const ReportsDir = run.ReportsDir

// Run is one invocation of the pipeline. Its methods are the Mage targets'
// work; a chain of targets shares one Run, so each step's result passes to
// the next.
type Run struct {
	*run.Context

	connected bool
	holds     int
	buildLock *checkout.BuildLock // held from the build to the archive written
}

// Open loads the config and selects the environment (see run.Open).
func Open(opts Options, log *ui.Logger) (*Run, error) {
	rc, err := run.Open(opts, log)
	if err != nil {
		return nil, err
	}
	return New(rc), nil
}

// New returns the run of an opened context.
func New(rc *run.Context) *Run { return &Run{Context: rc} }

// connect opens one connection per host, once per run.
func (r *Run) connect(ctx context.Context) error {
	if r.connected {
		return nil
	}
	hosts, err := r.Fleet.Connect(ctx, r.Env.Hosts, r.Env.Root)
	if err != nil {
		return err
	}
	r.Hosts, r.connected = hosts, true
	return nil
}

// peek connects and reads the hosts' state without taking their locks, for
// steps that only look (Detect, Plan) when no deploy holds the run.
func (r *Run) peek(ctx context.Context) error {
	if r.connected {
		return nil
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	return r.loadState(ctx)
}

func (r *Run) loadState(ctx context.Context) error {
	return r.Each(ctx, "read state of", func(ctx context.Context, h *fleet.Host) error {
		return h.LoadState(ctx, r.Cfg.App)
	})
}

// Hold connects to the hosts, takes their deploy locks and reads their
// state, once for however many nested targets ask; the returned release
// gives the locks back when the outermost holder is done. Locks are released
// on errors and interrupts too: release runs with a context of its own.
func (r *Run) Hold(ctx context.Context) (release func(), err error) {
	r.holds++
	release = func() {
		r.holds--
		if r.holds == 0 {
			r.Fleet.Unlock(r.Hosts)
			r.Close()
		}
	}
	if r.holds > 1 {
		return release, nil
	}
	if err := r.connect(ctx); err != nil {
		release()
		return func() {}, err
	}
	err = r.Each(ctx, "lock", func(ctx context.Context, h *fleet.Host) error {
		return r.Fleet.Hold(ctx, h, r.Command, r.Opts.BreakLock, r.Cfg.App)
	})
	if err != nil {
		release()
		return func() {}, err
	}
	return release, nil
}

// Close ends every host connection of the run. Hosts keep what the run
// did, for reports; a later step connects again.
func (r *Run) Close() {
	fleet.Close(r.Hosts)
	r.connected = false
}

// Detect decides what changed since the last successful deploy.
func (r *Run) Detect(ctx context.Context) error {
	if err := r.peek(ctx); err != nil {
		return err
	}
	return detect.Step{}.Run(ctx, r.Context)
}

// Build builds the changed components.
func (r *Run) Build(ctx context.Context) error { return build.Step{}.Run(ctx, r.Context) }

// Package archives the release and writes its manifest.
func (r *Run) Package(ctx context.Context) error { return pack.Step{}.Run(ctx, r.Context) }

// Ship sends the packaged release to every host and verifies it there.
func (r *Run) Ship(ctx context.Context) error { return ship.Step{}.Run(ctx, r.Context) }

// Swap stages the shipped release on every host, then activates it as
// the environment's strategy says, as a deploy's swap stage does: the
// waves (canary, batches) one after another, each but the last gated on
// health (the health target checks the last), a failure handled as
// strategy.on_failure says, the hosts rolled back by themselves under
// revert.
func (r *Run) Swap(ctx context.Context) error {
	ro := r.newRollout()
	if err := ro.swap(ctx); err != nil {
		return ro.fail(ctx, "swap", err)
	}
	if len(ro.gaveUp) > 0 {
		return ro.partial(ctx, server.ResultPartial, errors.Join(ro.causes...))
	}
	return nil
}

// Health checks every host's new release.
func (r *Run) Health(ctx context.Context) error { return health.Step{}.Run(ctx, r.Context) }

// Cleanup removes old releases, backups and stale uploads on every host.
func (r *Run) Cleanup(ctx context.Context) error { return cleanup.Step{}.Run(ctx, r.Context) }

// Rollback switches every host back to the previous good release, or to
// the release named by Options.Release, then runs the after-rollback
// notification hook point (see notifyRollback).
func (r *Run) Rollback(ctx context.Context) error {
	before := make([]string, len(r.Hosts))
	for i, h := range r.Hosts {
		before[i] = h.Live
	}
	err := rollback.Step{}.Run(ctx, r.Context)
	r.notifyRollback(before, err)
	return err
}

// Maintenance turns maintenance mode on or off on every host through the
// slots' router (see slots.SetMaintenance); the caller holds the deploy
// locks. An environment without slots is a BadConfig error.
func (r *Run) Maintenance(ctx context.Context, on bool) error {
	if !slots.Enabled(r.Context) {
		return exitcode.With(exitcode.BadConfig, fmt.Errorf("%s: %w", r.Env.Name, slots.ErrNoRouter))
	}
	return r.Each(ctx, "maintenance "+map[bool]string{true: "on", false: "off"}[on]+" on", func(ctx context.Context, h *fleet.Host) error {
		return slots.SetMaintenance(ctx, r.Context, h, on)
	})
}

// Check is the cron check of every host (see check.Run).
func (r *Run) Check(ctx context.Context) (*check.Report, error) { return check.Run(ctx, r.Context) }
