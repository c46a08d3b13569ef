package stages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/server"
)

// Deploy runs the whole chain under the hosts' deploy locks: Detect, Build,
// Package and Ship (at once: the archive streams to the hosts as it is
// written), Swap, Health, then Cleanup. A failure after the swap began
// rolls every touched host back by itself. Each host's state records
// the outcome; the report is printed as a summary table and written as
// JSON. The error carries the exit code cron and CI act on.
func (r *Run) Deploy(ctx context.Context) (err error) {
	release, err := r.Hold(ctx)
	if err != nil {
		return r.finish(err, server.ResultFailed)
	}
	defer release()

	if err := r.BuildPlugins(ctx); err != nil {
		return r.finish(err, server.ResultFailed)
	}
	if err := r.timed(ctx, "detect", r.Detect); err != nil {
		return r.finish(err, server.ResultFailed)
	}
	if r.nothingChanged() {
		r.Log.Infof("nothing changed since %s: %s stays live", short(r.Plan.Previous), r.Hosts[0].Live)
		r.record(ctx, server.ResultNoChange, "", nil)
		return r.finish(nil, server.ResultNoChange)
	}
	if err := r.timed(ctx, "build", r.Build); err != nil {
		r.record(ctx, server.ResultFailed, "build", err)
		return r.finish(err, server.ResultFailed)
	}
	if stage, err := r.packageAndShip(ctx); err != nil {
		r.record(ctx, server.ResultFailed, stage, err)
		return r.finish(err, server.ResultFailed)
	}
	if err := r.timed(ctx, "swap", r.Swap); err != nil {
		return r.failAfterSwap(ctx, "swap", err)
	}
	if err := r.timed(ctx, "health", r.Health); err != nil {
		return r.failAfterSwap(ctx, "health", err)
	}
	r.record(ctx, server.ResultSuccess, "", nil)
	if err := r.timed(ctx, "cleanup", r.Cleanup); err != nil {
		// The release is live and healthy; a failed cleanup is a warning.
		r.Log.Warnf("%v", err)
	}
	return r.finish(nil, server.ResultSuccess)
}

// nothingChanged reports whether the plan carries no change at all, so the
// live release already is what this revision would deploy.
func (r *Run) nothingChanged() bool {
	if r.Plan.Previous == "" || r.Plan.Migrations.Pending {
		return false
	}
	for _, c := range r.Plan.Components {
		if c.Changed {
			return false
		}
	}
	return true
}

// Health checks every host's new release.
func (r *Run) Health(ctx context.Context) error {
	if len(r.Env.Health) == 0 {
		r.Log.Warnf("no health checks configured for %s: the release is assumed healthy", r.Env.Name)
		return nil
	}
	return r.eachHost(ctx, r.Hosts, "health of", func(ctx context.Context, h *Host) error {
		results, err := Health(ctx, r.Env.Health, r.Env.HealthWait, h.Name, h.Runner)
		r.report.addHealth(results)
		for _, res := range results {
			h.Log.Debugf("health %s: %s after %d attempts (%s)", res.Check, res.Detail, res.Attempts, res.Duration.Round(time.Millisecond))
		}
		return err
	})
}

// failAfterSwap rolls back and records how that went.
func (r *Run) failAfterSwap(ctx context.Context, stage string, cause error) error {
	if !r.anySwitchedOrMigrated() {
		// Every host failed before its switch: current never moved.
		r.record(ctx, server.ResultFailed, stage, cause)
		return r.finish(cause, server.ResultFailed)
	}
	r.Log.Errorf("%v", cause)
	r.Log.Warnf("rolling back")
	start := time.Now()
	rbErr := r.rollbackAfterFailure(ctx)
	r.report.addStage(StageReport{Name: "rollback", Duration: time.Since(start), Result: resultOf(rbErr), Error: errString(rbErr)})
	if rbErr != nil {
		err := exitcode.Errorf(exitcode.RollbackFailed, "%s failed: %v; rollback failed too: %v", stage, cause, rbErr)
		r.record(ctx, server.ResultRollbackFailed, stage, err)
		return r.finish(err, server.ResultRollbackFailed)
	}
	err := exitcode.Errorf(exitcode.RolledBack, "%s failed and the deploy was rolled back: %v", stage, cause)
	// A check stopped by the interrupt may report only what it saw last.
	if errors.Is(cause, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		err = exitcode.Errorf(exitcode.RolledBack, "%s interrupted and the deploy was rolled back: %v", stage, cause)
	}
	r.record(ctx, server.ResultRolledBack, stage, err)
	return r.finish(err, server.ResultRolledBack)
}

