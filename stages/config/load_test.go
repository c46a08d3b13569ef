package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const valid = `app: restaurant
components:
  frontend:
    watch: ["frontend/**", "!frontend/**/*.md"]
    lockfile: frontend/package-lock.json
    install: npm ci
    build: npm run build
    output: frontend/dist
  backend:
    watch: ["backend/**"]
    build: go build -o dist/server ./cmd/server
    output: backend/dist
    dest: server
migrations:
  watch: ["backend/migrations/**"]
  run: ./server/server migrate
  backup: [shared/data/restaurant.sqlite3]
environments:
  production:
    hosts: ["deploy@web1.example.com", "deploy@[::1]:2222"]
    root: /srv/restaurant
    services: { manager: compose, restart: [app] }
    health:
      - http: "https://restaurant.example.com/healthz"
      - command: "curl -fsS localhost:8080/healthz"
        timeout: 2s
    env:
      vars: { PORT: 8080 }
      secrets: [DB_PASSWORD]
  local:
    hosts: [local]
    root: .deploy
    keep_releases: 3
plugins:
  - name: warm-cache
    path: plugins/bin/warm-cache
    at: after-swap
`

func TestLoadValidAndDefaults(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, DefaultFile)
	if err := os.WriteFile(file, []byte(valid), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dir != dir || cfg.File != file {
		t.Errorf("Dir, File = %q, %q", cfg.Dir, cfg.File)
	}
	if cfg.KeepReleases != DefaultKeepReleases {
		t.Errorf("KeepReleases = %d", cfg.KeepReleases)
	}
	if len(cfg.Components) != 2 || cfg.Components[0].Name != "frontend" || cfg.Components[1].Name != "backend" {
		t.Fatalf("components out of order: %+v", cfg.Components)
	}
	fe, be := cfg.Components[0], cfg.Components[1]
	if fe.Line != 3 || be.Line != 9 {
		t.Errorf("component lines = %d, %d; want 3, 9", fe.Line, be.Line)
	}
	if fe.Dest != "frontend" || be.Dest != "server" {
		t.Errorf("dests = %q, %q", fe.Dest, be.Dest)
	}
	if len(fe.Watch) != 2 || fe.Install != "npm ci" || fe.Output != "frontend/dist" {
		t.Errorf("frontend = %+v", fe)
	}
	if cfg.Migrations == nil || cfg.Migrations.Run == "" {
		t.Errorf("migrations = %+v", cfg.Migrations)
	}
	if len(cfg.Environments) != 2 || cfg.Environments[0].Name != "production" || cfg.Environments[1].Name != "local" {
		t.Fatalf("environments out of order: %+v", cfg.Environments)
	}
	prod, err := cfg.Environment("production")
	if err != nil {
		t.Fatal(err)
	}
	if prod.Line != 19 {
		t.Errorf("production line = %d", prod.Line)
	}
	want := map[string]any{
		"KeepReleases":   prod.KeepReleases == DefaultKeepReleases,
		"Parallel":       prod.Parallel == DefaultParallel,
		"Expect":         prod.Health[0].Expect == 200,
		"Timeout":        prod.Health[0].Timeout == 5*time.Second,
		"CommandTimeout": prod.Health[1].Timeout == 2*time.Second,
		"HealthLine":     prod.Health[0].Line == 24 && prod.Health[1].Line == 25,
		"Deadline":       prod.HealthWait.Deadline == 30*time.Second,
		"Interval":       prod.HealthWait.Interval == 500*time.Millisecond,
		"Assets":         prod.Assets.Versions == 2,
		"Incoming":       prod.Cleanup.IncomingMaxAge == 24*time.Hour,
		"LockMaxAge":     prod.Check.LockMaxAge == 30*time.Minute,
		"Vars":           prod.Env.Vars["PORT"] == "8080",
		"Plugin":         cfg.Plugins[0].Timeout == 60*time.Second && cfg.Plugins[0].Line == 35,
	}
	for name, ok := range want {
		if ok != true {
			t.Errorf("default %s not applied: %+v", name, prod)
		}
	}
	local, _ := cfg.Environment("local")
	if local.Root != filepath.Join(dir, ".deploy") {
		t.Errorf("local root = %q, want it resolved against the project", local.Root)
	}
	if local.KeepReleases != 3 || local.Services.Manager != "none" {
		t.Errorf("local = %+v", local)
	}

	_, err = cfg.Environment("staging")
	if err == nil || !strings.Contains(err.Error(), `unknown environment "staging" (known: production, local)`) {
		t.Errorf("unknown environment error = %v", err)
	}
}

