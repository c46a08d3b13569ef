package pipeline

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/git"
	"github.com/stagecoach/stagecoach/stages/pack"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// ShowPlan prints, per host, what a deploy would do: the changed
// components and why, the bytes to send, the migrations to run and the
// releases cleanup would remove. It builds locally and writes the archive
// to nowhere to know its size, keeping no package; it changes nothing on
// the hosts and takes no lock.
func (r *Run) ShowPlan(ctx context.Context, w io.Writer) error {
	if err := r.Detect(ctx); err != nil {
		return err
	}
	if r.nothingChanged() {
		fmt.Fprintf(w, "nothing changed since %s: a deploy would change nothing\n", git.Short(r.Plan.Previous))
		return nil
	}
	if err := r.Build(ctx); err != nil {
		return err
	}
	p, err := pack.Plan(ctx, r.Cfg, r.Plan, r.Previous, r.Log)
	if err != nil {
		return err
	}
	if err := pack.Measure(ctx, p); err != nil {
		return err
	}
	var rows [][]string
	for _, h := range r.Hosts {
		var ids []string
		for _, rel := range h.State.Releases {
			ids = append(ids, rel.ID)
		}
		protect := []string{r.Plan.Release}
		if h.Live != "" {
			protect = append(protect, h.Live)
		}
		remove := server.PlanCleanup(append(ids, r.Plan.Release), r.Env.KeepReleases, protect)
		migrations := "none"
		if r.Plan.Migrations.Pending && r.Cfg.Migrations != nil {
			migrations = r.Cfg.Migrations.Run
		}
		rows = append(rows, []string{h.Name, ui.Or(h.Live, "-"), r.Plan.Release,
			fmt.Sprintf("%s (%d files, %d reused)", ui.Bytes(p.Manifest.Archive.Size), len(p.Send), len(p.Reuse)),
			migrations, ui.Or(strings.Join(remove, " "), "-")})
	}
	fmt.Fprintln(w)
	return ui.Table(w, []string{"HOST", "LIVE", "NEW", "TO SEND", "MIGRATIONS", "CLEANUP REMOVES"}, rows)
}

// showFleet prints which host runs which release and how its last deploy
// ended, then, when they differ, which hosts run another release than
// the rest.
func (r *Run) showFleet(w io.Writer) {
	var rows [][]string
	var live []fleet.HostRelease
	for _, h := range r.Hosts {
		rev, last := "-", "-"
		if rel, ok := h.State.Release(h.Live); ok && rel.Revision != "" {
			rev = git.Short(rel.Revision)
		}
		if n := len(h.State.Deploys); n > 0 {
			d := h.State.Deploys[n-1]
			last = d.Result + " " + ui.Or(d.ID, "-")
		}
		rows = append(rows, []string{h.Name, ui.Or(h.Live, "-"), rev, last})
		live = append(live, fleet.HostRelease{Host: h.Name, Release: h.Live})
	}
	ui.Table(w, []string{"HOST", "LIVE", "REVISION", "LAST DEPLOY"}, rows)
	if drift := fleet.Drift(live); drift != "" {
		fmt.Fprintf(w, "\nhosts run different releases: %s\n", drift)
	}
	fmt.Fprintln(w)
}

// ShowReleases prints which host runs which release, then every host's
// releases and its latest deploys.
func (r *Run) ShowReleases(ctx context.Context, w io.Writer, deploys int) error {
	if err := r.peek(ctx); err != nil {
		return err
	}
	r.showFleet(w)
	for _, h := range r.Hosts {
		fmt.Fprintf(w, "%s (%s)\n", h.Name, h.Layout.Root)
		var rows [][]string
		for i := len(h.State.Releases) - 1; i >= 0; i-- {
			rel := h.State.Releases[i]
			rows = append(rows, []string{rel.ID, git.Short(rel.Revision), rel.Status, rel.Created.Local().Format(time.DateTime)})
		}
		ui.Table(w, []string{"RELEASE", "REVISION", "STATUS", "CREATED"}, rows)
		rows = rows[:0]
		from := max(0, len(h.State.Deploys)-deploys)
		for i := len(h.State.Deploys) - 1; i >= from; i-- {
			d := h.State.Deploys[i]
			what := d.Result
			if d.Stage != "" {
				what += " at " + d.Stage
			}
			if d.Fleet != "" && d.Fleet != d.Result {
				what += " (deploy " + d.Fleet + ")"
			}
			if d.BrokeLock != "" {
				what += ", broke lock of " + d.BrokeLock
			}
			rows = append(rows, []string{d.Started.Local().Format(time.DateTime), ui.Or(d.ID, "-"), d.User, what, ui.Round(d.Duration).String()})
		}
		fmt.Fprintln(w)
		ui.Table(w, []string{"DEPLOYED", "RELEASE", "BY", "RESULT", "TOOK"}, rows)
		fmt.Fprintln(w)
	}
	return nil
}
