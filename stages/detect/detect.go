// Package detect decides what a deploy carries: which components changed
// since the revision the servers last deployed successfully, and whether
// migrations are pending.
package detect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/git"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/shell"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// DetectOptions are the inputs of Detect besides the config.
type DetectOptions struct {
	// Previous is the revision recorded on the server by the last
	// successful deploy; "" means this is the first deploy.
	Previous string
	// Revision is the commit to deploy; default HEAD.
	Revision string
	// AllowDirty deploys a work tree with uncommitted changes (as does
	// the config's allow_dirty).
	AllowDirty bool
	// Force deploys everything when Previous is unknown to git (after a
	// force-push, or in a shallow clone) instead of failing.
	Force bool
	// Now stamps the release id; the zero value means time.Now().
	Now time.Time
	// After is the newest release id the hosts know, which the new id
	// must sort after (see NextReleaseID).
	After string
	// Release, when set, is the release id, instead of a new one: that of
	// a plan made earlier for the same commit (see Rebase).
	Release string
}

// ErrPreviousUnknown is wrapped by Detect's error when the last deployed
// revision is not a commit the local repository has.
var ErrPreviousUnknown = errors.New("previous revision unknown to git")

// planFiles is how many matching files a ComponentChange keeps for display.
const planFiles = 3

// Reasons Detect gives in a plan.
const (
	ReasonFirstDeploy     = "first deploy"
	ReasonForced          = "previous revision unknown to git; forced full deploy"
	ReasonUnchanged       = "unchanged"
	ReasonNoMigrations    = "none pending"
	ReasonMigrationDetect = "detect command reports pending migrations"
)

// Detect decides what a deploy of opts.Revision carries: it diffs the
// revision against the last successful deploy (the whole range, so a change
// in any commit since then counts) and matches the changed files against
// each component's watch patterns.
func Detect(ctx context.Context, cfg *config.Config, opts DetectOptions, log *ui.Logger) (*run.Plan, error) {
	defer log.Step("detect")()
	repo := git.Repo{Dir: cfg.Dir}
	rev := opts.Revision
	if rev == "" {
		rev = "HEAD"
	}
	sha, err := repo.ResolveCommit(ctx, rev)
	if err != nil {
		return nil, fmt.Errorf("detect: resolve revision %s: %w", rev, err)
	}
	// The project root may be a subdirectory of the repository; git speaks
	// in paths from the repository's top, patterns in paths from the root.
	prefix, err := repo.Prefix(ctx)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}

	changes, err := repo.Dirty(ctx)
	if err != nil {
		return nil, fmt.Errorf("detect: check work tree: %w", err)
	}
	dirty := dirtyFiles(changes, prefix, cfg)
	if len(dirty) > 0 {
		if !opts.AllowDirty && !cfg.AllowDirty {
			return nil, fmt.Errorf("detect: the work tree has uncommitted changes (%s); commit or stash them, or deploy them anyway with STAGECOACH_ALLOW_DIRTY=1 (or allow_dirty: true in %s)",
				firstFew(dirty, dirtyShown), configName(cfg))
		}
		log.Warnf("deploying a work tree with uncommitted changes: %s", firstFew(dirty, dirtyShown))
	}
	if head, err := repo.ResolveCommit(ctx, "HEAD"); err == nil && head != sha {
		log.Warnf("revision %s is not the checked-out HEAD %s: components are built from the work tree", git.Short(sha), git.Short(head))
	}

	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	plan := &run.Plan{
		Revision: sha,
		Previous: opts.Previous,
		Release:  opts.Release,
		Dirty:    len(dirty) > 0,
	}
	if plan.Release == "" {
		plan.Release = NextReleaseID(now, sha, opts.After)
	}

	switch {
	case opts.Previous == "":
		plan.Components, plan.Migrations = everything(cfg, ReasonFirstDeploy)
		return plan, nil
	default:
		known, err := repo.HasCommit(ctx, opts.Previous)
		if err != nil {
			return nil, fmt.Errorf("detect: look up previous revision %s: %w", opts.Previous, err)
		}
		if !known {
			if !opts.Force {
				return nil, fmt.Errorf("detect: %w: the last deploy recorded %s, which this repository does not have (rewritten history or a shallow clone?); fetch it (git fetch --unshallow) or deploy everything with --force",
					ErrPreviousUnknown, opts.Previous)
			}
			log.Warnf("previous revision %s is unknown to git; deploying everything", opts.Previous)
			plan.Components, plan.Migrations = everything(cfg, ReasonForced)
			return plan, nil
		}
	}

	files, err := repo.ChangedFiles(ctx, opts.Previous, sha)
	if err != nil {
		return nil, fmt.Errorf("detect: diff %s..%s: %w", git.Short(opts.Previous), git.Short(sha), err)
	}
	files = relativeTo(files, prefix)
	log.Debugf("detect: %d files changed since %s", len(files), git.Short(opts.Previous))
	plan.Components, plan.Migrations = decide(files, cfg.Components, cfg.Migrations)

	if m := cfg.Migrations; m != nil && m.Detect != "" && !plan.Migrations.Pending {
		pending, err := detectMigrations(ctx, cfg.Dir, m.Detect, plan, log)
		if err != nil {
			return nil, err
		}
		if pending {
			plan.Migrations = run.MigrationChange{Pending: true, Reason: ReasonMigrationDetect}
		}
	}
	return plan, nil
}