func (r *Run) anySwitchedOrMigrated() bool {
	for _, h := range r.Hosts {
		if h.Switched || h.Migrated {
			return true
		}
	}
	return false
}

// timed runs one stage between its before- and after- plugin hooks and
// adds its line to the report.
func (r *Run) timed(ctx context.Context, name string, fn func(context.Context) error) error {
	start := time.Now()
	err := r.hook(ctx, "before-"+name)
	if err == nil {
		err = fn(ctx)
	}
	if err == nil {
		err = r.hook(ctx, "after-"+name)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	r.addStage(name, time.Since(start), err)
	return err
}

// record writes the deploy's outcome into every host's state. It runs
// with a context of its own so that an interrupted deploy is recorded too.
func (r *Run) record(ctx context.Context, result, stage string, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	for _, h := range r.Hosts {
		if h.State == nil || r.Plan == nil {
			continue
		}
		d := server.Deploy{ID: r.Plan.Release, Revision: r.Plan.Revision, User: whoAmI(), Host: hostName(),
			Started: r.started, Duration: time.Since(r.started), Result: result, Stage: stage,
			Error: r.Log.Redact(errString(cause)), BytesSent: h.BytesSent}
		if h.lease != nil {
			d.BrokeLock = h.lease.broke
		}
		if h.Staged && r.Packaged != nil {
			h.State.AddRelease(server.Release{ID: r.Plan.Release, Revision: r.Plan.Revision,
				ArchiveSHA256: r.Packaged.Manifest.Archive.SHA256, Created: time.Now().UTC(), Status: server.StatusFailed})
		}
		if result == server.ResultNoChange {
			d.ID = h.Live
		}
		if err := h.State.RecordDeploy(d); err != nil {
			h.Log.Warnf("record deploy: %v", err)
			continue
		}
		err := h.saveState(ctx)
		if err != nil && server.ExitCode(err) < 0 && ctx.Err() == nil {
			// The connection is gone, not the host: record the outcome
			// over a new one, so the history tells what happened.
			if err = r.reconnect(ctx, h); err == nil {
				err = h.saveState(ctx)
			}
		}
		if err != nil {
			h.Log.Warnf("%v", err)
		}
	}
}

// finish completes the report, prints the summary, writes the JSON report
// and returns err with its exit code.
func (r *Run) finish(err error, result string) error {
	rep := r.report
	rep.Result, rep.Duration = result, time.Since(r.started)
	rep.ExitCode = exitcode.Of(err)
	if err != nil {
		rep.Error = r.Log.Redact(err.Error())
	}
	if r.Plan != nil && result != server.ResultNoChange {
		rep.Release = r.Plan.Release
	}
	if r.Plan != nil {
		rep.Revision, rep.Previous, rep.Plan = r.Plan.Revision, r.Plan.Previous, r.Plan
	}
	for _, h := range r.Hosts {
		hr := rep.host(h)
		hr.BytesSent = h.BytesSent
		if h.Runner != nil {
			st := h.Runner.Stats()
			hr.Connections, hr.Sessions = st.Connections, st.Sessions
		}
		hr.After = h.Live
		if h.Switched {
			hr.After = r.Plan.Release
		}
		if r.Packaged != nil && h.Shipped {
			hr.FilesSent, hr.FilesReused = len(r.Packaged.Send), len(r.Packaged.Reuse)
		}
	}
	var summary strings.Builder
	rep.PrintSummary(&summary)
	r.Log.Infof("%s", summary.String())
	path := r.Opts.ReportPath
	if path == "" {
		name := "latest.json"
		if rep.Release != "" {
			name = rep.Release + ".json"
		}
		path = filepath.Join(r.Cfg.Dir, ReportsDir, name)
	}
	if werr := rep.WriteJSON(path); werr != nil {
		r.Log.Warnf("write report: %v", werr)
	} else {
		r.Log.Debugf("report written to %s", path)
	}
	if err != nil && exitcode.Of(err) == exitcode.Failed {
		if errors.Is(err, context.Canceled) {
			return r.Redact(fmt.Errorf("deploy %s interrupted: %w", rep.Environment, err))
		}
		return r.Redact(fmt.Errorf("deploy %s: %w", rep.Environment, err))
	}
	return r.Redact(err)
}

func resultOf(err error) string {
	if err != nil {
		return "failed"
	}
	return "ok"
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// hostName is the deploying machine's name, for the deploy history.
func hostName() string {
	name, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return name
}
