package stages

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// healthFailure describes a host's failed health checks, "" when they
// passed.
func healthFailure(results []CheckResult) string {
	var failed []string
	for _, c := range results {
		if c.Kind == KindHealth && c.Status == CheckFailed {
			failed = append(failed, c.Check+": "+c.Message)
		}
	}
	return strings.Join(failed, "; ")
}

// selfHeal rolls the sick hosts back to their previous release under the
// deploy lock, records it in their state and checks them again, replacing
// their results.
func (r *Run) selfHeal(ctx context.Context, sick []*Host, causes map[*Host]string, results map[*Host]*hostChecks, minFree DiskThreshold) []HealAction {
	checked := map[*Host]string{}
	for _, h := range sick {
		checked[h] = h.Live
	}
	actions := make([]HealAction, len(sick))
	for i, h := range sick {
		actions[i] = HealAction{Host: h.Name, From: h.Live, Cause: causes[h]}
	}
	r.Hosts, r.connected = sick, true
	r.Command = "check (self-heal)"
	release, err := r.Hold(ctx)
	if err != nil {
		for i := range actions {
			actions[i].Error = "could not take the deploy lock: " + err.Error()
		}
		r.Log.Errorf("self-heal: %v", err)
		return actions
	}
	defer release()
	index := map[*Host]int{}
	for i, h := range sick {
		index[h] = i
	}
	r.eachHost(ctx, sick, "self-heal", func(ctx context.Context, h *Host) error {
		a := &actions[index[h]]
		start := time.Now()
		to, err := r.healHost(ctx, h, checked[h], a.Cause)
		a.To, a.Duration, a.OK = to, time.Since(start), err == nil
		if err != nil {
			a.Error = err.Error()
			h.Log.Errorf("self-heal: %v", err)
		}
		rs := []CheckResult{{Host: h.Name, Kind: KindConnect, Check: KindConnect, Status: CheckOK, Message: "connected"}}
		results[h].mu.Lock()
		results[h].results = append(rs, r.checkHost(ctx, h, minFree)...)
		results[h].mu.Unlock()
		return nil
	})
	return actions
}

// healHost rolls h back from the release checked to the previous one when
// that one is intact; if it is not healthy either, the release that was
// live goes back. Either way the state records it.
func (r *Run) healHost(ctx context.Context, h *Host, checked, cause string) (string, error) {
	if h.Live == "" || h.Live != checked {
		return "", fmt.Errorf("the live release changed since the check (%s, now %s): left alone", checked, orDefault(h.Live, "nothing"))
	}
	prev, ok := h.State.Previous()
	if !ok {
		return "", fmt.Errorf("releases/%s is unhealthy and there is no previous release to roll back to", h.Live)
	}
	cmd, err := server.VerifyRelease(h.Layout, prev.ID, server.VerifySpec{Shared: r.Env.Shared, AssetsDir: r.Env.Assets.Dir})
	if err != nil {
		return "", err
	}
	if out, err := h.run(ctx, cmd); err != nil {
		if server.ExitCode(err) == server.ExitTreeMismatch {
			return "", fmt.Errorf("previous release %s differs from its manifest (%s): not rolling back to it", prev.ID, server.ParseTreeReport(out.Stdout))
		}
		return "", fmt.Errorf("verify previous release %s: %w", prev.ID, err)
	}
	left := h.Live
	start := time.Now()
	h.Log.Warnf("self-heal: releases/%s failed its health checks (%s); rolling back to %s", left, cause, prev.ID)
	d := server.Deploy{ID: prev.ID, Revision: prev.Revision, User: whoAmI(), Host: hostName(), Started: start,
		Result: server.ResultSelfHeal, Stage: "health", Error: r.Log.Redact("health failed on " + left + ": " + cause)}
	if err := r.rollbackTo(ctx, h, prev.ID, false); err != nil {
		h.Log.Errorf("self-heal: %v; putting releases/%s back", err, left)
		if serr := h.exec(ctx)(server.Switch(h.Layout, left)); serr == nil {
			if rerr := r.restart(ctx, h, left); rerr != nil {
				h.Log.Errorf("self-heal: restart %s: %v", left, rerr)
			}
		} else {
			h.Log.Errorf("self-heal: switch back to %s: %v", left, serr)
		}
		d.ID, d.Revision, d.Duration = left, "", time.Since(start)
		d.Error = r.Log.Redact(fmt.Sprintf("%s; rollback to %s failed: %v", d.Error, prev.ID, err))
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
func (r *Run) recordHeal(ctx context.Context, h *Host, d server.Deploy) {
	if err := h.State.RecordDeploy(d); err != nil {
		h.Log.Warnf("record self-heal: %v", err)
		return
	}
	if err := h.saveState(context.WithoutCancel(ctx)); err != nil {
		h.Log.Warnf("%v", err)
	}
}
