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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for SSHConfig fields left zero (and unset in ssh_config).
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultKeepAlive   = 15 * time.Second
	// DefaultMaxSessions stays under OpenSSH's default MaxSessions (10) so
	// parallel operations queue instead of being refused by the server.
	DefaultMaxSessions = 8
)

// SSHConfig says how to reach and authenticate to one host. A field left
// zero takes what the OpenSSH client config (ConfigFile) says for the
// host, else the default: a field set here always wins.
type SSHConfig struct {
	// Target is "user@host[:port]". The host may be a Host alias of
	// ConfigFile, whose HostName is then dialled. The user and port
	// written here win over ConfigFile's User and Port; without either,
	// the current user and port 22.
	Target string
	// ConfigFile is an OpenSSH client config (ssh_config) consulted for
	// the host and each bastion: HostName, Port, User, IdentityFile,
	// IdentitiesOnly, UserKnownHostsFile, ProxyJump, ConnectTimeout,
	// ServerAliveInterval, ServerAliveCountMax. "" reads none;
	// NewSSHConfig sets ~/.ssh/config when it exists.
	ConfigFile string
	// KnownHostsFile holds the trusted host keys and CAs (@cert-authority)
	// of the host and every bastion. Default: ConfigFile's
	// UserKnownHostsFile, else ~/.ssh/known_hosts. A missing file means no
	// host is known.
	KnownHostsFile string
	// IdentityFiles are private key files (ed25519, ECDSA, RSA), each
	// offered with its certificate (<file>-cert.pub) when there is one.
	// Nil means ConfigFile's IdentityFile, else those of
	// ~/.ssh/id_ed25519, id_ecdsa, id_rsa that exist; an empty non-nil
	// slice means none.
	IdentityFiles []string
	// UseAgent offers the keys of the ssh-agent at SSH_AUTH_SOCK (with
	// IdentitiesOnly in ConfigFile, only those of the identity files).
	// NewSSHConfig sets it when SSH_AUTH_SOCK is set.
	UseAgent bool
	// Passphrase unlocks an encrypted key file. Nil: the environment
	// variable STAGECOACH_SSH_PASSPHRASE when set, else the key is reported
	// as locked.
	Passphrase func(file string) ([]byte, error)
	// ProxyJump names the bastions to go through, in order, as
	// "[user@]host[:port]" separated by commas, each resolved through
	// ConfigFile like the host. "none": no bastion, whatever ConfigFile
	// says; "": ConfigFile's ProxyJump for the host.
	ProxyJump string
	// DialTimeout bounds the TCP connect and the SSH handshake of each
	// connection, bastion or host. Default: ConnectTimeout, else 10s.
	DialTimeout time.Duration
	// KeepAlive is the interval of keepalive requests. Default:
	// ServerAliveInterval (0 there disables), else 15s; negative
	// disables.
	KeepAlive time.Duration
	// KeepAliveCountMax is how many intervals a keepalive may go
	// unanswered before the connection is closed. Default:
	// ServerAliveCountMax, else 3 when ServerAliveInterval is set (as
	// OpenSSH), else 1.
	KeepAliveCountMax int
	// MaxSessions bounds concurrent sessions on the connection; default 8.
	MaxSessions int
	// MaxAgents bounds the persistent shells that run commands, each a
	// session held open for the runner's lifetime. Default (0):
	// DefaultMaxAgents, at most half of MaxSessions; a positive value is
	// capped at MaxSessions-1 so uploads keep a session; negative: none,
	// every command opens a session of its own.
	MaxAgents int
	// Jumps shares bastion connections between runners, so hosts behind
	// the same bastion cost one connection to it. Nil: the runner opens
	// its own.
	Jumps *JumpPool
	// Warnf receives what is not honoured in ConfigFile (such as
	// StrictHostKeyChecking no); nil drops it.
	Warnf func(format string, args ...any)
}

