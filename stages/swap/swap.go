// Package swap turns a shipped release into the live one, in two halves
// that a deploy runs as two phases across its hosts: Stage assembles and
// verifies releases/<id> and furnishes it (shared paths, carried assets,
// shared/.env) while nothing live changes; Activate backs up the database,
// migrates, switches current with one rename and restarts the services.
package swap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
)

// Step is Swap as a pipeline step: every host stages the release before
// any host activates it.
type Step struct{}

func (Step) String() string { return "swap" }

// Run stages rc.Packaged on every host, then, only when every host staged
// it, activates it on every host. When a host fails to stage, no host
// switches and every host's staging is discarded.
func (Step) Run(ctx context.Context, rc *run.Context) error {
	if err := StageAll(ctx, rc); err != nil {
		return err
	}
	return ActivateAll(ctx, rc)
}

// StageAll stages the release on every host. If any host fails, the
// release is discarded from every host that staged it, so a failed deploy
// leaves nothing behind but its record.
func StageAll(ctx context.Context, rc *run.Context) error {
	id := rc.Plan.Release
	err := rc.Each(ctx, "stage "+id+" on", func(ctx context.Context, h *fleet.Host) error {
		return Stage(ctx, rc, h)
	})
	if err != nil {
		Discard(ctx, rc)
		return err
	}
	rc.Log.Infof("%s staged and verified on %d hosts; activating", id, len(rc.Hosts))
	return nil
}

// ActivateAll activates the staged release on every host, each migrating
// its own database when migrations are pending (see MigrateEach).
func ActivateAll(ctx context.Context, rc *run.Context) error {
	migrate := MigrateEach(rc)
	return rc.Each(ctx, "activate "+rc.Plan.Release+" on", func(ctx context.Context, h *fleet.Host) error {
		return Activate(ctx, rc, h, migrate)
	})
}

// MigrateEach reports whether each host migrates its own database as it
// activates: migrations are pending and the hosts do not share one
// database (migrations.once, see MigrateOnce).
func MigrateEach(rc *run.Context) bool {
	mig := rc.Cfg.Migrations
	return mig != nil && rc.Plan.Migrations.Pending && !mig.Once
}

// MigrateOnceFirst reports whether a database shared by the hosts is to
// be migrated once, on one host, before any host activates.
func MigrateOnceFirst(rc *run.Context) bool {
	mig := rc.Cfg.Migrations
	return mig != nil && rc.Plan.Migrations.Pending && mig.Once
}

// Stage assembles releases/<id> on h from the shipped archive and the live
// release's unchanged files, verifies it against the manifest and
// furnishes it, in one round trip. Nothing live changes. When the ship's
// last round trip staged it already (StageBatch), it reports how that went.
func Stage(ctx context.Context, rc *run.Context, h *fleet.Host) error {
	if h.StagedWithShip {
		h.StagedWithShip = false
		return h.StageErr
	}
	cmds, decode, err := stageBatch(rc, h, rc.Packaged.Manifest)
	if err != nil {
		return err
	}
	results, errs := h.RunBatch(ctx, cmds...)
	return decode(results, errs)
}

// StageBatch is Stage of the release of m as commands for the ship's last
// round trip, which runs them once the archive is verified, sparing one of
// their own: receive takes their results, which Stage then reports, and
// returns how staging went.
func StageBatch(rc *run.Context, h *fleet.Host, m *archive.Manifest) (cmds []remote.Command, receive func([]remote.Result, []error) error, err error) {
	cmds, decode, err := stageBatch(rc, h, m)
	if err != nil {
		return nil, nil, err
	}
	return cmds, func(results []remote.Result, errs []error) error {
		h.StagedWithShip, h.StageErr = true, decode(results, errs)
		return h.StageErr
	}, nil
}

