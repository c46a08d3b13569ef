package pipeline

import (
	"context"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/server"
)

// step runs s inside the middleware every step of a deploy gets.
func (r *Run) step(ctx context.Context, s Step) error {
	return r.timed(ctx, s.String(), func(ctx context.Context) error { return s.Run(ctx, r.Context) })
}

// timed runs one stage between its before- and after- plugin hooks and
// adds its line, with its duration, to the report. A stage that returns
// after an interrupt fails with the interrupt.
func (r *Run) timed(ctx context.Context, name string, fn func(context.Context) error) error {
	start := time.Now()
	err := r.hook(ctx, "before-"+name)
	if err == nil {
		err = fn(ctx)
	}
	if err == nil {
		err = r.hook(ctx, "after-"+name)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	r.Report.Stage(name, time.Since(start), err)
	return err
}

// hook runs the plugins configured at a hook point ("before-ship",
// "after-swap", ...) once per host, each with the deploy context and the
// host's connection for the commands it runs there.
func (r *Run) hook(ctx context.Context, point string) error {
	if !r.hasPlugins(point) {
		return nil
	}
	return r.Each(ctx, point+" plugins on", func(ctx context.Context, h *fleet.Host) error {
		results, err := plugins.RunHook(ctx, r.Cfg.Plugins, point, r.pluginContext(h), h.Runner, h.Log)
		for _, res := range results {
			r.Report.AddPlugin(h.Name, res)
		}
		return err
	})
}

func (r *Run) hasPlugins(point string) bool {
	for _, p := range r.Cfg.Plugins {
		if p.At == point {
			return true
		}
	}
	return false
}

// pluginContext is what a plugin learns about the deploy on host h.
func (r *Run) pluginContext(h *fleet.Host) plugins.Context {
	dc := plugins.Context{Environment: r.Env.Name, Host: h.Name, Root: h.Layout.Root, Dir: r.Cfg.Dir}
	if p := r.Plan; p != nil {
		dc.Release, dc.ReleasePath = p.Release, h.Layout.ReleaseDir(p.Release)
		dc.Revision, dc.Previous = p.Revision, p.Previous
		for _, c := range p.Components {
			if c.Changed {
				dc.Changed = append(dc.Changed, c.Name)
			}
		}
	}
	return dc
}

// notify runs the notification hook points for a deploy that ended with
// result, once per deploy, after the report is complete: after-rollback
// when a rollback ran, then on-success or on-failure. A failing plugin is
// a warning and leaves result as it is.
func (r *Run) notify(result string) {
	var points []string
	switch result {
	case server.ResultSuccess, server.ResultNoChange:
		points = []string{"on-success"}
	case server.ResultRolledBack, server.ResultRollbackFailed:
		points = []string{"after-rollback", "on-failure"}
	default:
		points = []string{"on-failure"}
	}
	for _, point := range points {
		if !r.hasPlugins(point) {
			continue
		}
		results, _ := plugins.Notify(context.Background(), r.Cfg.Plugins, point, r.notifyContext(result), r.Log)
		for _, res := range results {
			r.Report.AddPlugin("", res)
		}
	}
}

// notifyContext is the deploy context with the outcome, from the report
// finish completed.
func (r *Run) notifyContext(result string) plugins.Context {
	rep := r.Report
	dc := plugins.Context{Environment: r.Env.Name, Dir: r.Cfg.Dir, Release: rep.Release, Revision: rep.Revision, Previous: rep.Previous}
	if len(r.Hosts) > 0 {
		dc.Root = r.Hosts[0].Layout.Root
	}
	if p := r.Plan; p != nil {
		for _, c := range p.Components {
			if c.Changed {
				dc.Changed = append(dc.Changed, c.Name)
			}
		}
	}
	o := &plugins.Outcome{Result: result, Cause: r.Log.Redact(rep.Error), Duration: time.Since(r.Started)}
	if result != server.ResultSuccess && result != server.ResultNoChange {
		// The stage that failed is the first one the report has as not
		// ok, the rollback aside.
		for _, s := range rep.Stages {
			if s.Name != "rollback" && s.Result != "ok" && s.Result != "skipped" {
				o.Stage = s.Name
				break
			}
		}
	}
	for _, hr := range rep.Hosts {
		ho := plugins.HostOutcome{Host: hr.Name, Before: hr.Before, After: hr.After}
		for _, h := range r.Hosts {
			if h.Name == hr.Name {
				ho.Switched, ho.Migrated = h.Switched, h.Migrated
			}
		}
		o.Hosts = append(o.Hosts, ho)
	}
	dc.Outcome = o
	return dc
}

// BuildPlugins builds the plugins configured as Go package directories
// whose binaries are missing or older than their sources.
func (r *Run) BuildPlugins(ctx context.Context) error {
	return plugins.Build(ctx, r.Cfg.Dir, r.Cfg.Plugins, r.Log)
}
