package pipeline

import (
	"context"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/server"
)

// notifyRollback runs the after-rollback hook point once a rollback asked
// for by hand (mage rollback) is over, as a deploy's automatic rollback
// does: result rollback, or rollback-failed with the cause, and each
// host's release before (before, in the order of r.Hosts) and after. A
// failing plugin is a warning, as at every notification hook point.
func (r *Run) notifyRollback(before []string, err error) {
	const point = "after-rollback"
	if !r.hasPlugins(point) {
		return
	}
	dc := rollbackContext(r, before, err)
	results, _ := plugins.Notify(context.Background(), r.Cfg.Plugins, point, dc, r.Log)
	for _, res := range results {
		r.Report.AddPlugin("", res)
	}
}

// rollbackContext is the deploy context of a rollback by hand: its
// release is the one gone back to when every host went to the same one.
func rollbackContext(r *Run, before []string, err error) plugins.Context {
	dc := plugins.Context{Environment: r.Env.Name, Dir: r.Cfg.Dir}
	o := &plugins.Outcome{Result: server.ResultRollback, Duration: time.Since(r.Started)}
	if err != nil {
		o.Result, o.Stage, o.Cause = server.ResultRollbackFailed, "rollback", r.Log.Redact(err.Error())
	}
	for i, h := range r.Hosts {
		if i == 0 {
			dc.Root, dc.Release = h.Layout.Root, h.Live
		} else if dc.Release != h.Live {
			dc.Release = ""
		}
		ho := plugins.HostOutcome{Host: h.Name, After: h.Live}
		if i < len(before) {
			ho.Before = before[i]
		}
		ho.Switched = ho.Before != ho.After
		o.Hosts = append(o.Hosts, ho)
	}
	if dc.Release != "" && len(r.Hosts) > 0 && r.Hosts[0].State != nil {
		if rel, ok := r.Hosts[0].State.Release(dc.Release); ok {
			dc.Revision = rel.Revision
		}
	}
	dc.Outcome = o
	return dc
}