// stageBatch is the round trip that stages the release of m on h, and the
// decoder of its results.
func stageBatch(rc *run.Context, h *fleet.Host, m *archive.Manifest) ([]remote.Command, func([]remote.Result, []error) error, error) {
	spec := server.StageSpec{ID: m.Release, PrevID: m.Base, ArchiveSHA256: m.Archive.SHA256, Compression: string(m.Archive.Codec())}
	for _, re := range m.Reuse {
		spec.Reuse = append(spec.Reuse, server.LinkPair{From: re.From, To: re.Path})
	}
	stage, err := server.StageRelease(h.Layout, spec)
	if err != nil {
		return nil, nil, err
	}
	furnish, err := furnishing(rc, h, m)
	if err != nil {
		return nil, nil, err
	}
	cmds := []remote.Command{stage.Cmd}
	if furnish.Script != "" {
		cmds = append(cmds, furnish)
	}
	decode := func(results []remote.Result, errs []error) error {
		if _, err := stage.Decode(results[0], errs[0]); err != nil {
			var mismatch *server.TreeMismatchError
			var unsafe *server.UnsafeArchiveError
			if errors.As(err, &mismatch) || errors.As(err, &unsafe) {
				return fmt.Errorf("unpack %s: %w", m.Release, err)
			}
			return h.DiskFullOr(err)
		}
		h.Staged = true
		return h.DiskFullOr(remote.FirstError(errs[1:]))
	}
	return cmds, decode, nil
}

// Discard removes the release, staged, shipped or half uploaded, from
// every host that did not switch to it, with a context of its own: it runs
// after a failure, maybe an interrupt. The server refuses to remove a
// release that is live.
func Discard(ctx context.Context, rc *run.Context) {
	ctx = context.WithoutCancel(ctx)
	id := rc.Plan.Release
	for _, h := range rc.Hosts {
		if h.Switched {
			continue
		}
		err := h.Exec(ctx)(server.DiscardRelease(h.Layout, id))
		if err != nil && remote.IsConnectionLost(err) {
			// The connection is gone (a network cut), maybe not the
			// host: discard over a new one rather than leave the upload.
			if err = rc.Fleet.Reconnect(ctx, h); err == nil {
				err = h.Exec(ctx)(server.DiscardRelease(h.Layout, id))
			}
		}
		if err != nil {
			h.Log.Warnf("discard staged release %s: %v", id, err)
			continue
		}
		h.Staged = false
		h.Log.Infof("discarded release %s", id)
	}
}

// Activate makes the staged release live on h, in one round trip: it
// backs up the database and migrates when migrate says so (the caller
// decides for the fleet: see MigrateEach), stops
// the live release's services, switches current and starts the new
// release's services. Until the switch, a failure leaves current untouched
// and the live release's services running; after it, the caller rolls
// back. With services.slots, the services start in the idle slot and the
// router switches with current instead (slots.Activate): nothing stops
// before the new release passed its health checks.
func Activate(ctx context.Context, rc *run.Context, h *fleet.Host, migrate bool) error {
	_, _, err := ActivateThen(ctx, rc, h, migrate, Followup{})
	return err
}

// Followup is what a caller runs on a host in an activation's round trip,
// after the activation's commands and only if every one of them
// succeeded: Cmds, with the activation's ahead of them, run by Batch
// (Host.RunBatch when nil). A deploy to one host concludes there.
type Followup struct {
	Cmds  []remote.Command
	Batch func(ctx context.Context, cmds ...remote.Command) ([]remote.Result, []error)
}

// ActivateThen is Activate with then in the activation's round trip; it
// returns the results of then's commands, which ran when it returns no
// error and else did not, or, when the answer never came, maybe did. With
// services.slots, then has a round trip of its own once the router
// switched.
func ActivateThen(ctx context.Context, rc *run.Context, h *fleet.Host, migrate bool, then Followup) ([]remote.Result, []error, error) {
	steps, err := activation(rc, h, migrate)
	if err != nil {
		return nil, nil, err
	}
	batch := then.Batch
	if batch == nil {
		batch = h.RunBatch
	}
	if slots.Enabled(rc) {
		if err := activateSlots(ctx, rc, h, steps); err != nil {
			return nil, nil, err
		}
		if len(then.Cmds) == 0 {
			return nil, nil, nil
		}
		results, errs := batch(ctx, then.Cmds...)
		return results, errs, nil
	}
	return runActivation(ctx, rc, h, steps, then.Cmds, batch)
}

