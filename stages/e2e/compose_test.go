package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

const dockerHint = "apt-get install -y docker.io docker-compose, and start dockerd"

// needCompose fails under CI and skips elsewhere unless the docker client
// is installed, its engine answers and a compose tool (docker compose v2
// or docker-compose v1) is there.
func needCompose(t *testing.T) {
	t.Helper()
	testenv.RequireTool(t, "docker", dockerHint)
	why := ""
	if out, err := exec.Command("docker", "info").CombinedOutput(); err != nil {
		why = fmt.Sprintf("the Docker engine does not answer (docker info: %v: %s)", err, strings.TrimSpace(string(out)))
	} else if exec.Command("docker", "compose", "version").Run() != nil {
		if _, err := exec.LookPath("docker-compose"); err != nil {
			why = "neither docker compose nor docker-compose found"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: %s", why, dockerHint)
	}
	t.Skipf("%s: %s", why, dockerHint)
}

// composeFile is the test's compose file, derived from the example's
// compose.yaml for a release directory: it sits in the release's backend/
// beside the server binary and the example's Dockerfile, which are the
// whole build context; the image is tagged with the release, so `up -d`
// builds a new image for each new release and a rollback reuses the
// earlier one; the database is the release's shared data link.
func composeFile(image string, port int) string {
	return fmt.Sprintf(`services:
  app:
    build:
      context: .
      args:
        SERVER_BINARY: server
    image: %s:${STAGECOACH_RELEASE}
    command: ["serve", "-addr", "0.0.0.0:8080", "-db", "/data/restaurant.sqlite3"]
    environment:
      APP_VERSION: ${STAGECOACH_RELEASE}
    ports:
      - "127.0.0.1:%d:8080"
    volumes:
      - ../data:/data
    healthcheck:
      test: ["CMD", "/server", "healthcheck"]
      interval: 1s
      timeout: 3s
      retries: 3
    stop_grace_period: 5s
    restart: unless-stopped
`, image, port)
}

// container is the compose service's one container as docker sees it.
type container struct {
	ID, Image, ImageID, State, Health, LogPath string
}

// composeContainer returns the container of service app in compose
// project proj, failing unless there is exactly one.
func composeContainer(t *testing.T, proj string) container {
	t.Helper()
	ids := strings.Fields(dockerOut(t, "ps", "-a", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+proj, "--filter", "label=com.docker.compose.service=app"))
	if len(ids) != 1 {
		t.Fatalf("compose project %s has %d app containers, want 1: %v", proj, len(ids), ids)
	}
	f := strings.Split(dockerOut(t, "inspect", "--format",
		"{{.Config.Image}}\t{{.Image}}\t{{.State.Status}}\t{{if .State.Health}}{{.State.Health.Status}}{{end}}\t{{.LogPath}}", ids[0]), "\t")
	if len(f) != 5 {
		t.Fatalf("docker inspect printed %q", f)
	}
	return container{ID: ids[0], Image: f[0], ImageID: f[1], State: f[2], Health: f[3], LogPath: f[4]}
}

// waitDockerHealthy waits until the container's own healthcheck passes.
func waitDockerHealthy(t *testing.T, proj string) container {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := composeContainer(t, proj)
		if c.State == "running" && c.Health == "healthy" {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s is %s (%s) after 30s\n%s", c.ID[:12], c.State, c.Health, dockerLogs(c.ID))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func dockerOut(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func dockerLogs(id string) string {
	out, _ := exec.Command("docker", "logs", "--tail", "20", id).CombinedOutput()
	return string(out)
}

// removeCompose removes what the compose project proj and its images left
// on the engine: containers with their anonymous volumes, networks, and
// every release's image of repository image.
func removeCompose(t *testing.T, proj, image string) {
	list := func(args ...string) []string {
		out, _ := exec.Command("docker", args...).Output()
		return strings.Fields(string(out))
	}
	label := "label=com.docker.compose.project=" + proj
	if ids := list("ps", "-a", "-q", "--filter", label); len(ids) > 0 {
		if out, err := exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).CombinedOutput(); err != nil {
			t.Logf("remove containers: %v\n%s", err, out)
		}
	}
	if ids := list("network", "ls", "-q", "--filter", label); len(ids) > 0 {
		if out, err := exec.Command("docker", append([]string{"network", "rm"}, ids...)...).CombinedOutput(); err != nil {
			t.Logf("remove networks: %v\n%s", err, out)
		}
	}
	if ids := list("images", "-q", "--filter", "reference="+image); len(ids) > 0 {
		if out, err := exec.Command("docker", append([]string{"rmi", "-f"}, ids...)...).CombinedOutput(); err != nil {
			t.Logf("remove images: %v\n%s", err, out)
		}
	}
}

// changeBackend commits a backend change that makes the server binary,
// and so the release's image, differ from the previous one.
func changeBackend(t *testing.T, p *testenv.Project, note string) {
	t.Helper()
	p.Write("backend/cmd/server/note.go", fmt.Sprintf(`package main

import "os"

// A release note the binary carries, printed on request.
func init() {
	if os.Getenv("RESTAURANT_PRINT_NOTE") != "" {
		os.Stdout.WriteString(%q + "\n")
	}
}
`, note))
	p.Commit(note)
}

// cleanupOnly runs the cleanup stage alone, as `mage cleanup` does.
func cleanupOnly(t *testing.T, p *testenv.Project) {
	t.Helper()
	r, out := openRun(t, p, pipeline.Options{})
	r.Command = "cleanup"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	release, err := r.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := r.Cleanup(ctx); err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), "warning:") {
		t.Errorf("cleanup warned:\n%s", out.String())
	}
}

