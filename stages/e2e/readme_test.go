package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/testenv"
)

// walkStep is one block of the README's walk-through: a file to write or
// shell commands to run.
type walkStep struct {
	file string // the path to write; "" for commands
	body string
}

var walkMark = regexp.MustCompile("(?m)^<!-- walkthrough: (file (\\S+)|run) -->\n```[a-z]*\n")

// walkthrough reads the marked blocks of the README's "Use it in your
// project" section, in order.
func walkthrough(t *testing.T) []walkStep {
	t.Helper()
	readme := readFile(t, filepath.Join(testenv.RepoRoot(t), "README.md"))
	start := strings.Index(readme, "\n## Use it in your project\n")
	if start < 0 {
		t.Fatal(`README.md has no "Use it in your project" section`)
	}
	sec := readme[start+1:]
	if end := strings.Index(sec[3:], "\n## "); end >= 0 {
		sec = sec[:end+3]
	}
	var steps []walkStep
	for _, m := range walkMark.FindAllStringSubmatchIndex(sec, -1) {
		rest := sec[m[1]:]
		end := strings.Index(rest, "```\n")
		if end < 0 {
			t.Fatalf("unclosed block after %q", sec[m[0]:m[1]])
		}
		s := walkStep{body: rest[:end]}
		if m[4] >= 0 {
			s.file = sec[m[4]:m[5]]
		}
		steps = append(steps, s)
	}
	return steps
}

// tinyApp is the repository the walk-through starts from: a frontend npm
// builds with no dependencies and a Go backend that serves it with a
// health check and applies migrations.
var tinyApp = map[string]string{
	"frontend/package.json":      `{"name":"tiny","version":"1.0.0","scripts":{"build":"node build.js"}}` + "\n",
	"frontend/package-lock.json": `{"name":"tiny","version":"1.0.0","lockfileVersion":3,"requires":true,"packages":{"":{"name":"tiny","version":"1.0.0"}}}` + "\n",
	"frontend/build.js": `const fs = require("fs");
fs.mkdirSync("dist", { recursive: true });
fs.writeFileSync("dist/index.html", "<h1>tiny</h1>\n");
`,
	"frontend/README.md":         "The frontend.\n",
	"backend/go.mod":             "module example.com/restaurant/backend\n\ngo 1.22\n",
	"backend/migrations/001.sql": "create table reservations (id integer);\n",
	"backend/cmd/server/main.go": `// Command server serves the site and applies migrations.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "")
	static := fs.String("static", "frontend", "")
	db := fs.String("db", "data/app.db", "")
	pidfile := fs.String("pidfile", "", "")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "migrate":
		os.MkdirAll(filepath.Dir(*db), 0o755)
		f, err := os.OpenFile(*db, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintln(f, "migrated")
		f.Close()
	case "serve":
		if *pidfile != "" {
			os.WriteFile(*pidfile, []byte(fmt.Sprint(os.Getpid())), 0o644)
			stop := make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGTERM)
			go func() { <-stop; os.Remove(*pidfile); os.Exit(0) }()
		}
		http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "{\"status\":\"ok\",\"release\":%q}", os.Getenv("STAGECOACH_RELEASE"))
		})
		http.Handle("/", http.FileServer(http.Dir(*static)))
		panic(http.ListenAndServe(*addr, nil))
	}
}
`,
}

// TestReadmeWalkthrough follows "Use it in your project" literally in a
// fresh repository holding tinyApp: it writes the README's files and runs
// its commands, with the module resolved from this checkout instead of
// the network and the environment pointed at a real sshd, and checks the
// deployed app answers.
func TestReadmeWalkthrough(t *testing.T) {
	host := testenv.StartSSHD(t)
	for _, tool := range []string{"git", "node", "npm", "curl"} {
		testenv.RequireTool(t, tool, "apt-get install -y "+tool)
	}
	steps := walkthrough(t)
	var files []string
	for _, s := range steps {
		files = append(files, s.file)
	}
	if want := "mage.go magefiles/stagecoach.go  stagecoach.yml .gitignore "; strings.Join(files, " ") != want {
		t.Fatalf("walk-through steps %q, want %q", files, want)
	}
	dir := filepath.Join(t.TempDir(), "restaurant")
	for p, content := range tinyApp {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(t.TempDir(), "srv")
	port := testenv.FreePort(t)
	repo := testenv.RepoRoot(t)
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off", "GONOSUMDB=*",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com", "GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com")
	sh := func(script string) string {
		t.Helper()
		c := exec.Command("/bin/sh", "-ec", script)
		c.Dir, c.Env = dir, env
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	sh("git init -q -b main")

	// What the test changes of what the README says, and nothing else.
	subst := []struct{ old, new string }{
		{"go get github.com/stagecoach/stagecoach@latest",
			"go mod edit -require=github.com/stagecoach/stagecoach@v0.0.0-00010101000000-000000000000 -replace=github.com/stagecoach/stagecoach=" + repo},
		// Offline, the test dependencies of dependencies that tidy looks
		// up are not all in the module cache.
		{"go mod tidy", "go mod tidy -e"},
		{`hosts: ["deploy@web1.example.com"]`, fmt.Sprintf("hosts: [%q]", host.Target())},
		{"root: /srv/restaurant", "root: " + root},
		{"known_hosts: ~/.ssh/known_hosts", "known_hosts: " + host.KnownHostsFile},
		{"identities: [~/.ssh/id_ed25519]", "identities: [" + host.IdentityFile + "]\n      config: none"},
		{"8080", strconv.Itoa(port)},
	}
	apply := func(s string) string {
		for _, r := range subst {
			s = strings.ReplaceAll(s, r.old, r.new)
		}
		return s
	}
	var listed string
	for _, s := range steps {
		if s.file != "" {
			p := filepath.Join(dir, filepath.FromSlash(s.file))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(apply(s.body)), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, line := range strings.Split(s.body, "\n") {
			if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			start := time.Now()
			out := sh(apply(line))
			t.Logf("%s (%s)", line, time.Since(start).Round(time.Millisecond))
			if strings.HasSuffix(line, "-l") {
				listed = out
			}
		}
	}
	for _, target := range []string{"deploy", "rollback", "check", "init", "adopt"} {
		if !strings.Contains(listed, "  "+target+" ") {
			t.Errorf("go run mage.go -l lacks %s:\n%s", target, listed)
		}
	}
	id := live(t, root)
	if got := healthz(t, port); !strings.Contains(got, `"status":"ok"`) || !strings.Contains(got, id) {
		t.Errorf("healthz of release %s: %q", id, got)
	}
	if got := readFile(t, filepath.Join(root, "current", "frontend", "index.html")); got != "<h1>tiny</h1>\n" {
		t.Errorf("index.html %q", got)
	}
	if got := readFile(t, filepath.Join(root, "shared", "data", "restaurant.sqlite3")); got != "migrated\n" {
		t.Errorf("the migration wrote %q", got)
	}
	t.Cleanup(func() {
		if pid, err := os.ReadFile(filepath.Join(root, "shared", "server.pid")); err == nil {
			if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil && n > 1 {
				syscall.Kill(n, syscall.SIGTERM)
			}
		}
	})
}
