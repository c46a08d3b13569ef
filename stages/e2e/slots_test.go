package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// slotSite is the example app deployed over a real sshd into two slots
// behind a real nginx: nginx proxies /api/ and /healthz to the upstream
// block the deploys write, and serves the frontend from current.
type slotSite struct {
	p           *testenv.Project
	web         *testenv.Nginx
	root        string
	upstream    string // the router file the deploys own: the upstream file, or the site file
	site        bool   // the router file is router.nginx.site, included in the server block
	blue, green int

	mu       sync.Mutex
	releases map[string]bool // the releases deployed, which a response may come from
	lastLog  string          // the last deploy's verbose log
}

// commandSlots runs the backend as a process per slot, its pidfile in
// shared/.
func commandSlots(s *slotSite) string {
	return fmt.Sprintf(`    services:
      manager: command
      slots: { ports: [%d, %d] }
      router: %s
      drain: 10s
      restart:
        - nohup ./backend/server serve -db data/restaurant.sqlite3 -version "$STAGECOACH_RELEASE" -pidfile ../../shared/slot-{port}.pid >>../../shared/backend-{port}.log 2>&1 </dev/null &
      stop:
        - |
          pidfile=../../shared/slot-{port}.pid
          [ -f "$pidfile" ] || exit 0
          kill "$(cat "$pidfile")" 2>/dev/null || true
          for _ in $(seq 400); do [ -f "$pidfile" ] || exit 0; sleep 0.05; done
          echo "the backend on port {port} did not stop within 20s" >&2
          exit 1
`, s.blue, s.green, s.router())
}

// router is the services' router setting: the test's nginx.
func (s *slotSite) router() string {
	key := "upstream"
	if s.site {
		key = "site"
	}
	return fmt.Sprintf("{ nginx: { %s: %q, name: restaurant_backend, binary: %q, prefix: %q, conf: %q }, maintenance: { retry_after: 90s } }", key, s.upstream, testenv.NginxPath, s.web.Dir+"/", s.web.ConfigFile)
}

func newSlotSite(t *testing.T) *slotSite {
	t.Helper()
	return newSlotSiteWith(t, commandSlots, testenv.ProjectOptions{})
}

// newSlotSiteWith is newSlotSite with the services block services makes
// and the project options opts.
func newSlotSiteWith(t testing.TB, services func(*slotSite) string, opts testenv.ProjectOptions) *slotSite {
	t.Helper()
	return newSlotSiteOf(t, false, services, opts)
}

// newSiteSlotSite is newSlotSite with the router file router.nginx.site:
// the one include line in the server block, proxy_pass to its variable.
func newSiteSlotSite(t testing.TB) *slotSite {
	t.Helper()
	return newSlotSiteOf(t, true, commandSlots, testenv.ProjectOptions{})
}

func newSlotSiteOf(t testing.TB, site bool, services func(*slotSite) string, opts testenv.ProjectOptions) *slotSite {
	t.Helper()
	host := testenv.StartSSHD(t)
	s := &slotSite{blue: testenv.FreePort(t), green: testenv.FreePort(t), releases: map[string]bool{}, site: site}
	confd := filepath.Join(t.TempDir(), "conf.d")
	s.upstream = filepath.Join(confd, "restaurant-upstream.conf")
	// What the operator writes once, before the first deploy: the router
	// file on the first slot, blue. Deploys own the file from then on.
	first := fmt.Sprintf("upstream restaurant_backend {\n    server 127.0.0.1:%d;\n}\n", s.blue)
	backend := "restaurant_backend"
	if site {
		s.upstream = filepath.Join(t.TempDir(), "stagecoach", "restaurant.conf")
		first = fmt.Sprintf("set $restaurant_backend 127.0.0.1:%d;\n", s.blue)
		backend = "$restaurant_backend"
	}
	for _, d := range []string{confd, filepath.Dir(s.upstream)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.upstream, []byte(first), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "srv")
	nginxOpts := []testenv.NginxOption{testenv.NginxInclude(filepath.Join(confd, "*.conf")),
		testenv.NginxUpstreamProxy("/api/", backend), testenv.NginxUpstreamProxy("= /healthz", backend)}
	if site {
		nginxOpts = append(nginxOpts, testenv.NginxDirectives("include "+s.upstream+";"))
	}
	s.web = testenv.StartNginx(t, filepath.Join(root, "current", "frontend"), nginxOpts...)
	// The slot's own check wants a 200; the public one, through nginx, the
	// status ok too.
	health := fmt.Sprintf("      - http: \"http://127.0.0.1:{port}/healthz\"\n        timeout: 2s\n      - http: \"%s/healthz\"\n        body: '\"status\":\"ok\"'\n        timeout: 2s\n", s.web.URL)
	opts.Hosts, opts.Root, opts.Health, opts.Services = []*testenv.Host{host}, root, health, services(s)
	s.p = testenv.NewProject(t, opts)
	s.root = root
	return s
}

