package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDPath is the OpenSSH server started by StartSSHD.
const SSHDPath = "/usr/sbin/sshd"

const sshdHint = "sshd not found: apt-get install -y openssh-server"

// Host is a running sshd with its own keys, ready for clients to dial.
type Host struct {
	Addr           string        // loopback address it listens on, e.g. 127.0.0.1
	Port           int           // its port
	User           string        // the current user, who may log in
	Dir            string        // temporary directory holding its files
	KnownHostsFile string        // known_hosts trusting this host's key
	IdentityFile   string        // private key accepted by the host
	HostKey        ssh.PublicKey // the host's ed25519 key
	ClientKey      ssh.Signer    // the key in IdentityFile
	// HostCertificate is the certificate of HostKey, with WithHostCertificate.
	HostCertificate *ssh.Certificate
	Netns           *Netns // the network namespace it runs in; nil: this machine's

	authorizedKeys string
	cmd            *exec.Cmd
	exited         chan struct{}
	log            *SyncBuffer
	stopOnce       sync.Once
	cpu            *cpuGroup // nil: CPU walks the process tree
}

type options struct {
	addr       string
	extra      []string
	loginDelay time.Duration
	logLevel   string
	netns      *Netns
	hostCA     *CA
	principals []string
	userCA     *CA
}

// Option changes how StartSSHD starts the server.
type Option func(*options)

// WithAddr makes the server listen on another loopback address
// (127.0.0.2, 127.0.0.3, ...) so several hosts can run side by side.
func WithAddr(ip string) Option { return func(o *options) { o.addr = ip } }

// WithLoginDelay makes every session wait d before its command starts, as
// a deploy account whose login shell loads rbenv, nvm or pyenv does. It
// goes through a ForceCommand script of the test's own: no account's
// dotfiles are touched.
func WithLoginDelay(d time.Duration) Option { return func(o *options) { o.loginDelay = d } }

// WithLogLevel sets sshd's LogLevel (default INFO): DEBUG1 logs every
// channel, such as the direct-tcpip one a ProxyJump client opens.
func WithLogLevel(level string) Option { return func(o *options) { o.logLevel = level } }

// InNetns runs the server in the network namespace ns, listening on addr
// (one of ns's addresses) port 22: reachable only along ns's links.
func InNetns(ns *Netns, addr string) Option {
	return func(o *options) { o.netns, o.addr = ns, addr }
}

// WithHostCertificate has ca certify the host key, for principals (default
// the listening address), and the server present the certificate.
func WithHostCertificate(ca *CA, principals ...string) Option {
	return func(o *options) { o.hostCA, o.principals = ca, principals }
}

// WithUserCA makes the server accept user certificates signed by ca
// (TrustedUserCAKeys), for the login's user as principal.
func WithUserCA(ca *CA) Option { return func(o *options) { o.userCA = ca } }

// WithConfig appends lines to the generated sshd_config.
func WithConfig(lines ...string) Option {
	return func(o *options) { o.extra = append(o.extra, lines...) }
}

