// Package swap turns a shipped release into the live one, in two halves
// that a deploy runs as two phases across its hosts: Stage assembles and
// verifies releases/<id> and furnishes it (shared paths, carried assets,
// shared/.env) while nothing live changes; Activate backs up the database,
// migrates, switches current with one rename and restarts the services.
package swap

import (
	"context"
	"errors"
	"fmt"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
)

// Step is Swap as a pipeline step: every host stages the release before
// any host activates it.
type Step struct{}

func (Step) String() string { return "swap" }

// Run stages rc.Packaged on every host, then, only when every host staged
// it, activates it on every host. When a host fails to stage, no host
// switches and every host's staging is discarded.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	if err := StageAll(ctx, rc); err != nil {
		return err
	}
	return ActivateAll(ctx, rc)
}

// StageAll stages the release on every host. If any host fails, the
// release is discarded from every host that staged it, so a failed deploy
// leaves nothing behind but its record.
func StageAll(ctx context.Context, rc *run.Context) error {
	id := rc.Plan.Release
	err := rc.Each(ctx, "stage "+id+" on", func(ctx context.Context, h *fleet.Host) error {
		return Stage(ctx, rc, h)
	})
	if err != nil {
		Discard(ctx, rc)
		return err
	}
	rc.Log.Infof("%s staged and verified on %d hosts; activating", id, len(rc.Hosts))
	return nil
}

// ActivateAll activates the staged release on every host.
func ActivateAll(ctx context.Context, rc *run.Context) error {
	return rc.Each(ctx, "activate "+rc.Plan.Release+" on", func(ctx context.Context, h *fleet.Host) error {
		return Activate(ctx, rc, h)
	})
}

// Stage assembles releases/<id> on h from the shipped archive and the live
// release's unchanged files, verifies it against the manifest and
// furnishes it. Nothing live changes.
func Stage(ctx context.Context, rc *run.Context, h *fleet.Host) error {
	m := rc.Packaged.Manifest
	spec := server.StageSpec{ID: m.Release, PrevID: m.Base}
	for _, re := range m.Reuse {
		spec.Reuse = append(spec.Reuse, server.LinkPair{From: re.From, To: re.Path})
	}
	stage, err := server.StageRelease(h.Layout, spec)
	if err != nil {
		return err
	}
	if _, err := server.Run(ctx, h, stage); err != nil {
		var mismatch *server.TreeMismatchError
		var unsafe *server.UnsafeArchiveError
		switch {
		case errors.As(err, &mismatch):
			return fmt.Errorf("release %s does not match its manifest after unpacking: %s", m.Release, mismatch.Report)
		case errors.As(err, &unsafe):
			return err
		}
		return h.DiskFullOr(err)
	}
	h.Staged = true
	furnish, err := furnishing(rc, h)
	if err != nil {
		return err
	}
	if furnish.Script != "" {
		if _, err := h.Run(ctx, furnish); err != nil {
			return h.DiskFullOr(err)
		}
	}
	return nil
}

// Discard removes the release, staged or only shipped, from every host
// that has it but did not switch to it, with a context of its own: it runs
// after a failure, maybe an interrupt.
func Discard(ctx context.Context, rc *run.Context) {
	ctx = context.WithoutCancel(ctx)
	id := rc.Plan.Release
	for _, h := range rc.Hosts {
		if !(h.Shipped || h.Staged) || h.Switched {
			continue
		}
		if err := h.Exec(ctx)(server.DiscardRelease(h.Layout, id)); err != nil {
			h.Log.Warnf("discard staged release %s: %v", id, err)
			continue
		}
		h.Staged = false
		h.Log.Infof("discarded release %s", id)
	}
}

// Activate makes the staged release live on h: it backs up the database
// and migrates when migrations are pending, stops the live release's
// services, switches current and starts the new release's services.
// Until the switch, a failure leaves current untouched and the live
// release's services running; after it, the caller rolls back.
func Activate(ctx context.Context, rc *run.Context, h *fleet.Host) error {
	id := rc.Plan.Release
	if err := migrate(ctx, rc, h); err != nil {
		return err
	}
	if h.Live != "" {
		stops, err := server.Stop(rc.Env.Services, h.Layout, h.Live)
		if err != nil {
			return err
		}
		for _, c := range stops {
			if _, err := h.Run(ctx, c); err != nil {
				return restartLive(ctx, rc, h, err)
			}
		}
	}
	if err := h.Exec(ctx)(server.Switch(h.Layout, id)); err != nil {
		return restartLive(ctx, rc, h, err)
	}
	h.Switched = true
	h.Log.Infof("current -> releases/%s", id)
	return h.Restart(ctx, rc.Env.Services, rc.Cfg.App, id)
}

// restartLive starts the live release's services again after a failure
// between stopping them and the switch: current still points at that
// release, and a host that did not switch is rolled back only when it
// migrated.
func restartLive(ctx context.Context, rc *run.Context, h *fleet.Host, cause error) error {
	if h.Live == "" {
		return cause
	}
	if err := h.Restart(context.WithoutCancel(ctx), rc.Env.Services, rc.Cfg.App, h.Live); err != nil {
		return fmt.Errorf("%w; restarting %s failed too: %v", cause, h.Live, err)
	}
	return cause
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

// furnishing is what the staged release gets before migrations, in one
// round trip: links to the shared paths, the assets of the releases before
// it, and shared/.env (owner-only, when the environment sets variables;
// secret values never pass through the log).
func furnishing(rc *run.Context, h *fleet.Host) (remote.Command, error) {
	id, l := rc.Plan.Release, h.Layout
	var steps []remote.Command
	if len(rc.Env.Shared) > 0 {
		c, err := server.LinkShared(l, id, rc.Env.Shared)
		if err != nil {
			return c, err
		}
		steps = append(steps, c)
	}
	if dir := rc.Env.Assets.Dir; dir != "" {
		c, err := server.CarryAssets(l, id, assetSources(h.State, h.Live, rc.Env.Assets.Versions), dir)
		if err != nil {
			return c, err
		}
		steps = append(steps, c)
	}
	if len(rc.EnvValues) > 0 {
		data, err := server.FormatEnv(rc.EnvValues)
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
func migrate(ctx context.Context, rc *run.Context, h *fleet.Host) error {
	mig := rc.Cfg.Migrations
	if mig == nil || !rc.Plan.Migrations.Pending {
		return nil
	}
	id := rc.Plan.Release
	if len(mig.Backup) > 0 {
		if err := h.Exec(ctx)(server.BackupFiles(h.Layout, id, mig.Backup)); err != nil {
			return fmt.Errorf("back up database: %w", h.DiskFullOr(err))
		}
	}
	cmd, err := server.RunIn(h.Layout, id, "migrate", mig.Run)
	if err != nil {
		return err
	}
	h.Migrated = true
	if _, err := h.Run(ctx, cmd); err != nil {
		ctx := context.WithoutCancel(ctx)
		if rerr := h.RestoreDatabase(ctx, mig, id); rerr != nil {
			return fmt.Errorf("migration failed: %w; restoring the database backup failed too: %v", err, rerr)
		}
		// The restore replaced the database file under the live release's
		// services: restart them, or they keep writing to the old file.
		if h.Live != "" {
			if rerr := h.Restart(ctx, rc.Env.Services, rc.Cfg.App, h.Live); rerr != nil {
				return fmt.Errorf("migration failed (database restored from the backup, but restarting %s failed: %v): %w", h.Live, rerr, err)
			}
		}
		return fmt.Errorf("migration failed (database restored from the backup): %w", err)
	}
	h.Log.Infof("migrations applied")
	return nil
}
