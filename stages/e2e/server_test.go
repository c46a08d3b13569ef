package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// What the test project's environment shares and carries (see
// testenv.NewProject): VerifyRelease must allow exactly these differences.
var (
	sharedPaths = []string{"data"}
	assetsDir   = "frontend/assets"
)

// verifyLive checks that current under root points at a complete release
// whose tree matches its manifest (.stagecoach/manifests/<id>.sha256 and
// .links), and returns its id.
func verifyLive(t *testing.T, root string) string {
	t.Helper()
	id := live(t, root)
	verify, err := server.VerifyRelease(server.Layout{Root: root}, id, server.VerifySpec{Shared: sharedPaths, AssetsDir: assetsDir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := server.Run(ctx, remote.NewLocal(), verify); err != nil {
		t.Fatalf("live release %s does not match its manifest: %v", id, err)
	}
	return id
}

// exitCode is the process exit code err would give `mage deploy`.
func exitCode(err error) int { return exitcode.Of(err) }

// mustFail checks that a deploy failed with the given exit code and that
// its error mentions every one of words.
func mustFail(t *testing.T, res deployResult, code int, words ...string) {
	t.Helper()
	if res.err == nil {
		t.Fatalf("deploy succeeded, want a failure with exit code %d\n%s", code, res.log)
	}
	if got := exitCode(res.err); got != code {
		t.Errorf("exit code %d, want %d: %v", got, code, res.err)
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(res.err.Error()), strings.ToLower(w)) {
			t.Errorf("error does not mention %q: %v", w, res.err)
		}
	}
}

// deployCtx deploys with a generous deadline and the given options.
func deployWith(t *testing.T, p *testenv.Project, opts pipeline.Options) deployResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return deploy(t, ctx, p, opts)
}

// reserve books a table through the live backend's API and returns the
// guest's name, unique to the test, to look for later.
func reserve(t *testing.T, port int, name string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"name": name, "email": "guest@example.com", "party_size": 2,
		"starts_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339),
	})
	resp, err := http.Post("http://127.0.0.1:"+strconv.Itoa(port)+"/api/reservations", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("reserve: %s: %s", resp.Status, out)
	}
	return name
}

// mustHaveReservations checks that the live backend lists every named
// reservation and, when the sqlite3 CLI is there, that the database file
// on disk has them too: a backend still holding a replaced file would
// answer from data that is gone.
func mustHaveReservations(t *testing.T, p *testenv.Project, root string, names ...string) {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p.Port) + "/api/reservations")
	if err != nil {
		t.Fatalf("list reservations: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, n := range names {
		if !strings.Contains(string(body), strconv.Quote(n)) {
			t.Errorf("reservation %q lost: the API lists %s", n, body)
		}
	}
	if _, err := exec.LookPath("sqlite3"); err != nil {
		return
	}
	for _, n := range names {
		got := sqlite(t, root, "SELECT count(*) FROM reservations WHERE name = '"+n+"'")
		if got != "1" {
			t.Errorf("reservation %q: %s rows in the database file, want 1", n, got)
		}
	}
}

// sqlite runs a query on the deployed database file with the sqlite3 CLI.
func sqlite(t *testing.T, root, query string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", filepath.Join(root, "shared", "data", "restaurant.sqlite3"), query).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

// healthVersion is the release the backend on port says it runs.
func healthVersion(t *testing.T, port int) string {
	t.Helper()
	var h struct {
		Status, Version string
		Schema          int
	}
	if err := json.Unmarshal([]byte(healthz(t, port)), &h); err != nil {
		t.Fatalf("healthz: %v", err)
	}
	if h.Status != "ok" {
		t.Errorf("healthz status %q", h.Status)
	}
	return h.Version
}

// lastDeploy is the newest entry of the deploy history under root.
func lastDeploy(t *testing.T, root string) server.Deploy {
	t.Helper()
	s := state(t, root)
	if len(s.Deploys) == 0 {
		t.Fatal("no deploy recorded in state")
	}
	return s.Deploys[len(s.Deploys)-1]
}

// mustNotExist fails when path exists.
func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (%v), want it gone", path, err)
	}
}

// changeFrontend commits a small frontend change, so the next deploy has a
// new release to ship.
func changeFrontend(t testing.TB, p *testenv.Project, note string) {
	t.Helper()
	p.Write("frontend/src/app.js", readFile(t, filepath.Join(p.Dir, "frontend/src/app.js"))+"\n// "+note+"\n")
	p.Commit(note)
}

// addImage commits an incompressible image of size bytes to the frontend;
// the build copies it into assets/, so the archive grows by as much.
func addImage(t *testing.T, p *testenv.Project, name string, size int, seed uint64) {
	t.Helper()
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	rng.Read(data)
	p.Write("frontend/src/img/"+name, string(data))
	p.Commit("add " + name)
}

// stageReport returns the duration of the named stage in a JSON report.
func stageDuration(t testing.TB, rep map[string]any, name string) time.Duration {
	t.Helper()
	for _, s := range rep["stages"].([]any) {
		m := s.(map[string]any)
		if m["name"] == name {
			return time.Duration(m["duration_ns"].(float64))
		}
	}
	t.Fatalf("report has no stage %q: %v", name, rep["stages"])
	return 0
}

// lockDir is the deploy lock directory under root.
func lockDir(root string) string { return server.Layout{Root: root}.LockDir() }
