package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/cleanup"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/health"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
	"github.com/stagecoach/stagecoach/stages/swap"
)

// conclude ends a deploy whose outcome is result (success or no change)
// on every host in one round trip each: the state's record of it, with a
// successful deploy's cleanup (clean) before it, and the release of the
// deploy lock. The state is written for the releases the cleanup is
// expected to remove (cleanup.Expect); should it remove others, the
// state is written again for what it did, and the lock released after.
// A nested hold keeps the lock for its outer holder; plugins at the
// cleanup's hook points run it as a stage of its own. A failed cleanup is
// a warning: the release is live and healthy.
func (r *Run) conclude(ctx context.Context, result string, clean bool) {
	if clean && (r.hasPlugins("before-cleanup") || r.hasPlugins("after-cleanup") || r.holds > 1) {
		r.record(ctx, result, "", nil)
		if err := r.step(ctx, cleanup.Step{}); err != nil {
			r.Log.Warnf("%v", err)
		}
		return
	}
	if r.holds > 1 {
		r.record(ctx, result, "", nil)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	start := time.Now()
	results := r.hostResults(result)
	var errs []error
	var mu sync.Mutex
	r.Each(ctx, "", func(ctx context.Context, h *fleet.Host) error {
		if err := r.concludeHost(ctx, h, results[h], result, clean); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return nil
	})
	if clean {
		r.Report.Stage("cleanup", time.Since(start), errors.Join(errs...))
	}
}

// concludeHost is conclude on h; it returns the cleanup's failure (see
// cleanupFailed).
func (r *Run) concludeHost(ctx context.Context, h *fleet.Host, own, result string, clean bool) error {
	c, err := r.conclusion(h, own, result, h.Phase(), clean)
	if c != nil {
		res, errs := r.Fleet.UnlockAfter(ctx, h, c.cmds...)
		err = errors.Join(err, r.concluded(ctx, h, c, res, errs))
	}
	return cleanupFailed(h, err)
}

// cleanupFailed warns of the failure err of cleaning up h, a warning
// since the release is live, and returns it as the cleanup stage's.
func cleanupFailed(h *fleet.Host, err error) error {
	if err == nil {
		return nil
	}
	h.Log.Warnf("%v", err)
	return fmt.Errorf("clean up %s: %w", h.Name, err)
}

// hostConclusion is h's end of a deploy, prepared before it runs: the
// commands of its round trip (the cleanup when it cleans up, then the
// state's write; the unlock is the caller's), and the states h keeps
// after it.
type hostConclusion struct {
	cmds  []remote.Command
	clean *server.Op[server.CleanupReport] // nil: no cleanup
	// noted is h's state with the deploy recorded; cleaned is noted as it
	// will be once the cleanup removed what it is expected to, which the
	// round trip writes.
	noted, cleaned *server.State
}

// conclusion prepares h's conclusion of the deploy whose result on h is
// own and the fleet's result, h having reached phase (see conclude); nil
// when h has no state to write. When the cleanup cannot be prepared, it
// returns that error with a conclusion that only writes the state.
func (r *Run) conclusion(h *fleet.Host, own, result, phase string, clean bool) (*hostConclusion, error) {
	noted := r.noted(h, own, result, phase, "", nil)
	if noted == nil {
		return nil, nil
	}
	c := &hostConclusion{noted: noted, cleaned: noted}
	var err error
	if clean {
		err = c.addCleanup(r, h)
	}
	data, merr := c.cleaned.Marshal()
	if merr != nil {
		return nil, merr
	}
	c.cmds = append(c.cmds, server.WriteState(h.Layout, data))
	return c, err
}

// addCleanup puts the cleanup of h first in c, and leaves out of the
// state c writes the releases it is expected to remove.
func (c *hostConclusion) addCleanup(r *Run, h *fleet.Host) error {
	spec := cleanup.Spec(r.Context, h, c.noted)
	spec.Expect = cleanup.Expect(c.noted, spec)
	op, err := server.Cleanup(h.Layout, spec)
	if err != nil {
		return err
	}
	cleaned, err := c.noted.Clone()
	if err != nil {
		return err
	}
	for _, id := range spec.Expect {
		cleaned.RemoveRelease(id)
	}
	c.cleaned, c.clean = cleaned, &op
	c.cmds = append(c.cmds, op.Cmd)
	return nil
}

// concluded takes in the results of c's commands on h: h keeps the state
// they wrote, or writes the one it holds when they did not, over a new
// connection if need be. It returns the cleanup's failure.
func (r *Run) concluded(ctx context.Context, h *fleet.Host, c *hostConclusion, res []remote.Result, errs []error) error {
	h.State = c.noted
	if c.clean == nil {
		if errs[0] != nil {
			r.saveState(ctx, h)
		}
		return nil
	}
	rep, cleanErr := c.clean.Decode(res[0], errs[0])
	var unexpected *server.CleanupUnexpectedError
	switch {
	case cleanErr == nil && errs[1] == nil:
		h.State = c.cleaned
		cleanup.Note(r.Context, h, rep)
		return nil
	case errors.As(cleanErr, &unexpected):
		cleanup.Note(r.Context, h, unexpected.Report)
		r.saveState(ctx, h)
		return nil
	case cleanErr == nil:
		// Cleaned up, but the state was not written.
		cleanup.Note(r.Context, h, rep)
		r.saveState(ctx, h)
		return nil
	default:
		r.saveState(ctx, h)
		return cleanErr
	}
}

// concludesInSwap reports whether the swap's round trip may conclude the
// deploy as well, sparing one: one host, so no other host's failure can
// roll it back once its lock is gone; nothing to run between its switch
// and its cleanup (health checks, slots, plugins at the hook points
// after the swap); the lock held by this run alone; no migration in the
// activation, whose time, however long, the recorded deploy would leave
// out, being written before it.
func (r *Run) concludesInSwap() bool {
	if len(r.Hosts) != 1 || r.holds != 1 || !r.Hosts[0].Locked() || swap.MigrateEach(r.Context) ||
		len(health.Checks(r.Context)) > 0 || slots.Enabled(r.Context) {
		return false
	}
	for _, point := range []string{"after-swap", "before-health", "after-health", "before-cleanup", "after-cleanup"} {
		if r.hasPlugins(point) {
			return false
		}
	}
	return true
}

// activateAndConclude activates the release on h and concludes the
// deploy there in the same round trip (see concludesInSwap): the
// conclusion runs only if the whole activation succeeded, so a failed
// one leaves the lock held for the rollback.
func (ro *rollout) activateAndConclude(ctx context.Context, h *fleet.Host) error {
	r := ro.r
	c, err := r.conclusion(h, server.ResultSuccess, server.ResultSuccess, fleet.PhaseActivate, true)
	if err != nil || c == nil {
		// Concluded after it then, as any deploy is.
		return swap.Activate(ctx, r.Context, h, ro.migrateEach)
	}
	unlockAfter := func(ctx context.Context, cmds ...remote.Command) ([]remote.Result, []error) {
		return r.Fleet.UnlockAfter(ctx, h, cmds...)
	}
	res, errs, err := swap.ActivateThen(ctx, r.Context, h, ro.migrateEach, swap.Followup{Cmds: c.cmds, Batch: unlockAfter})
	if err != nil {
		return err
	}
	ro.concluded = true
	// What is left to write is written even after an interrupt, as the
	// record of any deploy is (see record).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	ro.cleanupErr = cleanupFailed(h, r.concluded(wctx, h, c, res, errs))
	return nil
}