// runActivation runs steps, then the commands of then, in one round trip
// by batch, undoing what a failed step left half done; it returns the
// results of then.
func runActivation(ctx context.Context, rc *run.Context, h *fleet.Host, steps []activationStep, then []remote.Command,
	batch func(context.Context, ...remote.Command) ([]remote.Result, []error)) ([]remote.Result, []error, error) {
	id := rc.Plan.Release
	cmds := make([]remote.Command, len(steps), len(steps)+len(then))
	for i, st := range steps {
		cmds[i] = st.cmd
		if st.script != "" {
			h.Log.Debugf("%s runs: %s", st.cmd.Desc, st.script)
		}
	}
	results, errs := batch(ctx, append(cmds, then...)...)
	n := len(steps)
	if err := remote.FirstError(errs[:n]); unanswered(err) {
		return nil, nil, activationUnanswered(ctx, rc, h, steps, err)
	}
	for i, st := range steps {
		err := errs[i]
		if st.kind == migrateStep {
			h.Migrated = true // it ran, or may have: a rollback restores the backup
		}
		if st.kind != switchStep && !errors.Is(err, remote.ErrSkipped) {
			h.ShowOutput(st.cmd.Desc, results[i])
		}
		if err != nil {
			return nil, nil, activationFailed(ctx, rc, h, st.kind, fleet.WithOutput(err, results[i]))
		}
		switch st.kind {
		case migrateStep:
			h.Log.Infof("migrations applied")
		case switchStep:
			h.Switched = true
			h.Log.Infof("current -> releases/%s", id)
		}
	}
	return results[n:], errs[n:], nil
}

// MigrateOnce backs up the database and applies the pending migrations on
// h alone, in one round trip, for a database the hosts share
// (migrations.once): the rollout runs it on its first host before any
// host activates, and Activate then migrates nowhere. A failed migration
// is undone from the backup and the live release's services restart on
// the restored database, so nothing live changed.
func MigrateOnce(ctx context.Context, rc *run.Context, h *fleet.Host) error {
	mig, id := rc.Cfg.Migrations, rc.Plan.Release
	var cmds []remote.Command
	if len(mig.Backup) > 0 {
		backup, err := server.BackupFiles(h.Layout, id, mig.Backup)
		if err != nil {
			return err
		}
		cmds = append(cmds, backup)
	}
	migrate, err := server.RunIn(h.Layout, id, "migrate", mig.Run)
	if err != nil {
		return err
	}
	h.Log.Debugf("%s runs: %s", migrate.Desc, mig.Run)
	cmds = append(cmds, migrate)
	results, errs := h.RunBatch(ctx, cmds...)
	last := len(cmds) - 1
	if !errors.Is(errs[last], remote.ErrSkipped) {
		h.Migrated = true // it ran, or may have: a rollback restores the backup
	}
	for i := range cmds {
		if !errors.Is(errs[i], remote.ErrSkipped) {
			h.ShowOutput(cmds[i].Desc, results[i])
		}
		switch err := fleet.WithOutput(errs[i], results[i]); {
		case errs[i] == nil:
		case i < last:
			return fmt.Errorf("back up database: %w", h.DiskFullOr(err))
		default:
			return migrationFailed(ctx, rc, h, err)
		}
	}
	h.Log.Infof("migrations applied, once for every host")
	return nil
}

// unanswered reports whether err is a failure whose answer never came (an
// interrupt, a lost connection): the commands may have run to their end.
func unanswered(err error) bool {
	var exit *remote.ExitError
	return err != nil && !errors.As(err, &exit) && !errors.Is(err, remote.ErrSkipped)
}

// activationUnanswered learns from h what an activation whose answer never
// came did, over a new connection if the old one is gone, so that a
// rollback undoes it: whether current moved, whether the migration may
// have run. When h cannot tell, it assumes both. The live release's
// services are started again when current did not move.
func activationUnanswered(ctx context.Context, rc *run.Context, h *fleet.Host, steps []activationStep, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	id := rc.Plan.Release
	migrates := slices.ContainsFunc(steps, func(st activationStep) bool { return st.kind == migrateStep })
	if remote.IsConnectionLost(cause) || errors.Is(cause, remote.ErrConnectionLost) {
		if err := rc.Fleet.Reconnect(ctx, h); err != nil {
			h.Switched, h.Migrated = true, migrates
			return fmt.Errorf("%w; %w", cause, err)
		}
	}
	read, err := server.ReadActivation(h.Layout, id)
	var a server.Activation
	if err == nil {
		a, err = server.Run(ctx, h, read)
	}
	if err != nil {
		h.Switched, h.Migrated = true, migrates
		return fmt.Errorf("%w; reading what it did failed too: %v", cause, err)
	}
	h.Switched, h.Migrated = a.Current == id, migrates && a.BackedUp
	h.Log.Warnf("the activation's answer never came: current -> releases/%s, migration may have run: %v", a.Current, h.Migrated)
	if h.Switched {
		return cause
	}
	return restartLive(ctx, rc, h, cause)
}

// stepKind says what a command of an activation does, which decides what
// its failure must undo.
type stepKind int

