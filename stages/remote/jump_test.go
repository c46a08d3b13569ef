package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"golang.org/x/crypto/ssh/knownhosts"
)

// mergeKnownHosts writes one known_hosts file trusting every host.
func mergeKnownHosts(t *testing.T, hosts ...*testenv.Host) string {
	t.Helper()
	var lines []byte
	for _, h := range hosts {
		data, err := os.ReadFile(h.KnownHostsFile)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, data...)
	}
	f := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(f, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// jumpBed is a target reachable only through two bastions, each sshd in a
// network namespace of its own (testenv.JumpNet), all accepting the
// target's client key, and an ssh_config naming them jump1, jump2 and
// target.
type jumpBed struct {
	net                     *testenv.JumpNet
	jump1, jump2, target    *testenv.Host
	config, knownHosts, key string
}

func newJumpBed(t *testing.T) *jumpBed {
	t.Helper()
	if testing.Short() {
		t.Skip("starts sshd in network namespaces: skipped with -short")
	}
	n := testenv.NewJumpNet(t, 1)
	b := &jumpBed{net: n,
		jump1:  testenv.StartSSHD(t, testenv.InNetns(n.Bastion1, n.Bastion1Addr), testenv.WithLogLevel("DEBUG1")),
		jump2:  testenv.StartSSHD(t, testenv.InNetns(n.Bastion2, n.Bastion2Addr), testenv.WithLogLevel("DEBUG1")),
		target: testenv.StartSSHD(t, testenv.InNetns(n.Target, n.TargetAddrs[0])),
	}
	b.key = b.target.IdentityFile
	b.jump1.Authorize(t, b.target.ClientKey.PublicKey())
	b.jump2.Authorize(t, b.target.ClientKey.PublicKey())
	b.knownHosts = mergeKnownHosts(t, b.jump1, b.jump2, b.target)
	b.config = writeSSHConfig(t, fmt.Sprintf(`Host jump1
  HostName %s
Host jump2
  HostName %s
Host target
  HostName %s
  ProxyJump jump1,jump2
`, n.Bastion1Addr, n.Bastion2Addr, n.TargetAddrs[0]))
	return b
}

func (b *jumpBed) sshConfig() remote.SSHConfig {
	return remote.SSHConfig{Target: "target", ConfigFile: b.config, KnownHostsFile: b.knownHosts,
		IdentityFiles: []string{b.key}, DialTimeout: 5 * time.Second}
}

func writeSSHConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestProxyJumpChain reaches a host that only the second of two bastions
// can reach, through both, as ProxyJump in ssh_config says: one
// connection to each, every host key checked, and the bastions' sshd logs
// show the forwarded connections.
func TestProxyJumpChain(t *testing.T) {
	b := newJumpBed(t)
	ctx := context.Background()
	r, err := dial(t, b.sshConfig())
	if err != nil {
		t.Fatalf("%v\njump1:\n%s\njump2:\n%s", err, b.jump1.Log(), b.jump2.Log())
	}
	res, err := r.Run(ctx, remote.Script("where", `echo "$SSH_CONNECTION"`))
	if err != nil {
		t.Fatal(err)
	}
	// The target sees the connection come from bastion 2's end of its link.
	if f := strings.Fields(string(res.Stdout)); len(f) != 4 || f[0] != "10.0.2.1" || f[2] != b.net.TargetAddrs[0] {
		t.Errorf("SSH_CONNECTION on the target = %q, want it from 10.0.2.1 to %s", res.Stdout, b.net.TargetAddrs[0])
	}
	if r.Target() != b.target.User+"@target" {
		t.Errorf("Target() = %q", r.Target())
	}
	if st := r.Stats(); st.Connections != 3 {
		t.Errorf("Stats().Connections = %d, want 3 (two bastions and the host)", st.Connections)
	}
	for _, tc := range []struct {
		h    *testenv.Host
		next string
	}{{b.jump1, b.net.Bastion2Addr}, {b.jump2, b.net.TargetAddrs[0]}} {
		if n := tc.h.AcceptedLogins(); n != 1 {
			t.Errorf("%s: %d logins, want 1", tc.h.Addr, n)
		}
		if want := "target " + tc.next + " port 22"; !strings.Contains(tc.h.Log(), "server_request_direct_tcpip: originator") || !strings.Contains(tc.h.Log(), want) {
			t.Errorf("sshd log of bastion %s lacks the forwarded connection to %s:\n%s", tc.h.Addr, tc.next, tc.h.Log())
		}
	}

	// A second runner through the same pool shares both bastions.
	pool := remote.NewJumpPool()
	cfg := b.sshConfig()
	cfg.Jumps = pool
	r1, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c1, c2 := r1.Stats().Connections, r2.Stats().Connections; c1+c2 != 4 {
		t.Errorf("two runners through shared bastions made %d + %d connections, want 3 + 1", c1, c2)
	}
	if n1, n2 := b.jump1.AcceptedLogins(), b.jump2.AcceptedLogins(); n1 != 2 || n2 != 2 {
		t.Errorf("bastion logins %d and %d, want 2 each (one per pool)", n1, n2)
	}
	if _, err := r2.Run(ctx, remote.Cmd("true", "true")); err != nil {
		t.Errorf("second runner: %v", err)
	}
	// The bastions stay while a runner uses them, and go with the last.
	r1.Close()
	if _, err := r2.Run(ctx, remote.Cmd("true", "true")); err != nil {
		t.Errorf("second runner after the first closed: %v", err)
	}
	r2.Close()
	r3, err := dial(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if c := r3.Stats().Connections; c != 3 {
		t.Errorf("after every runner closed, a new one made %d connections, want 3", c)
	}

	// The jump is needed: bastion 1 alone cannot reach the target.
	cfg = b.sshConfig()
	cfg.ProxyJump = "jump1"
	_, err = dial(t, cfg)
	t.Log(err)
	var unreachable *remote.UnreachableError
	if !errors.As(err, &unreachable) || !strings.Contains(err.Error(), "unreachable from bastion 1 of 1, jump1 (") {
		t.Errorf("through bastion 1 only: %v, want the target unreachable from it", err)
	}
}

// TestBastionFailures: each way a bastion can fail is a distinct error
// naming the hop.
func TestBastionFailures(t *testing.T) {
	b := newJumpBed(t)
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, cfg *remote.SSHConfig)
		hop  int
		want []string
		as   func(error) bool
	}{
		{"bastion 1 unreachable", func(t *testing.T, cfg *remote.SSHConfig) {
			cfg.ProxyJump = b.net.Bastion1Addr + ":2222,jump2"
		}, 1, []string{fmt.Sprintf("bastion 1 of 2, %s@%s:2222: %s:2222 unreachable (within 5s)", b.target.User, b.net.Bastion1Addr, b.net.Bastion1Addr), "connection refused", "is the host up"},
			func(err error) bool { var u *remote.UnreachableError; return errors.As(err, &u) }},
		{"bastion 2 unreachable", func(t *testing.T, cfg *remote.SSHConfig) {
			cfg.ProxyJump = "jump1," + b.net.Bastion2Addr + ":2222"
		}, 2, []string{fmt.Sprintf("bastion 2 of 2, %s@%s:2222: %s:2222 unreachable from bastion 1 of 2, jump1", b.target.User, b.net.Bastion2Addr, b.net.Bastion2Addr), "can the bastion reach it"},
			func(err error) bool { var u *remote.UnreachableError; return errors.As(err, &u) }},
		{"bastion 2 unknown", func(t *testing.T, cfg *remote.SSHConfig) {
			cfg.KnownHostsFile = mergeKnownHosts(t, b.jump1, b.target)
		}, 2, []string{"bastion 2 of 2, jump2 (" + b.target.User + "@" + b.net.Bastion2Addr + ":22): host " + b.net.Bastion2Addr + ":22 is not in", "ssh-keyscan"},
			func(err error) bool { var u *remote.UnknownHostKeyError; return errors.As(err, &u) }},
		{"bastion 1 changed", func(t *testing.T, cfg *remote.SSHConfig) {
			_, impostor := testenv.NewKeyFile(t, "")
			line := knownhosts.Line([]string{net.JoinHostPort(b.net.Bastion1Addr, "22")}, impostor.PublicKey())
			f := mergeKnownHosts(t, b.jump2, b.target)
			data, _ := os.ReadFile(f)
			os.WriteFile(f, append([]byte(line+"\n"), data...), 0o600)
			cfg.KnownHostsFile = f
		}, 1, []string{"bastion 1 of 2, jump1 (", "HOST KEY CHANGED for " + b.net.Bastion1Addr + ":22", "do not deploy"},
			func(err error) bool { var c *remote.HostKeyChangedError; return errors.As(err, &c) }},
		{"bastion 2 refuses the key", func(t *testing.T, cfg *remote.SSHConfig) {
			b.jump2.Deauthorize(t)
			t.Cleanup(func() { b.jump2.Authorize(t, b.target.ClientKey.PublicKey()) })
		}, 2, []string{"bastion 2 of 2, jump2 (", "authenticate to " + b.target.User + "@jump2: the server accepted none of 1 keys", b.key},
			func(err error) bool { var a *remote.AuthError; return errors.As(err, &a) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := b.sshConfig()
			tc.edit(t, &cfg)
			_, err := dial(t, cfg)
			t.Log(err)
			var be *remote.BastionError
			if !errors.As(err, &be) || be.Index != tc.hop || be.Count != 2 {
				t.Fatalf("error %v, want one from bastion %d of 2", err, tc.hop)
			}
			if !tc.as(err) {
				t.Errorf("error %v is not of the expected kind", err)
			}
			if !strings.HasPrefix(err.Error(), "connect to "+b.target.User+"@target: ") {
				t.Errorf("error %q does not start with the host", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	// Nothing got as far as the target.
	if n := b.target.AcceptedLogins(); n != 0 {
		t.Errorf("%d logins on the target", n)
	}
}
