package config

import (
	"strings"
	"testing"
	"time"
)

// slotted is an environment whose services run in slots behind nginx,
// with services changed by svc and health checks by health.
func slotted(svc, health string) string {
	if health == "" {
		health = "    health:\n      - http: \"http://127.0.0.1:{port}/healthz\"\n      - http: \"https://shop.example.com/healthz\"\n"
	}
	return "app: shop\ncomponents:\n  web:\n    watch: [\"web/**\"]\n    output: web/dist\n" +
		"environments:\n  prod:\n    hosts: [deploy@web1]\n    root: /srv/shop\n" +
		"    services:\n      manager: command\n      restart: [\"./server -addr 127.0.0.1:{port} &\"]\n      stop: [\"kill $(cat ../../shared/{port}.pid)\"]\n" +
		svc + health
}

const nginxRouter = "      slots: {ports: [8081, 8082]}\n      router: {nginx: {upstream: /etc/nginx/conf.d/shop-upstream.conf}}\n"

func TestSlotsValidAndDefaults(t *testing.T) {
	cfg, err := Parse([]byte(slotted(nginxRouter, "")), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Environments[0].Services
	if s.Slots == nil || s.Slots.Ports[0] != 8081 || s.Slots.Ports[1] != 8082 {
		t.Fatalf("slots = %+v", s.Slots)
	}
	if s.Drain != DefaultDrain {
		t.Errorf("drain = %s, want %s", s.Drain, DefaultDrain)
	}
	n := s.Router.Nginx
	if n.Upstream != "/etc/nginx/conf.d/shop-upstream.conf" || n.Name != "shop_backend" || n.Binary != "nginx" {
		t.Errorf("nginx router = %+v", n)
	}
	checks := cfg.Environments[0].Health
	if !checks[0].SlotCheck() || checks[1].SlotCheck() {
		t.Errorf("slot checks: %v, %v; want the first only", checks[0].SlotCheck(), checks[1].SlotCheck())
	}

	cfg, err = Parse([]byte(slotted("      slots: {ports: [9001, 9002]}\n      router: {command: \"switch-to {port}\"}\n      drain: 5s\n",
		"    health:\n      - command: \"curl -fsS 127.0.0.1:{port}/up\"\n")), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Environments[0].Services; s.Router.Command != "switch-to {port}" || s.Drain != 5*time.Second {
		t.Errorf("services = %+v", s)
	}
	if m := s.Router.Maintenance; m.Page != DefaultMaintenancePage || m.RetryAfter != DefaultRetryAfter {
		t.Errorf("maintenance defaults = %+v", m)
	}

	// A site file, with the maintenance page and Retry-After set; on and
	// off are plain keys, not YAML 1.1 booleans.
	cfg, err = Parse([]byte(slotted("      slots: {ports: [8081, 8082]}\n      router:\n        nginx: {site: /etc/nginx/stagecoach/shop.conf}\n        maintenance: {page: pages/down.html, retry_after: 90s}\n", "")), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Environments[0].Services.Router
	if r.Nginx.File() != "/etc/nginx/stagecoach/shop.conf" || r.Nginx.Upstream != "" || r.Maintenance.Page != "pages/down.html" || r.Maintenance.RetryAfter != 90*time.Second {
		t.Errorf("router = %+v, nginx %+v", r, r.Nginx)
	}
	cfg, err = Parse([]byte(slotted("      slots: {ports: [9001, 9002]}\n      router:\n        command: \"switch-to {port}\"\n        maintenance: {on: \"lb maint on\", off: \"lb maint off\"}\n",
		"    health:\n      - command: \"curl -fsS 127.0.0.1:{port}/up\"\n")), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	if m := cfg.Environments[0].Services.Router.Maintenance; m.On != "lb maint on" || m.Off != "lb maint off" {
		t.Errorf("command router's maintenance = %+v", m)
	}
}

// Without slots nothing changes: no drain default, no router.
func TestNoSlotsUnchanged(t *testing.T) {
	cfg, err := Parse([]byte(strings.Replace(slotted("", "    health:\n      - http: http://x/\n"), "      stop: [\"kill $(cat ../../shared/{port}.pid)\"]\n", "", 1)), "stagecoach.yml", "/p")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Environments[0].Services; s.Slots != nil || s.Router != nil || s.Drain != 0 {
		t.Errorf("services = %+v", s)
	}
}

func TestSlotsErrors(t *testing.T) {
	tests := []struct {
		name, svc, health, want string
	}{
		{"one port", "      slots: {ports: [8081]}\n      router: {command: x}\n", "",
			`stagecoach.yml:14: environments.prod.services.slots: slots need exactly two ports, blue's and green's, e.g. ports: [8081, 8082]; got 1`},
		{"same port", "      slots: {ports: [8081, 8081]}\n      router: {command: x}\n", "",
			`stagecoach.yml:14: environments.prod.services.slots.ports: the two slots need different ports, got 8081 twice`},
		{"port range", "      slots: {ports: [8081, 70000]}\n      router: {command: x}\n", "",
			`stagecoach.yml:14: environments.prod.services.slots.ports[1]: port 70000 is not a number from 1 to 65535`},
		{"port not a number", "      slots: {ports: [8081, http]}\n      router: {command: x}\n", "",
			`stagecoach.yml:14: environments.prod.services.slots.ports[1]: expected a whole number, got "http"`},
		{"no router", "      slots: {ports: [8081, 8082]}\n", "",
			`stagecoach.yml:14: environments.prod.services.router: slots need a router: router: {nginx: {site: /etc/nginx/stagecoach/shop.conf}} (a file included in the site's server block)`},
		{"empty router", "      slots: {ports: [8081, 8082]}\n      router: {}\n", "",
			`stagecoach.yml:15: environments.prod.services.router: a router needs nginx: {site: <file>} or command: <switches to {port}>`},
		{"both routers", "      slots: {ports: [8081, 8082]}\n      router: {command: x, nginx: {upstream: /etc/u.conf}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router: a router is either nginx or command, not both`},
		{"unknown router key", "      slots: {ports: [8081, 8082]}\n      router: {haproxy: x}\n", "",
			`stagecoach.yml:15: environments.prod.services.router: unknown key "haproxy" (expected one of: nginx, command, maintenance)`},
		{"no upstream", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {name: shop}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.nginx: upstream or site is required: the file Stagecoach owns, e.g. site: /etc/nginx/stagecoach/shop.conf, included in the site's server block (or upstream: /etc/nginx/conf.d/shop-upstream.conf, in the http block)`},
		{"upstream and site", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {upstream: /etc/u.conf, site: /etc/s.conf}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.nginx: give upstream (a file in nginx's http block) or site (a file in the site's server block), not both`},
		{"relative site", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {site: s.conf}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.nginx.site: "s.conf" must be a clean absolute path on the server`},
		{"maintenance page outside shared", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {site: /etc/s.conf}, maintenance: {page: ../x.html}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.maintenance.page: "../x.html" must be a clean path relative to shared/, e.g. maintenance.html`},
		{"maintenance page unsafe", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {site: /etc/s.conf}, maintenance: {page: \"a;b.html\"}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.maintenance.page: "a;b.html" holds a character nginx would interpret`},
		{"retry after in ms", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {site: /etc/s.conf}, maintenance: {retry_after: 1500ms}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.maintenance.retry_after: 1.5s: Retry-After is sent in whole seconds, 1s at least (e.g. 5m)`},
		{"maintenance commands with nginx", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {site: /etc/s.conf}, maintenance: {on: x, off: y}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.maintenance: on and off are a command router's own maintenance commands; with nginx, Stagecoach serves shared/maintenance.html itself`},
		{"maintenance on without off", "      slots: {ports: [8081, 8082]}\n      router: {command: x, maintenance: {on: x}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.maintenance: a command router's maintenance needs both on and off`},
		{"relative upstream", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {upstream: conf.d/u.conf}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.nginx.upstream: "conf.d/u.conf" must be a clean absolute path on the server`},
		{"unsafe upstream", "      slots: {ports: [8081, 8082]}\n      router:\n        nginx:\n          upstream: \"/etc/nginx/a;b.conf\"\n", "",
			`stagecoach.yml:17: environments.prod.services.router.nginx.upstream: "/etc/nginx/a;b.conf" holds a character nginx would interpret`},
		{"bad upstream name", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {upstream: /etc/u.conf, name: \"a b\"}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.nginx.name: "a b" may contain only letters, digits, - and _`},
		{"relative nginx conf", "      slots: {ports: [8081, 8082]}\n      router: {nginx: {upstream: /etc/u.conf, conf: nginx.conf}}\n", "",
			`stagecoach.yml:15: environments.prod.services.router.nginx.conf: "nginx.conf" must be an absolute path on the server`},
		{"no slot check", nginxRouter, "    health:\n      - http: https://shop.example.com/healthz\n",
			`stagecoach.yml:16: environments.prod: slots need a health check of the slot itself, run before any traffic reaches it, e.g. health: [{http: "http://127.0.0.1:{port}/healthz"}]`},
		{"port check without slots", "", "    health:\n      - http: \"http://127.0.0.1:{port}/healthz\"\n",
			`stagecoach.yml:15: environments.prod.health[0]: {port} names a slot's port, and services.slots is not set`},
		{"router without slots", "      router: {command: x}\n", "    health:\n      - http: http://x/\n",
			`stagecoach.yml:14: environments.prod.services.router: router is only used with slots`},
		{"drain without slots", "      drain: 10s\n", "    health:\n      - http: http://x/\n",
			`stagecoach.yml:14: environments.prod.services.drain: drain is only used with slots`},
		{"bad drain", nginxRouter + "      drain: soon\n", "",
			`stagecoach.yml:16: environments.prod.services.drain: "soon" is not a duration like 30s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(slotted(tt.svc, tt.health)), "stagecoach.yml", "/p")
			if err == nil {
				t.Fatalf("no error; want %s", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
		})
	}

	// Slots need the command manager's stop commands.
	noStop := strings.Replace(slotted(nginxRouter, ""), "      stop: [\"kill $(cat ../../shared/{port}.pid)\"]\n", "", 1)
	_, err := Parse([]byte(noStop), "stagecoach.yml", "/p")
	if want := "stagecoach.yml:10: environments.prod.services: slots need stop: the commands that stop the app in a slot"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
	manager := strings.Replace(slotted(nginxRouter, ""), "manager: command", "manager: none", 1)
	_, err = Parse([]byte(manager), "stagecoach.yml", "/p")
	if want := "environments.prod.services.manager: slots need a manager that starts the app: command, systemd or compose (manager is none)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
	systemd := strings.Replace(strings.Replace(slotted(nginxRouter, ""), "manager: command", "manager: systemd", 1),
		"      restart: [\"./server -addr 127.0.0.1:{port} &\"]\n      stop: [\"kill $(cat ../../shared/{port}.pid)\"]\n", "      restart: [shop@, worker]\n", 1)
	_, err = Parse([]byte(systemd), "stagecoach.yml", "/p")
	if want := `stagecoach.yml:12: environments.prod.services.restart[1]: with slots, a systemd unit is a template started once per slot: "worker" has no @ (e.g. shop@, which runs as shop@8081 and shop@8082)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v, want %s", err, want)
	}
	if _, err := Parse([]byte(strings.Replace(systemd, "shop@, worker", "shop@, \"worker@{port}.service\"", 1)), "stagecoach.yml", "/p"); err != nil {
		t.Errorf("systemd template units: %v", err)
	}
}
