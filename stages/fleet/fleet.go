// Package fleet is the hosts of one run: dialing them, fanning work out to
// them with a bound, their deploy locks and their deploy state.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// DialFunc opens the connection to one host, named as configured.
type DialFunc func(ctx context.Context, name string) (remote.Runner, error)

// Fleet connects to and works on the hosts of one environment. Its clock,
// dialer and lease timings are fields so tests can replace them.
type Fleet struct {
	Dial     DialFunc
	Parallel int // hosts worked on at once; at least 1
	Log      *ui.Logger
	Lease    LeaseTiming
	// LockWait is how long Lock and Hold wait for a held deploy lock to
	// be released or become breakable; 0: they do not wait.
	LockWait time.Duration
	Now      func() time.Time
	// Sleep waits d or until ctx ends (then returning its error); nil: a
	// timer. Waiting for a lock polls with it.
	Sleep func(ctx context.Context, d time.Duration) error
	// Databases are where the app's database files would lie, relative to
	// the root, in a tree served from plain directories (see
	// server.OutsideShared): a first deploy refuses a root holding one.
	Databases []string
	// PID is the process a deploy lock names as its holder; 0: this one.
	// A test runs several clients in one process, each standing in for a
	// process of its own, so that a client that died is provably dead.
	PID int
}

// New returns the fleet of env: SSH (or local) connections as env.SSH
// says, env.Parallel hosts at a time, the default lease timing.
func New(env *config.Environment, log *ui.Logger) *Fleet {
	return &Fleet{Dial: SSHDialer(env.SSH, log.Warnf), Parallel: env.Parallel, Log: log, Lease: DefaultLease, Now: time.Now}
}

// SSHDialer dials "local" on this machine and anything else over SSH,
// verified against known_hosts, with the environment's SSH settings, which
// win over what ssh_config says for a host. Hosts behind the same bastions
// share one connection to each. What ssh_config asks for but is not
// honoured goes to warn, when given, once per message.
func SSHDialer(s config.SSH, warn ...func(format string, args ...any)) DialFunc {
	jumps := remote.NewJumpPool()
	var warned sync.Map
	warnf := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if _, dup := warned.LoadOrStore(msg, true); !dup {
			for _, w := range warn {
				w("%s", msg)
			}
		}
	}
	return func(ctx context.Context, name string) (remote.Runner, error) {
		if name == remote.LocalTarget {
			return remote.NewLocal(), nil
		}
		cfg := remote.NewSSHConfig(name)
		switch s.Config {
		case "":
		case config.NoSSHConfig:
			cfg.ConfigFile = ""
		default:
			cfg.ConfigFile = s.Config
		}
		if s.KnownHosts != "" {
			cfg.KnownHostsFile = s.KnownHosts
		}
		if len(s.Identities) > 0 {
			cfg.IdentityFiles = s.Identities
		}
		if s.DialTimeout > 0 {
			cfg.DialTimeout = s.DialTimeout
		}
		cfg.ProxyJump = strings.TrimSpace(s.ProxyJump)
		cfg.Jumps, cfg.Warnf = jumps, warnf
		return remote.DialSSH(ctx, cfg)
	}
}

// Hosts returns the hosts configured, not yet connected, with their
// settings. root may contain {host} (see HostRoot).
func (f *Fleet) Hosts(configured []config.Host, root string) []*Host {
	hosts := make([]*Host, len(configured))
	for i, c := range configured {
		hosts[i] = &Host{Name: c.Host, Vars: c.Vars, Tags: c.Tags,
			Layout: server.Layout{Root: HostRoot(root, c.Host)}, Log: f.Log.With(c.Host)}
	}
	return hosts
}

// Open connects h; every later operation on it is a session on that one
// connection. The error carries the Unreachable exit code.
func (f *Fleet) Open(ctx context.Context, h *Host) error {
	runner, err := f.Dial(ctx, h.Name)
	if err != nil {
		return exitcode.With(exitcode.Unreachable, err)
	}
	h.Runner = runner
	return nil
}

// Connect opens one connection per host. When any host cannot be reached,
// every connection opened is closed again.
func (f *Fleet) Connect(ctx context.Context, configured []config.Host, root string) ([]*Host, error) {
	hosts := f.Hosts(configured, root)
	// The transports' errors name the host and what failed already.
	if err := f.Each(ctx, hosts, "", f.Open); err != nil {
		Close(hosts)
		return nil, err
	}
	return hosts, nil
}

// HostRoot expands "{host}" in the configured root to the host's address,
// so several hosts sharing one machine (a test bed) get roots of their own.
func HostRoot(root, name string) string {
	host := name
	if t, err := remote.ParseTarget(name); err == nil && !t.Local {
		host = t.Host
	}
	return strings.ReplaceAll(root, "{host}", host)
}

// Reconnect replaces h's lost connection by a new one, for the steps that
// must still happen after a failure: recording it, releasing the lock.
func (f *Fleet) Reconnect(ctx context.Context, h *Host) error {
	runner, err := f.Dial(ctx, h.Name)
	if err != nil {
		return fmt.Errorf("connection lost, and reconnecting failed: %w", err)
	}
	if l := h.lease; l != nil {
		// The lease's heartbeat reads h.Runner from its own goroutine.
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	h.Runner.Close()
	h.Runner = runner
	h.Log.Infof("reconnected after the connection was lost")
	return nil
}

// Reconnector is Reconnect for h as probe.Target.Reconnect wants it: the
// new connection, which is h's from then on.
func (f *Fleet) Reconnector(h *Host) func(ctx context.Context) (remote.Runner, error) {
	return func(ctx context.Context) (remote.Runner, error) {
		if err := f.Reconnect(ctx, h); err != nil {
			return nil, err
		}
		return h.Runner, nil
	}
}

// Close ends the connections of hosts.
func Close(hosts []*Host) {
	for _, h := range hosts {
		if h != nil && h.Runner != nil {
			h.Runner.Close()
		}
	}
}

// Each runs fn for every host, at most Parallel at once, noting on each
// host the phase it reached, its first failure and when its work ended
// (see Host.Result), and joins the failures, each prefixed with what was being done and the host (unless
// doing is empty), keeping the most specific exit code.
func (f *Fleet) Each(ctx context.Context, hosts []*Host, doing string, fn func(context.Context, *Host) error) error {
	sem := make(chan struct{}, max(f.Parallel, 1))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			h.note(false, nil)
			err := fn(ctx, h)
			h.note(true, err)
			if err != nil && doing == "" {
				errs[i] = err
			} else if err != nil {
				errs[i] = fmt.Errorf("%s %s: %w", doing, h.Name, err)
			}
		}()
	}
	wg.Wait()
	return JoinCoded(errs)
}

// JoinCoded joins errors keeping the most specific exit code among them.
func JoinCoded(errs []error) error {
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