// deploy commits a change of the backend (so each release builds a new
// server), deploys it and returns the release.
func (s *slotSite) deploy(t testing.TB, ctx context.Context, n int) (string, error) {
	t.Helper()
	s.p.Write("backend/internal/api/deploy.go", fmt.Sprintf("package api\n\n// deployNumber changes with every test deploy.\nconst deployNumber = %d\n", n))
	s.p.Commit(fmt.Sprintf("backend change %d", n))
	r, out := openRun(t, s.p, pipeline.Options{})
	res := deployResult{run: r, err: r.Deploy(ctx), log: out.String()}
	s.lastLog = res.log
	id := res.run.Plan.Release
	s.mu.Lock()
	s.releases[id] = true
	s.mu.Unlock()
	if res.err != nil {
		return id, fmt.Errorf("%w\n%s", res.err, res.log)
	}
	return id, nil
}

// load runs visits of /healthz and /api/menu through nginx: each answer
// must be whole; the versions /healthz names are counted (see
// wantVersions).
func (s *slotSite) load(ctx context.Context) *testenv.Load {
	return testenv.StartLoad(ctx, testenv.LoadConfig{
		BaseURL: s.web.URL,
		Workers: 4,
		Paths: func() []string {
			// Paced, so the load leaves the deploys some of the two cores.
			time.Sleep(2 * time.Millisecond)
			return []string{"/healthz", "/api/menu"}
		},
		Check:       s.check,
		Version:     healthzVersion,
		MaxRequests: 10_000_000,
		MaxDuration: 15 * time.Minute,
	})
}

func (s *slotSite) check(path string, status int, body []byte) error {
	if status != 200 {
		return fmt.Errorf("%s: status %d: %.200s", path, status, body)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("%s: not a whole JSON answer (%v): %.200s", path, err, body)
	}
	return nil
}

// healthzVersion is the release that answered /healthz.
func healthzVersion(path string, body []byte) string {
	if path != "/healthz" {
		return ""
	}
	var h struct{ Version string }
	json.Unmarshal(body, &h)
	return h.Version
}

// routed is the slots' state and the port the upstream file names.
func (s *slotSite) routed(t *testing.T) (server.RouterState, int) {
	t.Helper()
	state, err := os.ReadFile(server.Layout{Root: s.root}.RouterStatePath())
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(s.upstream)
	if err != nil {
		t.Fatal(err)
	}
	r, err := server.ParseRouted([]byte(string(state) + "--- current\n--- router\n" + string(file)))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := r.FilePort()
	return r.State, port
}

// wantLive checks that id is live in slot, the router on it and the
// other slot stopped.
func (s *slotSite) wantLive(t *testing.T, id, slot string) {
	t.Helper()
	st, port := s.routed(t)
	if st.Live == nil || st.Live.Release != id || st.Live.Name != slot || port != st.Live.Port || st.Idle != nil || st.Switching {
		t.Errorf("slots: live %+v, idle %+v, switching %v, upstream file on port %d; want %s live in %s, the other stopped", st.Live, st.Idle, st.Switching, port, id, slot)
	}
	if got := live(t, s.root); got != id {
		t.Errorf("current -> %s, want %s", got, id)
	}
	pids, _ := filepath.Glob(filepath.Join(s.root, "shared", "slot-*.pid"))
	if len(pids) != 1 {
		t.Errorf("backends running: %v, want one", pids)
	}
}

