package stages

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stagecoach/stagecoach/stages/server"
)

// rollbackAfterFailure undoes what this deploy did on every host that got
// past staging: current goes back to the release that was live, the
// database backup is restored when migrations ran, services restart and
// health is checked again. It runs with a context of its own, since the
// deploy's may already be cancelled (Ctrl-C).
func (r *Run) rollbackAfterFailure(ctx context.Context) error {
	var touched []*Host
	for _, h := range r.Hosts {
		if h.Switched || h.Migrated {
			touched = append(touched, h)
		}
	}
	if len(touched) == 0 {
		return nil
	}
	return r.eachHost(context.WithoutCancel(ctx), touched, "roll back", func(ctx context.Context, h *Host) error {
		if h.Live == "" {
			if err := r.restoreDatabase(ctx, h); err != nil {
				return err
			}
			return errors.New("first deploy: there is no earlier release to go back to; current stays on the new release")
		}
		return r.rollbackTo(ctx, h, h.Live, h.Migrated)
	})
}

// rollbackTo switches h back to release id, restores the database backup
// taken before this run's migrations when restoreDB is set, restarts the
// services of id and checks health again.
func (r *Run) rollbackTo(ctx context.Context, h *Host, id string, restoreDB bool) error {
	if restoreDB {
		if err := r.restoreDatabase(ctx, h); err != nil {
			return fmt.Errorf("restore database: %w", err)
		}
	}
	if err := h.exec(ctx)(server.Switch(h.Layout, id)); err != nil {
		return err
	}
	h.Switched = false
	h.Log.Infof("rolled back: current -> releases/%s", id)
	if err := r.restart(ctx, h, id); err != nil {
		return err
	}
	if len(r.Env.Health) > 0 {
		results, err := Health(ctx, r.Env.Health, r.Env.HealthWait, h.Name, h.Runner)
		r.report.addHealth(results)
		if err != nil {
			return fmt.Errorf("release %s is not healthy after the rollback either: %w", id, err)
		}
	}
	return nil
}

// Rollback switches every host back to the previous good release, or to
// the release named by Options.Release, restoring the database backup of
// the release being left only when Options.RestoreDB is set.
func (r *Run) Rollback(ctx context.Context) error {
	return r.eachHost(ctx, r.Hosts, "roll back", func(ctx context.Context, h *Host) error {
		target := r.Opts.Release
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
		if r.Opts.RestoreDB && r.Cfg.Migrations != nil && len(r.Cfg.Migrations.Backup) > 0 {
			if err := h.exec(ctx)(server.RestoreFiles(h.Layout, leaving, r.Cfg.Migrations.Backup)); err != nil {
				return fmt.Errorf("restore the database backup taken before %s: %w", leaving, err)
			}
		}
		if err := r.rollbackTo(ctx, h, target, false); err != nil {
			return err
		}
		if _, ok := h.State.Release(target); !ok {
			h.State.AddRelease(server.Release{ID: target})
		}
		rel, _ := h.State.Release(target)
		if err := h.State.RecordDeploy(server.Deploy{ID: target, Revision: rel.Revision, User: whoAmI(), Host: hostName(),
			Started: r.started, Duration: time.Since(r.started), Result: server.ResultRollback}); err != nil {
			return err
		}
		h.Live = target
		return h.saveState(ctx)
	})
}