const (
	backupStep stepKind = iota
	migrateStep
	stopStep
	switchStep
	restartStep
)

type activationStep struct {
	kind   stepKind
	cmd    remote.Command
	script string // the user's command the step runs, shown with -v
}

// activation lists the commands that activate the staged release on h:
// the backup and the migration when migrate, then the switch between
// stopping the live release's services and starting the new one's.
func activation(rc *run.Context, h *fleet.Host, migrate bool) ([]activationStep, error) {
	id := rc.Plan.Release
	var steps []activationStep
	add := func(kind stepKind, cmds []remote.Command, scripts ...string) {
		for i, c := range cmds {
			st := activationStep{kind: kind, cmd: c}
			if i < len(scripts) {
				st.script = scripts[i]
			}
			steps = append(steps, st)
		}
	}
	if migrate {
		mig := rc.Cfg.Migrations
		if len(mig.Backup) > 0 {
			backup, err := server.BackupFiles(h.Layout, id, mig.Backup)
			if err != nil {
				return nil, err
			}
			add(backupStep, []remote.Command{backup})
		}
		migrate, err := server.RunIn(h.Layout, id, "migrate", mig.Run)
		if err != nil {
			return nil, err
		}
		add(migrateStep, []remote.Command{migrate}, mig.Run)
	}
	if slots.Enabled(rc) {
		// The slots start, switch and stop the services (activateSlots).
		return steps, nil
	}
	if h.Live != "" {
		stops, err := server.Stop(rc.Env.Services, h.Layout, h.Live)
		if err != nil {
			return nil, err
		}
		add(stopStep, stops, rc.Env.Services.Stop...)
	}
	switchTo, err := server.Switch(h.Layout, id)
	if err != nil {
		return nil, err
	}
	add(switchStep, []remote.Command{switchTo})
	restarts, err := server.Restart(rc.Env.Services, h.Layout, id, rc.Cfg.App)
	if err != nil {
		return nil, err
	}
	var scripts []string
	if rc.Env.Services.Manager == server.ManagerCommand {
		scripts = rc.Env.Services.Restart
	}
	add(restartStep, restarts, scripts...)
	return steps, nil
}

// activationFailed undoes what a failed step of an activation left half
// done, and says what failed.
func activationFailed(ctx context.Context, rc *run.Context, h *fleet.Host, kind stepKind, err error) error {
	switch kind {
	case backupStep:
		return fmt.Errorf("back up database: %w", h.DiskFullOr(err))
	case migrateStep:
		return migrationFailed(ctx, rc, h, err)
	case stopStep, switchStep:
		return restartLive(ctx, rc, h, err)
	}
	return fmt.Errorf("restart services: %w", err)
}

// restartLive starts the live release's services again after a failure
// between stopping them and the switch: current still points at that
// release, and a host that did not switch is rolled back only when it
// migrated.
func restartLive(ctx context.Context, rc *run.Context, h *fleet.Host, cause error) error {
	if h.Live == "" {
		return cause
	}
	if err := h.Restart(context.WithoutCancel(ctx), rc.Env.Services, rc.Cfg.App, h.Live); err != nil {
		return fmt.Errorf("%w; restarting %s failed too: %v", cause, h.Live, err)
	}
	return cause
}

// assetHistory tells which build of a component each release holds: the
// state's releases (each recording what it reused, see
// server.Release.Reused) and the manifests at hand, the new release's and
// the live one's, whose Reused maps name the release taken from.
type assetHistory struct {
	state     *server.State
	dir       string // the path in a release whose build is asked for
	manifests map[string]*archive.Manifest
}

// newAssetHistory is the history of h's releases for the assets dir, with
// the new release's manifest m.
func newAssetHistory(h *fleet.Host, m *archive.Manifest, dir string) assetHistory {
	a := assetHistory{state: h.State, dir: dir, manifests: map[string]*archive.Manifest{m.Release: m}}
	if lm := h.LiveManifest; lm != nil {
		a.manifests[lm.Release] = lm
	}
	return a
}

// reusedFrom is the release that release id took dir's component from
// unchanged, "" when it built it (or nothing says otherwise).
func (a assetHistory) reusedFrom(id string) string {
	var reused map[string]string
	if rel, ok := a.state.Release(id); ok && rel.Reused != nil {
		reused = rel.Reused
	} else if m := a.manifests[id]; m != nil {
		reused = m.Reused
	}
	for dest, from := range reused {
		if dest == "" || a.dir == dest || strings.HasPrefix(a.dir, dest+"/") {
			return from
		}
	}
	return ""
}

