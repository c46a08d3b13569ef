package remote

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSSHConfigDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	cfg := NewSSHConfig("deploy@web1")
	if cfg.UseAgent || cfg.ConfigFile != "" {
		t.Errorf("NewSSHConfig without agent or ~/.ssh/config = %+v", cfg)
	}
	r, err := resolveRoute(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := r.target
	if !reflect.DeepEqual(h.knownHosts, []string{filepath.Join(home, ".ssh", "known_hosts")}) {
		t.Errorf("known hosts %q", h.knownHosts)
	}
	if h.identities == nil || len(h.identities) != 0 {
		t.Errorf("identity files %q, want none found (non-nil)", h.identities)
	}
	if h.timeout != DefaultDialTimeout || h.keepAlive != DefaultKeepAlive || h.keepAliveMax != 1 || len(r.jumps) != 0 {
		t.Errorf("defaults %+v", h)
	}
	if d := cfg.withDefaults(); d.MaxSessions != DefaultMaxSessions || d.MaxAgents != DefaultMaxAgents {
		t.Errorf("session defaults %+v", d)
	}
	// Persistent shells leave sessions for uploads.
	for _, tc := range []struct{ sessions, agents, want int }{
		{1, 0, -1}, {3, 0, 1}, {3, 10, 2}, {8, -1, -1}, {20, 0, DefaultMaxAgents}, {20, 6, 6},
	} {
		if got := (SSHConfig{MaxSessions: tc.sessions, MaxAgents: tc.agents}).withDefaults().MaxAgents; got != tc.want {
			t.Errorf("MaxSessions %d, MaxAgents %d: %d agents, want %d", tc.sessions, tc.agents, got, tc.want)
		}
	}
	t.Setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "config"), nil, 0o600)
	if cfg := NewSSHConfig("web1"); !cfg.UseAgent || cfg.ConfigFile != filepath.Join(home, ".ssh", "config") {
		t.Errorf("with SSH_AUTH_SOCK and ~/.ssh/config: %+v", cfg)
	}
	r, err = resolveRoute(SSHConfig{Target: "web1", KnownHostsFile: "~/kh", IdentityFiles: []string{"~/.ssh/deploy", "/abs/key"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.target.knownHosts[0] != filepath.Join(home, "kh") || r.target.identities[0] != filepath.Join(home, ".ssh/deploy") || r.target.identities[1] != "/abs/key" {
		t.Errorf("~ not expanded: %q %q", r.target.knownHosts, r.target.identities)
	}
}

// writeConfig writes an ssh_config into a temporary directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestClientConfigResolution: ssh_config fills what the Stagecoach
// settings leave unset, and nothing they set.
func TestClientConfigResolution(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	included := writeConfig(t, "Host jump1\n  HostName 10.0.0.1\n  User jump\n  IdentityFile ~/.ssh/jump_key\n")
	file := writeConfig(t, `# the application's hosts
Include `+included+`

Host acc-alias
  HostName 10.1.2.3
  Port 2222
  User deploy
  IdentityFile ~/.ssh/acc_%r_%h
  IdentitiesOnly yes
  UserKnownHostsFile ~/.ssh/acc_known_hosts %d/other
  ProxyJump jump1,ops@jump2:2200
  ConnectTimeout 1m30s
  ServerAliveInterval 5
  StrictHostKeyChecking no

Host direct
  ProxyJump none
  ServerAliveInterval 0

Host jump2
  HostName 10.0.0.2
  ProxyCommand ssh -W %h:%p elsewhere

Host *
  User fallback
  ProxyJump jump1
  ServerAliveCountMax 7
`)
	r, err := resolveRoute(SSHConfig{Target: "acc-alias", ConfigFile: file})
	if err != nil {
		t.Fatal(err)
	}
	h := r.target
	if h.host != "10.1.2.3" || h.port != 2222 || h.user != "deploy" || !h.identitiesOnly || r.name != "deploy@acc-alias" {
		t.Errorf("target %+v, named %s", h, r.name)
	}
	if want := []string{filepath.Join(home, ".ssh", "acc_deploy_10.1.2.3")}; !reflect.DeepEqual(h.identities, want) {
		t.Errorf("identities %q, want %q", h.identities, want)
	}
	if want := []string{filepath.Join(home, ".ssh", "acc_known_hosts"), home + "/other"}; !reflect.DeepEqual(h.knownHosts, want) {
		t.Errorf("known hosts %q, want %q", h.knownHosts, want)
	}
	if h.timeout != 90*time.Second || h.keepAlive != 5*time.Second || h.keepAliveMax != 7 {
		t.Errorf("timeout %s, keepalive %s × %d", h.timeout, h.keepAlive, h.keepAliveMax)
	}
	if len(r.jumps) != 2 {
		t.Fatalf("%d bastions, want 2", len(r.jumps))
	}
	if j := r.jumps[0]; j.name() != "jump1 (jump@10.0.0.1:22)" || j.identities[0] != filepath.Join(home, ".ssh", "jump_key") {
		t.Errorf("bastion 1 from the included file: %s, %q", j.name(), j.identities)
	}
	if j := r.jumps[1]; j.name() != "jump2 (ops@10.0.0.2:2200)" {
		t.Errorf("bastion 2: %s: the user and port written in ProxyJump win", j.name())
	}
	warnings := strings.Join(r.warnings, "\n")
	for _, want := range []string{"StrictHostKeyChecking no for acc-alias is not honoured", "ProxyCommand for jump2 is not supported"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings %q lack %q", warnings, want)
		}
	}

	// What the Stagecoach settings say wins.
	r, err = resolveRoute(SSHConfig{Target: "root@acc-alias:22", ConfigFile: file, KnownHostsFile: "/kh",
		IdentityFiles: []string{"/key"}, DialTimeout: time.Second, KeepAlive: time.Minute, ProxyJump: "none"})
	if err != nil {
		t.Fatal(err)
	}
	h = r.target
	if h.host != "10.1.2.3" || h.port != 22 || h.user != "root" || h.knownHosts[0] != "/kh" || h.identities[0] != "/key" ||
		h.timeout != time.Second || h.keepAlive != time.Minute || len(r.jumps) != 0 {
		t.Errorf("explicit settings lost: %+v, %d bastions", h, len(r.jumps))
	}
	r, _ = resolveRoute(SSHConfig{Target: "acc-alias", ConfigFile: file, ProxyJump: "a@b:23"})
	if len(r.jumps) != 1 || r.jumps[0].name() != "a@b:23" {
		t.Errorf("explicit ProxyJump: %+v", r.jumps)
	}

	// ProxyJump none in an earlier block stops Host *'s; ServerAliveInterval 0 disables.
	r, _ = resolveRoute(SSHConfig{Target: "direct", ConfigFile: file})
	if len(r.jumps) != 0 || r.target.keepAlive != 0 || r.target.user != "fallback" {
		t.Errorf("direct: %d bastions, keepalive %s, user %s", len(r.jumps), r.target.keepAlive, r.target.user)
	}
	r, _ = resolveRoute(SSHConfig{Target: "other.example.com", ConfigFile: file})
	if len(r.jumps) != 1 || r.target.host != "other.example.com" || r.target.fromConfig {
		t.Errorf("an unlisted host gets Host *: %+v, %d bastions", r.target, len(r.jumps))
	}
}

// TestMalformedClientConfig: every bad line is named by file and line,
// in the including file and in included ones.
func TestMalformedClientConfig(t *testing.T) {
	bad := writeConfig(t, "Host x\n  Match exec \"true\"\n")
	badValue := writeConfig(t, "\nHost y\n  IdentitiesOnly maybe\n")
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"Host a\n  Port abc\n", []string{":2: Port \"abc\": port \"abc\" is not a number"}},
		{"Host a\n  HostName\n", []string{":2: HostName has no value"}},
		{"Host a\n  ConnectTimeout soon\n  ServerAliveCountMax -1\n", []string{":2: ConnectTimeout \"soon\"", ":3: ServerAliveCountMax \"-1\""}},
		{"Host a\n  ProxyJump jump1,,jump2\n", []string{":2: ProxyJump \"jump1,,jump2\""}},
		{"Host a\n  StrictHostKeyChecking perhaps\n", []string{":2: StrictHostKeyChecking \"perhaps\""}},
		{"Host a\n  IdentityFile ~/.ssh/%z\n", []string{":2: IdentityFile \"~/.ssh/%z\": unknown token %z"}},
		{"Host a\n  Match foo\n", []string{":2: unsupported Match criterion \"foo\""}},
		{"Host a\n\n  Include " + bad + "\n", []string{bad + ":2: Match Exec is not supported"}},
		{"Host a\n  Include " + badValue + "\n", []string{badValue + ":3: IdentitiesOnly \"maybe\": expected yes or no"}},
	} {
		file := writeConfig(t, tc.text)
		_, err := resolveRoute(SSHConfig{Target: "a", ConfigFile: file})
		if err == nil {
			t.Errorf("%q: no error", tc.text)
			continue
		}
		for _, want := range tc.want {
			if !strings.HasPrefix(want, "/") {
				want = file + want
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q: error %q lacks %q", tc.text, err, want)
			}
		}
	}
	if _, err := resolveRoute(SSHConfig{Target: "a", ConfigFile: filepath.Join(t.TempDir(), "absent")}); err == nil || !strings.Contains(err.Error(), "read ssh config") {
		t.Errorf("missing config file: %v", err)
	}
}

func TestParseSSHTime(t *testing.T) {
	for in, want := range map[string]time.Duration{"30": 30 * time.Second, "1m30s": 90 * time.Second, "2h": 2 * time.Hour, "1w": 7 * 24 * time.Hour, "0": 0} {
		if got, err := parseSSHTime(in); err != nil || got != want {
			t.Errorf("parseSSHTime(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "5x", "m", "-3", "1.5"} {
		if _, err := parseSSHTime(in); err == nil {
			t.Errorf("parseSSHTime(%q) accepted", in)
		}
	}
}