// TestComposeDeploy deploys the backend as a compose service built FROM
// scratch on the machine's Docker engine, over a real sshd: a first deploy
// starts it, a changed backend replaces the container with a new image,
// an unhealthy release is rolled back to the previous release's image,
// the check reports the service and its loss, and cleanup truncates the
// container's json log.
func TestComposeDeploy(t *testing.T) {
	needCompose(t)
	t.Parallel()
	host := testenv.StartSSHD(t)
	app := fmt.Sprintf("restaurant-compose-%08x", rand.Uint32())
	proj := server.ComposeProject(app)
	p := testenv.NewProject(t, testenv.ProjectOptions{
		Hosts:        []*testenv.Host{host},
		App:          app,
		BackendBuild: "CGO_ENABLED=0 go build -trimpath -o dist/server ./cmd/server && cp deploy/compose.yaml deploy/Dockerfile dist/",
		Services:     "    services: { manager: compose, file: backend/compose.yaml, restart: [app] }\n",
		Environment:  "    cleanup: { docker_logs: true }\n",
	})
	t.Cleanup(func() { removeCompose(t, proj, app) })
	dockerfile := readFile(t, filepath.Join(testenv.RepoRoot(t), "examples", "restaurant", "Dockerfile"))
	p.Write("backend/deploy/Dockerfile", dockerfile)
	p.Write("backend/deploy/compose.yaml", composeFile(app, p.Port))
	p.Commit("run the backend under compose")

	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	c1 := composeContainer(t, proj)
	if c1.Image != app+":"+id1 || c1.State != "running" {
		t.Fatalf("after the first deploy the container is %+v, want %s:%s running", c1, app, id1)
	}
	if v := healthVersion(t, p.Port); v != id1 {
		t.Errorf("the container serves %s, want %s", v, id1)
	}
	guest := reserve(t, p.Port, "Compose Guest")

	changeBackend(t, p, "second release")
	mustDeploy(t, p)
	id2 := verifyLive(t, p.Root)
	c2 := composeContainer(t, proj)
	if c2.Image != app+":"+id2 || c2.State != "running" {
		t.Fatalf("after the second deploy the container is %+v, want %s:%s running", c2, app, id2)
	}
	if c2.ID == c1.ID || c2.ImageID == c1.ImageID {
		t.Errorf("the second deploy did not replace the container with a new image: %+v then %+v", c1, c2)
	}
	if v := healthVersion(t, p.Port); v != id2 {
		t.Errorf("the container serves %s, want %s", v, id2)
	}
	if d := lastDeploy(t, p.Root); d.Result != server.ResultSuccess || d.ID != id2 {
		t.Errorf("recorded %+v, want a success of %s", d, id2)
	}
	if rep := report(t, p, id2); rep["result"] != server.ResultSuccess || rep["exit_code"].(float64) != exitcode.OK {
		t.Errorf("report: result %v exit code %v", rep["result"], rep["exit_code"])
	}
	mustHaveReservations(t, p, p.Root, guest)

	// The API's access log goes to the container's json log; cleanup
	// with docker_logs empties it.
	if resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(p.Port) + "/api/menu"); err == nil {
		resp.Body.Close()
	}
	// The engine writes the line to the file a moment after the request.
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		fi, err := os.Stat(c2.LogPath)
		if err == nil && fi.Size() > 0 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the container's json log %s is empty or missing before cleanup: %v", c2.LogPath, err)
		}
	}
	cleanupOnly(t, p)
	if fi, err := os.Stat(c2.LogPath); err != nil || fi.Size() != 0 {
		t.Errorf("the container's json log is not truncated: %v %v", fi.Size(), err)
	}

	breakHealth(t, p)
	third := deployWith(t, p, pipeline.Options{})
	mustFail(t, third, exitcode.RolledBack, "health", "rolled back")
	if got := verifyLive(t, p.Root); got != id2 {
		t.Errorf("current is %s after the rollback, want %s", got, id2)
	}
	c3 := composeContainer(t, proj)
	if c3.Image != app+":"+id2 || c3.ImageID != c2.ImageID || c3.State != "running" {
		t.Errorf("after the rollback the container is %+v, want %s:%s running", c3, app, id2)
	}
	if v := healthVersion(t, p.Port); v != id2 {
		t.Errorf("the container serves %s after the rollback, want %s", v, id2)
	}
	if d := lastDeploy(t, p.Root); d.Result != server.ResultRolledBack || d.ID != third.run.Plan.Release {
		t.Errorf("recorded %+v, want rolled-back", d)
	}
	rep3 := report(t, p, third.run.Plan.Release)
	if rep3["result"] != server.ResultRolledBack {
		t.Errorf("report: result %v", rep3["result"])
	}
	mustHaveReservations(t, p, p.Root, guest)
	rep1, rep2 := report(t, p, id1), report(t, p, id2)
	t.Logf("first deploy: swap %s (image build and start), health %s; second: swap %s, health %s; unhealthy third: health failed after %s (deadline 10s), rollback %s",
		stageDuration(t, rep1, "swap").Round(time.Millisecond), stageDuration(t, rep1, "health").Round(time.Millisecond),
		stageDuration(t, rep2, "swap").Round(time.Millisecond), stageDuration(t, rep2, "health").Round(time.Millisecond),
		stageDuration(t, rep3, "health").Round(time.Millisecond), stageDuration(t, rep3, "rollback").Round(time.Millisecond))

	// The cron check reads the service's state through compose: running
	// and healthy once docker's own healthcheck has passed, and down
	// after docker stop.
	waitDockerHealthy(t, proj)
	c := runCheck(t, p, true)
	c.expect(t, exitcode.OK)
	if r := c.result(t, "service app"); r.Status != check.StatusOK || r.Message != "running (healthy)" {
		t.Errorf("service check %+v", r)
	}
	dockerOut(t, "stop", "-t", "5", c3.ID)
	c = runCheck(t, p, false)
	c.expect(t, exitcode.Unhealthy, "app is exited")
	if r := c.result(t, "service app"); r.Status != check.StatusFailed {
		t.Errorf("service check of a stopped container %+v", r)
	}
}