// TestSlotsZeroDowntimeBackend deploys 20 releases that each change the
// backend while a load runs through nginx: no request may fail, each
// answer is whole and from a release deployed, and every deploy leaves
// one slot running with the router on it.
func TestSlotsZeroDowntimeBackend(t *testing.T) {
	s := newSlotSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	first, err := s.deploy(t, ctx, 0)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	s.wantLive(t, first, server.SlotBlue)

	load := s.load(ctx)
	defer load.Stop()
	waitRequests(t, load, 100)
	const deploys = 20
	var took []time.Duration
	slot := server.SlotBlue
	for i := 1; i <= deploys; i++ {
		start := time.Now()
		id, err := s.deploy(t, ctx, i)
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		took = append(took, time.Since(start))
		slot = map[string]string{server.SlotBlue: server.SlotGreen, server.SlotGreen: server.SlotBlue}[slot]
		s.wantLive(t, id, slot)
		if n, _ := load.Progress(); n == 0 {
			t.Fatal("the load made no request")
		}
	}
	after, _ := load.Progress()
	waitRequests(t, load, after+100)
	rep := load.Stop()
	t.Logf("%d deploys (%v each); load: %d requests, %d failed, %d versions seen", deploys, took, rep.Requests, rep.Failures, len(rep.ByVersion))
	if rep.Failures != 0 {
		t.Errorf("%d failed requests during the deploys:\n%s", rep.Failures, strings.Join(rep.FailureSamples, "\n"))
	}
	s.wantVersions(t, rep)
	if len(rep.ByVersion) < deploys/2 {
		t.Errorf("only %d versions answered during %d deploys: %v", len(rep.ByVersion), deploys, rep.ByVersion)
	}
}

// TestSlotsFaults: against the real nginx, with a load running, a
// release that never becomes healthy, an nginx -t that fails, a foreign
// process on the idle port and a public check failing after the switch
// each fail their deploy, and no request fails.
func TestSlotsFaults(t *testing.T) {
	s := newSlotSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	good, err := s.deploy(t, ctx, 0)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	load := s.load(ctx)
	defer load.Stop()
	waitRequests(t, load, 100)
	api := filepath.Join(s.p.Dir, "backend", "internal", "api", "api.go")
	healthy := readFile(t, api)
	n := 0
	var unhealthy string

	t.Run("never healthy", func(t *testing.T) {
		// A backend whose /healthz fails: 500 on every slot check.
		s.p.Write("backend/internal/api/api.go", strings.Replace(healthy, `h := Health{Status: "ok", Version: s.Version}`, `h := Health{Status: "ok", Version: s.Version}
	if true {
		writeJSON(w, http.StatusInternalServerError, Health{Status: "error", Version: s.Version, Error: "broken on purpose"})
		return
	}`, 1))
		n++
		bad, err := s.deploy(t, ctx, n)
		s.p.Write("backend/internal/api/api.go", healthy)
		if err == nil || !strings.Contains(err.Error(), "never became healthy in slot green") {
			t.Fatalf("deploy of a backend failing /healthz: %v", err)
		}
		s.wantLive(t, good, server.SlotBlue)
		unhealthy = bad
	})

	t.Run("nginx -t fails", func(t *testing.T) {
		before := readFile(t, s.upstream)
		conf := readFile(t, s.web.ConfigFile)
		// The operator's own mistake, made after nginx loaded its config.
		if err := os.WriteFile(s.web.ConfigFile, []byte(conf+"\nthis_is_no_directive;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		n++
		_, err := s.deploy(t, ctx, n)
		if err := os.WriteFile(s.web.ConfigFile, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		var refused *server.NginxTestError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), "this_is_no_directive") {
			t.Fatalf("deploy with a broken nginx config: %v", err)
		}
		if got := readFile(t, s.upstream); got != before {
			t.Errorf("upstream file changed:\n%s\nwas\n%s", got, before)
		}
		s.wantLive(t, good, server.SlotBlue)
	})

	t.Run("idle port taken", func(t *testing.T) {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", s.green))
		if err != nil {
			t.Fatal(err)
		}
		n++
		_, err = s.deploy(t, ctx, n)
		ln.Close()
		var taken *server.PortTakenError
		if !errors.As(err, &taken) || taken.Port != s.green {
			t.Fatalf("deploy with the idle port taken: %v", err)
		}
		s.wantLive(t, good, server.SlotBlue)
	})

	t.Run("public check fails after the switch", func(t *testing.T) {
		// /healthz answers 200 (the slot's check passes) but not "ok",
		// which the public check wants.
		s.p.Write("backend/internal/api/api.go", strings.Replace(healthy, `h := Health{Status: "ok", Version: s.Version}`, `h := Health{Status: "okay", Version: s.Version}`, 1))
		n++
		_, failedBefore := load.Progress()
		id, err := s.deploy(t, ctx, n)
		s.p.Write("backend/internal/api/api.go", healthy)
		if err == nil || !strings.Contains(err.Error(), "the router and current are back on slot blue") {
			t.Fatalf("deploy failing its public check: %v", err)
		}
		if _, failed := load.Progress(); failed != failedBefore {
			t.Errorf("%d requests failed while the router switched back", failed-failedBefore)
		}
		s.wantLive(t, good, server.SlotBlue)
		// How long the failed release kept the traffic past its failed
		// check, on this shared, loaded machine: logged, not asserted.
		hosts, _ := report(t, s.p, id)["hosts"].([]any)
		if len(hosts) != 1 {
			t.Fatalf("report hosts: %v", hosts)
		}
		back, ok := hosts[0].(map[string]any)["switch_back_ns"].(float64)
		if !ok || back <= 0 {
			t.Fatalf("the report has no switch-back time: %v", hosts[0])
		}
		t.Logf("router and current back on slot blue %s after the public checks failed", time.Duration(back).Round(time.Millisecond))
	})

	n++
	next, err := s.deploy(t, ctx, n)
	if err != nil {
		t.Fatalf("deploy after the faults: %v", err)
	}
	s.wantLive(t, next, server.SlotGreen)
	rep := load.Stop()
	t.Logf("load: %s", rep)
	if rep.Failures != 0 {
		t.Errorf("%d failed requests during the faults:\n%s", rep.Failures, strings.Join(rep.FailureSamples, "\n"))
	}
	s.wantVersions(t, rep)
	if unhealthy != "" && rep.ByVersion[unhealthy] != 0 {
		t.Errorf("the release that never became healthy answered %d requests through nginx", rep.ByVersion[unhealthy])
	}
}

// wantVersions checks that every answer came from a release deployed.
func (s *slotSite) wantVersions(t *testing.T, rep testenv.LoadReport) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for v, n := range rep.ByVersion {
		if !s.releases[v] {
			t.Errorf("%d answers from version %q, which is no release deployed", n, v)
		}
	}
}

