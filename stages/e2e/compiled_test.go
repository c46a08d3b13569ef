package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestCompiledBinaryDeploysFromClone follows the README as a new user
// would: in a fresh clone of this repository it builds the targets into one
// binary with the README's own -compile command, run from the repository
// root, and deploys the example app with `./stagecoach deploy` and the
// clone's stagecoach.yml (the local target). The untracked binary must not
// make the deploy refuse the work tree as dirty, and it must land next to
// stagecoach.yml, not in magefiles/.
func TestCompiledBinaryDeploysFromClone(t *testing.T) {
	if testing.Short() {
		t.Skip("clones the repository, compiles a mage binary and deploys the example app")
	}
	testenv.RequireTool(t, "git", "apt-get install -y git")
	testenv.RequireTool(t, "go", "install Go")
	testenv.RequireTool(t, "node", "install Node.js (apt-get install -y nodejs npm)")
	testenv.RequireTool(t, "npm", "install npm (apt-get install -y npm)")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// A local clone of the commit checked out here: no network, and none
	// of this checkout's uncommitted files.
	clone := filepath.Join(t.TempDir(), "stagecoach")
	gitOut(t, "", "clone", "-q", "-c", "advice.detachedHead=false", testenv.RepoRoot(t), clone)
	head := strings.TrimSpace(gitOut(t, clone, "rev-parse", "HEAD"))

	cfg, err := config.Load(filepath.Join(clone, "stagecoach.yml"))
	if err != nil {
		t.Fatal(err)
	}
	env := cfg.Environments[0] // the default environment
	if len(env.Hosts) != 1 || env.Hosts[0].Host != "local" || len(env.Health) == 0 {
		t.Fatalf("the clone's stagecoach.yml no longer deploys to a local target with a health check: %+v", env)
	}
	root := env.Root
	if !filepath.IsAbs(root) {
		root = filepath.Join(clone, root)
	}
	health := env.Health[0].HTTP
	requireFreePort(t, health)
	t.Cleanup(func() { stopPidfiles(t, filepath.Join(root, "shared")) })

	environ := []string{"PWD=" + clone}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STAGECOACH_") && !strings.HasPrefix(kv, "PWD=") {
			environ = append(environ, kv)
		}
	}

	// The README's command, verbatim, from the clone's root.
	readme, err := os.ReadFile(filepath.Join(clone, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	command := readmeCompileCommand(t, string(readme))
	sh := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	sh.Dir, sh.Env = clone, environ
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", command, err, out)
	}
	bin := filepath.Join(clone, "stagecoach")
	if _, err := os.Stat(bin); err != nil {
		t.Errorf("%s did not write the binary next to stagecoach.yml: %v", command, err)
		bin = filepath.Join(clone, "magefiles", "stagecoach")
	}
	if _, err := os.Stat(filepath.Join(clone, "magefiles", "stagecoach")); err == nil && bin != filepath.Join(clone, "magefiles", "stagecoach") {
		t.Errorf("%s also wrote magefiles/stagecoach", command)
	}
	rel, _ := filepath.Rel(clone, bin)
	if status := gitOut(t, clone, "status", "--porcelain", "--untracked-files=all"); !strings.Contains(status, "?? "+rel+"\n") {
		t.Fatalf("the binary is not an untracked file of the clone, so the test proves nothing; git status:\n%s", status)
	}

	deploy := func() string {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, "deploy")
		cmd.Dir, cmd.Env = clone, environ
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		if strings.Contains(out.String(), "uncommitted changes") {
			t.Fatalf("the deploy was refused as dirty:\n%s", out.String())
		}
		if err != nil {
			t.Fatalf("%s deploy: %v\n%s", bin, err, out.String())
		}
		return out.String()
	}
	out := deploy()
	if testing.Verbose() {
		t.Logf("./stagecoach deploy printed:\n%s", out)
	}
	s := state(t, root)
	if s.Revision != head || s.Current == "" || live(t, root) != s.Current {
		t.Fatalf("state after the deploy: revision %s (want %s), current %s", s.Revision, head, s.Current)
	}
	// The backend that answers is the one just deployed, not a stray one.
	resp, err := http.Get(health)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Status, Version string }
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || h.Status != "ok" || h.Version != s.Current {
		t.Fatalf("%s: %+v %v, want status ok and version %s", health, h, err, s.Current)
	}

	// As the README says: the second deploy finds nothing changed.
	deploy()
	if again := state(t, root); again.Current != s.Current || again.Revision != head {
		t.Errorf("second deploy: current %s revision %s, want %s unchanged", again.Current, again.Revision, s.Current)
	}
}

// readmeCompileCommand is the command the README's code blocks give for
// -compile; every block that shows one must show the same.
func readmeCompileCommand(t *testing.T, readme string) string {
	t.Helper()
	var commands []string
	inBlock := false
	for _, line := range strings.Split(readme, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock && strings.Contains(line, "-compile") {
			commands = append(commands, strings.TrimSpace(line))
		}
	}
	if len(commands) == 0 {
		t.Fatal("README.md shows no -compile command in a code block")
	}
	for _, c := range commands {
		if c != commands[0] {
			t.Fatalf("README.md shows different -compile commands: %q", commands)
		}
	}
	if !strings.HasPrefix(commands[0], "go run mage.go -compile ") {
		t.Fatalf("README.md's -compile command %q is not a go run mage.go command", commands[0])
	}
	return commands[0]
}

// requireFreePort fails (under CI) or skips when something already
// listens on the health check's address: the deploy's backend could not
// start, and the health check would ask the stranger.
func requireFreePort(t *testing.T, health string) {
	t.Helper()
	u, err := url.Parse(health)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", u.Host)
	if err != nil {
		msg := fmt.Sprintf("%s is in use (the example app deployed from another checkout? stop it with kill $(cat .stagecoach/local/shared/restaurant.pid)): %v", u.Host, err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l.Close()
}

// stopPidfiles stops the processes whose pids the deploy's service
// commands wrote into dir (the backend's pidfile in the shared directory).
func stopPidfiles(t *testing.T, dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "*.pid"))
	for _, pidfile := range matches {
		data, err := os.ReadFile(pidfile)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 1 {
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		stopped := false
		for i := 0; i < 100 && !stopped; i++ {
			stopped = syscall.Kill(pid, 0) != nil
			time.Sleep(20 * time.Millisecond)
		}
		if !stopped {
			t.Logf("backend %d ignored SIGTERM; killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
