package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// hostVarsServices starts the backend on the address and port the host's
// vars give it: nothing derived from $SSH_CONNECTION.
const hostVarsServices = `    services:
      manager: command
      restart:
        - |
          echo "restart $STAGECOACH_RELEASE $ADDR:$PORT" >> ../../shared/services.log
          pidfile=../../shared/backend.pid
          if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            for _ in $(seq 200); do [ -f "$pidfile" ] || break; sleep 0.02; done
          fi
          nohup ./backend/server serve -addr "$ADDR:$PORT" -db data/restaurant.sqlite3 -static frontend \
            -version "$STAGECOACH_RELEASE" -pidfile "$pidfile" >>../../shared/backend.log 2>&1 </dev/null &
`

// TestHostVarsGiveEachHostItsPort deploys to two sshd hosts whose backends
// listen on different ports, given as each host's vars: the services see
// them as variables, the HTTP check reaches each on {vars.PORT}, and a
// command check compares them. Then a deploy selected by tag reaches only
// the tagged host.
func TestHostVarsGiveEachHostItsPort(t *testing.T) {
	t.Parallel()
	hosts := []*testenv.Host{testenv.StartSSHD(t), testenv.StartSSHD(t, testenv.WithAddr("127.0.0.2"))}
	ports := []int{testenv.FreePort(t), testenv.FreePort(t)}
	var settings []string
	for i, h := range hosts {
		settings = append(settings, fmt.Sprintf("vars: {ADDR: %s, PORT: %d}, tags: [%s]", h.Addr, ports[i], []string{"blue", "green"}[i]))
	}
	p := testenv.NewProject(t, testenv.ProjectOptions{
		Hosts: hosts, HostSettings: settings, Root: filepath.Join(t.TempDir(), "{host}", "srv"),
		Services: hostVarsServices,
		Health: "      - http: \"http://{host}:{vars.PORT}/healthz\"\n        body: '\"status\":\"ok\"'\n        timeout: 2s\n" +
			"      - command: test \"$PORT\" = {vars.PORT}\n",
	})
	first := mustDeploy(t, p).run.Plan.Release
	for i, h := range hosts {
		if v := versionAt(t, h.Addr, ports[i]); v != first {
			t.Errorf("the backend on %s:%d serves %q, want %s", h.Addr, ports[i], v, first)
		}
		log := readFile(t, filepath.Join(p.HostRoot(h.Addr), "shared", "services.log"))
		if want := fmt.Sprintf("restart %s %s:%d", first, h.Addr, ports[i]); !strings.Contains(log, want) {
			t.Errorf("%s: services.log = %q, want a line %q", h.Addr, log, want)
		}
	}

	changeFrontend(t, p, "only the green host")
	res := deployWith(t, p, pipeline.Options{Hosts: "tag:green"})
	if res.err != nil {
		t.Fatalf("deploy to tag:green: %v\n%s", res.err, res.log)
	}
	if got := verifyLive(t, p.HostRoot(hosts[0].Addr)); got != first {
		t.Errorf("the blue host runs %s after a deploy to tag:green, want %s", got, first)
	}
	second := res.run.Plan.Release
	if v := versionAt(t, hosts[1].Addr, ports[1]); v != second {
		t.Errorf("the green backend serves %q, want %s", v, second)
	}
}

// TestRetryReachesTheHostsLeftBehind: a deploy reaches only the green
// host; STAGECOACH_HOSTS=failed then brings the blue one to the same
// release id over SSH, from the kept package, without building.
func TestRetryReachesTheHostsLeftBehind(t *testing.T) {
	t.Parallel()
	hosts := []*testenv.Host{testenv.StartSSHD(t), testenv.StartSSHD(t, testenv.WithAddr("127.0.0.2"))}
	ports := []int{testenv.FreePort(t), testenv.FreePort(t)}
	var settings []string
	for i, h := range hosts {
		settings = append(settings, fmt.Sprintf("vars: {ADDR: %s, PORT: %d}, tags: [%s]", h.Addr, ports[i], []string{"blue", "green"}[i]))
	}
	p := testenv.NewProject(t, testenv.ProjectOptions{
		Hosts: hosts, HostSettings: settings, Root: filepath.Join(t.TempDir(), "{host}", "srv"),
		Services: hostVarsServices,
		Health:   "      - http: \"http://{host}:{vars.PORT}/healthz\"\n        body: '\"status\":\"ok\"'\n        timeout: 2s\n",
	})
	mustDeploy(t, p)
	changeFrontend(t, p, "green first")
	res := deployWith(t, p, pipeline.Options{Hosts: "tag:green"})
	if res.err != nil {
		t.Fatalf("deploy to tag:green: %v\n%s", res.err, res.log)
	}
	id := res.run.Plan.Release
	changeFrontend(t, p, "not deployed: the retry ships the kept package")

	retry := deployWith(t, p, pipeline.Options{Hosts: "failed"})
	if retry.err != nil {
		t.Fatalf("retry: %v\n%s", retry.err, retry.log)
	}
	if retry.run.Plan.Release != id || strings.Contains(retry.log, "build frontend") {
		t.Errorf("the retry deployed %s (want %s) or built:\n%s", retry.run.Plan.Release, id, retry.log)
	}
	for i, h := range hosts {
		if got := verifyLive(t, p.HostRoot(h.Addr)); got != id {
			t.Errorf("%s runs %s after the retry, want %s", h.Addr, got, id)
		}
		if v := versionAt(t, h.Addr, ports[i]); v != id {
			t.Errorf("the backend on %s serves %q, want %s", h.Addr, v, id)
		}
	}
}