// TestSlotsCompose deploys 5 releases that each change the backend into
// compose slots, the projects <app>-blue and <app>-green on the machine's
// Docker engine (images FROM scratch holding the example's static
// server), each publishing its slot's port, behind the real nginx under
// load: no request fails.
func TestSlotsCompose(t *testing.T) {
	needCompose(t)
	app := fmt.Sprintf("restaurant-slots-%08x", rand.Uint32())
	s := newSlotSiteWith(t, func(s *slotSite) string {
		return fmt.Sprintf("    services:\n      manager: compose\n      file: backend/compose.yaml\n      restart: [app]\n      slots: { ports: [%d, %d] }\n      router: %s\n      drain: 10s\n",
			s.blue, s.green, s.router())
	}, testenv.ProjectOptions{
		App:          app,
		BackendBuild: "CGO_ENABLED=0 go build -trimpath -o dist/server ./cmd/server && cp deploy/compose.yaml deploy/Dockerfile dist/",
	})
	for _, slot := range []string{server.SlotBlue, server.SlotGreen} {
		t.Cleanup(func() { removeCompose(t, server.SlotProject(app, slot), app) })
	}
	s.p.Write("backend/deploy/Dockerfile", readFile(t, filepath.Join(testenv.RepoRoot(t), "examples", "restaurant", "Dockerfile")))
	// The example's compose file with the slot's port published.
	s.p.Write("backend/deploy/compose.yaml", strings.Replace(composeFile(app, 0), `"127.0.0.1:0:8080"`, `"127.0.0.1:${PORT}:8080"`, 1))
	s.p.Commit("run the backend under compose, in slots")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	first, err := s.deploy(t, ctx, 0)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	s.wantLiveCompose(t, app, first, server.SlotBlue)
	load := s.load(ctx)
	defer load.Stop()
	waitRequests(t, load, 100)
	slot := server.SlotBlue
	const deploys = 5
	for i := 1; i <= deploys; i++ {
		id, err := s.deploy(t, ctx, i)
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		slot = map[string]string{server.SlotBlue: server.SlotGreen, server.SlotGreen: server.SlotBlue}[slot]
		s.wantLiveCompose(t, app, id, slot)
	}
	after, _ := load.Progress()
	waitRequests(t, load, after+100)
	rep := load.Stop()
	t.Logf("%d compose deploys; load: %d requests, %d failed, %d versions seen", deploys, rep.Requests, rep.Failures, len(rep.ByVersion))
	if rep.Failures != 0 {
		t.Errorf("%d failed requests during the deploys:\n%s", rep.Failures, strings.Join(rep.FailureSamples, "\n"))
	}
	s.wantVersions(t, rep)
}

