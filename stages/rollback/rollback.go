// Package rollback puts a previous release back: after a failed deploy on
// every host it touched, and on request (mage rollback) to the previous or
// a named release.
package rollback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
)

// AfterFailure undoes what this deploy did on every host that migrated or
// switched: current goes back to the release that was live, the database
// backup is restored when migrations ran, services restart and health is
// checked again. It runs with a context of its own, since the deploy's may
// already be cancelled (Ctrl-C).
func AfterFailure(ctx context.Context, rc *run.Context) error {
	var touched []*fleet.Host
	for _, h := range rc.Hosts {
		if h.Switched || h.Migrated {
			touched = append(touched, h)
		}
	}
	if len(touched) == 0 {
		return nil
	}
	return rc.Fleet.Each(context.WithoutCancel(ctx), touched, "roll back", func(ctx context.Context, h *fleet.Host) error {
		err := Host(ctx, rc, h, h.Migrated)
		h.RollbackErr = err // the host's own outcome: others may roll back fine
		return err
	})
}

// Host puts h back on the release that was live before this deploy, as
// AfterFailure does for each host, restoring the database backup only
// when restoreDB is set: a rollout that keeps other hosts on the new
// release keeps a database they share as migrated.
func Host(ctx context.Context, rc *run.Context, h *fleet.Host, restoreDB bool) error {
	if h.Live == "" {
		if restoreDB {
			if err := h.RestoreDatabase(ctx, rc.Cfg.Migrations, rc.Plan.Release); err != nil {
				return err
			}
		}
		return errors.New("first deploy: there is no earlier release to go back to; current stays on the new release")
	}
	err := To(ctx, rc, h, h.Live, restoreDB)
	if err != nil && remote.IsConnectionLost(err) && ctx.Err() == nil {
		// The connection is gone, often what failed the deploy; the
		// host is not. Every step of To may be repeated.
		if rerr := rc.Fleet.Reconnect(ctx, h); rerr != nil {
			return fmt.Errorf("%w; %w", err, rerr)
		}
		err = To(ctx, rc, h, h.Live, restoreDB)
	}
	return err
}

// To switches h back to release id, restores the database backup taken
// before this run's migrations when restoreDB is set, restarts the
// services of id and checks health again.
func To(ctx context.Context, rc *run.Context, h *fleet.Host, id string, restoreDB bool) error {
	if restoreDB {
		if err := h.RestoreDatabase(ctx, rc.Cfg.Migrations, rc.Plan.Release); err != nil {
			return fmt.Errorf("restore database: %w", err)
		}
	}
	if slots.Enabled(rc) {
		// Back to the old slot at once while it still runs (drains),
		// else id starts in the idle slot first: it is health-gated
		// there, then the router and current switch together.
		if err := slots.Activate(ctx, rc, h, id); err != nil {
			return err
		}
		h.Switched, h.SwitchedBack = false, true
		h.Log.Infof("rolled back: current -> releases/%s", id)
	} else {
		if err := h.Exec(ctx)(server.Switch(h.Layout, id)); err != nil {
			return err
		}
		h.Switched, h.SwitchedBack = false, true
		h.Log.Infof("rolled back: current -> releases/%s", id)
		if err := h.Restart(ctx, rc.Env.Services, rc.Cfg.App, id); err != nil {
			return err
		}
	}
	checks := rc.Env.Health
	if slots.Enabled(rc) {
		checks = slots.PublicChecks(checks) // the slot's own passed before the switch
		if h.Maintenance {
			// The router answers 503 (slots.Activate said so): checks
			// through it cannot pass.
			checks = nil
		}
	}
	if len(checks) > 0 {
		target := probe.Target{Host: h.Name, Runner: h.Runner, Layout: h.Layout, Release: id, Values: rc.HostValues(h), Vars: h.Vars}
		results, err := probe.Run(ctx, checks, rc.Env.HealthWait, target)
		rc.Report.AddHealth(results)
		if err != nil {
			return fmt.Errorf("release %s is not healthy after the rollback either: %w", id, err)
		}
	}
	return nil
}

// Step is the rollback target: every host goes back to its previous good
// release, or to the release named by Options.Release, restoring the
// database backup of the release being left only when Options.RestoreDB
// is set.
type Step struct{}

func (Step) String() string { return "rollback" }

// Run rolls every host back and records it in the host's state.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	return rc.Each(ctx, "roll back", func(ctx context.Context, h *fleet.Host) error {
		return onRequest(ctx, rc, h)
	})
}

func onRequest(ctx context.Context, rc *run.Context, h *fleet.Host) error {
	target := rc.Opts.Release
	if target == "" {
		prev, ok := h.State.Previous()
		if !ok {
			return errors.New("no previous release to roll back to")
		}
		target = prev.ID
	}
	if err := server.ValidID(target); err != nil {
		return err
	}
	if target == h.Live {
		return fmt.Errorf("release %s is already live", target)
	}
	leaving := h.Live
	if mig := rc.Cfg.Migrations; rc.Opts.RestoreDB && mig != nil && len(mig.Backup) > 0 {
		// The backup taken before the release being left is the
		// database of a release older than it: going forward (back from
		// a rollback) with it would drop what the releases in between
		// migrated. Release ids sort by the time they were made.
		if target > leaving {
			return fmt.Errorf("release %s is newer than the live %s: the database backup taken before %s predates it; roll back without restoring the database", target, leaving, leaving)
		}
		// Restore only when the switch can follow, or the live release
		// is left on the database of an older one.
		if _, err := h.Run(ctx, remote.Cmd("look for release "+target, "test", "-d", h.Layout.ReleaseDir(target))); err != nil {
			if server.ExitCode(err) == 1 {
				return fmt.Errorf("release %s does not exist on the server", target)
			}
			return err
		}
		if err := h.Exec(ctx)(server.RestoreFiles(h.Layout, leaving, mig.Backup)); err != nil {
			return fmt.Errorf("restore the database backup taken before %s: %w", leaving, err)
		}
	}
	if err := To(ctx, rc, h, target, false); err != nil {
		return err
	}
	if _, ok := h.State.Release(target); !ok {
		h.State.AddRelease(server.Release{ID: target})
	}
	rel, _ := h.State.Release(target)
	if err := h.State.RecordDeploy(server.Deploy{ID: target, Revision: rel.Revision, User: fleet.WhoAmI(), Host: fleet.MachineName(),
		Started: rc.Started, Duration: time.Since(rc.Started), Result: server.ResultRollback}); err != nil {
		return err
	}
	h.Live = target
	return h.SaveState(ctx)
}
