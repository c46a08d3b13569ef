package scaffold

import (
	"fmt"
	"strings"
)

// Config is the stagecoach.yml init writes for r: its components, the
// migrations it found (commented until given a command), and one
// commented environment to fill in.
func Config(r Repo) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Written by mage init. Every key is explained in the README of\n")
	w("# %s; mage plan shows what a deploy would do.\n", Module)
	w("app: %s\n", r.Name)
	w("# How many releases each server keeps (the live one, the one to roll back to, ...).\n")
	w("keep_releases: 5\n\n")
	comps := components(r)
	w("# The parts of the app, each built only when a file its watch patterns\n")
	w("# match changed since the last deploy, and shipped under its name in the\n")
	w("# release (dest: to change that).\n")
	w("components:\n")
	if len(comps) == 0 {
		w("  # Nothing to build was found (no package.json with a build script, no Go\n")
		w("  # main package, no compose file): describe what the release holds.\n")
		w("  app:\n    watch: [\"**\"]\n    build: mkdir -p dist && echo 'replace with your build' > dist/README\n    output: dist\n")
	}
	for _, c := range comps {
		w("  %s:\n", c.name)
		if c.note != "" {
			w("    # %s\n", c.note)
		}
		w("    watch: %s\n", c.watch)
		if c.lockfile != "" {
			w("    lockfile: %s\n", c.lockfile)
		}
		if c.install != "" {
			w("    install: %s\n", c.install)
		}
		if c.workdir != "" {
			w("    workdir: %s\n", c.workdir)
		}
		w("    build: %s\n", c.build)
		w("    output: %s\n", c.output)
	}
	if len(r.Migrations) > 0 {
		w("\n# Migrations found in %s. Uncomment and set run: the command that\n", strings.Join(r.Migrations, ", "))
		w("# applies them, run on the server in the new release's directory before\n")
		w("# it goes live, after a backup of the files listed (restored by a rollback).\n")
		w("# migrations:\n")
		w("#   watch: [%q]\n", r.Migrations[0]+"/**")
		w("#   run: ./backend/server migrate -db data/app.sqlite3\n")
		w("#   backup: [shared/data/app.sqlite3]\n")
	}
	w("\n")
	w("environments:\n")
	w("  # One environment; copy the block for staging and more. mage deploy\n")
	w("  # deploys the first, -env=<name> (or STAGECOACH_ENV) another.\n")
	w("  production:\n")
	w("    # The servers: user@host[:port], or names your ~/.ssh/config knows.\n")
	w("    hosts: [\"deploy@app.example.com\"]\n")
	w("    # Where releases live on them: <root>/releases/<id>, <root>/current\n")
	w("    # (point the web server at <root>/current/...), <root>/shared.\n")
	w("    root: /srv/%s\n", r.Name)
	w("    # Release paths that outlive releases, linked into <root>/shared:\n")
	w("    # the database, uploads.\n")
	w("    shared: [data]\n")
	w("    # Host keys are checked against ~/.ssh/known_hosts; keys come from\n")
	w("    # ssh-agent or ~/.ssh/id_ed25519, id_ecdsa, id_rsa. Elsewhere:\n")
	w("    # ssh: { known_hosts: deploy/known_hosts, identities: [deploy/id_ed25519], proxy_jump: bastion.example.com }\n")
	w("    # What <root>/shared/.env holds; secrets come from your environment\n")
	w("    # or .env and are never printed.\n")
	w("    # env: { vars: { APP_ENV: production }, secrets: [DATABASE_PASSWORD] }\n")
	w("    services:\n")
	if r.Compose != "" {
		w("      # docker compose up -d of these services, from the release's compose file.\n")
		w("      manager: compose\n")
		w("      file: deploy/%s\n", r.Compose)
		w("      restart: [%s]\n", strings.Join(r.Services, ", "))
	} else {
		w("      # none restarts nothing. systemd restarts units (restart: [myapp]);\n")
		w("      # command runs shell commands in the new release's directory with\n")
		w("      # shared/.env exported and STAGECOACH_RELEASE, STAGECOACH_ROOT and\n")
		w("      # STAGECOACH_HOST set, e.g.\n")
		w("      #   manager: command\n")
		w("      #   restart: ['kill \"$(cat ../../shared/app.pid)\" || true; nohup ./backend/app >> ../../shared/app.log 2>&1 &']\n")
		w("      manager: none\n")
	}
	w("    # Checked after every switch; a failure rolls the deploy back.\n")
	w("    # health:\n")
	w("    #   - http: \"http://{host}:8080/healthz\"\n")
	w("    #     expect: 200\n")
	w("    #   - command: ./backend/app healthcheck\n")
	w("    # health_wait: { deadline: 30s, interval: 500ms }\n")
	return b.String()
}
