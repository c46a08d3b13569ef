package remote

import (
	"path/filepath"
	"testing"
)

func TestSSHConfigDefaults(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	cfg := NewSSHConfig("deploy@web1")
	if cfg.KnownHostsFile != filepath.Join(home, ".ssh", "known_hosts") {
		t.Errorf("known hosts %q", cfg.KnownHostsFile)
	}
	if cfg.IdentityFiles == nil || len(cfg.IdentityFiles) != 0 {
		t.Errorf("identity files %q, want none found (non-nil)", cfg.IdentityFiles)
	}
	if cfg.UseAgent || cfg.DialTimeout != DefaultDialTimeout || cfg.KeepAlive != DefaultKeepAlive || cfg.MaxSessions != DefaultMaxSessions || cfg.MaxAgents != DefaultMaxAgents {
		t.Errorf("defaults %+v", cfg)
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
	if !NewSSHConfig("web1").UseAgent {
		t.Error("agent not used with SSH_AUTH_SOCK set")
	}
	cfg = SSHConfig{KnownHostsFile: "~/kh", IdentityFiles: []string{"~/.ssh/deploy", "/abs/key"}}.withDefaults()
	if cfg.KnownHostsFile != filepath.Join(home, "kh") || cfg.IdentityFiles[0] != filepath.Join(home, ".ssh/deploy") || cfg.IdentityFiles[1] != "/abs/key" {
		t.Errorf("~ not expanded: %q %q", cfg.KnownHostsFile, cfg.IdentityFiles)
	}
}
