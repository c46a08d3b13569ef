package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/build"
	"github.com/stagecoach/stagecoach/stages/checkout"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/detect"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/git"
	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/rollback"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// Deploy runs the whole chain under the hosts' deploy locks: Detect, Build,
// Package and Ship (at once: the archive streams to the hosts as it is
// written), Swap, Health, then Cleanup. A failure after the swap began
// rolls every touched host back by itself. Each host's state records
// the outcome; the report is printed as a summary table and written as
// JSON. The error carries the exit code cron and CI act on. With
// STAGECOACH_HOSTS=failed it retries the last deploy instead (see retry).
func (r *Run) Deploy(ctx context.Context) (err error) {
	if r.Opts.Hosts == run.FailedHosts {
		return r.retry(ctx)
	}
	ahead := r.goAhead(ctx)
	defer ahead.stop()
	defer r.unlockBuild()
	if err := r.connect(ctx); err != nil {
		r.Close()
		return r.finish(err, failure(ctx, err))
	}
	if ahead.changes() {
		// The upload will take a shell over: the one for the commands
		// after it starts with the lock's, and is ready when they come.
		r.warmShells()
	}
	release, err := r.Hold(ctx)
	if err != nil {
		return r.finish(err, failure(ctx, err))
	}
	defer release()

	if err := r.BuildPlugins(ctx); err != nil {
		return r.finish(err, failure(ctx, err))
	}
	adopted := ahead.adopt(ctx, r)
	if !adopted {
		if err := r.step(ctx, detect.Step{}); err != nil {
			return r.finish(err, failure(ctx, err))
		}
	}
	if r.nothingChanged() {
		r.Log.Infof("nothing changed since %s: %s stays live", git.Short(r.Plan.Previous), r.Hosts[0].Live)
		r.conclude(ctx, server.ResultNoChange, false)
		return r.finish(nil, server.ResultNoChange)
	}
	r.warmShells()
	if err := r.build(ctx, ahead, adopted); err != nil {
		result := failure(ctx, err)
		r.record(ctx, result, "build", err)
		return r.finish(err, result)
	}
	stage, err := r.packageAndShip(ctx, ahead.scanned(ctx, adopted))
	r.unlockBuild()
	if err != nil {
		// The hosts that got the archive drop it at once: it is of no use
		// to any later deploy, and it may be what filled the disk.
		swap.Discard(ctx, r.Context)
		result := failure(ctx, err)
		r.record(ctx, result, stage, err)
		return r.finish(err, result)
	}
	// Prepare ended with the ship; swap stages the release on every host
	// and activates it only when every host staged it, wave by wave as
	// the strategy says, each wave gated on health before the next; the
	// health stage gates the last.
	return r.rollOut(ctx)
}

// build is the deploy's build stage: the one run ahead when its plan was
// adopted, else a build now, under the checkout's build lock.
func (r *Run) build(ctx context.Context, ahead *ahead, adopted bool) error {
	if adopted {
		return ahead.build(ctx, r)
	}
	if err := r.lockBuild(ctx); err != nil {
		return err
	}
	return r.step(ctx, build.Step{})
}

// warmShells has every host start, in the background, the remote shell
// that the commands after the upload will use, since the upload takes the
// one in use over: its login shell then starts during the build.
func (r *Run) warmShells() {
	for _, h := range r.Hosts {
		if w, ok := h.Runner.(remote.Warmer); ok {
			w.Warm()
		}
	}
}

// rollOut stages the shipped release on every host and activates it under
// the strategy, then concludes the deploy: the swap and health stages of
// a deploy, and of a retry of the hosts a deploy left behind.
func (r *Run) rollOut(ctx context.Context) error {
	ro := r.newRollout()
	ro.concludes = r.concludesInSwap()
	err := r.timed(ctx, "swap", ro.swap)
	if ro.concluded {
		return r.concludedInSwap(ctx, ro, err)
	}
	if err != nil {
		return ro.fail(ctx, "swap", err)
	}
	if err := r.timed(ctx, "health", ro.health); err != nil {
		return ro.fail(ctx, "health", err)
	}
	if len(ro.gaveUp) > 0 {
		return ro.partial(ctx, server.ResultPartial, errors.Join(ro.causes...))
	}
	r.conclude(ctx, server.ResultSuccess, true)
	return r.finish(nil, server.ResultSuccess)
}