// ReleaseID names a release: the UTC time and the short commit, so ids
// sort by deploy time, e.g. 20261128T122605Z-b609e69.
func ReleaseID(now time.Time, sha string) string {
	return now.UTC().Format(releaseTime) + "-" + git.Short(sha)
}

const releaseTime = "20060102T150405Z"

// NextReleaseID is ReleaseID, stamped a second after the release after
// when that would not sort after it: rollback and cleanup take release ids
// to sort by the time they were made, which two deploys in one second, or
// a client whose clock is behind, would break.
func NextReleaseID(now time.Time, sha, after string) string {
	id := ReleaseID(now, sha)
	if id > after {
		return id
	}
	if t, err := time.Parse(releaseTime, strings.SplitN(after, "-", 2)[0]); err == nil {
		return ReleaseID(t.Add(time.Second), sha)
	}
	return id
}

// dirtyShown is how many dirty files the dirty-tree error names.
const dirtyShown = 5

// dirtyFiles is what makes the work tree dirty for a deploy, as paths
// relative to the project root: every tracked file under it that is
// modified, added, deleted or renamed, staged or not, and the untracked
// files that a component's or the migrations' watch patterns match, the
// ones a build or a migration could pick up. An untracked file elsewhere
// (a compiled ./stagecoach, an editor's backup) does not count.
func dirtyFiles(changes []git.Change, prefix string, cfg *config.Config) []string {
	var out []string
	for _, c := range changes {
		path, ok := strings.CutPrefix(c.Path, prefix)
		if !ok && c.From != "" {
			// A rename from inside the project to outside it.
			path, ok = strings.CutPrefix(c.From, prefix)
		}
		if !ok {
			continue
		}
		if c.Untracked() && !watchedByAny(cfg, path) {
			continue
		}
		out = append(out, path)
	}
	return out
}

// watchedByAny reports whether a component's or the migrations' patterns
// match path.
func watchedByAny(cfg *config.Config, path string) bool {
	for _, c := range cfg.Components {
		if watched(c.Watch, path) {
			return true
		}
	}
	return cfg.Migrations != nil && watched(cfg.Migrations.Watch, path)
}

// configName is the config file as the dirty-tree error names it.
func configName(cfg *config.Config) string {
	if cfg.File == "" {
		return "stagecoach.yml"
	}
	return filepath.Base(cfg.File)
}

// relativeTo keeps the paths under prefix (a directory with a trailing
// slash, or "") and makes them relative to it.
func relativeTo(paths []string, prefix string) []string {
	if prefix == "" {
		return paths
	}
	var out []string
	for _, p := range paths {
		if rel, ok := strings.CutPrefix(p, prefix); ok {
			out = append(out, rel)
		}
	}
	return out
}

