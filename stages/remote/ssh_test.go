package remote_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dial(t *testing.T, cfg remote.SSHConfig) (*remote.SSH, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := remote.DialSSH(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { r.Close() })
	}
	return r, err
}

func TestOneConnectionForManyOperations(t *testing.T) {
	h := startSSHD(t)
	p := startProxy(t, net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)))
	cfg := h.SSHConfig()
	cfg.Target = fmt.Sprintf("%s@127.0.0.1:%d", h.User, p.port())
	cfg.KnownHostsFile = knownHostsFor(t, h, p.port())
	r, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 53)
	// Half the commands in parallel: more than the session limit at once.
	for i := 0; i < 50; i++ {
		run := func() {
			res, err := r.Run(ctx, remote.Cmd("echo", "echo", strconv.Itoa(i)))
			if err == nil && strings.TrimSpace(string(res.Stdout)) != strconv.Itoa(i) {
				err = fmt.Errorf("command %d printed %q", i, res.Stdout)
			}
			errs <- err
		}
		if i%2 == 0 {
			wg.Add(1)
			go func() { defer wg.Done(); run() }()
		} else {
			run()
		}
	}
	for i := 0; i < 3; i++ {
		data := bytes.Repeat([]byte{byte(i)}, 100_000)
		dest := filepath.Join(dir, fmt.Sprintf("up%d", i))
		if err := r.Upload(ctx, bytes.NewReader(data), dest, nil); err != nil {
			errs <- err
			continue
		}
		got, err := os.ReadFile(dest)
		if err == nil && !bytes.Equal(got, data) {
			err = fmt.Errorf("upload %d corrupted", i)
		}
		errs <- err
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	st := r.Stats()
	if st.Connections != 1 {
		t.Errorf("Stats().Connections = %d, want 1", st.Connections)
	}
	if st.RoundTrips < 53 {
		t.Errorf("Stats().RoundTrips = %d, want at least 53", st.RoundTrips)
	}
	// The commands share the persistent shells; each upload is a session.
	if max := int64(remote.DefaultMaxAgents + 3); st.Sessions > max {
		t.Errorf("Stats().Sessions = %d, want at most %d", st.Sessions, max)
	}
	if n := p.accepted.Load(); n != 1 {
		t.Errorf("server side accepted %d TCP connections, want 1", n)
	}
	if n := h.AcceptedLogins(); n != 1 {
		t.Errorf("sshd logged %d logins, want 1", n)
	}
}

