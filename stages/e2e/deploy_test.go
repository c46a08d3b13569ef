package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestDeployOverSSH deploys the example app to a real sshd, redeploys with
// no change, then with a changed frontend, and checks the server each time.
func TestDeployOverSSH(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})

	first := mustDeploy(t, p)
	id1 := live(t, p.Root)
	if id1 != first.run.Plan.Release {
		t.Fatalf("current is %s, want the deployed release %s", id1, first.run.Plan.Release)
	}
	if got := healthz(t, p.Port); !strings.Contains(got, id1) {
		t.Fatalf("healthz %q does not report release %s", got, id1)
	}
	if st := first.run.Hosts; len(st) != 1 {
		t.Fatalf("%d hosts", len(st))
	}

	second := mustDeploy(t, p)
	if !strings.Contains(second.log, "nothing changed") || live(t, p.Root) != id1 {
		t.Fatalf("second deploy should change nothing:\n%s", second.log)
	}

	p.Write("frontend/src/app.js", readFile(t, filepath.Join(p.Dir, "frontend/src/app.js"))+"\n// changed\n")
	p.Commit("change the frontend")
	third := mustDeploy(t, p)
	id3 := live(t, p.Root)
	if id3 == id1 {
		t.Fatal("third deploy did not switch current")
	}
	for _, c := range third.run.Plan.Components {
		if c.Changed != (c.Name == "frontend") {
			t.Errorf("component %s changed=%v", c.Name, c.Changed)
		}
	}
	if len(third.run.Packaged.Reuse) == 0 {
		t.Error("the unchanged backend should be reused, not sent")
	}
	stats := third.run.Hosts
	_ = stats
	s := state(t, p.Root)
	if s.Current != id3 || s.Revision != third.run.Plan.Revision {
		t.Errorf("state: current %s revision %s", s.Current, s.Revision)
	}
	rep := report(t, p, id3)
	hosts := rep["hosts"].([]any)
	if conns := hosts[0].(map[string]any)["connections"].(float64); conns != 1 {
		t.Errorf("deploy used %v connections, want 1", conns)
	}
}

func healthz(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