func firstFew(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// everything marks every component changed for reason, and migrations
// pending when there are any.
func everything(cfg *config.Config, reason string) ([]run.ComponentChange, run.MigrationChange) {
	changes := make([]run.ComponentChange, len(cfg.Components))
	for i, c := range cfg.Components {
		changes[i] = run.ComponentChange{Name: c.Name, Changed: true, Reason: reason}
	}
	var mig run.MigrationChange
	if cfg.Migrations != nil {
		mig = run.MigrationChange{Pending: true, Reason: reason}
	}
	return changes, mig
}

// decide matches changed files (slash paths relative to the project root)
// against each component's watch patterns and the migrations' patterns.
func decide(changed []string, components []config.Component, migrations *config.Migrations) ([]run.ComponentChange, run.MigrationChange) {
	out := make([]run.ComponentChange, len(components))
	for i, c := range components {
		files := matching(c.Watch, changed)
		out[i] = run.ComponentChange{Name: c.Name, Changed: len(files) > 0, Reason: ReasonUnchanged, Matched: len(files)}
		if len(files) > 0 {
			out[i].Reason = countFiles(len(files))
			out[i].Files = files[:min(len(files), planFiles)]
		}
	}
	var mig run.MigrationChange
	if migrations != nil {
		mig.Reason = ReasonNoMigrations
		if files := matching(migrations.Watch, changed); len(files) > 0 {
			mig = run.MigrationChange{Pending: true, Reason: countFiles(len(files)), Files: files[:min(len(files), planFiles)], Matched: len(files)}
		}
	}
	return out, mig
}

func countFiles(n int) string {
	if n == 1 {
		return "1 file changed"
	}
	return fmt.Sprintf("%d files changed", n)
}

// matching returns the files that match at least one positive pattern and
// no "!" pattern.
func matching(patterns []string, files []string) []string {
	var out []string
	for _, f := range files {
		if watched(patterns, f) {
			out = append(out, f)
		}
	}
	return out
}

func watched(patterns []string, file string) bool {
	matched := false
	for _, p := range patterns {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if doublestar.MatchUnvalidated(neg, file) {
				return false
			}
		} else if !matched && doublestar.MatchUnvalidated(p, file) {
			matched = true
		}
	}
	return matched
}

// detectMigrations runs the configured detect command: exit 0 means
// migrations are pending, 1 means none, anything else is an error.
func detectMigrations(ctx context.Context, dir, script string, plan *run.Plan, log *ui.Logger) (bool, error) {
	var tail shell.Tail
	out := log.Writer("migrations detect | ", true)
	env := append(os.Environ(), "STAGECOACH_PREVIOUS="+plan.Previous, "STAGECOACH_REVISION="+plan.Revision)
	err := shell.Run(ctx, dir, script, env, io.MultiWriter(out, &tail))
	out.Close()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1 && ctx.Err() == nil:
		return false, nil
	default:
		return false, fmt.Errorf("detect migrations: %q: %w%s", script, err, tail.Suffix(log))
	}
}

// PrintPlan renders the plan as a table: each component, whether it
// changed and why, with the first matching files.
func PrintPlan(w io.Writer, plan *run.Plan) error {
	var rows [][]string
	for _, c := range plan.Components {
		rows = append(rows, []string{c.Name, yesNo(c.Changed, "yes", "no"), why(c.Reason, c.Files, c.Matched)})
	}
	if m := plan.Migrations; m.Reason != "" {
		rows = append(rows, []string{"(migrations)", yesNo(m.Pending, "pending", "no"), why(m.Reason, m.Files, m.Matched)})
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "release %s", plan.Release)
	if plan.Previous != "" {
		fmt.Fprintf(&b, " (%s..%s)", git.Short(plan.Previous), git.Short(plan.Revision))
	} else {
		fmt.Fprintf(&b, " (%s)", git.Short(plan.Revision))
	}
	if plan.Dirty {
		b.WriteString(", work tree dirty")
	}
	b.WriteString("\n")
	if _, err := w.Write(b.Bytes()); err != nil {
		return err
	}
	return ui.Table(w, []string{"COMPONENT", "CHANGED", "WHY"}, rows)
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func why(reason string, files []string, matched int) string {
	if len(files) == 0 {
		return reason
	}
	s := reason + ": " + strings.Join(files, ", ")
	if matched > len(files) {
		s += ", ..."
	}
	return s
}

// Step is Detect as a pipeline step, on hosts whose state is read: it
// writes rc.Plan, and rc.Previous, the live release's manifest that
// Package reuses files from.
type Step struct{}

func (Step) String() string { return "detect" }

// Run decides what changed since the last successful deploy and logs the
// plan table.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	previous, manifest := previousRevision(rc, rc.Log)
	plan, err := Detect(ctx, rc.Cfg, DetectOptions{
		Previous:   previous,
		After:      newestRelease(rc.Hosts),
		AllowDirty: rc.Opts.AllowDirty,
		Force:      rc.Opts.Force,
	}, rc.Log)
	if err != nil {
		return err
	}
	adopt(rc, plan, manifest)
	return nil
}

// adopt makes plan the run's, with the live release's manifest, and logs
// the plan table.
func adopt(rc *run.Context, plan *run.Plan, manifest *archive.Manifest) {
	rc.Plan, rc.Previous = plan, manifest
	var table strings.Builder
	PrintPlan(&table, plan)
	rc.Log.Infof("%s", table.String())
}