// concludedInSwap ends a deploy that the swap's round trip concluded (see
// concludesInSwap): the release is live, recorded, cleaned up after and
// unlocked, so an interrupt (err) that came after changes nothing. The
// cleanup's line in the report has no time of its own: it ran in the
// swap's.
func (r *Run) concludedInSwap(ctx context.Context, ro *rollout, err error) error {
	if err != nil {
		r.Log.Warnf("%v, but only once %s was live and the deploy concluded", err, r.Plan.Release)
	}
	_ = r.timed(ctx, "health", ro.health) // no checks to run: says so
	r.Report.Stage("cleanup", 0, ro.cleanupErr)
	return r.finish(nil, server.ResultSuccess)
}

// failure is the result of a deploy that ended with err before any host
// switched or migrated: interrupted when Ctrl-C or SIGTERM cancelled ctx
// (whatever error the cancellation surfaced as), else failed. Either way
// nothing live changed, and the exit code is Failed.
func failure(ctx context.Context, err error) string {
	if errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled) {
		return server.ResultInterrupted
	}
	return server.ResultFailed
}

// nothingChanged reports whether the plan carries no change at all, so the
// live release already is what this revision would deploy.
func (r *Run) nothingChanged() bool { return !carriesChange(r.Plan) }

// carriesChange reports whether plan changes anything live.
func carriesChange(plan *run.Plan) bool {
	if plan.Previous == "" || plan.Migrations.Pending {
		return true
	}
	for _, c := range plan.Components {
		if c.Changed {
			return true
		}
	}
	return false
}