func TestKeepReleasesInherited(t *testing.T) {
	cfg, err := Parse([]byte(`app: a
keep_releases: 7
components: {web: {watch: ["**"], output: dist}}
environments: {prod: {hosts: [d@h], root: /srv/a}}
`), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Environments[0].KeepReleases != 7 {
		t.Errorf("KeepReleases = %d, want 7 from the top level", cfg.Environments[0].KeepReleases)
	}
}

// minimal is prepended to the error cases so each states only its problem.
func TestLoadErrors(t *testing.T) {
	base := func(component, env string) string {
		return "app: shop\ncomponents:\n  web:\n    watch: [\"web/**\"]\n    output: web/dist\n" + component +
			"environments:\n  prod:\n    hosts: [deploy@web1]\n    root: /srv/shop\n" + env
	}
	tests := []struct {
		name, yaml string
		want       string
	}{
		{"unknown key", "app: shop\ncomponents:\n  frontend:\n    watch: [\"a/**\"]\n    output: dist\n    biuld: npm run build\n",
			`stagecoach.yml:6: components.frontend: unknown key "biuld" (expected one of: watch, lockfile, install, build, workdir, output, dest)`},
		{"unknown top key", "app: shop\ncomponent: {}\n",
			`stagecoach.yml:2: unknown key "component" (expected one of: app, keep_releases, allow_dirty, migrations, plugins, components, environments)`},
		{"unknown nested key", base("", "    services: {manger: compose}\n"),
			`stagecoach.yml:10: environments.prod.services: unknown key "manger" (expected one of: manager, restart, stop, file, slots, router, drain)`},
		{"malformed yaml", "app: shop\ncomponents:\n  web: [a\n",
			`stagecoach.yml:2: invalid YAML: did not find expected ',' or ']'`},
		{"watch not a list", "app: shop\ncomponents:\n  web:\n    watch: web/**\n    output: dist\n",
			`stagecoach.yml:4: components.web.watch: expected a list of strings, e.g. ["a", "b"], got "web/**"`},
		{"list item not a string", "app: shop\ncomponents:\n  web:\n    watch:\n      - {a: b}\n    output: dist\n",
			`stagecoach.yml:5: components.web.watch[0]: expected a list of strings, got a mapping`},
		{"bad duration", base("", "    health:\n      - http: http://localhost/\n        timeout: 5x\n"),
			`stagecoach.yml:12: environments.prod.health[0].timeout: "5x" is not a duration like 30s`},
		{"duration without unit", base("", "    health_wait: {deadline: 30}\n"),
			`stagecoach.yml:10: environments.prod.health_wait.deadline: "30" is not a duration like 30s`},
		{"bad int", "app: shop\nkeep_releases: many\n",
			`stagecoach.yml:2: keep_releases: expected a whole number, got "many"`},
		{"bad bool", "app: shop\nallow_dirty: sometimes\n",
			`stagecoach.yml:2: allow_dirty: expected true or false, got "sometimes"`},
		{"components not a mapping", "app: shop\ncomponents: [web]\n",
			`stagecoach.yml:2: components: expected a mapping of components by name (name: {...}), got a list`},
		{"duplicate component", "app: shop\ncomponents:\n  web: {watch: [a], output: d}\n  web: {watch: [b], output: e}\n",
			`stagecoach.yml:4: components.web: duplicate name (first defined at line 3)`},
		{"duplicate key", "app: shop\napp: other\n",
			`stagecoach.yml:2: key "app" given twice (first at line 1)`},
		{"missing app", "components: {web: {watch: [a], output: d}}\n",
			`stagecoach.yml:1: app is required`},
		{"unsafe app", "app: my shop\ncomponents: {web: {watch: [a], output: d}}\n",
			`stagecoach.yml:1: app: "my shop" may contain only letters, digits, - and _`},
		{"no components", "app: shop\n",
			`stagecoach.yml:1: components: at least one component is required`},
		{"bad pattern", "app: shop\ncomponents:\n  web:\n    watch: [\"web/**\", \"!web/[a\"]\n    output: d\n",
			`stagecoach.yml:4: components.web.watch[1]: pattern "!web/[a" is not a valid glob`},
		{"missing watch", "app: shop\ncomponents:\n  web:\n    output: d\n",
			`stagecoach.yml:3: components.web: watch is required`},
		{"missing output", "app: shop\ncomponents:\n  web:\n    watch: [a]\n",
			`stagecoach.yml:3: components.web: output is required`},
		{"dest escapes", base("    dest: ../x\n", ""),
			`stagecoach.yml:6: components.web.dest: "../x" must not leave the project (no ..)`},
		{"dest absolute", base("    dest: /x\n", ""),
			`stagecoach.yml:6: components.web.dest: "/x" must be a relative path`},
		{"lockfile absolute", base("    lockfile: /x/package-lock.json\n", ""),
			`stagecoach.yml:6: components.web.lockfile: "/x/package-lock.json" must be a relative path`},
		{"bad component name", "app: shop\ncomponents:\n  we.b: {watch: [a], output: d}\n",
			`stagecoach.yml:3: components.we.b: component name "we.b" may contain only`},
		{"missing root", "app: shop\ncomponents: {web: {watch: [a], output: d}}\nenvironments:\n  prod:\n    hosts: [d@h]\n",
			`stagecoach.yml:4: environments.prod: root is required`},
		{"relative root", base("", "")[:len(base("", ""))-len("    root: /srv/shop\n")] + "    root: srv/shop\n",
			`stagecoach.yml:9: environments.prod.root: "srv/shop" must be an absolute path on the server`},
		{"missing hosts", "app: shop\ncomponents: {web: {watch: [a], output: d}}\nenvironments:\n  prod: {root: /srv}\n",
			`stagecoach.yml:4: environments.prod: hosts is required`},
		{"bad host port", "app: shop\ncomponents: {web: {watch: [a], output: d}}\nenvironments:\n  prod:\n    root: /srv/a\n    hosts:\n      - deploy@web1:99999\n",
			`stagecoach.yml:7: environments.prod.hosts[0]: invalid host "deploy@web1:99999": port "99999" is not a number from 1 to 65535`},
		{"bad host chars", "app: shop\ncomponents: {web: {watch: [a], output: d}}\nenvironments:\n  prod:\n    root: /srv/a\n    hosts: [\"deploy@web1;rm\"]\n",
			`stagecoach.yml:6: environments.prod.hosts[0]: invalid host "deploy@web1;rm"`},
		{"unknown manager", base("", "    services:\n      manager: docker\n"),
			`stagecoach.yml:11: environments.prod.services.manager: unknown manager "docker" (expected one of: compose, systemd, command, none)`},
		{"health neither", base("", "    health:\n      - expect: 200\n"),
			`stagecoach.yml:11: environments.prod.health[0]: a health check needs one of http (a URL) or command`},
		{"health both", base("", "    health:\n      - http: http://x/\n        command: \"true\"\n"),
			`stagecoach.yml:11: environments.prod.health[0]: a health check has either http or command, not both`},
		{"health bad url", base("", "    health:\n      - http: localhost/healthz\n"),
			`stagecoach.yml:11: environments.prod.health[0].http: "localhost/healthz" is not an http:// or https:// URL`},
		{"keep releases top", "app: shop\nkeep_releases: 1\ncomponents: {web: {watch: [a], output: d}}\n",
			`stagecoach.yml:2: keep_releases: must be at least 2`},
		{"keep releases env", base("", "    keep_releases: 0\n"),
			`stagecoach.yml:10: environments.prod.keep_releases: must be at least 2`},
		{"plugin at", base("", "") + "plugins:\n  - name: p\n    path: bin/p\n    at: after-deploy\n",
			`stagecoach.yml:13: plugins[0]: at is "after-deploy"; expected before-<stage> or after-<stage> with stage one of: detect, build, package, ship, swap, health, cleanup; or one of: on-success, on-failure, after-rollback`},
		{"plugin sha", base("", "") + "plugins:\n  - name: p\n    path: bin/p\n    at: before-swap\n    sha256: abc\n",
			`stagecoach.yml:14: plugins[0].sha256: expected 64 hex digits`},
		{"secret name", base("", "    env: {secrets: [db-pass]}\n"),
			`stagecoach.yml:10: environments.prod.env.secrets[0]: "db-pass" is not a valid variable name`},
		{"empty", "", `stagecoach.yml: empty config`},
		{"unknown ssh key", base("", "    ssh:\n      proxyjump: bastion\n"),
			`stagecoach.yml:11: environments.prod.ssh: unknown key "proxyjump" (expected one of: known_hosts, identities, dial_timeout, config, proxy_jump)`},
		{"bad bastion", base("", "    ssh: {proxy_jump: \"jump@bastion,ops@b2:0\"}\n"),
			`stagecoach.yml:10: environments.prod.ssh.proxy_jump: bastion 2 "ops@b2:0": port "0" is not a number from 1 to 65535; expected [user@]host[:port], separated by commas, or none`},
		{"local bastion", base("", "    ssh: {proxy_jump: local}\n"),
			`stagecoach.yml:10: environments.prod.ssh.proxy_jump: bastion 1: local cannot be a bastion`},
		{"empty bastion", base("", "    ssh: {proxy_jump: \"\"}\n"),
			`stagecoach.yml:10: environments.prod.ssh.proxy_jump: empty; expected bastions`},
		{"ssh config not a string", base("", "    ssh: {config: [a]}\n"),
			`stagecoach.yml:10: environments.prod.ssh.config: expected a string, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "stagecoach.yml", "/p")
			if err == nil {
				t.Fatalf("no error; want %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
		})
	}
}

func TestSSHSettings(t *testing.T) {
	env := func(ssh string) *Environment {
		t.Helper()
		text := "app: shop\ncomponents: {web: {watch: [a], output: d}}\nenvironments:\n  prod:\n    hosts: [acc-alias]\n    root: /srv\n" + ssh
		cfg, err := Parse([]byte(text), "stagecoach.yml", "/p")
		if err != nil {
			t.Fatal(err)
		}
		return &cfg.Environments[0]
	}
	e := env("    ssh:\n      config: deploy/ssh_config\n      proxy_jump: \"jump1, ssh://ops@10.0.0.2:2222\"\n")
	if e.SSH.Config != "/p/deploy/ssh_config" || e.SSH.ProxyJump != "jump1, ssh://ops@10.0.0.2:2222" {
		t.Errorf("ssh = %+v: a relative config is relative to the project", e.SSH)
	}
	for _, c := range []string{"none", "~/.ssh/other", "/etc/deploy/ssh_config", ""} {
		if got := env("    ssh: {config: \"" + c + "\", proxy_jump: none}\n").SSH.Config; got != c {
			t.Errorf("config %q became %q", c, got)
		}
	}
}

func TestLoadReportsAllErrorsInLineOrder(t *testing.T) {
	_, err := Parse([]byte("app: shop\ncomponents:\n  web:\n    watch: x\n    outptu: d\n"), "stagecoach.yml", "/p")
	if err == nil {
		t.Fatal("no error")
	}
	want := "stagecoach.yml:4: components.web.watch: expected a list of strings, e.g. [\"a\", \"b\"], got \"x\"\n" +
		"stagecoach.yml:5: components.web: unknown key \"outptu\" (expected one of: watch, lockfile, install, build, workdir, output, dest)"
	if err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yml"))
	if err == nil || !strings.Contains(err.Error(), "read config") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadAnchorsAcrossEntries(t *testing.T) {
	cfg, err := Parse([]byte(`app: a
components:
  web:
    watch: &w ["web/**"]
    output: web/dist
  api:
    watch: *w
    output: api/dist
environments:
  prod: &prod
    hosts: [d@h]
    root: /srv/a
  staging:
    <<: *prod
    root: /srv/staging
`), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Components[1].Watch; len(got) != 1 || got[0] != "web/**" {
		t.Errorf("api watch = %q", got)
	}
	st, _ := cfg.Environment("staging")
	if st.Root != "/srv/staging" || len(st.Hosts) != 1 {
		t.Errorf("staging = %+v", st)
	}
}
