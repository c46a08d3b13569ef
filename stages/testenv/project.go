package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ProjectOptions shape a throwaway project made by NewProject.
type ProjectOptions struct {
	// Hosts are the sshd targets to deploy to; none means the local target.
	Hosts []*Host
	// HostNames, when set, are written as the hosts instead of each
	// host's user@addr:port: ssh_config aliases, say.
	HostNames []string
	// HostSettings, when set, are the hosts' settings in YAML flow style,
	// in host order, e.g. "vars: {PORT: 8081}, tags: [web]": each host is
	// then written as {host: "<name>", <settings>}.
	HostSettings []string
	// Bastions are hosts the deploy goes through (ProxyJump): their keys
	// are trusted and their client keys offered, like the hosts'.
	Bastions []*Host
	// SSHConfig is the ssh config setting: an ssh_config file; default
	// "none", so the developer's ~/.ssh/config plays no part.
	SSHConfig string
	// Root is the deploy root on the hosts; default a temporary directory.
	// "{host}" in it becomes each host's address, so that several hosts on
	// one machine get roots of their own.
	Root string
	// Environment is YAML appended to the test environment's block, e.g.
	// "    keep_releases: 2\n".
	Environment string
	// TopLevel is YAML appended at the end of the config (e.g. plugins).
	TopLevel string
	// Migrate overrides the migrations' run command.
	Migrate string
	// Health, when set, replaces the items of the environment's health
	// list (the backend's /healthz), e.g. `      - http: "http://..."\n`.
	Health string
	// NoHealth leaves the environment without health checks.
	NoHealth bool
	// Port is the backend's port on every host; default one free on
	// 127.0.0.1.
	Port int
	// App is the config's app name; default "restaurant". Compose derives
	// its project name from it, so tests sharing an engine need unique ones.
	App string
	// BackendBuild replaces the backend component's build command (run in
	// backend/, output backend/dist).
	BackendBuild string
	// Services, when set, replaces the environment's services block, which
	// by default starts the backend with the command manager and logs each
	// stop and restart as a line in shared/services.log, e.g.
	// "    services: { manager: compose, restart: [app] }\n".
	Services string
}

// Project is a copy of the example restaurant app in a git repository of
// its own, with a stagecoach.yml whose "test" environment deploys it to the
// given hosts and starts its backend on a free port, health-checked.
type Project struct {
	Dir    string // the project root (the git work tree)
	Root   string // deploy root as configured (may contain {host})
	Port   int    // the backend's port on every host
	Config string // path of stagecoach.yml
	t      testing.TB
}

// RepoRoot is the Stagecoach repository holding this package's source, found
// from the working directory of the test.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(data), "module github.com/stagecoach/stagecoach\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("stagecoach repository root not found above the working directory")
		}
		dir = parent
	}
}

// NewProject copies the example app's sources, writes the config and
// commits everything. It needs git, node and npm; the backend builds with
// the go command and its module cache.
func NewProject(t testing.TB, opts ProjectOptions) *Project {
	t.Helper()
	RequireTool(t, "git", "apt-get install -y git")
	RequireTool(t, "node", "install Node.js (apt-get install -y nodejs npm)")
	RequireTool(t, "npm", "install npm (apt-get install -y npm)")
	p := &Project{Dir: t.TempDir(), Root: opts.Root, t: t}
	if p.Root == "" {
		p.Root = filepath.Join(t.TempDir(), "srv")
	}
	p.Port = opts.Port
	if p.Port == 0 {
		p.Port = FreePort(t)
	}
	example := filepath.Join(RepoRoot(t), "examples", "restaurant")
	for _, dir := range []string{"frontend/src", "backend/cmd", "backend/internal", "backend/migrations"} {
		copyTree(t, filepath.Join(example, dir), filepath.Join(p.Dir, dir))
	}
	for _, f := range []string{"frontend/build.mjs", "frontend/package.json", "frontend/package-lock.json", "backend/go.mod", "backend/go.sum"} {
		copyFile(t, filepath.Join(example, f), filepath.Join(p.Dir, f))
	}
	p.Write(".gitignore", "node_modules/\ndist/\n.stagecoach/\n")
	p.Config = filepath.Join(p.Dir, "stagecoach.yml")
	p.Write("stagecoach.yml", p.config(opts))
	p.git("init", "-q", "-b", "main")
	p.git("config", "user.email", "test@example.com")
	p.git("config", "user.name", "Test")
	p.Commit("initial")
	t.Cleanup(p.stopBackends)
	return p
}

