package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/adopt"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// adoptBlock describes startLegacy's tree for mage adopt.
const adoptBlock = `    adopt:
      app: { frontend: frontend/dist, backend: backend }
      data: { data: data }
      web_root: frontend
`

// runAdopt runs the adopt target's work on p's test environment.
func runAdopt(t *testing.T, p *testenv.Project) (*pipeline.Run, error, string) {
	t.Helper()
	r, out := openRun(t, p, pipeline.Options{})
	r.Command = "adopt"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	release, err := r.Hold(ctx)
	if err != nil {
		return r, err, out.String()
	}
	defer release()
	err = r.Adopt(ctx)
	return r, err, out.String()
}

// TestAdoptALiveServerUnderLoad: a server that serves the app from plain
// directories, behind nginx, is taken over while a load runs through
// nginx: no request fails, no row is lost, the web server's root changes
// as adopt prints, release 0 is live and verified, the next deploy
// switches from it and a rollback goes back to it.
func TestAdoptALiveServerUnderLoad(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}, Environment: adoptBlock})
	startLegacy(t, p, p.Root)
	backend := "http://127.0.0.1:" + strconv.Itoa(p.Port)
	web := testenv.StartNginx(t, filepath.Join(p.Root, "frontend", "dist"),
		testenv.NginxProxy("/api/", backend), testenv.NginxProxy("= /healthz", backend))
	for i := range 3 {
		reserve(t, p.Port, "Guest "+strconv.Itoa(i))
	}
	db := filepath.Join(p.Root, "data", "restaurant.sqlite3")
	before := rows(t, db)

	load := testenv.StartLoad(context.Background(), testenv.LoadConfig{
		BaseURL: web.URL, Workers: 2, MaxDuration: 2 * time.Minute,
		Paths: func() []string { return []string{"/", "/api/reservations", "/healthz"} },
	})
	defer load.Stop()
	waitRequests(t, load, 50)

	r, err, log := runAdopt(t, p)
	if err != nil {
		t.Fatalf("adopt: %v\n%s", err, log)
	}
	id := r.Hosts[0].Live
	if !strings.HasSuffix(id, "-"+server.AdoptRevision) || live(t, p.Root) != id {
		t.Fatalf("current -> %s, adopted %s\n%s", live(t, p.Root), id, log)
	}
	st := state(t, p.Root)
	if rel, ok := st.Release(id); !ok || rel.Status != server.StatusLive || st.Revision != "" || st.Deploys[len(st.Deploys)-1].Result != server.ResultAdopt {
		t.Errorf("state after adopt: %+v", st)
	}
	if target, _ := os.Readlink(filepath.Join(p.Root, "shared", "data")); target != "../data" {
		t.Errorf("shared/data -> %q, want ../data", target)
	}
	if rows(t, filepath.Join(p.Root, ".stagecoach", "backups", id, "data", "restaurant.sqlite3")) != before {
		t.Error("the backup lacks rows")
	}

	// Change nginx's root exactly as adopt printed it.
	m := regexp.MustCompile("`root ([^;`]+);` becomes `root ([^;`]+);`").FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("adopt printed no change of the web server's root:\n%s", log)
	}
	if want := filepath.Join(p.Root, "current", "frontend"); m[1] != filepath.Join(p.Root, "frontend", "dist") || m[2] != want {
		t.Errorf("printed root %s -> %s, want -> %s", m[1], m[2], want)
	}
	conf := readFile(t, web.ConfigFile)
	if !strings.Contains(conf, "root "+m[1]+";") {
		t.Fatalf("nginx.conf has no `root %s;`:\n%s", m[1], conf)
	}
	if err := os.WriteFile(web.ConfigFile, []byte(strings.Replace(conf, "root "+m[1]+";", "root "+m[2]+";", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := web.Reload(); err != nil {
		t.Fatal(err)
	}
	n, _ := load.Progress()
	waitRequests(t, load, n+50)
	rep := load.Stop()
	t.Logf("load through the adoption and the change of nginx's root: %s", rep)
	if rep.Failures != 0 || rep.Requests < 100 {
		t.Errorf("load during the adoption: %s", rep)
	}
	if got := rows(t, db); got != before {
		t.Errorf("%d rows after the adoption, %d before", got, before)
	}

	// The next deploy replaces the running app; a rollback goes back to
	// release 0 and its data.
	res := mustDeploy(t, p)
	next := res.run.Plan.Release
	if live(t, p.Root) != next || !strings.Contains(healthz(t, p.Port), next) {
		t.Fatalf("after the deploy: current %s, healthz %s", live(t, p.Root), healthz(t, p.Port))
	}
	mustHaveReservations(t, p, p.Root, "Guest 0", "Guest 1", "Guest 2")
	rb, out := openRun(t, p, pipeline.Options{})
	rb.Command = "rollback"
	release, err := rb.Hold(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = rb.Rollback(context.Background())
	release()
	if err != nil {
		t.Fatalf("rollback to release 0: %v\n%s", err, out)
	}
	if live(t, p.Root) != id || !strings.Contains(healthz(t, p.Port), id) {
		t.Errorf("after the rollback: current %s, healthz %s; want release 0 %s", live(t, p.Root), healthz(t, p.Port), id)
	}
	mustHaveReservations(t, p, p.Root, "Guest 0", "Guest 1", "Guest 2")
	if got := rows(t, db); got != before {
		t.Errorf("%d rows after deploy and rollback, %d before", got, before)
	}
}

// TestAdoptRefusesAnAdoptedRoot: a second adoption changes nothing.
func TestAdoptRefusesAnAdoptedRoot(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}, Environment: adoptBlock})
	startLegacy(t, p, p.Root)
	r, err, log := runAdopt(t, p)
	if err != nil {
		t.Fatalf("adopt: %v\n%s", err, log)
	}
	id := r.Hosts[0].Live
	_, err, log = runAdopt(t, p)
	var refused *server.AdoptRefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "deployed by stagecoach already") {
		t.Fatalf("second adopt = %v\n%s", err, log)
	}
	if live(t, p.Root) != id || len(state(t, p.Root).Releases) != 1 {
		t.Errorf("the second adoption changed the root: current %s, %d releases", live(t, p.Root), len(state(t, p.Root).Releases))
	}
	if got := adopt.ReleaseID(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)); got != "20260102T030405Z-0000000" {
		t.Errorf("ReleaseID = %s", got)
	}
}