// StartSSHD starts /usr/sbin/sshd on a free loopback port with freshly
// generated host and client keys, and stops it when the test ends. Without
// sshd the test fails under CI and is skipped elsewhere.
func StartSSHD(t testing.TB, opts ...Option) *Host {
	t.Helper()
	skipShort(t, "sshd")
	if _, err := os.Stat(SSHDPath); err != nil {
		missing(t, sshdHint)
	}
	o := options{addr: "127.0.0.1", logLevel: "INFO"}
	for _, opt := range opts {
		opt(&o)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	if os.Geteuid() == 0 {
		// Privilege separation needs this empty directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("create sshd privilege separation directory: %v", err)
		}
	}
	dir := t.TempDir()
	h := &Host{Addr: o.addr, User: u.Username, Dir: dir, Netns: o.netns}

	hostKeyFile, hostSigner := writeKey(t, dir, "ssh_host_ed25519_key", "")
	h.HostKey = hostSigner.PublicKey()
	if o.hostCA != nil {
		principals := o.principals
		if len(principals) == 0 {
			principals = []string{o.addr}
		}
		certFile := o.hostCA.SignHost(t, hostKeyFile, principals...)
		h.HostCertificate = readCertificate(t, certFile)
		o.extra = append(o.extra, "HostCertificate "+certFile)
	}
	if o.userCA != nil {
		o.extra = append(o.extra, "TrustedUserCAKeys "+o.userCA.PublicKeyFile)
	}
	h.IdentityFile, h.ClientKey = writeKey(t, dir, "id_ed25519", "")
	h.authorizedKeys = filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(h.authorizedKeys, ssh.MarshalAuthorizedKey(h.ClientKey.PublicKey()), 0o600); err != nil {
		t.Fatal(err)
	}

	if o.loginDelay > 0 {
		shell := filepath.Join(dir, "slow-login-shell")
		script := fmt.Sprintf("#!/bin/sh\nsleep %.3f\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n", o.loginDelay.Seconds())
		if err := os.WriteFile(shell, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		o.extra = append(o.extra, "ForceCommand "+shell)
	}
	// A port found free may be taken before sshd binds it: retry. A
	// namespace of the test's own has port 22 free.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if o.netns != nil {
			h.Port = 22
		} else {
			port, err := freePort(o.addr)
			if err != nil {
				missing(t, fmt.Sprintf("no loopback address %s: %v", o.addr, err))
			}
			h.Port = port
		}
		if lastErr = h.start(t, hostKeyFile, o.logLevel, o.extra); lastErr == nil || o.netns != nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start sshd: %v", lastErr)
	}
	// Before any connection, so that all it starts counts (see CPU).
	h.cpu = newCPUGroup(h.cmd.Process.Pid)
	h.KnownHostsFile = filepath.Join(dir, "known_hosts")
	line := knownhosts.Line([]string{net.JoinHostPort(h.Addr, strconv.Itoa(h.Port))}, h.HostKey) + "\n"
	if err := os.WriteFile(h.KnownHostsFile, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

func (h *Host) start(t testing.TB, hostKeyFile, logLevel string, extra []string) error {
	config := filepath.Join(h.Dir, "sshd_config")
	lines := []string{
		fmt.Sprintf("ListenAddress %s:%d", h.Addr, h.Port),
		"HostKey " + hostKeyFile,
		"PidFile " + filepath.Join(h.Dir, "sshd.pid"),
		"AuthorizedKeysFile " + h.authorizedKeys,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"MaxSessions 100",
		"MaxStartups 100:30:200",
		"PrintMotd no",
		"LogLevel " + logLevel,
		"Subsystem sftp internal-sftp",
		// bash sources ~/.bashrc for every command sshd starts; a
		// developer's interactive setup there (pyenv, nvm) would then be
		// timed as part of every remote command. A server account has no
		// such setup; SHLVL=1 makes bash skip it here too.
		"SetEnv SHLVL=1",
	}
	lines = append(lines, extra...)
	if err := os.WriteFile(config, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	path, args := SSHDPath, []string{"-D", "-e", "-f", config}
	ready := func() bool { return banner(h.address()) }
	if h.Netns != nil {
		// ip execs sshd in the namespace, so the process is sshd itself.
		// Its address is out of this machine's reach: its log says when it
		// listens.
		path, args = "ip", append([]string{"netns", "exec", h.Netns.Name, SSHDPath}, args...)
		ready = func() bool { return strings.Contains(h.log.String(), "Server listening on "+h.Addr+" port 22") }
	}
	var err error
	if h.cmd, h.log, h.exited, err = startServer(path, args...); err != nil {
		return err
	}

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-h.exited:
			return fmt.Errorf("sshd exited: %s", strings.TrimSpace(h.log.String()))
		default:
		}
		if ready() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.cmd.Process.Kill()
	<-h.exited
	return fmt.Errorf("sshd on %s not ready after 15s: %s", h.address(), h.log.String())
}

// banner reports whether an SSH server greets on addr.
func banner(addr string) bool {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-")
}

func freePort(addr string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (h *Host) address() string { return net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)) }

