package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestDeployThroughBastions deploys to two hosts that only the second of
// two bastions can reach, each sshd in a network namespace of the test's
// own. The hosts are named by ssh_config aliases whose ProxyJump is the
// chain; the deploy connects once to each bastion, shared by both hosts,
// and once to each host, as the bastions' logs and the report show.
func TestDeployThroughBastions(t *testing.T) {
	t.Parallel()
	n := testenv.NewJumpNet(t, 2)
	jump1 := testenv.StartSSHD(t, testenv.InNetns(n.Bastion1, n.Bastion1Addr), testenv.WithLogLevel("DEBUG1"))
	jump2 := testenv.StartSSHD(t, testenv.InNetns(n.Bastion2, n.Bastion2Addr), testenv.WithLogLevel("DEBUG1"))
	hosts := []*testenv.Host{
		testenv.StartSSHD(t, testenv.InNetns(n.Target, n.TargetAddrs[0])),
		testenv.StartSSHD(t, testenv.InNetns(n.Target, n.TargetAddrs[1])),
	}
	names := []string{"web1", "web2"}
	config := filepath.Join(t.TempDir(), "ssh_config")
	text := fmt.Sprintf("Host jump1\n  HostName %s\n\nHost jump2\n  HostName %s\n\n", n.Bastion1Addr, n.Bastion2Addr)
	for i, h := range hosts {
		text += fmt.Sprintf("Host %s\n  HostName %s\n  ProxyJump jump1,jump2\n\n", names[i], h.Addr)
	}
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	// The hosts are out of this machine's reach, so the health check runs
	// on them: a release's backend binary asks the backend on the host's
	// own address.
	base := t.TempDir()
	port := testenv.FreePort(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{
		Hosts: hosts, HostNames: names, Bastions: []*testenv.Host{jump1, jump2}, SSHConfig: config,
		Root: filepath.Join(base, "{host}", "srv"), Port: port,
		Health: fmt.Sprintf("      - command: 'set -- $SSH_CONNECTION; for s in %s/*/srv/current/backend/server; do [ -x \"$s\" ] && exec \"$s\" healthcheck -url \"http://$3:%d/healthz\"; done; exit 1'\n", base, port),
	})
	for i, change := range []string{"", "a frontend change behind the bastions"} {
		if change != "" {
			changeFrontend(t, p, change)
		}
		before := []int{jump1.AcceptedLogins(), jump2.AcceptedLogins(), hosts[0].AcceptedLogins(), hosts[1].AcceptedLogins()}
		res := mustDeploy(t, p)
		id := res.run.Plan.Release
		rep := report(t, p, id)
		after := []int{jump1.AcceptedLogins(), jump2.AcceptedLogins(), hosts[0].AcceptedLogins(), hosts[1].AcceptedLogins()}
		for j, who := range []string{"bastion 1", "bastion 2", "web1", "web2"} {
			if d := after[j] - before[j]; d != 1 {
				t.Errorf("deploy %d: %d logins on %s, want 1", i+1, d, who)
			}
		}
		var connections float64
		for j, h := range hosts {
			if got := verifyLive(t, p.HostRoot(names[j])); got != id {
				t.Errorf("deploy %d: %s runs %s, want %s", i+1, names[j], got, id)
			}
			if log := readFile(t, filepath.Join(p.HostRoot(names[j]), "shared", "services.log")); !strings.Contains(log, "restart "+id) {
				t.Errorf("deploy %d: %s never restarted on %s: %s", i+1, names[j], id, log)
			}
			hr := hostReport(t, rep, names[j])
			connections += hr["connections"].(float64)
			t.Logf("deploy %d to %s (%s): %v connections, %v sessions", i+1, names[j], h.Addr, hr["connections"], hr["sessions"])
		}
		if connections != 4 {
			t.Errorf("deploy %d: the report shows %v connections in all, want 4 (two bastions shared by two hosts)", i+1, connections)
		}
	}
	for _, tc := range []struct {
		h    *testenv.Host
		next []string
	}{{jump1, []string{n.Bastion2Addr}}, {jump2, n.TargetAddrs}} {
		for _, next := range tc.next {
			if !strings.Contains(tc.h.Log(), "server_request_direct_tcpip: originator") || !strings.Contains(tc.h.Log(), "target "+next+" port 22") {
				t.Errorf("sshd log of bastion %s lacks the connection forwarded to %s", tc.h.Addr, next)
			}
		}
	}
}