func TestUnknownHostKey(t *testing.T) {
	h := startSSHD(t)
	for name, file := range map[string]string{
		"empty":   filepath.Join(t.TempDir(), "known_hosts"),
		"missing": filepath.Join(t.TempDir(), "absent"),
	} {
		t.Run(name, func(t *testing.T) {
			if name == "empty" {
				os.WriteFile(file, nil, 0o600)
			}
			cfg := h.SSHConfig()
			cfg.KnownHostsFile = file
			_, err := dial(t, cfg)
			t.Log(err)
			var unknown *remote.UnknownHostKeyError
			if !errors.As(err, &unknown) {
				t.Fatalf("error %v, want UnknownHostKeyError", err)
			}
			var changed *remote.HostKeyChangedError
			if errors.As(err, &changed) {
				t.Fatal("unknown host reported as a changed key")
			}
			for _, want := range []string{
				ssh.FingerprintSHA256(h.HostKey),
				fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", h.Port, file),
			} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestChangedHostKey(t *testing.T) {
	h := startSSHD(t)
	_, other := testenv.NewKeyFile(t, "")
	file := filepath.Join(t.TempDir(), "known_hosts")
	addr := net.JoinHostPort(h.Addr, strconv.Itoa(h.Port))
	content := "# pinned\n" + knownhosts.Line([]string{addr}, other.PublicKey()) + "\n"
	os.WriteFile(file, []byte(content), 0o600)
	cfg := h.SSHConfig()
	cfg.KnownHostsFile = file
	_, err := dial(t, cfg)
	t.Log(err)
	var changed *remote.HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("error %v, want HostKeyChangedError", err)
	}
	if changed.Line != 2 || changed.KnownHostsFile != file {
		t.Errorf("points at %s:%d, want %s:2", changed.KnownHostsFile, changed.Line, file)
	}
	for _, want := range []string{
		ssh.FingerprintSHA256(h.HostKey),
		ssh.FingerprintSHA256(other.PublicKey()),
		fmt.Sprintf("ssh-keygen -R '[127.0.0.1]:%d' -f %s", h.Port, file),
		fmt.Sprintf("%s:2", file),
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestHostKeyAlgorithmsFromKnownHosts: a server with two host keys is
// accepted whichever one alone is recorded, because the client asks for
// the recorded type.
func TestHostKeyAlgorithmsFromKnownHosts(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(ecKey, "")
	if err != nil {
		t.Fatal(err)
	}
	ecFile := filepath.Join(t.TempDir(), "ssh_host_ecdsa_key")
	os.WriteFile(ecFile, pem.EncodeToMemory(block), 0o600)
	ecSigner, _ := ssh.NewSignerFromKey(ecKey)
	h := startSSHD(t, testenv.WithConfig("HostKey "+ecFile))
	addr := net.JoinHostPort(h.Addr, strconv.Itoa(h.Port))
	for name, key := range map[string]ssh.PublicKey{"ed25519": h.HostKey, "ecdsa": ecSigner.PublicKey()} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "known_hosts")
			os.WriteFile(file, []byte(knownhosts.Line([]string{addr}, key)+"\n"), 0o600)
			cfg := h.SSHConfig()
			cfg.KnownHostsFile = file
			if _, err := dial(t, cfg); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWrongClientKey(t *testing.T) {
	h := startSSHD(t)
	key, _ := testenv.NewKeyFile(t, "")
	cfg := h.SSHConfig()
	cfg.IdentityFiles = []string{key}
	_, err := dial(t, cfg)
	t.Log(err)
	var auth *remote.AuthError
	if !errors.As(err, &auth) {
		t.Fatalf("error %v, want AuthError", err)
	}
	if !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "authorized_keys") {
		t.Errorf("error %q should name the key tried and what to do", err)
	}
}

func TestNoCredentials(t *testing.T) {
	h := startSSHD(t)
	cfg := h.SSHConfig()
	cfg.IdentityFiles = []string{}
	cfg.UseAgent = true
	t.Setenv("SSH_AUTH_SOCK", "")
	_, err := dial(t, cfg)
	t.Log(err)
	var auth *remote.AuthError
	if !errors.As(err, &auth) || !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
		t.Fatalf("error %v, want AuthError saying the agent was unavailable", err)
	}
}

func TestEncryptedKey(t *testing.T) {
	h := startSSHD(t)
	key, signer := testenv.NewKeyFile(t, "open sesame")
	h.Authorize(t, signer.PublicKey())
	cfg := h.SSHConfig()
	cfg.IdentityFiles = []string{key}

	t.Setenv(remote.PassphraseEnv, "")
	_, err := dial(t, cfg)
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), remote.PassphraseEnv) {
		t.Fatalf("error %v, want one naming %s and %s", err, key, remote.PassphraseEnv)
	}

	cfg.Passphrase = func(string) ([]byte, error) { return []byte("wrong"), nil }
	if _, err := dial(t, cfg); err == nil || !strings.Contains(err.Error(), key) {
		t.Fatalf("wrong passphrase: error %v, want one naming %s", err, key)
	}

	cfg.Passphrase = func(file string) ([]byte, error) { return []byte("open sesame"), nil }
	if _, err := dial(t, cfg); err != nil {
		t.Fatalf("with passphrase callback: %v", err)
	}

	cfg.Passphrase = nil
	t.Setenv(remote.PassphraseEnv, "open sesame")
	if _, err := dial(t, cfg); err != nil {
		t.Fatalf("with %s: %v", remote.PassphraseEnv, err)
	}
}

func TestAgentAuth(t *testing.T) {
	h := startSSHD(t)
	pemBytes, err := os.ReadFile(h.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { agent.ServeAgent(keyring, c); c.Close() }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)

	cfg := remote.NewSSHConfig(h.Target())
	if !cfg.UseAgent {
		t.Fatal("NewSSHConfig did not enable the agent with SSH_AUTH_SOCK set")
	}
	cfg.KnownHostsFile = h.KnownHostsFile
	cfg.IdentityFiles = []string{}
	r, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), remote.Cmd("true", "true")); err != nil {
		t.Fatal(err)
	}
}

func TestClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	key, _ := testenv.NewKeyFile(t, "")
	_, err = dial(t, remote.SSHConfig{
		Target: fmt.Sprintf("deploy@127.0.0.1:%d", port), IdentityFiles: []string{key},
		KnownHostsFile: filepath.Join(t.TempDir(), "kh"), DialTimeout: 2 * time.Second,
	})
	if err == nil || !strings.Contains(err.Error(), "connect to") || !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Fatalf("error %v, want a connect error naming the port", err)
	}
}

// TestSilentPort: a port that accepts but never speaks SSH fails within
// the dial timeout instead of hanging.
func TestSilentPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	key, _ := testenv.NewKeyFile(t, "")
	start := time.Now()
	_, err = dial(t, remote.SSHConfig{
		Target: "deploy@" + ln.Addr().String(), IdentityFiles: []string{key},
		KnownHostsFile: filepath.Join(t.TempDir(), "kh"), DialTimeout: 300 * time.Millisecond,
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no SSH handshake") {
		t.Fatalf("error %v, want a handshake timeout", err)
	}
	if d := time.Since(start); d > 20*time.Second { // hang guard
		t.Fatalf("dial returned after %s", d)
	}
}

