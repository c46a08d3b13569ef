package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ship"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// retry deploys the release of the environment's last deploy again to
// the hosts that do not run it (STAGECOACH_HOSTS=failed), from the package
// that deploy kept on this machine: the same release id and the same
// bytes, nothing detected or built again. Every host is locked while the
// hosts to retry are chosen; the others are released before the ship.
func (r *Run) retry(ctx context.Context) error {
	release, err := r.Hold(ctx)
	if err != nil {
		return r.finish(err, failure(ctx, err))
	}
	defer release()

	last, ok := latestDeploy(r.Hosts)
	if !ok {
		err := exitcode.Errorf(exitcode.Failed, "STAGECOACH_HOSTS=failed: no host of %s records a deploy to retry; deploy first", r.Env.Name)
		return r.finish(err, server.ResultFailed)
	}
	var behind, done []*fleet.Host
	for _, h := range r.Hosts {
		if h.Live == last.ID {
			done = append(done, h)
		} else {
			behind = append(behind, h)
		}
	}
	if len(behind) == 0 {
		r.Log.Infof("every host runs %s, the release of the last deploy: nothing to retry", last.ID)
		return r.finish(nil, server.ResultNoChange)
	}
	p, err := pack.Load(r.Cfg.Dir, last.ID)
	if err != nil {
		return r.finish(exitcode.With(exitcode.Failed, fmt.Errorf("retry %s: %w", last.ID, err)), server.ResultFailed)
	}
	names := make([]string, len(behind))
	for i, h := range behind {
		names[i] = h.Name
	}
	r.Log.Infof("retrying %s on %s (%d of %d hosts); the others run it already", last.ID, strings.Join(names, ", "), len(behind), len(r.Hosts))
	r.Fleet.Unlock(done)
	fleet.Close(done)
	r.Hosts = behind

	r.Plan = &run.Plan{Revision: last.Revision, Previous: behind[0].State.Revision, Release: last.ID}
	for _, c := range r.Cfg.Components {
		r.Plan.Components = append(r.Plan.Components, run.ComponentChange{Name: c.Name, Changed: true, Reason: "retry of " + last.ID})
	}
	if r.Cfg.Migrations != nil {
		// A retried host did not keep the migration of the first attempt
		// (its backup was restored), or never ran it: it migrates again;
		// the migrate command applies what is pending.
		r.Plan.Migrations = run.MigrationChange{Pending: true, Reason: "retry of " + last.ID}
	}
	r.Packaged = p
	// A host that switched and rolled back keeps the release's directory,
	// marked failed: it is staged anew.
	err = r.Each(ctx, "clear the failed "+last.ID+" on", func(ctx context.Context, h *fleet.Host) error {
		if _, ok := h.State.Release(last.ID); !ok {
			return nil
		}
		return h.Exec(ctx)(server.DiscardRelease(h.Layout, last.ID))
	})
	if err == nil {
		err = r.step(ctx, ship.Step{})
	}
	if err != nil {
		swap.Discard(ctx, r.Context)
		result := failure(ctx, err)
		r.record(ctx, result, "ship", err)
		return r.finish(err, result)
	}
	// The hosts retried roll out as a deploy's do, under the strategy.
	return r.rollOut(ctx)
}

// latestDeploy is the newest deploy of a release that any host records:
// the one a retry brings the hosts left behind to.
func latestDeploy(hosts []*fleet.Host) (server.Deploy, bool) {
	var last server.Deploy
	found := false
	for _, h := range hosts {
		if h.State == nil {
			continue
		}
		for i := len(h.State.Deploys) - 1; i >= 0; i-- {
			d := h.State.Deploys[i]
			switch d.Result {
			case server.ResultNoChange, server.ResultRollback, server.ResultSelfHeal:
				continue
			}
			if server.ValidID(d.ID) != nil {
				continue
			}
			if !found || d.Started.After(last.Started) {
				last, found = d, true
			}
			break
		}
	}
	return last, found
}
