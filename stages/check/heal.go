package check

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/rollback"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// healthFailure describes a host's failed health checks, "" when they
// passed.
func healthFailure(results []Result) string {
	var failed []string
	for _, c := range results {
		if c.Kind == KindHealth && c.Status == StatusFailed {
			failed = append(failed, c.Check+": "+c.Message)
		}
	}
	return strings.Join(failed, "; ")
}

// selfHeal rolls the sick hosts back to their previous release under the
// deploy lock, records it in their state and checks them again, replacing
// their results.
func (r checker) selfHeal(ctx context.Context, sick []*fleet.Host, causes map[*fleet.Host]string, results map[*fleet.Host]*hostChecks, minFree DiskThreshold) []HealAction {
	checked := map[*fleet.Host]string{}
	for _, h := range sick {
		checked[h] = h.Live
	}
	actions := make([]HealAction, len(sick))
	for i, h := range sick {
		actions[i] = HealAction{Host: h.Name, From: h.Live, Cause: causes[h]}
	}
	if err := r.hold(ctx, sick); err != nil {
		for i := range actions {
			actions[i].Error = "could not take the deploy lock: " + err.Error()
		}
		r.Log.Errorf("self-heal: %v", err)
		return actions
	}
	defer r.Fleet.Unlock(sick)
	index := map[*fleet.Host]int{}
	for i, h := range sick {
		index[h] = i
	}
	r.Fleet.Each(ctx, sick, "self-heal", func(ctx context.Context, h *fleet.Host) error {
		a := &actions[index[h]]
		start := time.Now()
		to, err := r.healHost(ctx, h, checked[h], a.Cause)
		a.To, a.Duration, a.OK = to, time.Since(start), err == nil
		if err != nil {
			a.Error = err.Error()
			h.Log.Errorf("self-heal: %v", err)
		}
		rs := []Result{{Host: h.Name, Kind: KindConnect, Check: KindConnect, Status: StatusOK, Message: "connected"}}
		results[h].mu.Lock()
		results[h].results = append(rs, r.checkHost(ctx, h, minFree)...)
		results[h].mu.Unlock()
		return nil
	})
	return actions
}

// hold takes the deploy lock of every host of hosts and reads their state
// again under it; on failure it gives back the locks it took.
func (r checker) hold(ctx context.Context, hosts []*fleet.Host) error {
	err := r.Fleet.Each(ctx, hosts, "lock", func(ctx context.Context, h *fleet.Host) error {
		return r.Fleet.Hold(ctx, h, "check (self-heal)", r.Opts.BreakLock, r.Cfg.App)
	})
	if err != nil {
		r.Fleet.Unlock(hosts)
	}
	return err
}

// healHost rolls h back from the release checked to the previous one when
// that one is intact; if it is not healthy either, the release that was
// live goes back. Either way the state records it.
func (r checker) healHost(ctx context.Context, h *fleet.Host, checked, cause string) (string, error) {
	if h.Live == "" || h.Live != checked {
		return "", fmt.Errorf("the live release changed since the check (%s, now %s): left alone", checked, ui.Or(h.Live, "nothing"))
	}
	prev, ok := h.State.Previous()
	if !ok {
		return "", fmt.Errorf("releases/%s is unhealthy and there is no previous release to roll back to", h.Live)
	}
	verify, err := server.VerifyRelease(h.Layout, prev.ID, server.VerifySpec{Shared: r.Env.Shared, AssetsDir: r.Env.Assets.Dir})
	if err != nil {
		return "", err
	}
	if _, err := server.Run(ctx, h, verify); err != nil {
		var mismatch *server.TreeMismatchError
		if errors.As(err, &mismatch) {
			return "", fmt.Errorf("previous release %s differs from its manifest (%s): not rolling back to it", prev.ID, mismatch.Report)
		}
		return "", fmt.Errorf("verify previous release %s: %w", prev.ID, err)
	}
	left := h.Live
	start := time.Now()
	h.Log.Warnf("self-heal: releases/%s failed its health checks (%s); rolling back to %s", left, cause, prev.ID)
	d := server.Deploy{ID: prev.ID, Revision: prev.Revision, User: fleet.WhoAmI(), Host: fleet.MachineName(), Started: start,
		Result: server.ResultSelfHeal, Stage: "health", Error: r.Log.Redact("health failed on " + left + ": " + cause)}
	if err := rollback.To(ctx, r.Context, h, prev.ID, false); err != nil {
		h.Log.Errorf("self-heal: %v; putting releases/%s back", err, left)
		var serr error
		switch {
		case slots.Enabled(r.Context):
			// A slot that failed before the switch took no traffic, and
			// one that failed after it was switched away from: the slot
			// of left serves on.
		default:
			serr = h.Exec(ctx)(server.Switch(h.Layout, left))
			if serr == nil {
				if rerr := h.Restart(ctx, r.Env.Services, r.Cfg.App, left); rerr != nil {
					h.Log.Errorf("self-heal: restart %s: %v", left, rerr)
				}
			} else {
				h.Log.Errorf("self-heal: switch back to %s: %v", left, serr)
			}
		}
		d.ID, d.Revision, d.Duration = left, "", time.Since(start)
		d.Error = r.Log.Redact(fmt.Sprintf("%s; rollback to %s failed: %v", d.Error, prev.ID, err))
		if serr != nil {
			// current stayed on the previous release: the history and
			// the error say so, not that the checked one is back.
			d.ID, d.Revision = prev.ID, prev.Revision
			d.Error = r.Log.Redact(fmt.Sprintf("%s; switching back to %s failed too: %v", d.Error, left, serr))
			r.recordHeal(ctx, h, d)
			return "", fmt.Errorf("rolled back to %s but it is not healthy either, and switching back to %s failed too (%v), so releases/%s stays live: %w", prev.ID, left, serr, prev.ID, err)
		}
		r.recordHeal(ctx, h, d)
		return "", fmt.Errorf("rolled back to %s but it is not healthy either, so releases/%s is live again: %w", prev.ID, left, err)
	}
	h.Live = prev.ID
	if err := h.State.Promote(prev.ID); err != nil {
		return prev.ID, err
	}
	if rel, ok := h.State.Release(left); ok {
		rel.Status = server.StatusFailed
		h.State.AddRelease(rel)
	}
	if prev.Revision != "" {
		// Detect diffs against the live release's revision from now on.
		h.State.Revision = prev.Revision
	}
	d.Duration = time.Since(start)
	r.recordHeal(ctx, h, d)
	h.Log.Warnf("self-heal: rolled back from %s to %s in %s; the state marks %s failed", left, prev.ID, ui.Round(d.Duration), left)
	return prev.ID, nil
}

// recordHeal adds a self-heal entry to h's deploy history and saves it.
func (r checker) recordHeal(ctx context.Context, h *fleet.Host, d server.Deploy) {
	if err := h.State.RecordDeploy(d); err != nil {
		h.Log.Warnf("record self-heal: %v", err)
		return
	}
	if err := h.SaveState(context.WithoutCancel(ctx)); err != nil {
		h.Log.Warnf("%v", err)
	}
}