// NewSSHConfig returns the configuration for target as the ssh command
// would have it: the user's ~/.ssh/config and ssh-agent. The rest is
// resolved when dialling.
func NewSSHConfig(target string) SSHConfig {
	cfg := SSHConfig{Target: target, UseAgent: os.Getenv("SSH_AUTH_SOCK") != ""}
	if home, err := os.UserHomeDir(); err == nil {
		if f := filepath.Join(home, ".ssh", "config"); fileExists(f) {
			cfg.ConfigFile = f
		}
	}
	return cfg
}

// withDefaults fills the settings ssh_config has no say in.
func (c SSHConfig) withDefaults() SSHConfig {
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

// hop is one SSH connection on the way to a host, a bastion or the host
// itself, with all its settings resolved.
type hop struct {
	alias          string // the host as named
	user           string
	host           string // what is dialled: ssh_config's HostName, else alias
	port           int
	fromConfig     bool // host came from a HostName
	knownHosts     []string
	identities     []string
	identitiesOnly bool
	useAgent       bool
	passphrase     func(string) ([]byte, error)
	timeout        time.Duration
	keepAlive      time.Duration // <= 0: none
	keepAliveMax   int
}

func (h *hop) addr() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// name is the hop in messages: user@host:port, and the alias when the
// host was named by one.
func (h *hop) name() string {
	n := h.user + "@" + h.addr()
	if h.alias != h.host {
		n = h.alias + " (" + n + ")"
	}
	return n
}

// key tells bastion connections apart in a JumpPool: the same account on
// the same address with the same keys is the same connection.
func (h *hop) key() string {
	return strings.Join([]string{h.user, h.addr(), strings.Join(h.knownHosts, ":"),
		strings.Join(h.identities, ":"), strconv.FormatBool(h.identitiesOnly), strconv.FormatBool(h.useAgent)}, "|")
}

// route is how to reach a host: its bastions in order, then the host.
type route struct {
	name     string // the host for messages: as named, with its user
	config   string // the ssh_config read, "" none
	jumps    []*hop
	target   *hop
	warnings []string
}

// resolveRoute applies cfg, then ssh_config, then the defaults to the
// host and each of its bastions.
func resolveRoute(cfg SSHConfig) (*route, error) {
	t, portGiven, err := parseTarget(cfg.Target)
	if err != nil {
		return nil, err
	}
	if t.Local {
		return nil, fmt.Errorf("target %q is this machine: use the local transport, not SSH", cfg.Target)
	}
	home, _ := os.UserHomeDir()
	r := &route{}
	var cc *clientConfig
	if cfg.ConfigFile != "" {
		r.config = expandHome(cfg.ConfigFile, home)
		if cc, err = readClientConfig(r.config); err != nil {
			return nil, fmt.Errorf("connect to %s: %w", cfg.Target, err)
		}
	}
	target, hc, err := resolveHop(cfg, cc, t, portGiven, home)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Target, err)
	}
	r.target = target
	r.name = Target{User: target.user, Host: t.Host, Port: t.Port}.String()
	r.warn(hc, t.Host)

	spec := cfg.ProxyJump
	if spec == "" {
		spec = hc.ProxyJump
	}
	jumps, err := parseJumps(spec)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: ProxyJump %q: %w", r.name, spec, err)
	}
	// A bastion's own ProxyJump is not followed: the chain is the host's.
	for _, j := range jumps {
		jt, jportGiven, _ := parseTarget(j)
		h, jhc, err := resolveHop(cfg, cc, jt, jportGiven, home)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: bastion %s: %w", r.name, j, err)
		}
		r.warn(jhc, jt.Host)
		r.jumps = append(r.jumps, h)
	}
	return r, nil
}

