package stages

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// Host is one target of the environment during a run: its connection, its
// deploy state, and what this run has done to it, which decides what a
// rollback must undo.
type Host struct {
	Name   string // as configured: "deploy@web1:22" or "local"
	Runner remote.Runner
	Layout server.Layout
	Log    *ui.Logger

	State        *server.State
	Live         string            // release live when the run started; "" before the first deploy
	LiveManifest *archive.Manifest // Live's manifest; nil when there is none

	lease *lease

	Shipped   bool  // the archive and manifest are on the host, verified
	Staged    bool  // releases/<id> exists, verified
	Migrated  bool  // migrations ran (and the database was backed up first)
	Switched  bool  // current points at the new release
	BytesSent int64 // archive and metadata bytes uploaded
}

// connect opens one connection per host; every later operation of the run
// is a session on it.
func (r *Run) connect(ctx context.Context) error {
	if r.connected {
		return nil
	}
	hosts := make([]*Host, len(r.Env.Hosts))
	for i, name := range r.Env.Hosts {
		hosts[i] = &Host{Name: name, Layout: server.Layout{Root: hostRoot(r.Env.Root, name)}, Log: r.Log.With(name)}
	}
	// The transports' errors name the host and what failed already.
	err := r.eachHost(ctx, hosts, "", func(ctx context.Context, h *Host) error {
		runner, err := r.dial(ctx, h.Name)
		if err != nil {
			return exitcode.With(exitcode.Unreachable, err)
		}
		h.Runner = runner
		return nil
	})
	if err != nil {
		closeHosts(hosts)
		return err
	}
	r.Hosts, r.connected = hosts, true
	return nil
}

// hostRoot expands "{host}" in the configured root to the host's address,
// so several hosts sharing one machine (a test bed) get roots of their own.
func hostRoot(root, name string) string {
	host := name
	if t, err := remote.ParseTarget(name); err == nil && !t.Local {
		host = t.Host
	}
	return strings.ReplaceAll(root, "{host}", host)
}

// dial picks the transport: "local" runs on this machine, anything else
// is an SSH target verified against known_hosts.
func (r *Run) dial(ctx context.Context, name string) (remote.Runner, error) {
	if name == remote.LocalTarget {
		return remote.NewLocal(), nil
	}
	cfg := remote.NewSSHConfig(name)
	if r.Env.SSH.KnownHosts != "" {
		cfg.KnownHostsFile = r.Env.SSH.KnownHosts
	}
	if len(r.Env.SSH.Identities) > 0 {
		cfg.IdentityFiles = r.Env.SSH.Identities
	}
	if r.Env.SSH.DialTimeout > 0 {
		cfg.DialTimeout = r.Env.SSH.DialTimeout
	}
	return remote.DialSSH(ctx, cfg)
}

// reconnect replaces h's lost connection by a new one, for the steps that
// must still happen after a failure: recording it, releasing the lock.
func (r *Run) reconnect(ctx context.Context, h *Host) error {
	runner, err := r.dial(ctx, h.Name)
	if err != nil {
		return fmt.Errorf("connection lost, and reconnecting failed: %w", err)
	}
	h.Runner.Close()
	h.Runner = runner
	h.Log.Infof("reconnected after the connection was lost")
	return nil
}

// Close ends every host connection of the run. Hosts keep what the run
// did, for reports; a later stage connects again.
func (r *Run) Close() {
	closeHosts(r.Hosts)
	r.connected = false
}

func closeHosts(hosts []*Host) {
	for _, h := range hosts {
		if h != nil && h.Runner != nil {
			h.Runner.Close()
		}
	}
}

// eachHost runs fn for every host, at most Env.Parallel at once, and joins
// the failures, each prefixed with what was being done and the host
// (unless doing is empty).
func (r *Run) eachHost(ctx context.Context, hosts []*Host, doing string, fn func(context.Context, *Host) error) error {
	parallel := r.Env.Parallel
	if parallel < 1 {
		parallel = 1
	}
	sem := make(chan struct{}, parallel)
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := fn(ctx, h); err != nil && doing == "" {
				errs[i] = err
			} else if err != nil {
				errs[i] = fmt.Errorf("%s %s: %w", doing, h.Name, err)
			}
		}()
	}
	wg.Wait()
	return joinCoded(errs)
}

// joinCoded joins errors keeping the most specific exit code among them.
func joinCoded(errs []error) error {
	err := errors.Join(errs...)
	if err == nil {
		return nil
	}
	code := exitcode.Failed
	for _, e := range errs {
		if c := exitcode.Of(e); e != nil && c != exitcode.Failed {
			code = c
		}
	}
	return exitcode.With(code, err)
}

// run executes cmd on h, logging its duration in verbose mode.
func (h *Host) run(ctx context.Context, cmd remote.Command) (remote.Result, error) {
	defer h.Log.Step(cmd.Desc)()
	return h.Runner.Run(ctx, cmd)
}

// exec returns a function that runs a built command on h, taking the
// builder's results as they are: h.exec(ctx)(server.Switch(l, id)).
func (h *Host) exec(ctx context.Context) func(remote.Command, error) error {
	return func(cmd remote.Command, err error) error {
		if err != nil {
			return err
		}
		_, err = h.run(ctx, cmd)
		return err
	}
}

// readOptional returns the content of a file on h, or nil when it does not
// exist, in one session whatever the transport.
func (h *Host) readOptional(ctx context.Context, path string) ([]byte, error) {
	q := remote.Quote(path)
	res, err := h.run(ctx, remote.Script("read "+path, "if [ -e "+q+" ]; then cat "+q+"; fi"))
	if err != nil {
		return nil, err
	}
	if len(res.Stdout) == 0 {
		return nil, nil
	}
	return res.Stdout, nil
}

// loadState reads the host's deploy state, its live release and that
// release's manifest, in one round trip.
func (r *Run) loadState(ctx context.Context, h *Host) error {
	res, err := h.run(ctx, server.ReadLive(h.Layout))
	if err != nil {
		return err
	}
	live, err := server.ParseLive(res.Stdout)
	if err != nil {
		return err
	}
	h.State = &server.State{Version: server.StateVersion, App: r.Cfg.App}
	if len(live.State) > 0 {
		if h.State, err = server.ParseState(h.Layout.StatePath(), live.State); err != nil {
			return err
		}
	}
	h.Live = live.Current
	if h.Live == "" {
		return nil
	}
	if len(live.Manifest) == 0 {
		h.Log.Warnf("manifest of live release %s not found; shipping every file", h.Live)
		return nil
	}
	m, err := archive.ReadManifest(bytesReader(live.Manifest))
	if err != nil {
		h.Log.Warnf("manifest of live release %s unreadable (%v); shipping every file", h.Live, err)
		return nil
	}
	h.LiveManifest = m
	return nil
}

// saveState writes the host's state with one temp-then-rename upload.
func (h *Host) saveState(ctx context.Context) error {
	data, err := h.State.Marshal()
	if err != nil {
		return err
	}
	if err := h.Runner.Upload(ctx, bytesReader(data), h.Layout.StatePath(), nil); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
