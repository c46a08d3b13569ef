package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestOneConnectionPerHost deploys to two sshd hosts on different loopback
// addresses, each with a root of its own, and checks that a whole deploy
// costs exactly one SSH connection (one login) per host.
func TestOneConnectionPerHost(t *testing.T) {
	t.Parallel()
	hosts := []*testenv.Host{testenv.StartSSHD(t), testenv.StartSSHD(t, testenv.WithAddr("127.0.0.2"))}
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: hosts, Root: filepath.Join(t.TempDir(), "{host}", "srv")})

	for i, change := range []string{"", "a frontend change for both hosts"} {
		if change != "" {
			changeFrontend(t, p, change)
		}
		before := make([]int, len(hosts))
		for j, h := range hosts {
			before[j] = h.AcceptedLogins()
		}
		res := mustDeploy(t, p)
		id := res.run.Plan.Release
		rep := report(t, p, id)
		for j, h := range hosts {
			root := p.HostRoot(h.Addr)
			if got := verifyLive(t, root); got != id {
				t.Errorf("deploy %d: %s runs %s, want %s", i+1, h.Addr, got, id)
			}
			if v := versionAt(t, h.Addr, p.Port); v != id {
				t.Errorf("deploy %d: the backend on %s serves %s, want %s", i+1, h.Addr, v, id)
			}
			if n := h.AcceptedLogins() - before[j]; n != 1 {
				t.Errorf("deploy %d: %d logins on %s, want 1", i+1, n, h.Addr)
			}
			hr := hostReport(t, rep, h.Target())
			if hr["connections"].(float64) != 1 {
				t.Errorf("deploy %d: the report shows %v connections to %s, want 1", i+1, hr["connections"], h.Addr)
			}
			t.Logf("deploy %d to %s: 1 connection, %v sessions, %v bytes sent", i+1, h.Addr, hr["sessions"], hr["bytes_sent"])
		}
	}
}

// hostReport is the entry for target in a JSON report's hosts.
func hostReport(t *testing.T, rep map[string]any, target string) map[string]any {
	t.Helper()
	for _, h := range rep["hosts"].([]any) {
		if m := h.(map[string]any); m["name"] == target {
			return m
		}
	}
	t.Fatalf("report has no host %s: %v", target, rep["hosts"])
	return nil
}

// versionAt is the release the backend at addr:port reports.
func versionAt(t *testing.T, addr string, port int) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + ":" + strconv.Itoa(port) + "/healthz")
	if err != nil {
		t.Fatalf("healthz on %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var h struct{ Status, Version string }
	if err := json.Unmarshal(body, &h); err != nil || h.Status != "ok" {
		t.Fatalf("healthz on %s: %s (%v)", addr, body, err)
	}
	return h.Version
}
