// Package health checks the new release on every host: the environment's
// HTTP and command checks, retried until their deadline.
package health

import (
	"context"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/slots"
)

// release is the release the health step checks on h: the new one once
// current points at it, else the live one ("" when there is none).
func release(rc *run.Context, h *fleet.Host) string {
	if h.Switched && rc.Plan != nil && rc.Plan.Release != "" {
		return rc.Plan.Release
	}
	return h.Live
}

// Step is Health as a pipeline step: its results go to the report.
type Step struct{}

func (Step) String() string { return "health" }

// Run checks every host; the error lists the checks that never passed.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	if len(Checks(rc)) == 0 {
		if !slots.Enabled(rc) {
			rc.Log.Warnf("no health checks configured for %s: the release is assumed healthy", rc.Env.Name)
		}
		return nil
	}
	return rc.Each(ctx, "health of", func(ctx context.Context, h *fleet.Host) error { return Check(ctx, rc, h) })
}

// Checks are the checks the health step runs: the environment's, or with
// slots only the public ones, as the slot passed its own checks before it
// got traffic.
func Checks(rc *run.Context) []config.HealthCheck {
	if slots.Enabled(rc) {
		return slots.PublicChecks(rc.Env.Health)
	}
	return rc.Env.Health
}

// Check runs Checks against h, against the new release once h switched to
// it, until they pass or their deadline; its results go to the report. A
// rollout gates each of its waves on it.
func Check(ctx context.Context, rc *run.Context, h *fleet.Host) error {
	checks := Checks(rc)
	if len(checks) == 0 {
		return nil
	}
	if h.Maintenance && slots.Enabled(rc) {
		h.Log.Infof("maintenance is on: the public health checks go through the router, which answers 503, and are skipped; the slot passed its own checks before the switch")
		return nil
	}
	target := probe.Target{Host: h.Name, Runner: h.Runner, Layout: h.Layout, Release: release(rc, h), Values: rc.HostValues(h), Vars: h.Vars, Reconnect: rc.Fleet.Reconnector(h)}
	results, err := probe.Run(ctx, checks, rc.Env.HealthWait, target)
	rc.Report.AddHealth(results)
	for _, res := range results {
		h.Log.Debugf("%s: %s after %d attempts (%s)", res.Check, res.Detail, res.Attempts, res.Duration.Round(time.Millisecond))
		if res.Script != "" {
			h.Log.Debugf("%s runs: %s", res.Check, res.Script)
		}
	}
	return err
}
