package remote_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// TestHostAlias: a host named only by a Host alias is dialled at its
// HostName and Port, as its User, with its IdentityFile and
// UserKnownHostsFile; an Include'd file counts like the including one.
func TestHostAlias(t *testing.T) {
	h := startSSHD(t)
	t.Setenv("HOME", t.TempDir()) // no default key or known_hosts to fall back on
	t.Setenv("SSH_AUTH_SOCK", "")
	included := writeSSHConfig(t, fmt.Sprintf(`Host acc-alias
  HostName %s
  Port %d
  User %s
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  ConnectTimeout 5
`, h.Addr, h.Port, h.User, h.IdentityFile, h.KnownHostsFile))
	config := writeSSHConfig(t, "Include "+included+"\n\nHost *\n  ServerAliveInterval 30\n")

	cfg := remote.NewSSHConfig("acc-alias")
	cfg.ConfigFile = config
	r, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Target() != h.User+"@acc-alias" {
		t.Errorf("Target() = %q", r.Target())
	}
	if res, err := r.Run(context.Background(), remote.Cmd("whoami", "whoami")); err != nil || strings.TrimSpace(string(res.Stdout)) != h.User {
		t.Errorf("whoami: %q, %v", res.Stdout, err)
	}

	// The user and port written in the host win: a wrong port proves it.
	cfg.Target = "nobody@acc-alias:1"
	_, err = dial(t, cfg)
	if err == nil || !strings.Contains(err.Error(), h.Addr+":1 unreachable") {
		t.Errorf("explicit port: %v, want %s:1 dialled", err, h.Addr)
	}
}

// TestServerAliveFromConfig: ServerAliveInterval and ServerAliveCountMax
// decide when a server that stopped answering is given up.
func TestServerAliveFromConfig(t *testing.T) {
	h := startSSHD(t)
	p := startProxy(t, fmt.Sprintf("%s:%d", h.Addr, h.Port))
	config := writeSSHConfig(t, fmt.Sprintf("Host slow\n  HostName 127.0.0.1\n  Port %d\n  ServerAliveInterval 1\n  ServerAliveCountMax 2\n", p.port()))
	cfg := h.SSHConfig()
	cfg.Target, cfg.ConfigFile, cfg.KnownHostsFile = "slow", config, knownHostsFor(t, h, p.port())
	r, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.freeze(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = r.Run(ctx, remote.Script("wait", "sleep 10"))
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "no answer to keepalive within 2s") || !remote.IsConnectionLost(err) {
		t.Fatalf("error %v, want the connection closed after 2 unanswered keepalives of 1s", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("closed after %s, before two intervals", d)
	}
}

// TestAliasMissingFromConfig: a name that is neither a Host alias nor
// known to DNS is refused saying both.
func TestAliasMissingFromConfig(t *testing.T) {
	h := startSSHD(t)
	config := writeSSHConfig(t, fmt.Sprintf("Host acc-alias\n  HostName %s\n  Port %d\n", h.Addr, h.Port))
	cfg := h.SSHConfig()
	cfg.Target, cfg.ConfigFile, cfg.DialTimeout = "acc-typo.invalid", config, 5*time.Second
	_, err := dial(t, cfg)
	t.Log(err)
	var unreachable *remote.UnreachableError
	if !errors.As(err, &unreachable) {
		t.Fatalf("error %v, want the host unreachable", err)
	}
	for _, want := range []string{"connect to " + h.User + "@acc-typo.invalid: acc-typo.invalid:22 unreachable", "lookup acc-typo.invalid",
		"acc-typo.invalid is not a Host alias in " + config + " (no HostName for it)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if n := h.AcceptedLogins(); n != 0 {
		t.Errorf("%d logins", n)
	}
}

// TestMalformedSSHConfigAgainstSSHD: a bad line stops the dial before any
// connection, naming the file and line.
func TestMalformedSSHConfigAgainstSSHD(t *testing.T) {
	h := startSSHD(t)
	config := writeSSHConfig(t, fmt.Sprintf("Host acc-alias\n  HostName %s\n  Port %d\n  ServerAliveCountMax often\n", h.Addr, h.Port))
	cfg := h.SSHConfig()
	cfg.Target, cfg.ConfigFile = "acc-alias", config
	_, err := dial(t, cfg)
	t.Log(err)
	var bad *remote.ClientConfigError
	if !errors.As(err, &bad) || bad.File != config || bad.Line != 4 {
		t.Fatalf("error %v, want a ClientConfigError at %s:4", err, config)
	}
	if want := config + `:4: ServerAliveCountMax "often": expected a whole number`; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q lacks %q", err, want)
	}
	if strings.Contains(h.Log(), "Connection from") {
		t.Errorf("sshd saw a connection:\n%s", h.Log())
	}
}

// TestStrictHostKeyCheckingNoIsNotHonoured: the setting brings a warning,
// and an unknown host key is refused all the same.
func TestStrictHostKeyCheckingNoIsNotHonoured(t *testing.T) {
	h := startSSHD(t)
	config := writeSSHConfig(t, fmt.Sprintf("Host acc-alias\n  HostName %s\n  Port %d\n  StrictHostKeyChecking no\n", h.Addr, h.Port))
	var mu sync.Mutex
	var warnings []string
	cfg := h.SSHConfig()
	cfg.Target, cfg.ConfigFile = "acc-alias", config
	cfg.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	cfg.Warnf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		warnings = append(warnings, fmt.Sprintf(format, args...))
	}
	_, err := dial(t, cfg)
	var unknown *remote.UnknownHostKeyError
	if !errors.As(err, &unknown) {
		t.Fatalf("error %v, want the unknown host key refused", err)
	}
	if _, err := os.Stat(cfg.KnownHostsFile); err == nil {
		t.Error("the host key was added to known_hosts")
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], config+": StrictHostKeyChecking no for acc-alias is not honoured") {
		t.Errorf("warnings %q", warnings)
	}
}
