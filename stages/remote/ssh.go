package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for SSHConfig fields left zero.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultKeepAlive   = 15 * time.Second
	// DefaultMaxSessions stays under OpenSSH's default MaxSessions (10) so
	// parallel operations queue instead of being refused by the server.
	DefaultMaxSessions = 8
)

// SSHConfig says how to reach and authenticate to one host.
type SSHConfig struct {
	// Target is "user@host[:port]"; the user defaults to the current one.
	Target string
	// KnownHostsFile holds the trusted host keys; default ~/.ssh/known_hosts.
	// A missing file means no host is known.
	KnownHostsFile string
	// IdentityFiles are private key files (ed25519, ECDSA, RSA). Nil means
	// those of ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist; an empty
	// non-nil slice means none.
	IdentityFiles []string
	// UseAgent offers the keys of the ssh-agent at SSH_AUTH_SOCK.
	// NewSSHConfig sets it when SSH_AUTH_SOCK is set.
	UseAgent bool
	// Passphrase unlocks an encrypted key file. Nil: the environment
	// variable STAGECOACH_SSH_PASSPHRASE when set, else the key is reported
	// as locked.
	Passphrase func(file string) ([]byte, error)
	// DialTimeout bounds the TCP connect and the SSH handshake; default 10s.
	DialTimeout time.Duration
	// KeepAlive is the interval of keepalive requests; the connection is
	// closed when one goes unanswered for an interval. Default 15s,
	// negative disables.
	KeepAlive time.Duration
	// MaxSessions bounds concurrent sessions on the connection; default 8.
	MaxSessions int
	// MaxAgents bounds the persistent shells that run commands, each a
	// session held open for the runner's lifetime. Default (0):
	// DefaultMaxAgents, at most half of MaxSessions; a positive value is
	// capped at MaxSessions-1 so uploads keep a session; negative: none,
	// every command opens a session of its own.
	MaxAgents int
}

// NewSSHConfig returns the configuration for target with every default
// filled in, as the ssh command would behave.
func NewSSHConfig(target string) SSHConfig {
	cfg := SSHConfig{Target: target, UseAgent: os.Getenv("SSH_AUTH_SOCK") != ""}
	return cfg.withDefaults()
}

func (c SSHConfig) withDefaults() SSHConfig {
	home, _ := os.UserHomeDir()
	if c.KnownHostsFile == "" {
		c.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
	}
	c.KnownHostsFile = expandHome(c.KnownHostsFile, home)
	if c.IdentityFiles != nil {
		files := make([]string, len(c.IdentityFiles))
		for i, f := range c.IdentityFiles {
			files[i] = expandHome(f, home)
		}
		c.IdentityFiles = files
	}
	if c.IdentityFiles == nil {
		c.IdentityFiles = []string{}
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if f := filepath.Join(home, ".ssh", name); fileExists(f) {
				c.IdentityFiles = append(c.IdentityFiles, f)
			}
		}
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	switch {
	case c.MaxAgents == 0:
		c.MaxAgents = min(DefaultMaxAgents, c.MaxSessions/2)
	case c.MaxAgents > 0:
		c.MaxAgents = min(c.MaxAgents, c.MaxSessions-1)
	}
	if c.MaxAgents == 0 {
		c.MaxAgents = -1
	}
	return c
}

// expandHome resolves a leading "~/" as a config file would write it.
func expandHome(path, home string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok && home != "" {
		return filepath.Join(home, rest)
	}
	return path
}

// SSH runs operations on one host over a single SSH connection held for the
// runner's lifetime. Commands run on a few persistent shells ("agents"),
// each a long-lived session reading requests on its stdin, so a command
// costs one round trip instead of a channel, an exec and a login shell;
// uploads, and commands an agent cannot carry, are sessions of their own.
type SSH struct {
	target string // as given, for messages
	client *ssh.Client
	conn   net.Conn
	sem    chan struct{}
	agents *agentPool

	connections atomic.Int64
	sessions    atomic.Int64
	roundTrips  atomic.Int64

	stop      chan struct{}
	closeOnce sync.Once
	lost      atomic.Pointer[error] // why the connection was closed under us
}

var _ Runner = (*SSH)(nil)

