package stages

import (
	"context"

	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Cleanup runs one script per host that keeps the newest keep_releases
// releases and their backups (never the live or the previous one), removes
// stale uploads and staging leftovers, and reports disk use before and
// after. The state forgets the releases it removed.
func (r *Run) Cleanup(ctx context.Context) error {
	return r.eachHost(ctx, r.Hosts, "clean up", func(ctx context.Context, h *Host) error {
		protect := []string{}
		if h.State.Current != "" {
			protect = append(protect, h.State.Current)
		}
		if prev, ok := h.State.Previous(); ok {
			protect = append(protect, prev.ID)
		}
		cmd, err := server.Cleanup(h.Layout, server.CleanupSpec{
			Keep:           r.Env.KeepReleases,
			Protect:        protect,
			IncomingMaxAge: r.Env.Cleanup.IncomingMaxAge,
			DockerLogs:     r.Env.Cleanup.DockerLogs,
			DockerPrune:    r.Env.Cleanup.DockerPrune,
			ReleaseImages:  r.Env.Services.Manager == server.ManagerCompose,
		})
		if err != nil {
			return err
		}
		res, err := h.run(ctx, cmd)
		if err != nil {
			return err
		}
		rep, err := server.ParseCleanup(res.Stdout)
		if err != nil {
			return err
		}
		for _, id := range rep.Removed {
			h.State.RemoveRelease(id)
		}
		r.report.host(h).Cleanup = &rep
		h.Log.Infof("cleanup: removed %d releases, %d stale uploads; free %s -> %s",
			len(rep.Removed), rep.RemovedIncoming, ui.Bytes(rep.FreeBeforeKB*1024), ui.Bytes(rep.FreeAfterKB*1024))
		if len(rep.Removed) == 0 {
			return nil
		}
		return h.saveState(ctx)
	})
}