// wantLiveCompose checks that id is live in slot, the router on it, its
// project's container runs the release's image and the other project has
// no container left.
func (s *slotSite) wantLiveCompose(t *testing.T, app, id, slot string) {
	t.Helper()
	st, port := s.routed(t)
	if st.Live == nil || st.Live.Release != id || st.Live.Name != slot || port != st.Live.Port || st.Idle != nil {
		t.Errorf("slots: live %+v, idle %+v, upstream file on port %d; want %s live in %s", st.Live, st.Idle, port, id, slot)
	}
	if c := composeContainer(t, server.SlotProject(app, slot)); c.Image != app+":"+id || c.State != "running" {
		t.Errorf("slot %s runs %+v, want %s:%s running", slot, c, app, id)
	}
	other := map[string]string{server.SlotBlue: server.SlotGreen, server.SlotGreen: server.SlotBlue}[slot]
	if ids := dockerOut(t, "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+server.SlotProject(app, other)); ids != "" {
		t.Errorf("slot %s still has containers: %s", other, ids)
	}
}

// liveAfter is what slots.Activate logs once the router points at the new
// slot: how long starting, health-gating and switching took.
var liveAfter = regexp.MustCompile(`live ([0-9.]+[mµn]?s) after the activation began`)

// BenchmarkSlotActivation compares, side by side over the same sshd, the
// time from the start of the activation until the new backend serves:
// with slots (start in the idle slot, health-gate it, switch nginx and
// current) and with the command manager's stop-then-start restart (swap
// stage plus the health stage until the new server answers). It runs
// STAGECOACH_BENCH_RUNS deploys of each (default 5) whatever b.N, and
// reports the medians and their ratio.
func BenchmarkSlotActivation(b *testing.B) {
	runs := envInt("STAGECOACH_BENCH_RUNS", 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for range b.N {
		b.StopTimer()
		var slotted, restarted []time.Duration
		func() {
			s := newSlotSiteWith(b, commandSlots, testenv.ProjectOptions{})
			if _, err := s.deploy(b, ctx, 0); err != nil {
				b.Fatal(err)
			}
			for i := 1; i <= runs; i++ {
				_, err := s.deploy(b, ctx, i)
				if err != nil {
					b.Fatal(err)
				}
				log := s.lastLog
				m := liveAfter.FindStringSubmatch(log)
				if m == nil {
					b.Fatalf("no activation time in the log:\n%s", log)
				}
				d, _ := time.ParseDuration(m[1])
				slotted = append(slotted, d)
			}
		}()
		func() {
			host := testenv.StartSSHD(b)
			p := testenv.NewProject(b, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
			for i := 0; i <= runs; i++ {
				p.Write("backend/internal/api/deploy.go", fmt.Sprintf("package api\n\nconst deployNumber = %d\n", i))
				p.Commit(fmt.Sprintf("backend change %d", i))
				r, out := openRun(b, p, pipeline.Options{})
				if err := r.Deploy(ctx); err != nil {
					b.Fatalf("deploy: %v\n%s", err, out.String())
				}
				if i > 0 {
					rep := report(b, p, r.Plan.Release)
					restarted = append(restarted, stageDuration(b, rep, "swap")+stageDuration(b, rep, "health"))
				}
			}
		}()
		ms, mr := median(slotted), median(restarted)
		b.ReportMetric(float64(ms.Milliseconds()), "slots-ms")
		b.ReportMetric(float64(mr.Milliseconds()), "restart-ms")
		b.ReportMetric(float64(ms)/float64(mr), "slots/restart")
		b.Logf("activation until the new backend serves, median of %d: slots %s %v, stop-then-start restart %s %v, ratio %.2f",
			runs, ms, slotted, mr, restarted, float64(ms)/float64(mr))
	}
}