// Ahead is Detect run before the hosts answered, against previous, the
// revision this checkout last deployed to the environment as release
// after: the plan Step would make if the hosts still run that. Confirm
// tells.
func Ahead(ctx context.Context, rc *run.Context, previous, after string, log *ui.Logger) (*run.Plan, error) {
	return Detect(ctx, rc.Cfg, DetectOptions{Previous: previous, After: after, AllowDirty: rc.Opts.AllowDirty, Force: rc.Opts.Force}, log)
}

// Confirm makes plan, made by Ahead, the run's plan when the hosts, now
// connected, confirm what it assumed: they agree on a live release whose
// revision is the plan's Previous, and its release id sorts after every
// release they know. It reports whether they did; when not, Step decides.
func Confirm(rc *run.Context, plan *run.Plan) bool {
	if plan == nil || rc.Opts.Previous != "" || len(rc.Hosts) == 0 {
		return false
	}
	rev, manifest, odd := agreedLive(rc.Hosts)
	if odd != nil || rev != plan.Previous || plan.Release <= newestRelease(rc.Hosts) {
		return false
	}
	adopt(rc, plan, manifest)
	return true
}

// Rebase is for a plan made by Ahead that Confirm refused: the hosts run
// another revision than guessed, or none. It detects what changed since
// the one they run, for the same commit and release id. When the new plan
// builds the components plan did, the build made ahead serves it, built
// as it is from the same commit under the same release id: Rebase makes
// the new plan the run's and reports true. (A plan that builds fewer
// would wait for builds it does not need.) Otherwise it logs nothing, and
// Step runs as usual.
func Rebase(ctx context.Context, rc *run.Context, plan *run.Plan) bool {
	if plan == nil || rc.Opts.Previous != "" || len(rc.Hosts) == 0 || plan.Release <= newestRelease(rc.Hosts) {
		return false
	}
	held := rc.Log.Hold()
	previous, manifest := previousRevision(rc, held.Logger)
	rebased, err := Detect(ctx, rc.Cfg, DetectOptions{
		Previous:   previous,
		Revision:   plan.Revision,
		Release:    plan.Release,
		AllowDirty: rc.Opts.AllowDirty,
		Force:      rc.Opts.Force,
	}, held.Logger)
	if err != nil || rebased.Revision != plan.Revision || rebased.Dirty != plan.Dirty || !sameBuilds(rebased, plan) {
		return false
	}
	held.Release()
	adopt(rc, rebased, manifest)
	return true
}

// sameBuilds reports whether plans a and b build the same components.
func sameBuilds(a, b *run.Plan) bool {
	if len(a.Components) != len(b.Components) {
		return false
	}
	for _, c := range a.Components {
		if c.Changed != b.Changed(c.Name) {
			return false
		}
	}
	return true
}

// newestRelease is the newest release id any host runs or records.
func newestRelease(hosts []*fleet.Host) string {
	newest := ""
	for _, h := range hosts {
		newest = max(newest, h.Live)
		if h.State != nil {
			for _, r := range h.State.Releases {
				newest = max(newest, r.ID)
			}
		}
	}
	return newest
}

// previousRevision is what Detect diffs against: the revision every host
// recorded for its live release, with that release's manifest. When the
// hosts disagree, or the live release's manifest is missing, nothing can
// be reused: deploy everything, which it warns of on log.
func previousRevision(rc *run.Context, log *ui.Logger) (string, *archive.Manifest) {
	if rc.Opts.Previous != "" || len(rc.Hosts) == 0 {
		return rc.Opts.Previous, nil
	}
	rev, manifest, odd := agreedLive(rc.Hosts)
	if odd != nil {
		if odd.Live != "" {
			log.Warnf("hosts disagree on the live release or its manifest is missing: deploying everything")
		}
		return "", nil
	}
	return rev, manifest
}

// agreedLive is the revision and manifest of the live release every host
// of hosts (at least one) runs; odd is the first host that runs another,
// or has no manifest of it, nil when there is none.
func agreedLive(hosts []*fleet.Host) (rev string, manifest *archive.Manifest, odd *fleet.Host) {
	first := hosts[0]
	for _, h := range hosts {
		if liveRevision(h) != liveRevision(first) || h.Live != first.Live || h.LiveManifest == nil {
			return "", nil, h
		}
	}
	return liveRevision(first), first.LiveManifest, nil
}

// liveRevision is the commit of the release h runs, as its state records
// it, else the commit of its last successful deploy. The live release's
// own comes first: its database is the one that release migrated, even
// when a rollback interrupted before recording itself left current (and
// the database restored with it) on an older release than the last deploy.
func liveRevision(h *fleet.Host) string {
	if r, ok := h.State.Release(h.Live); ok && r.Revision != "" {
		return r.Revision
	}
	return h.State.Revision
}