// DialSSH connects and authenticates to cfg.Target, verifying its host key
// against the known_hosts file. It fails within cfg.DialTimeout when the
// host does not answer.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	t, err := ParseTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	if t.Local {
		return nil, fmt.Errorf("target %q is this machine: use the local transport, not SSH", cfg.Target)
	}
	cfg = cfg.withDefaults()
	if t.User == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("connect to %s: no user given and the current user is unknown: %w", cfg.Target, err)
		}
		t.User = u.Username
	}
	name := t.String()

	hosts, err := newHostKeyChecker(cfg.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	creds, err := loadCredentials(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", name, err)
	}
	defer creds.close()
	if len(creds.signers) == 0 {
		return nil, &AuthError{Target: name, Tried: creds.tried}
	}

	addr := t.Address()
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connect to %s: %w", name, ctx.Err())
		}
		return nil, fmt.Errorf("connect to %s (within %s): %w; is the host up and sshd listening on port %d?",
			name, cfg.DialTimeout, err, t.Port)
	}

	// The handshake shares the dial deadline: a port that accepts but never
	// speaks SSH must not hang the deploy.
	if dl, ok := dctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stopWatch := context.AfterFunc(dctx, func() { conn.Close() })
	var hostErr error
	ccfg := &ssh.ClientConfig{
		User: t.User,
		Auth: creds.methods(),
		HostKeyCallback: func(h string, r net.Addr, k ssh.PublicKey) error {
			hostErr = hosts.callback(h, r, k)
			return hostErr
		},
		HostKeyAlgorithms: hosts.algorithms(addr),
		Timeout:           cfg.DialTimeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, ccfg)
	watching := stopWatch()
	if err == nil && !watching {
		err = dctx.Err() // the deadline fired just as the handshake ended
		c.Close()
	}
	if err != nil {
		conn.Close()
		switch {
		case hostErr != nil:
			return nil, fmt.Errorf("connect to %s: %w", name, hostErr)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("connect to %s: %w", name, ctx.Err())
		case dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("connect to %s: no SSH handshake within %s (is it an SSH server?): %w",
				name, cfg.DialTimeout, context.DeadlineExceeded)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &AuthError{Target: name, Tried: creds.tried, Keys: len(creds.signers), Err: err}
		default:
			return nil, fmt.Errorf("connect to %s: %w", name, err)
		}
	}
	conn.SetDeadline(time.Time{})

	s := &SSH{
		target: name,
		client: ssh.NewClient(c, chans, reqs),
		conn:   conn,
		sem:    make(chan struct{}, cfg.MaxSessions),
		agents: newAgentPool(cfg.MaxAgents),
		stop:   make(chan struct{}),
	}
	s.connections.Add(1)
	if cfg.KeepAlive > 0 {
		go s.keepAlive(cfg.KeepAlive)
	}
	return s, nil
}

// keepAlive asks the server for a reply every interval and closes the
// connection when none comes, so operations fail instead of waiting on a
// dead peer.
func (s *SSH) keepAlive(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			// OpenSSH answers this unknown request with a failure, which is
			// still an answer.
			_, _, err := s.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(interval)
		var lost error
		select {
		case <-s.stop:
			timer.Stop()
			return
		case err := <-reply:
			if err != nil {
				lost = fmt.Errorf("connection to %s lost: %w", s.target, err)
			}
		case <-timer.C:
			lost = fmt.Errorf("connection to %s closed: no answer to keepalive within %s", s.target, interval)
		}
		timer.Stop()
		if lost != nil {
			s.lost.CompareAndSwap(nil, &lost)
			s.client.Close()
			return
		}
	}
}

// Target names the host as "user@host[:port]".
func (s *SSH) Target() string { return s.target }

// Stats reports the connections dialled (always 1), the sessions opened
// and the round trips made.
func (s *SSH) Stats() Stats {
	return Stats{Connections: s.connections.Load(), Sessions: s.sessions.Load(), RoundTrips: s.roundTrips.Load()}
}

// Close ends the connection; running sessions fail.
func (s *SSH) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.agents.close()
		err = s.client.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// errRunnerClosed is the cause of operations started after Close.
var errRunnerClosed = errors.New("the runner was closed")

// closed reports whether Close was called: failures after it are of our
// own making, not a lost connection.
func (s *SSH) closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// lostErr marks err as a lost connection, adding why the keepalive closed
// it when it did.
func (s *SSH) lostErr(err error) error {
	if s.closed() {
		return err
	}
	if p := s.lost.Load(); p != nil {
		return fmt.Errorf("%w: %w (%v)", ErrConnectionLost, err, *p)
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// transportErr marks err, from the SSH library, as a lost connection when
// it says the connection or the session's channel went away: end of file
// on the channel, a session ending without exit status, a network error,
// or any failure once the keepalive has closed the connection. Other
// errors (the server refusing a request, a local writer failing) pass
// unchanged.
func (s *SSH) transportErr(err error) error {
	var missing *ssh.ExitMissingError
	var netErr net.Error
	if s.lost.Load() != nil || errors.As(err, &missing) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return s.lostErr(err)
	}
	return err
}
