package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// readmeBlocks returns the fenced code blocks of the given language in the
// README's "Write your own stage" section, in order.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Write your own stage\n")
	if !ok {
		t.Fatal(`README.md has no "Write your own stage" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var blocks []string
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// pluginModule makes the project a Go module that uses this checkout of
// Stagecoach, as `go get github.com/stagecoach/stagecoach` would.
func pluginModule(t *testing.T, p *testenv.Project) {
	t.Helper()
	repo := testenv.RepoRoot(t)
	p.Write("go.mod", "module example.com/restaurant\n\ngo 1.26\n\nrequire github.com/stagecoach/stagecoach v0.0.0\n\nreplace github.com/stagecoach/stagecoach => "+repo+"\n")
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	p.Write("go.sum", string(sum))
	p.Write(".gitignore", "node_modules/\ndist/\n.stagecoach/\nplugins/bin/\n")
}

// TestWriteYourOwnStage follows the README's "Write your own stage"
// literally: its plugin code, its build command, its config block, then a
// deploy over SSH, and the file the plugin writes on the server.
func TestWriteYourOwnStage(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	pluginModule(t, p)

	goBlocks := readmeBlocks(t, "go")
	if len(goBlocks) == 0 || !strings.Contains(goBlocks[0], "sdk.Serve") {
		t.Fatal("README: the first go block of the section is not the plugin")
	}
	p.Write("plugins/hello/main.go", goBlocks[0])

	var build string
	for _, b := range readmeBlocks(t, "sh") {
		if strings.HasPrefix(b, "go build") {
			build = strings.TrimSpace(b)
		}
	}
	if build == "" {
		t.Fatal("README: the section has no go build command")
	}
	cmd := exec.Command("/bin/sh", "-c", build)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, out)
	}

	var pluginConfig string
	for _, b := range readmeBlocks(t, "yaml") {
		if strings.HasPrefix(b, "plugins:") {
			pluginConfig = b
		}
	}
	if pluginConfig == "" {
		t.Fatal("README: the section has no plugins: config block")
	}
	p.Write("stagecoach.yml", readFile(t, p.Config)+pluginConfig)
	p.Commit("add the hello plugin")

	res := mustDeploy(t, p)
	id := live(t, p.Root)
	note := readFile(t, filepath.Join(p.Root, "shared", "hello.txt"))
	if !strings.HasPrefix(note, "Good morning from release "+id) {
		t.Fatalf("hello.txt = %q, want a greeting for release %s", note, id)
	}
	if !strings.Contains(res.log, "wrote "+p.Root+"/shared/hello.txt") {
		t.Errorf("the plugin's log line is missing from the deploy log:\n%s", res.log)
	}
}

// TestPluginFailures: a failing plugin before the swap aborts the deploy
// with current untouched; after the swap it makes the deploy roll back.
func TestPluginFailures(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	pluginModule(t, p)
	p.Commit("module")
	cmd := exec.Command("go", "build", "-o", filepath.Join(p.Dir, "plugins/bin/testplugin"), "./plugins/internal/testplugins/testplugin")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test plugin: %v\n%s", err, out)
	}
	mustDeploy(t, p)
	good := live(t, p.Root)
	base := readFile(t, p.Config)

	for _, tc := range []struct {
		at       string
		wantCode int
	}{{"before-swap", exitcode.Failed}, {"after-swap", exitcode.RolledBack}} {
		p.Write("stagecoach.yml", base+`plugins:
  - name: gate
    path: plugins/bin/testplugin
    at: `+tc.at+`
    config: { mode: fail, message: "smoke test failed: 502 from /api/menu" }
`)
		p.Write("frontend/src/app.js", readFile(t, filepath.Join(p.Dir, "frontend/src/app.js"))+"\n// "+tc.at+"\n")
		p.Commit("plugin " + tc.at)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		res := deploy(t, ctx, p, pipeline.Options{})
		cancel()
		if res.err == nil || exitcode.Of(res.err) != tc.wantCode || !strings.Contains(res.err.Error(), "smoke test failed") {
			t.Fatalf("%s: err %v (code %d), want code %d naming the plugin's error\n%s", tc.at, res.err, exitcode.Of(res.err), tc.wantCode, res.log)
		}
		if got := live(t, p.Root); got != good {
			t.Fatalf("%s: current is %s, want it still on %s", tc.at, got, good)
		}
		if got := healthz(t, p.Port); !strings.Contains(got, good) {
			t.Fatalf("%s: the previous release is not serving: %s", tc.at, got)
		}
	}
}