// TestDroppedConnectionMidUpload kills the server's connection processes
// while an upload streams: the upload fails and nothing appears at its path.
func TestDroppedConnectionMidUpload(t *testing.T) {
	h := startSSHD(t)
	r := h.Dial(t)
	dest := filepath.Join(t.TempDir(), "release.tar")
	src := &slowReader{after: 1 << 20, onAfter: h.KillConnections}
	var sent int
	err := r.Upload(context.Background(), src, dest, func(n int) { sent += n })
	if err == nil {
		t.Fatal("upload succeeded across a dropped connection")
	}
	if sent < 1<<20 {
		t.Errorf("only %d bytes sent before the drop", sent)
	}
	t.Logf("upload error: %v", err)
	if !remote.IsConnectionLost(err) || !strings.Contains(err.Error(), "connection lost") {
		t.Errorf("upload error %q is not a lost connection", err)
	}

	fresh := h.Dial(t)
	res, err := fresh.Run(context.Background(), remote.Script("look", fmt.Sprintf("ls -a %s; test ! -e %s", remote.Quote(filepath.Dir(dest)), remote.Quote(dest))))
	if err != nil {
		t.Fatalf("final file exists after the dropped upload: %v (%s)", err, res.Stdout)
	}
	// The old runner reports the lost connection instead of hanging.
	_, err = r.Run(context.Background(), remote.Cmd("true", "true"))
	if !remote.IsConnectionLost(err) {
		t.Errorf("command on the dropped connection: error %v, want a lost connection", err)
	}
}

// TestConnectionLostMidCommand kills the server's connection processes
// while a command runs: it fails as a lost connection, and so does every
// later operation on the runner, while a new connection works.
func TestConnectionLostMidCommand(t *testing.T) {
	h := startSSHD(t)
	r := h.Dial(t)
	cmd := remote.Script("long step", "echo started; sleep 30")
	cmd.Stdout = writerFunc(func(p []byte) (int, error) {
		h.KillConnections()
		return len(p), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second) // hang guard
	defer cancel()
	res, err := r.Run(ctx, cmd)
	t.Logf("run error: %v", err)
	if !remote.IsConnectionLost(err) || !errors.Is(err, remote.ErrConnectionLost) {
		t.Fatalf("error %v, want a lost connection", err)
	}
	var exit *remote.ExitError
	if errors.As(err, &exit) || ctx.Err() != nil {
		t.Errorf("lost connection reported as exit %v / context %v", exit, ctx.Err())
	}
	if res.ExitCode != -1 {
		t.Errorf("exit code %d, want -1 (unknown)", res.ExitCode)
	}
	for _, want := range []string{"long step on " + r.Target(), "connection lost"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	for name, op := range map[string]func() error{
		"run":    func() error { _, err := r.Run(ctx, remote.Cmd("true", "true")); return err },
		"read":   func() error { _, err := r.ReadFile(ctx, "/etc/hostname"); return err },
		"upload": func() error { return r.Upload(ctx, strings.NewReader("x"), filepath.Join(t.TempDir(), "f"), nil) },
	} {
		if err := op(); !remote.IsConnectionLost(err) {
			t.Errorf("%s on the lost connection: error %v, want a lost connection", name, err)
		}
	}
	if _, err := h.Dial(t).Run(ctx, remote.Cmd("true", "true")); err != nil {
		t.Errorf("new connection after the loss: %v", err)
	}
}

// TestClosedRunnerIsNotConnectionLost: operations after Close fail, but
// the connection was ended on purpose, not lost.
func TestClosedRunnerIsNotConnectionLost(t *testing.T) {
	r := startSSHD(t).Dial(t)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := r.Run(context.Background(), remote.Cmd("true", "true"))
	if err == nil || remote.IsConnectionLost(err) || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("error %v, want one saying the runner was closed", err)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestKeepAliveClosesDeadConnection: when the server stops answering, the
// keepalive closes the connection and operations fail saying why.
func TestKeepAliveClosesDeadConnection(t *testing.T) {
	h := startSSHD(t)
	p := startProxy(t, net.JoinHostPort(h.Addr, strconv.Itoa(h.Port)))
	cfg := h.SSHConfig()
	cfg.Target = fmt.Sprintf("%s@127.0.0.1:%d", h.User, p.port())
	cfg.KnownHostsFile = knownHostsFor(t, h, p.port())
	cfg.KeepAlive = 200 * time.Millisecond
	r, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A few answered keepalives first.
	time.Sleep(700 * time.Millisecond)
	if _, err := r.Run(context.Background(), remote.Cmd("true", "true")); err != nil {
		t.Fatalf("connection closed while the server answered: %v", err)
	}
	p.freeze(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = r.Run(ctx, remote.Script("wait", "sleep 10"))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the keepalive to close the connection", err)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), "keepalive") {
		t.Errorf("error %q should say the keepalive went unanswered", err)
	}
	if !remote.IsConnectionLost(err) {
		t.Errorf("error %q is not a lost connection", err)
	}
}