// failAfterSwap rolls back and records how that went.
func (r *Run) failAfterSwap(ctx context.Context, stage string, cause error) error {
	if !r.anySwitchedOrMigrated() {
		// Every host failed before its switch: current never moved.
		result := failure(ctx, cause)
		r.record(ctx, result, stage, cause)
		return r.finish(cause, result)
	}
	r.Log.Errorf("%v", cause)
	r.Log.Warnf("rolling back")
	start := time.Now()
	rbErr := rollback.AfterFailure(ctx, r.Context)
	r.Report.Stage("rollback", time.Since(start), rbErr)
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

// record writes the deploy's outcome into every host's state: the
// host's own result (fleet.Host.Result) and the fleet's, result. It runs
// with a context of its own so that an interrupted deploy is recorded too.
func (r *Run) record(ctx context.Context, result, stage string, cause error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if r.Plan == nil {
		return
	}
	results := r.hostResults(result)
	// Every host at once: a fleet's hosts each wait a round trip for it.
	r.Each(ctx, "", func(ctx context.Context, h *fleet.Host) error {
		s := r.noted(h, results[h], result, h.Phase(), stage, cause)
		if s == nil {
			return nil
		}
		h.State = s
		r.saveState(ctx, h)
		return nil // a failure to record is a warning, never the deploy's outcome
	})
}

// hostResults is each host's own result of a deploy whose fleet's result
// is result.
func (r *Run) hostResults(result string) map[*fleet.Host]string {
	results := map[*fleet.Host]string{}
	for i, res := range fleet.Results(r.Hosts, result) {
		results[r.Hosts[i]] = res
	}
	return results
}

// noted is h's state with the deploy added, whose result on h is own and
// the fleet's result, h having reached phase; nil when h has no state or
// the deploy could not be added (a warning). h.State is left as it was.
func (r *Run) noted(h *fleet.Host, own, result, phase, stage string, cause error) *server.State {
	if h.State == nil {
		return nil
	}
	s, err := h.State.Clone()
	if err != nil {
		h.Log.Warnf("record deploy: %v", err)
		return nil
	}
	// The host's own error says best what happened to it; the others
	// get the deploy's.
	why := cause
	if e := h.Err(); e != nil && cause != nil {
		why = e
	}
	d := server.Deploy{ID: r.Plan.Release, Revision: r.Plan.Revision, User: fleet.WhoAmI(), Host: fleet.MachineName(),
		Started: r.Started, Duration: time.Since(r.Started), Result: own, Fleet: result, Phase: phase,
		Stage: stage, Error: r.Log.Redact(run.ErrString(why)), BytesSent: h.BytesSent, BrokeLock: h.BrokeLock()}
	if h.Staged && r.Packaged != nil {
		s.AddRelease(server.Release{ID: r.Plan.Release, Revision: r.Plan.Revision,
			ArchiveSHA256: r.Packaged.Manifest.Archive.SHA256, Created: time.Now().UTC(), Status: server.StatusFailed,
			Reused: swap.ReusedOrigins(s, h.LiveManifest, r.Packaged.Manifest)})
	}
	if result == server.ResultNoChange {
		d.ID = h.Live
	}
	if err := s.RecordDeploy(d); err != nil {
		h.Log.Warnf("record deploy: %v", err)
		return nil
	}
	return s
}

// saveState writes h's state, over a new connection when the one it had
// is gone, warning when it cannot.
func (r *Run) saveState(ctx context.Context, h *fleet.Host) {
	err := h.SaveState(ctx)
	if err != nil && remote.IsConnectionLost(err) && ctx.Err() == nil {
		// The connection is gone, not the host: record the outcome
		// over a new one, so the history tells what happened.
		if err = r.Fleet.Reconnect(ctx, h); err == nil {
			err = h.SaveState(ctx)
		}
	}
	if err != nil {
		h.Log.Warnf("%v", err)
	}
}

// prunePackages drops the local packages no retry or rollback uses (see
// pack.Prune), keeping this deploy's.
func (r *Run) prunePackages() {
	removed, err := pack.Prune(r.Cfg.Dir, r.Plan.Release)
	if err != nil {
		r.Log.Warnf("%v", err)
	}
	if len(removed) > 0 {
		r.Log.Debugf("removed the local packages of %s", strings.Join(removed, ", "))
	}
}

// finish completes the report, prints the summary, writes the JSON report
// and returns err with its exit code.
func (r *Run) finish(err error, result string) error {
	rep := r.Report
	rep.Result, rep.Duration = result, time.Since(r.Started)
	rep.CriticalPath, rep.Overlapped = run.CriticalPath(rep.Stages, rep.Duration)
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
	results := fleet.Results(r.Hosts, result)
	for i, h := range r.Hosts {
		hr := rep.Host(h)
		hr.BytesSent = h.BytesSent
		if h.Runner != nil {
			st := h.Runner.Stats()
			hr.Connections, hr.Sessions, hr.RoundTrips = st.Connections, st.Sessions, st.RoundTrips
		}
		hr.After = h.Live
		if h.Switched {
			hr.After = r.Plan.Release
		}
		hr.Phase, hr.Result, hr.Duration = h.Phase(), results[i], h.Elapsed(r.Started)
		if err != nil {
			hr.Error = r.Log.Redact(run.ErrString(h.Err()))
		}
		if r.Packaged != nil && h.Shipped {
			hr.FilesSent, hr.FilesReused = len(r.Packaged.Send), len(r.Packaged.Reuse)
		}
	}
	rep.SortHosts(config.HostNames(r.Env.Hosts))
	r.notify(result)
	if r.Plan != nil {
		r.prunePackages()
	}
	if r.Plan != nil && (result == server.ResultSuccess || result == server.ResultNoChange) && len(r.Hosts) > 0 {
		// The next deploy's detect and build run ahead against it.
		d := checkout.Deployed{Revision: r.Plan.Revision, Release: r.Plan.Release}
		if result == server.ResultNoChange {
			d.Release = r.Hosts[0].Live
		}
		if err := checkout.RecordDeployed(r.Cfg.Dir, r.Env.Name, d); err != nil {
			r.Log.Debugf("%v", err)
		}
	}
	var summary strings.Builder
	rep.PrintSummary(&summary)
	r.Log.Infof("%s", summary.String())
	var critical strings.Builder
	rep.PrintCriticalPath(&critical)
	r.Log.Debugf("%s", strings.TrimRight(critical.String(), "\n"))
	path := r.Opts.ReportPath
	if path == "" {
		name := "latest.json"
		if rep.Release != "" {
			name = rep.Release + ".json"
		}
		path = filepath.Join(r.Cfg.Dir, run.ReportsDir, name)
	}
	if werr := rep.WriteJSON(path); werr != nil {
		r.Log.Warnf("write report: %v", werr)
	} else {
		r.Log.Debugf("report written to %s", path)
	}
	if err != nil && exitcode.Of(err) == exitcode.Failed {
		if result == server.ResultInterrupted || errors.Is(err, context.Canceled) {
			return r.Redact(fmt.Errorf("deploy %s interrupted: %w", rep.Environment, err))
		}
		return r.Redact(fmt.Errorf("deploy %s: %w", rep.Environment, err))
	}
	return r.Redact(err)
}
