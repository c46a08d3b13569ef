package fleet

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Host is one target of the environment during a run: its connection, its
// deploy state, and what this run has done to it, which decides what a
// rollback must undo.
type Host struct {
	Name   string            // as configured: "deploy@web1:22" or "local"
	Vars   map[string]string // the host's own values (config.Host.Vars)
	Tags   []string
	Runner remote.Runner
	Layout server.Layout
	Log    *ui.Logger

	State        *server.State
	Live         string            // release live when the run started; "" before the first deploy
	LiveManifest *archive.Manifest // Live's manifest; nil when there is none

	lease *lease

	// Prepared is the root's free space and whether it has zstd, as the
	// lock's round trip or the ship's preparation found them, having
	// checked the tools and made the directories a deploy needs; nil when
	// neither ran.
	Prepared   *server.Readiness
	PreparedAt time.Time

	Shipped  bool // the archive and manifest are on the host, verified
	Staged   bool // releases/<id> exists, verified
	Migrated bool // migrations ran (and the database was backed up first)
	Switched bool // current points at the new release
	// Maintenance says the router serves the maintenance page: checks
	// through it cannot pass, so the health step and rollbacks skip them.
	Maintenance bool
	BytesSent   int64 // archive and metadata bytes uploaded

	// StagedWithShip tells that staging ran in the ship's last round
	// trip; StageErr is how it went, which the swap stage reports.
	StagedWithShip bool
	StageErr       error

	// SwitchedBack is set when a rollback of this run switched current
	// back from the new release; RollbackErr when rolling h back failed.
	SwitchedBack bool
	RollbackErr  error
	restored     bool // the database was restored from this run's backup

	out outcome
}

// BrokeLock names the holder of a stale lock this run broke on h, "" when
// it broke none, for the deploy history.
func (h *Host) BrokeLock() string {
	if h.lease == nil {
		return ""
	}
	return h.lease.broke
}

// Run executes cmd on h, logging its duration in verbose mode.
func (h *Host) Run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	defer h.Log.Step(cmd.Desc)()
	return h.Runner.Run(ctx, cmd)
}

// RunBatch runs cmds on h in order, in one round trip where the transport
// allows, stopping at the first that fails (see remote.RunBatch).
func (h *Host) RunBatch(ctx context.Context, cmds ...remote.Command) ([]remote.Result, []error) {
	descs := make([]string, len(cmds))
	for i, c := range cmds {
		descs[i] = c.Desc
	}
	defer h.Log.Step(strings.Join(descs, ", "))()
	return remote.RunBatch(ctx, h.Runner, cmds...)
}

// Exec returns a function that runs a built command on h, taking the
// builder's results as they are: h.Exec(ctx)(server.Switch(l, id)).
func (h *Host) Exec(ctx context.Context) func(remote.Command, error) error {
	return func(cmd remote.Command, err error) error {
		if err != nil {
			return err
		}
		_, err = h.Run(ctx, cmd)
		return err
	}
}

// ReadOptional returns the content of a file on h, or nil when it does not
// exist, in one session whatever the transport.
func (h *Host) ReadOptional(ctx context.Context, path string) ([]byte, error) {
	q := remote.Quote(path)
	res, err := h.Run(ctx, remote.Script("read "+path, "if [ -e "+q+" ]; then cat "+q+"; fi"))
	if err != nil {
		return nil, err
	}
	if len(res.Stdout) == 0 {
		return nil, nil
	}
	return res.Stdout, nil
}

// LoadState reads h's deploy state, its live release and that release's
// manifest, in one round trip. A host without state gets an empty one for
// app.
func (h *Host) LoadState(ctx context.Context, app string) error {
	live, err := server.Run(ctx, h, server.ReadLive(h.Layout))
	if err != nil {
		return err
	}
	return h.setLive(live, app)
}

// setLive takes in what ReadLive found on h.
func (h *Host) setLive(live server.Live, app string) error {
	var err error
	h.State = &server.State{Version: server.StateVersion, App: app}
	if len(live.State) > 0 {
		if h.State, err = server.ParseState(h.Layout.StatePath(), live.State); err != nil {
			return err
		}
	}
	h.Live = live.Current
	h.LiveManifest = nil
	if h.Live == "" {
		return nil
	}
	if len(live.Manifest) == 0 {
		h.Log.Warnf("manifest of live release %s not found; shipping every file", h.Live)
		return nil
	}
	m, err := archive.ReadManifest(bytes.NewReader(live.Manifest))
	if err != nil {
		h.Log.Warnf("manifest of live release %s unreadable (%v); shipping every file", h.Live, err)
		return nil
	}
	h.LiveManifest = m
	return nil
}

// SaveState writes h's state in one round trip, through a rename.
func (h *Host) SaveState(ctx context.Context) error {
	data, err := h.State.Marshal()
	if err != nil {
		return err
	}
	if _, err := h.Run(ctx, server.WriteState(h.Layout, data)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// Restart restarts the services of release id through the service manager.
// What a command prints is logged at debug level under its step's name,
// and the tail of it is in the error of one that fails: that is where a
// service says why it did not come up.
func (h *Host) Restart(ctx context.Context, svc config.Services, app, id string) error {
	cmds, err := server.Restart(svc, h.Layout, id, app)
	if err != nil {
		return err
	}
	for i, c := range cmds {
		if svc.Manager == server.ManagerCommand {
			// The step is named restart[i]: its script only with -v.
			h.Log.Debugf("%s runs: %s", c.Desc, svc.Restart[i])
		}
		res, err := h.Run(ctx, c)
		h.ShowOutput(c.Desc, res)
		if err != nil {
			return fmt.Errorf("restart services: %w", WithOutput(err, res))
		}
	}
	return nil
}

// ShowOutput logs, with -v, what the step desc printed, line by line.
func (h *Host) ShowOutput(desc string, res remote.Result) {
	if !h.Log.Verbose() {
		return
	}
	for _, out := range []struct{ name, text string }{{desc, string(res.Stdout)}, {desc + " stderr", string(res.Stderr)}} {
		if text := strings.TrimRight(out.text, "\n"); text != "" {
			for _, line := range strings.Split(text, "\n") {
				h.Log.Debugf("%s: %s", out.name, line)
			}
		}
	}
}

// WithOutput adds the tail of a failed command's stdout to its error; a
// *remote.ExitError says stderr's tail already.
func WithOutput(err error, res remote.Result) error {
	if tail := remote.Tail(string(res.Stdout), 10); tail != "" {
		return fmt.Errorf("%w; output: %s", err, tail)
	}
	return err
}

// RestoreDatabase puts back the files backed up before release id
// migrated, when this run migrated h.
func (h *Host) RestoreDatabase(ctx context.Context, mig *config.Migrations, id string) error {
	if !h.Migrated || mig == nil || len(mig.Backup) == 0 {
		return nil
	}
	if err := h.Exec(ctx)(server.RestoreFiles(h.Layout, id, mig.Backup)); err != nil {
		return err
	}
	h.Migrated, h.restored = false, true
	h.Log.Infof("database restored from the backup taken before %s", id)
	return nil
}

// DiskFullOr says plainly when h ran out of space.
func (h *Host) DiskFullOr(err error) error {
	if server.IsDiskFull(err) {
		return fmt.Errorf("disk full on %s at %s (no space left on device): %w", h.Name, h.Layout.Root, err)
	}
	return err
}
