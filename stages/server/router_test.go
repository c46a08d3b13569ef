package server

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

// TestNginxSite: the exact site file, plain and in maintenance, and the
// port FilePort reads back from each.
func TestNginxSite(t *testing.T) {
	n := config.NginxRouter{Site: "/etc/nginx/stagecoach/shop.conf", Name: "shop_backend"}
	m := config.Maintenance{Page: "pages/down.html", RetryAfter: 90 * time.Second}
	plain := "# Written by Stagecoach at each switch and by mage maintenance; edits are overwritten.\n# Live slot: green.\nset $shop_backend 127.0.0.1:8082;\n"
	got, err := NginxSite(n, "/srv/shop/shared", m, SlotGreen, 8082, false)
	if err != nil || got != plain {
		t.Errorf("NginxSite:\n%s (%v)\nwant\n%s", got, err, plain)
	}
	maint := plain + `# Maintenance is on (mage maintenance off ends it): every request gets 503 and shared/pages/down.html.
error_page 503 @shop_backend_maintenance;
return 503;
location @shop_backend_maintenance {
    root /srv/shop/shared;
    try_files /pages/down.html =503;
    add_header Retry-After 90 always;
    add_header Cache-Control "no-store" always;
}
`
	got, err = NginxSite(n, "/srv/shop/shared", m, SlotGreen, 8082, true)
	if err != nil || got != maint {
		t.Errorf("NginxSite in maintenance:\n%s (%v)\nwant\n%s", got, err, maint)
	}
	for _, file := range []string{plain, maint, NginxUpstream(n, SlotGreen, 8082)} {
		if port, ok := (Routed{File: file}).FilePort(); !ok || port != 8082 {
			t.Errorf("FilePort(%q) = %d, %v", file, port, ok)
		}
	}
	if _, err := NginxSite(n, "/srv/my shop/shared", m, SlotGreen, 8082, true); err == nil || !strings.Contains(err.Error(), "holds a character nginx would interpret") {
		t.Errorf("NginxSite with a space in the root: %v", err)
	}
}

// TestNginxFile: the upstream form for an upstream file, which refuses
// maintenance, and the site form for a site file.
func TestNginxFile(t *testing.T) {
	l := Layout{Root: "/srv/shop"}
	m := config.Maintenance{Page: "maintenance.html", RetryAfter: time.Minute}
	up := config.Router{Nginx: &config.NginxRouter{Upstream: "/etc/nginx/conf.d/shop-upstream.conf", Name: "shop_backend"}, Maintenance: m}
	if got, err := NginxFile(up, l, SlotBlue, 8081, false); err != nil || got != NginxUpstream(*up.Nginx, SlotBlue, 8081) {
		t.Errorf("NginxFile(upstream) = %q, %v", got, err)
	}
	if _, err := NginxFile(up, l, SlotBlue, 8081, true); !errors.Is(err, ErrMaintenanceNeedsSite) {
		t.Errorf("NginxFile(upstream, maintenance) = %v, want ErrMaintenanceNeedsSite", err)
	}
	site := config.Router{Nginx: &config.NginxRouter{Site: "/etc/nginx/stagecoach/shop.conf", Name: "shop_backend"}, Maintenance: m}
	got, err := NginxFile(site, l, SlotBlue, 8081, true)
	if err != nil || !strings.Contains(got, "root /srv/shop/shared;\n") || !strings.Contains(got, "Retry-After 60 always") {
		t.Errorf("NginxFile(site, maintenance) = %q, %v", got, err)
	}
	site.Nginx.Binary = "nginx"
	want := nginxSwitchScript.cmd("switch", "/etc/nginx/stagecoach/shop.conf", strconv.Itoa(len(got)), "84", "nginx").Script
	if sw := NginxSwitch(*site.Nginx, "switch", got); sw.Cmd.Script != want {
		t.Errorf("NginxSwitch of a site file:\n%s\nwant\n%s", sw.Cmd.Script, want)
	}
}

// TestRouterMaintenanceCommand: the exact commands, and an error naming
// what to configure when there are none.
func TestRouterMaintenanceCommand(t *testing.T) {
	l := Layout{Root: "/srv/shop"}
	r := config.Router{Command: "lb to {port}", Maintenance: config.Maintenance{On: "lb maint on {port}", Off: "lb maint off"}}
	inRelease := func(cmd string) string {
		return "exec " + remote.Join(runInScript.argv(l.ReleaseDir(relA), l.EnvPath(), relA, l.Root, "/bin/sh", "-c", withPortScript.src, withPortScript.name, "8081", cmd)...)
	}
	on, err := RouterMaintenanceCommand(r, l, relA, 8081, true)
	if err != nil || on.Desc != "turn the router's maintenance on" || on.Script != inRelease("lb maint on 8081") {
		t.Errorf("on: %q %q, %v", on.Desc, on.Script, err)
	}
	off, err := RouterMaintenanceCommand(r, l, relA, 8081, false)
	if err != nil || off.Desc != "turn the router's maintenance off" || off.Script != inRelease("lb maint off") {
		t.Errorf("off: %q %q, %v", off.Desc, off.Script, err)
	}
	if _, err := RouterMaintenanceCommand(config.Router{Command: "x"}, l, relA, 8081, true); !errors.Is(err, ErrNoMaintenanceCommand) || !strings.Contains(err.Error(), "services.router.maintenance.on and .off") {
		t.Errorf("no commands: %v", err)
	}
}

// TestWriteMaintenancePage: the default page is written once, and an
// app's own page is kept.
func TestWriteMaintenancePage(t *testing.T) {
	l := newRoot(t)
	page := filepath.Join(l.SharedDir(), "pages", "down.html")
	res := mustRun(t, WriteMaintenancePage(l, "pages/down.html"), nil)
	if b, err := os.ReadFile(page); err != nil || string(b) != DefaultMaintenancePage || string(res.Stdout) != "wrote "+page+"\n" {
		t.Fatalf("default page: %q, %v; printed %q", b, err, res.Stdout)
	}
	if fi, _ := os.Stat(page); fi.Mode().Perm() != 0o644 {
		t.Errorf("page mode %v, want 644 (nginx's workers read it)", fi.Mode().Perm())
	}
	writeFile(t, page, "own\n")
	res = mustRun(t, WriteMaintenancePage(l, "pages/down.html"), nil)
	if b, _ := os.ReadFile(page); string(b) != "own\n" || string(res.Stdout) != "kept "+page+"\n" {
		t.Errorf("own page: %q; printed %q", b, res.Stdout)
	}
}