// origin is the release that built the copy of dir's component release id
// holds, following reuse back as far as the history knows.
func (a assetHistory) origin(id string) string {
	for range len(a.state.Releases) + len(a.manifests) + 1 {
		from := a.reusedFrom(id)
		if from == "" || from == id {
			break
		}
		id = from
	}
	return id
}

// ReusedOrigins is what the state records of the release of manifest m
// (see server.Release.Reused): for each component m reused, the release
// that built it, following reuse back through the state s and the live
// release's manifest live. Nil when m reused nothing.
func ReusedOrigins(s *server.State, live, m *archive.Manifest) map[string]string {
	if len(m.Reused) == 0 {
		return nil
	}
	a := assetHistory{state: s, manifests: map[string]*archive.Manifest{m.Release: m}}
	if live != nil {
		a.manifests[live.Release] = live
	}
	out := map[string]string{}
	for dest := range m.Reused {
		a.dir = dest
		out[dest] = a.origin(m.Release)
	}
	return out
}

// assetSources lists the releases whose assets new release id carries:
// versions-1 builds of the assets dir's component other than its own, the
// newest first, each through the newest release holding it (the live one
// or an older good one). A release that reused that component holds the
// build of the release it reused it from, so a backend-only deploy counts
// no new frontend version and keeps the one before the live frontend.
func assetSources(a assetHistory, id, live string, versions int) []string {
	if live == "" || versions < 2 {
		return nil
	}
	seen := map[string]bool{a.origin(id): true}
	var out []string
	add := func(rel string) bool {
		if v := a.origin(rel); !seen[v] {
			seen[v] = true
			out = append(out, rel)
		}
		return len(out) >= versions-1
	}
	if add(live) {
		return out
	}
	for i := len(a.state.Releases) - 1; i >= 0; i-- {
		rel := a.state.Releases[i]
		if rel.ID != live && rel.ID < live && rel.Status != server.StatusFailed && add(rel.ID) {
			break
		}
	}
	return out
}

// furnishing is what the staged release gets before migrations, in one
// round trip: links to the shared paths, the assets of the frontend
// versions before it (assetSources), and shared/.env (owner-only, when the environment sets variables;
// secret values never pass through the log).
func furnishing(rc *run.Context, h *fleet.Host, m *archive.Manifest) (remote.Command, error) {
	id, l := rc.Plan.Release, h.Layout
	var steps []remote.Command
	if len(rc.Env.Shared) > 0 {
		c, err := server.LinkShared(l, id, rc.Env.Shared)
		if err != nil {
			return c, err
		}
		steps = append(steps, c)
	}
	if dir := rc.Env.Assets.Dir; dir != "" {
		sources := assetSources(newAssetHistory(h, m, dir), id, h.Live, rc.Env.Assets.Versions)
		c, err := server.CarryAssets(l, id, sources, dir)
		if err != nil {
			return c, err
		}
		steps = append(steps, c)
	}
	if values := rc.HostValues(h); len(values) > 0 {
		data, err := server.FormatEnv(values)
		if err != nil {
			return remote.Command{}, err
		}
		steps = append(steps, server.WriteEnv(l, data))
	}
	return remote.Chain("link shared paths, carry assets, write shared/.env into "+id, steps...)
}

// migrationFailed restores the database backup taken before the failed
// migration, so the database is as the live release left it, and restarts
// the live release's services on it.
func migrationFailed(ctx context.Context, rc *run.Context, h *fleet.Host, err error) error {
	ctx = context.WithoutCancel(ctx)
	if rerr := h.RestoreDatabase(ctx, rc.Cfg.Migrations, rc.Plan.Release); rerr != nil {
		return fmt.Errorf("migration failed: %w; restoring the database backup failed too: %v", err, rerr)
	}
	// The restore replaced the database file under the live release's
	// services: restart them, or they keep writing to the old file.
	if h.Live != "" {
		restart := func() error { return h.Restart(ctx, rc.Env.Services, rc.Cfg.App, h.Live) }
		if slots.Enabled(rc) {
			// In the idle slot, then switched to: no downtime either.
			restart = func() error { return slots.Activate(ctx, rc, h, h.Live) }
		}
		if rerr := restart(); rerr != nil {
			return fmt.Errorf("migration failed (database restored from the backup, but restarting %s failed: %v): %w", h.Live, rerr, err)
		}
	}
	return fmt.Errorf("migration failed (database restored from the backup): %w", err)
}
