package stages

import (
	"context"
	"fmt"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
)

// Swap turns the shipped archive into the live release on every host:
// stage and verify the tree, link shared paths, carry the previous
// releases' assets, write shared/.env, back up the database and migrate
// when migrations are pending, switch current with one rename, restart
// services. Until the switch, a failure leaves current untouched; after
// it, the caller rolls back.
func (r *Run) Swap(ctx context.Context) error {
	return r.eachHost(ctx, r.Hosts, "swap "+r.Plan.Release+" on", r.swapOn)
}

func (r *Run) swapOn(ctx context.Context, h *Host) error {
	id := r.Plan.Release
	l := h.Layout
	if err := r.stage(ctx, h); err != nil {
		return err
	}
	furnish, err := r.furnish(h)
	if err != nil {
		return err
	}
	if furnish.Script != "" {
		if _, err := h.run(ctx, furnish); err != nil {
			return err
		}
	}
	if err := r.migrate(ctx, h); err != nil {
		return err
	}
	if h.Live != "" {
		stops, err := server.Stop(r.Env.Services, l, h.Live)
		if err != nil {
			return err
		}
		for _, c := range stops {
			if _, err := h.run(ctx, c); err != nil {
				return err
			}
		}
	}
	if err := h.exec(ctx)(server.Switch(l, id)); err != nil {
		return err
	}
	h.Switched = true
	h.Log.Infof("current -> releases/%s", id)
	return r.restart(ctx, h, id)
}

// stage assembles and verifies releases/<id> from the shipped archive and
// the live release's unchanged files.
func (r *Run) stage(ctx context.Context, h *Host) error {
	m := r.Packaged.Manifest
	spec := server.StageSpec{ID: m.Release, PrevID: m.Base}
	for _, re := range m.Reuse {
		spec.Reuse = append(spec.Reuse, server.LinkPair{From: re.From, To: re.Path})
	}
	cmd, err := server.StageRelease(h.Layout, spec)
	if err != nil {
		return err
	}
	res, err := h.run(ctx, cmd)
	switch code := server.ExitCode(err); {
	case err == nil:
	case code == server.ExitTreeMismatch:
		return fmt.Errorf("release %s does not match its manifest after unpacking: %s", m.Release, server.ParseTreeReport(res.Stdout))
	case code == server.ExitUnsafeArchive:
		return fmt.Errorf("archive of %s refused: %w", m.Release, err)
	default:
		return diskFullOr(h, err)
	}
	h.Staged = true
	return nil
}

// assetSources lists the releases whose assets the new release carries:
// the live one and older good ones, versions-1 in all.
func assetSources(s *server.State, live string, versions int) []string {
	if live == "" || versions < 2 {
		return nil
	}
	out := []string{live}
	for i := len(s.Releases) - 1; i >= 0 && len(out) < versions-1; i-- {
		rel := s.Releases[i]
		if rel.ID != live && rel.ID < live && rel.Status != server.StatusFailed {
			out = append(out, rel.ID)
		}
	}
	return out
}

// furnish is what the staged release gets before migrations, in one
// round trip: links to the shared paths, the assets of the releases before
// it, and shared/.env (owner-only, when the environment sets variables;
// secret values never pass through the log).
func (r *Run) furnish(h *Host) (remote.Command, error) {
	id, l := r.Plan.Release, h.Layout
	var steps []remote.Command
	if len(r.Env.Shared) > 0 {
		c, err := server.LinkShared(l, id, r.Env.Shared)
		if err != nil {
			return c, err
		}
		steps = append(steps, c)
	}
	if dir := r.Env.Assets.Dir; dir != "" {
		c, err := server.CarryAssets(l, id, assetSources(h.State, h.Live, r.Env.Assets.Versions), dir)
		if err != nil {
			return c, err
		}
		steps = append(steps, c)
	}
	if len(r.envValues) > 0 {
		data, err := server.FormatEnv(r.envValues)
		if err != nil {
			return remote.Command{}, err
		}
		steps = append(steps, server.WriteEnv(l, data))
	}
	return remote.Chain("link shared paths, carry assets, write shared/.env into "+id, steps...)
}

// migrate backs up the configured database files and runs the migrations,
// when Detect found some pending. A failing migration restores the backup
// before returning, so the database is as the live release left it.
func (r *Run) migrate(ctx context.Context, h *Host) error {
	mig := r.Cfg.Migrations
	if mig == nil || !r.Plan.Migrations.Pending {
		return nil
	}
	id := r.Plan.Release
	if len(mig.Backup) > 0 {
		if err := h.exec(ctx)(server.BackupFiles(h.Layout, id, mig.Backup)); err != nil {
			return fmt.Errorf("back up database: %w", diskFullOr(h, err))
		}
	}
	cmd, err := server.RunIn(h.Layout, id, "migrate", mig.Run)
	if err != nil {
		return err
	}
	h.Migrated = true
	if _, err := h.run(ctx, cmd); err != nil {
		ctx := context.WithoutCancel(ctx)
		if rerr := r.restoreDatabase(ctx, h); rerr != nil {
			return fmt.Errorf("migration failed: %w; restoring the database backup failed too: %v", err, rerr)
		}
		// The restore replaced the database file under the live release's
		// services: restart them, or they keep writing to the old file.
		if h.Live != "" {
			if rerr := r.restart(ctx, h, h.Live); rerr != nil {
				return fmt.Errorf("migration failed (database restored from the backup, but restarting %s failed: %v): %w", h.Live, rerr, err)
			}
		}
		return fmt.Errorf("migration failed (database restored from the backup): %w", err)
	}
	h.Log.Infof("migrations applied")
	return nil
}

// restoreDatabase puts back the files backed up before this run migrated.
func (r *Run) restoreDatabase(ctx context.Context, h *Host) error {
	mig := r.Cfg.Migrations
	if !h.Migrated || mig == nil || len(mig.Backup) == 0 {
		return nil
	}
	if err := h.exec(ctx)(server.RestoreFiles(h.Layout, r.Plan.Release, mig.Backup)); err != nil {
		return err
	}
	h.Migrated = false
	h.Log.Infof("database restored from the backup taken before %s", r.Plan.Release)
	return nil
}

// restart restarts the services of release id through the service manager.
func (r *Run) restart(ctx context.Context, h *Host, id string) error {
	cmds, err := server.Restart(r.Env.Services, h.Layout, id, r.Cfg.App)
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if _, err := h.run(ctx, c); err != nil {
			return fmt.Errorf("restart services: %w", err)
		}
	}
	return nil
}