func (p *Project) config(opts ProjectOptions) string {
	hosts := []string{"local"}
	ssh := ""
	if len(opts.Hosts) > 0 {
		hosts = hosts[:0]
		for i, h := range opts.Hosts {
			name := h.Target()
			if i < len(opts.HostNames) {
				name = opts.HostNames[i]
			}
			entry := strconv.Quote(name)
			if i < len(opts.HostSettings) && opts.HostSettings[i] != "" {
				entry = fmt.Sprintf("{host: %s, %s}", entry, opts.HostSettings[i])
			}
			hosts = append(hosts, entry)
		}
		// Each test host has a host key and a client key of its own:
		// their known_hosts files are merged into one, and every client
		// key is offered.
		all := append(append([]*Host{}, opts.Hosts...), opts.Bastions...)
		known := filepath.Join(p.t.TempDir(), "known_hosts")
		var lines []byte
		for _, h := range all {
			data, err := os.ReadFile(h.KnownHostsFile)
			if err != nil {
				p.t.Fatal(err)
			}
			lines = append(lines, data...)
		}
		if err := os.WriteFile(known, lines, 0o600); err != nil {
			p.t.Fatal(err)
		}
		var ids []string
		for _, h := range all {
			ids = append(ids, strconv.Quote(h.IdentityFile))
		}
		sshConfig := opts.SSHConfig
		if sshConfig == "" {
			sshConfig = "none"
		}
		ssh = fmt.Sprintf("    ssh: { known_hosts: %q, identities: [%s], dial_timeout: 5s, config: %q }\n", known, strings.Join(ids, ", "), sshConfig)
	}
	migrate := opts.Migrate
	if migrate == "" {
		migrate = "./backend/server migrate -db data/restaurant.sqlite3"
	}
	app := opts.App
	if app == "" {
		app = "restaurant"
	}
	build := opts.BackendBuild
	if build == "" {
		build = "CGO_ENABLED=0 go build -trimpath -o dist/server ./cmd/server"
	}
	services := opts.Services
	if services == "" {
		services = fmt.Sprintf(`    services:
      manager: command
      stop:
        - echo "stop $STAGECOACH_RELEASE" >> ../../shared/services.log
      restart:
        - |
          echo "restart $STAGECOACH_RELEASE" >> ../../shared/services.log
          pidfile=../../shared/backend.pid
          if [ -f "$pidfile" ]; then
            kill "$(cat "$pidfile")" 2>/dev/null || true
            for _ in $(seq 200); do [ -f "$pidfile" ] || break; sleep 0.02; done
          fi
          addr=127.0.0.1
          if [ -n "${SSH_CONNECTION:-}" ]; then set -- $SSH_CONNECTION; addr=$3; fi
          nohup ./backend/server serve -addr "$addr:%d" -db data/restaurant.sqlite3 -static frontend \
            -version "$STAGECOACH_RELEASE" -pidfile "$pidfile" >>../../shared/backend.log 2>&1 </dev/null &
`, p.Port)
	}
	health := opts.Health
	if health == "" && !opts.NoHealth {
		health = fmt.Sprintf("      - http: \"http://{host}:%d/healthz\"\n        body: '\"status\":\"ok\"'\n        timeout: 2s\n", p.Port)
	}
	return fmt.Sprintf(`app: %s
keep_releases: 3
components:
  frontend:
    watch: ["frontend/**", "!frontend/**/*.md"]
    lockfile: frontend/package-lock.json
    install: npm ci --prefer-offline --no-audit --no-fund
    build: npm run build
    output: frontend/dist
  backend:
    watch: ["backend/**", "!backend/**/*_test.go"]
    workdir: backend
    build: %s
    output: backend/dist
migrations:
  watch: ["backend/migrations/**"]
  run: %s
  backup: [shared/data/restaurant.sqlite3]
environments:
  test:
    hosts: [%s]
    root: %q
%s    shared: [data]
    assets: { dir: frontend/assets, versions: 2 }
%s    health:
%s    health_wait: { deadline: 10s, interval: 100ms }
%s%s`, app, build, migrate, strings.Join(hosts, ", "), p.Root, ssh, services, health, opts.Environment, opts.TopLevel)
}

// Write writes a file of the project (not committed).
func (p *Project) Write(rel, content string) {
	p.t.Helper()
	path := filepath.Join(p.Dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// Commit commits every change of the work tree and returns the commit.
func (p *Project) Commit(msg string) string {
	p.t.Helper()
	p.git("add", "-A")
	p.git("commit", "-q", "--allow-empty", "-m", msg)
	return strings.TrimSpace(p.git("rev-parse", "HEAD"))
}

func (p *Project) git(args ...string) string {
	p.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = p.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// HostRoot is the deploy root on the host at address addr.
func (p *Project) HostRoot(addr string) string {
	return strings.ReplaceAll(p.Root, "{host}", addr)
}

// stopBackends stops the backends the deploys started, found by their
// pidfiles (shared/*.pid: backend.pid, or one per slot) under every root
// this project deployed to.
func (p *Project) stopBackends() {
	matches, _ := filepath.Glob(filepath.Join(strings.ReplaceAll(p.Root, "{host}", "*"), "shared", "*.pid"))
	for _, pidfile := range matches {
		data, err := os.ReadFile(pidfile)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 100; i++ {
				if syscall.Kill(pid, 0) != nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		copyFile(t, path, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, info.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}
