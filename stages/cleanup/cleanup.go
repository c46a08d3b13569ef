// Package cleanup frees the hosts' disks after a deploy: old releases and
// their backups, stale uploads and staging leftovers, docker logs.
package cleanup

import (
	"context"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Step is Cleanup as a pipeline step: one script per host that keeps the newest keep_releases
// releases and their backups (never the live or the previous one), removes
// the uploads no deploy in progress owns and staging leftovers, and
// reports disk use before and after. The state forgets the releases it
// removed.
type Step struct{}

func (Step) String() string { return "cleanup" }

// Run cleans up every host.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	return rc.Each(ctx, "clean up", func(ctx context.Context, h *fleet.Host) error {
		clean, err := server.Cleanup(h.Layout, Spec(rc, h, h.State))
		if err != nil {
			return err
		}
		rep, err := server.Run(ctx, h, clean)
		if err != nil {
			return err
		}
		if !Note(rc, h, rep) {
			return nil
		}
		return h.SaveState(ctx)
	})
}

// Spec is what cleaning up h, whose deploy state is s, removes: all but
// the environment's newest keep_releases releases, never the live one nor
// the previous one (the rollback target), and every upload but that of a
// release this run shipped and has yet to stage.
func Spec(rc *run.Context, h *fleet.Host, s *server.State) server.CleanupSpec {
	protect := []string{}
	if s.Current != "" {
		protect = append(protect, s.Current)
	}
	if prev, ok := s.Previous(); ok {
		protect = append(protect, prev.ID)
	}
	// The archive of a release shipped by this run but not yet staged
	// (mage ship cleanup) is still of use; every other upload is not.
	current := ""
	if rc.Plan != nil && h.Shipped && !h.Staged {
		current = rc.Plan.Release
	}
	return server.CleanupSpec{
		Keep:           rc.Env.KeepReleases,
		Protect:        protect,
		Held:           h.Locked(),
		Current:        current,
		IncomingMaxAge: rc.Env.Cleanup.IncomingMaxAge,
		DockerLogs:     rc.Env.Cleanup.DockerLogs,
		DockerPrune:    rc.Env.Cleanup.DockerPrune,
		ReleaseImages:  rc.Env.Services.Manager == server.ManagerCompose,
	}
}

// Expect is what Cleanup with spec should remove from a host as far as
// its deploy state s knows the releases there (see
// server.CleanupSpec.Expect): the state lists every release a deploy
// staged.
func Expect(s *server.State, spec server.CleanupSpec) []string {
	ids := make([]string, 0, len(s.Releases))
	for _, r := range s.Releases {
		ids = append(ids, r.ID)
	}
	return append([]string{}, server.PlanCleanup(ids, spec.Keep, spec.Protect)...)
}

// Note takes in what cleaning up h did: the state forgets the releases
// removed, the report and the log tell. It reports whether the state
// changed.
func Note(rc *run.Context, h *fleet.Host, rep server.CleanupReport) bool {
	for _, id := range rep.Removed {
		h.State.RemoveRelease(id)
	}
	rc.Report.Host(h).Cleanup = &rep
	h.Log.Infof("cleanup: removed %d releases, %d stale uploads; free %s -> %s",
		len(rep.Removed), rep.RemovedIncoming, ui.Bytes(rep.FreeBeforeKB*1024), ui.Bytes(rep.FreeAfterKB*1024))
	return len(rep.Removed) > 0
}
