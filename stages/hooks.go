package stages

import (
	"context"

	"github.com/stagecoach/stagecoach/plugins"
)

// hook runs the plugins configured at a hook point ("before-ship",
// "after-swap", ...) once per host, each with the deploy context and the
// host's connection for the commands it runs there.
func (r *Run) hook(ctx context.Context, point string) error {
	if !r.hasPlugins(point) {
		return nil
	}
	return r.eachHost(ctx, r.Hosts, point+" plugins on", func(ctx context.Context, h *Host) error {
		results, err := plugins.RunHook(ctx, r.Cfg.Plugins, point, r.pluginContext(h), h.Runner, h.Log)
		for _, res := range results {
			r.report.addPlugin(h.Name, res)
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
func (r *Run) pluginContext(h *Host) plugins.Context {
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

// BuildPlugins builds the plugins configured as Go package directories
// whose binaries are missing or older than their sources.
func (r *Run) BuildPlugins(ctx context.Context) error {
	return plugins.Build(ctx, r.Cfg.Dir, r.Cfg.Plugins, r.Log)
}