// resolveHop settles one connection's settings: cfg's where set, then
// ssh_config's for the host as named, then the defaults.
func resolveHop(cfg SSHConfig, cc *clientConfig, t Target, portGiven bool, home string) (*hop, hostConfig, error) {
	var hc hostConfig
	if cc != nil {
		hc = cc.lookup(t.Host)
	}
	h := &hop{alias: t.Host, user: t.User, host: t.Host, port: t.Port,
		identitiesOnly: hc.IdentitiesOnly, useAgent: cfg.UseAgent, passphrase: cfg.Passphrase}
	if hc.HostName != "" {
		name, err := expandTokens(hc.HostName, map[byte]string{'h': t.Host})
		if err != nil {
			return nil, hc, fmt.Errorf("HostName %q: %w", hc.HostName, err)
		}
		h.host, h.fromConfig = name, true
	}
	if !portGiven && hc.Port != 0 {
		h.port = hc.Port
	}
	if h.user == "" {
		h.user = hc.User
	}
	if h.user == "" {
		u, err := user.Current()
		if err != nil {
			return nil, hc, fmt.Errorf("no user given and the current user is unknown: %w", err)
		}
		h.user = u.Username
	}
	tokens := pathTokens(home, t.Host, h.host, h.port, h.user)
	switch {
	case cfg.KnownHostsFile != "":
		h.knownHosts = []string{expandHome(cfg.KnownHostsFile, home)}
	case len(hc.KnownHostsFiles) > 0:
		for _, f := range hc.KnownHostsFiles {
			h.knownHosts = append(h.knownHosts, expandPath(f, home, tokens))
		}
	default:
		h.knownHosts = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	switch {
	case cfg.IdentityFiles != nil:
		h.identities = []string{}
		for _, f := range cfg.IdentityFiles {
			h.identities = append(h.identities, expandHome(f, home))
		}
	case len(hc.IdentityFiles) > 0:
		for _, f := range hc.IdentityFiles {
			h.identities = append(h.identities, expandPath(f, home, tokens))
		}
	default:
		h.identities = []string{}
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if f := filepath.Join(home, ".ssh", name); fileExists(f) {
				h.identities = append(h.identities, f)
			}
		}
	}
	switch {
	case cfg.DialTimeout > 0:
		h.timeout = cfg.DialTimeout
	case hc.ConnectTimeout > 0:
		h.timeout = hc.ConnectTimeout
	default:
		h.timeout = DefaultDialTimeout
	}
	switch {
	case cfg.KeepAlive != 0:
		h.keepAlive = cfg.KeepAlive
	case hc.AliveSet:
		h.keepAlive = hc.AliveInterval
	default:
		h.keepAlive = DefaultKeepAlive
	}
	switch {
	case cfg.KeepAliveCountMax > 0:
		h.keepAliveMax = cfg.KeepAliveCountMax
	case hc.AliveCountMax > 0:
		h.keepAliveMax = hc.AliveCountMax
	case hc.AliveSet:
		h.keepAliveMax = 3
	default:
		h.keepAliveMax = 1
	}
	return h, hc, nil
}

// warn notes what ssh_config asks for that is not done.
func (r *route) warn(hc hostConfig, alias string) {
	switch hc.StrictHostKey {
	case "no", "off", "false", "accept-new":
		r.warnings = append(r.warnings, fmt.Sprintf("%s: StrictHostKeyChecking %s for %s is not honoured: host keys are always checked against known_hosts, and an unknown one is refused, never added",
			r.config, hc.StrictHostKey, alias))
	}
	if hc.ProxyCommand != "" && !strings.EqualFold(hc.ProxyCommand, "none") {
		r.warnings = append(r.warnings, fmt.Sprintf("%s: ProxyCommand for %s is not supported and is ignored: use ProxyJump", r.config, alias))
	}
}

// explain adds to an unreachable hop's error what to do, naming the
// ssh_config when the host was an alias it does not define.
func (r *route) explain(h *hop, err error) error {
	var u *UnreachableError
	if !errors.As(err, &u) {
		return err
	}
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns) && !h.fromConfig && r.config != "":
		u.Hint = fmt.Sprintf("%s is not a Host alias in %s (no HostName for it), and DNS does not know it: add a Host block for it there, or name the host by its address", h.alias, r.config)
	case errors.As(err, &dns) && !h.fromConfig:
		u.Hint = fmt.Sprintf("no ssh_config was read, and DNS does not know %s: name the host by its address, or give it a Host block in ~/.ssh/config (or the ssh config setting)", h.alias)
	case u.Via != "":
		u.Hint = fmt.Sprintf("can the bastion reach it, and is sshd listening on port %d there?", h.port)
	default:
		u.Hint = fmt.Sprintf("is the host up and sshd listening on port %d?", h.port)
	}
	return err
}