// Target is "user@addr:port" for remote.DialSSH.
func (h *Host) Target() string { return fmt.Sprintf("%s@%s", h.User, h.address()) }

// SSHConfig is a configuration that dials this host with its own
// known_hosts and client key, without an ssh-agent.
func (h *Host) SSHConfig() remote.SSHConfig {
	return remote.SSHConfig{
		Target:         h.Target(),
		KnownHostsFile: h.KnownHostsFile,
		IdentityFiles:  []string{h.IdentityFile},
		DialTimeout:    10 * time.Second,
	}
}

// Dial connects to the host, failing the test on error; the runner is
// closed when the test ends.
func (h *Host) Dial(t testing.TB) *remote.SSH {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := remote.DialSSH(ctx, h.SSHConfig())
	if err != nil {
		t.Fatalf("dial %s: %v\nsshd log:\n%s", h.Target(), err, h.Log())
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// OpenSSHArgs are options for the OpenSSH client (ssh) to reach this host
// non-interactively with its key and known_hosts, ignoring the user's own
// configuration. Append h.User+"@"+h.Addr and the command.
func (h *Host) OpenSSHArgs() []string {
	return openSSHArgs(h.IdentityFile, h.KnownHostsFile, h.Port)
}

func openSSHArgs(identity, knownHosts string, port int) []string {
	return []string{
		"-F", "/dev/null",
		"-i", identity,
		"-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "ControlMaster=no",
		"-o", "ControlPath=none",
		"-p", strconv.Itoa(port),
	}
}

// Authorize adds a public key to the host's authorized_keys.
func (h *Host) Authorize(t testing.TB, key ssh.PublicKey) {
	t.Helper()
	f, err := os.OpenFile(h.authorizedKeys, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(ssh.MarshalAuthorizedKey(key)); err != nil {
		t.Fatal(err)
	}
}

// Deauthorize empties the host's authorized_keys: it refuses every key
// (a certificate from WithUserCA still passes).
func (h *Host) Deauthorize(t testing.TB) {
	t.Helper()
	if err := os.WriteFile(h.authorizedKeys, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Log is what sshd has written so far.
func (h *Host) Log() string { return h.log.String() }

// AcceptedLogins counts successful authentications in the server log: one
// per client connection.
func (h *Host) AcceptedLogins() int {
	return strings.Count(h.Log(), "Accepted publickey for ")
}

// KillConnections kills the server's per-connection processes and
// everything they started, as a crash or network cut would, leaving the
// listener running for new connections.
func (h *Host) KillConnections() {
	for _, pid := range descendants(h.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Stop kills the server and its connections. It is called by t.Cleanup.
func (h *Host) Stop() {
	h.stopOnce.Do(func() {
		h.KillConnections()
		h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(5 * time.Second):
			h.cmd.Process.Kill()
			<-h.exited
		}
		if h.cpu != nil {
			h.cpu.remove()
		}
	})
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name may hold spaces and parentheses: parse after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, p)
		queue = append(queue, children[p]...)
	}
	return out
}

// NewKeyFile writes a new ed25519 private key into a temporary directory,
// encrypted when passphrase is not empty, and returns its path and signer.
func NewKeyFile(t testing.TB, passphrase string) (string, ssh.Signer) {
	t.Helper()
	return writeKey(t, t.TempDir(), "id_ed25519", passphrase)
}

func writeKey(t testing.TB, dir, name, passphrase string) (string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, signer
}

// SyncBuffer is a bytes buffer that goroutines may write and read at
// once: a server's output copier and the test, or a logger and the test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer starts a server in the foreground, in a process group of its
// own (so it and its children can be killed together), with its output in
// a buffer; exited is closed when it has ended.
func startServer(path string, args ...string) (cmd *exec.Cmd, output *SyncBuffer, exited chan struct{}, err error) {
	output = &SyncBuffer{}
	cmd = exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = output, output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Children (sshd's connection processes, nginx's workers) inherit the
	// output pipe; do not wait on them forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	exited = make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	return cmd, output, exited, nil
}