// UnreachableError means no connection to a host or bastion could be
// opened: the name does not resolve, nothing answers, or it refuses.
type UnreachableError struct {
	Addr    string        // host:port dialled
	Via     string        // the bastion asked to connect, "" for a direct connection
	Timeout time.Duration // the dial timeout
	Hint    string        // what to check
	Err     error
}

func (e *UnreachableError) Error() string {
	msg := fmt.Sprintf("%s unreachable (within %s): %v", e.Addr, e.Timeout, e.Err)
	if e.Via != "" {
		msg = fmt.Sprintf("%s unreachable from %s (within %s): %v", e.Addr, e.Via, e.Timeout, e.Err)
	}
	if e.Hint != "" {
		msg += "; " + e.Hint
	}
	return msg
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// BastionError is a failure to connect to one bastion of a ProxyJump
// chain; Err is what failed (*UnreachableError, *AuthError,
// *UnknownHostKeyError, ...).
type BastionError struct {
	Index, Count int    // 1-based position in the chain, and its length
	Name         string // user@host:port, with the alias it was named by
	Err          error
}

func (e *BastionError) Error() string {
	return fmt.Sprintf("bastion %d of %d, %s: %v", e.Index, e.Count, e.Name, e.Err)
}

func (e *BastionError) Unwrap() error { return e.Err }

// bastionLabel names bastion i (0-based) of n in messages.
func bastionLabel(i, n int, h *hop) string {
	return fmt.Sprintf("bastion %d of %d, %s", i+1, n, h.name())
}

// SSH runs operations on one host over a single SSH connection held for the
// runner's lifetime. Commands run on a few persistent shells ("agents"),
// each a long-lived session reading requests on its stdin, so a command
// costs one round trip instead of a channel, an exec and a login shell;
// uploads, and commands an agent cannot carry, are sessions of their own.
// A host behind bastions is reached through a connection to each, shared
// with the other runners of the same JumpPool.
type SSH struct {
	target string // as given, for messages
	client *ssh.Client
	sem    chan struct{}
	agents *agentPool
	pool   *JumpPool
	jumps  []*jumpConn // bastions held, in chain order

	connections atomic.Int64
	sessions    atomic.Int64
	roundTrips  atomic.Int64

	stop      chan struct{}
	closeOnce sync.Once
	lost      atomic.Pointer[error] // why the connection was closed under us
}

var _ Runner = (*SSH)(nil)

// DialSSH connects and authenticates to cfg.Target, through its bastions
// when it has any, verifying every host key against known_hosts. Each
// connection fails within its dial timeout when its host does not answer.
func DialSSH(ctx context.Context, cfg SSHConfig) (*SSH, error) {
	r, err := resolveRoute(cfg)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Warnf != nil {
		for _, w := range r.warnings {
			cfg.Warnf("%s", w)
		}
	}
	pool := cfg.Jumps
	if pool == nil {
		pool = NewJumpPool()
	}
	var held []*jumpConn
	release := func() {
		for i := len(held) - 1; i >= 0; i-- {
			pool.release(held[i])
		}
	}
	var opened int64
	var parent *jumpConn
	for i, j := range r.jumps {
		c, fresh, err := pool.acquire(ctx, parent, j, bastionLabel(i, len(r.jumps), j))
		if err != nil {
			release()
			if ctx.Err() != nil {
				return nil, fmt.Errorf("connect to %s: %w", r.name, ctx.Err())
			}
			return nil, fmt.Errorf("connect to %s: %w", r.name, &BastionError{Index: i + 1, Count: len(r.jumps), Name: j.name(), Err: r.explain(j, err)})
		}
		held = append(held, c)
		parent = c
		if fresh {
			opened++
		}
	}
	var via *ssh.Client
	viaName := ""
	if parent != nil {
		via, viaName = parent.client, parent.label
	}
	client, err := dialHop(ctx, via, viaName, r.target)
	if err != nil {
		release()
		var auth *AuthError
		if errors.As(err, &auth) {
			return nil, err // it names the host already
		}
		return nil, fmt.Errorf("connect to %s: %w", r.name, r.explain(r.target, err))
	}

	s := &SSH{
		target: r.name,
		client: client,
		sem:    make(chan struct{}, cfg.MaxSessions),
		agents: newAgentPool(cfg.MaxAgents),
		pool:   pool,
		jumps:  held,
		stop:   make(chan struct{}),
	}
	// Truthful per deploy: a bastion shared with other runners counts in
	// the runner that opened it.
	s.connections.Add(1 + opened)
	if r.target.keepAlive > 0 {
		go keepAlive(client, s.target, r.target.keepAlive, r.target.keepAliveMax, s.stop, func(lost error) {
			s.lost.CompareAndSwap(nil, &lost)
			s.client.Close()
		})
	}
	return s, nil
}

// dialHop opens the connection to h: over TCP, or through via (a bastion
// named viaName) with a direct-tcpip channel, and authenticates. Errors
// are typed: *UnreachableError, *AuthError, the host key errors, or a
// handshake timeout wrapping context.DeadlineExceeded.
func dialHop(ctx context.Context, via *ssh.Client, viaName string, h *hop) (*ssh.Client, error) {
	hosts, err := newHostKeyChecker(h.knownHosts)
	if err != nil {
		return nil, err
	}
	creds, err := loadCredentials(h)
	if err != nil {
		return nil, err
	}
	defer creds.close()
	name := h.user + "@" + Target{Host: h.alias, Port: h.port}.String()
	if len(creds.signers) == 0 {
		return nil, &AuthError{Target: name, Tried: creds.tried, Expired: creds.expired}
	}

	addr := h.addr()
	dctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var conn net.Conn
	if via == nil {
		conn, err = (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	} else {
		conn, err = via.DialContext(dctx, "tcp", addr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &UnreachableError{Addr: addr, Via: viaName, Timeout: h.timeout, Err: err}
	}

	// The handshake shares the dial deadline: a port that accepts but never
	// speaks SSH must not hang the deploy. A channel through a bastion has
	// no deadlines; closing it when the time is up does the same.
	if dl, ok := dctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stopWatch := context.AfterFunc(dctx, func() { conn.Close() })
	var hostErr error
	ccfg := &ssh.ClientConfig{
		User: h.user,
		Auth: creds.methods(),
		HostKeyCallback: func(host string, r net.Addr, k ssh.PublicKey) error {
			hostErr = hosts.callback(host, r, k)
			return hostErr
		},
		HostKeyAlgorithms: hosts.algorithms(addr),
		Timeout:           h.timeout,
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
			return nil, hostErr
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case dctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded):
			return nil, fmt.Errorf("no SSH handshake within %s (is it an SSH server?): %w", h.timeout, context.DeadlineExceeded)
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &AuthError{Target: name, Tried: creds.tried, Keys: len(creds.signers), Expired: creds.expired, Err: err}
		default:
			return nil, fmt.Errorf("SSH handshake with %s: %w", addr, err)
		}
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// keepAlive asks the server behind client for a reply every interval and
// calls lost, then returns, when one goes unanswered for count intervals,
// so operations fail instead of waiting on a dead peer.
func keepAlive(client *ssh.Client, name string, interval time.Duration, count int, stop <-chan struct{}, lost func(error)) {
	wait := interval * time.Duration(max(count, 1))
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			// OpenSSH answers this unknown request with a failure, which is
			// still an answer.
			_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		timer := time.NewTimer(wait)
		select {
		case <-stop:
			timer.Stop()
			return
		case err := <-reply:
			timer.Stop()
			if err != nil {
				lost(fmt.Errorf("connection to %s lost: %w", name, err))
				return
			}
		case <-timer.C:
			lost(fmt.Errorf("connection to %s closed: no answer to keepalive within %s", name, wait))
			return
		}
	}
}

// Target names the host as "user@host[:port]".
func (s *SSH) Target() string { return s.target }

// Stats reports the connections dialled (the host's, and each bastion's
// this runner opened rather than shared), the sessions opened and the
// round trips made.
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
		if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
			err = nil
		}
		// The host's connection rides on the last bastion's: close
		// inwards out.
		for i := len(s.jumps) - 1; i >= 0; i-- {
			s.pool.release(s.jumps[i])
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
