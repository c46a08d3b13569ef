package slots_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/pipeline/pipelinetest"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/slots"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// fakeNginx is an nginx that logs its arguments to log and whose -t
// fails while the file refuse exists.
func fakeNginx(t *testing.T, dir string) (bin, log, refuse string) {
	t.Helper()
	bin, log, refuse = filepath.Join(dir, "nginx"), filepath.Join(dir, "nginx.log"), filepath.Join(dir, "refuse")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\ncase \"$*\" in *-t*) if [ -e %s ]; then echo 'nginx: [emerg] refused' >&2; exit 1; fi ;; esac\nexit 0\n", log, refuse)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log, refuse
}

// maintained runs mage maintenance's body: under the deploy locks.
func maintained(t *testing.T, e *runtest.Env, on bool) error {
	t.Helper()
	r := pipeline.New(e.Open(t, run.Options{}))
	defer r.Close()
	release, err := r.Hold(context.Background())
	if err != nil {
		return err
	}
	defer release()
	return r.Maintenance(context.Background(), on)
}

func routerState(t *testing.T, root string) server.RouterState {
	t.Helper()
	data, err := os.ReadFile(server.Layout{Root: root}.RouterStatePath())
	if err != nil {
		t.Fatal(err)
	}
	routed, err := server.ParseRouted(append(data, "--- current\n--- router\n"...))
	if err != nil {
		t.Fatal(err)
	}
	return routed.State
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMaintenanceNginxSite: maintenance on rewrites the site file to
// answer with the page (written by default), records who and when, and
// check warns with exit 0 and skips the public checks; a deploy and a
// rollback during it keep it on, gate the slot directly and are not
// rolled back by the public check that cannot pass; an nginx -t refusal
// changes nothing; off puts the plain site file back.
func TestMaintenanceNginxSite(t *testing.T) {
	dir := t.TempDir()
	nginx, nginxLog, refuse := fakeNginx(t, dir)
	site := filepath.Join(dir, "shop.conf")
	blue, green := freePort(t), freePort(t)
	// The public check fails while the site file answers 503, as a check
	// through the router would.
	e := runtest.New(t, runtest.Options{
		Health: fmt.Sprintf("      - command: test \"$(cat ../../shared/slot-{port})\" = \"$STAGECOACH_RELEASE\"\n      - command: \"! grep -q 'return 503' %s\"\n", site),
		Services: fmt.Sprintf(`    services:
      manager: command
      restart: ['echo "$STAGECOACH_RELEASE" > ../../shared/slot-{port}']
      stop: ['rm -f ../../shared/slot-{port}']
      slots: {ports: [%d, %d]}
      router:
        nginx: {site: %s, binary: %s}
        maintenance: {retry_after: 90s}
      drain: 100ms
`, blue, green, site, nginx)})
	a := pipelinetest.Deploy(t, e)
	root := e.Roots[0]
	l := server.Layout{Root: root}
	rc := e.Open(t, run.Options{})
	r := *rc.Env.Services.Router
	plain := func(slot string, port int) string {
		s, err := server.NginxFile(r, l, slot, port, false)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	maint := func(slot string, port int) string {
		s, err := server.NginxFile(r, l, slot, port, true)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := read(t, site); got != plain(server.SlotBlue, blue) {
		t.Fatalf("site file after the first deploy:\n%s", got)
	}

	os.Remove(nginxLog)
	if err := maintained(t, e, true); err != nil {
		t.Fatalf("maintenance on: %v\n%s", err, e.Log)
	}
	if got := read(t, site); got != maint(server.SlotBlue, blue) {
		t.Errorf("site file in maintenance:\n%s", got)
	}
	if got := read(t, filepath.Join(root, "shared", "maintenance.html")); got != server.DefaultMaintenancePage {
		t.Errorf("maintenance page: %q", got)
	}
	if got := read(t, nginxLog); !strings.Contains(got, "-t\n") || !strings.Contains(got, "-s reload\n") {
		t.Errorf("nginx was run with:\n%s", got)
	}
	st := routerState(t, root)
	if st.Maintenance == nil || st.Maintenance.By != fleet.WhoAmI() || st.Maintenance.Since.IsZero() || st.Router != maint(server.SlotBlue, blue) {
		t.Fatalf("state in maintenance: %+v (maintenance %+v)", st, st.Maintenance)
	}
	since := st.Maintenance.Since
	// Again: already on, nothing changes.
	if err := maintained(t, e, true); err != nil || !strings.Contains(e.Log.String(), "maintenance is already on") {
		t.Errorf("maintenance on twice: %v", err)
	}

	rep, err := check.Run(context.Background(), e.Open(t, run.Options{}))
	if err != nil || exitcode.Of(err) != exitcode.OK {
		t.Errorf("check in maintenance: exit %d, %v", exitcode.Of(err), err)
	}
	for _, c := range rep.Checks {
		switch c.Check {
		case check.KindRouter:
			if c.Status != check.StatusWarn || !strings.Contains(c.Message, "maintenance is on since "+since.Format("2006-01-02T15:04:05Z07:00")+" (by "+fleet.WhoAmI()+")") || !strings.Contains(c.Message, "answers") {
				t.Errorf("router check in maintenance: %s %q", c.Status, c.Message)
			}
		case check.KindHealth:
			if c.Status != check.StatusSkipped || !strings.Contains(c.Message, "maintenance is on") {
				t.Errorf("health check in maintenance: %s %q", c.Status, c.Message)
			}
		}
	}

	// A deploy during maintenance: gated on its slot, not rolled back by
	// the public check, and maintenance stays on, now for green.
	e.Write(t, "app/main.txt", "v2\n")
	e.Commit(t, "v2")
	b := pipelinetest.Deploy(t, e)
	if got := read(t, site); got != maint(server.SlotGreen, green) {
		t.Errorf("site file after a deploy in maintenance:\n%s", got)
	}
	if st := routerState(t, root); st.Maintenance == nil || !st.Maintenance.Since.Equal(since) || st.Live.Name != server.SlotGreen || st.Live.Release != b {
		t.Errorf("state after a deploy in maintenance: %+v", st)
	}
	if !strings.Contains(e.Log.String(), "the public checks through the router cannot pass and are skipped") {
		t.Errorf("the deploy's log does not say the public checks were skipped:\n%s", e.Log)
	}

	// A rollback during maintenance.
	rr := pipeline.New(e.Open(t, run.Options{}))
	release, err := rr.Hold(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rr.Rollback(context.Background()); err != nil {
		t.Fatalf("rollback in maintenance: %v\n%s", err, e.Log)
	}
	release()
	rr.Close()
	if got := read(t, site); got != maint(server.SlotBlue, blue) {
		t.Errorf("site file after a rollback in maintenance:\n%s", got)
	}
	if st := routerState(t, root); st.Maintenance == nil || st.Live.Release != a {
		t.Errorf("state after a rollback in maintenance: %+v", st)
	}

	// Off with nginx -t refusing: nothing changes.
	if err := os.WriteFile(refuse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = maintained(t, e, false)
	var refused *server.NginxTestError
	if !errors.As(err, &refused) {
		t.Fatalf("maintenance off with nginx -t refusing: %v, want *server.NginxTestError", err)
	}
	if got := read(t, site); got != maint(server.SlotBlue, blue) {
		t.Errorf("site file after a refused nginx -t:\n%s", got)
	}
	if st := routerState(t, root); st.Maintenance == nil {
		t.Errorf("state after a refused nginx -t: maintenance off")
	}
	os.Remove(refuse)

	if err := maintained(t, e, false); err != nil {
		t.Fatalf("maintenance off: %v", err)
	}
	if got := read(t, site); got != plain(server.SlotBlue, blue) {
		t.Errorf("site file after maintenance off:\n%s", got)
	}
	if st := routerState(t, root); st.Maintenance != nil || st.Router != plain(server.SlotBlue, blue) {
		t.Errorf("state after maintenance off: %+v", st)
	}

	// On with nginx -t refusing: nothing changes either; the app's own
	// page is kept.
	own := "<p>back at noon</p>\n"
	if err := os.WriteFile(filepath.Join(root, "shared", "maintenance.html"), []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(refuse, nil, 0o644)
	if err := maintained(t, e, true); !errors.As(err, &refused) {
		t.Fatalf("maintenance on with nginx -t refusing: %v", err)
	}
	if got := read(t, site); got != plain(server.SlotBlue, blue) {
		t.Errorf("site file after a refused nginx -t:\n%s", got)
	}
	if st := routerState(t, root); st.Maintenance != nil {
		t.Errorf("state after a refused nginx -t: maintenance on")
	}
	if got := read(t, filepath.Join(root, "shared", "maintenance.html")); got != own {
		t.Errorf("the app's own page was replaced: %q", got)
	}
}

// TestMaintenanceRefused: an upstream file in the http block, a command
// router without maintenance commands and an environment without slots
// each get an error saying what to configure, and nothing changes.
func TestMaintenanceRefused(t *testing.T) {
	dir := t.TempDir()
	nginx, _, _ := fakeNginx(t, dir)
	blue, green := freePort(t), freePort(t)
	svc := func(router string) string {
		return fmt.Sprintf(`    services:
      manager: command
      restart: ['echo "$STAGECOACH_RELEASE" > ../../shared/slot-{port}']
      stop: ['rm -f ../../shared/slot-{port}']
      slots: {ports: [%d, %d]}
      router: %s
      drain: 100ms
`, blue, green, router)
	}
	health := "      - command: test \"$(cat ../../shared/slot-{port})\" = \"$STAGECOACH_RELEASE\"\n"
	upstream := filepath.Join(dir, "shop-upstream.conf")
	for _, tt := range []struct {
		name, router string
		want         error
		file         string
	}{
		{"upstream file", fmt.Sprintf("{nginx: {upstream: %s, binary: %s}}", upstream, nginx), server.ErrMaintenanceNeedsSite, upstream},
		{"command router without maintenance", "{command: 'true'}", server.ErrNoMaintenanceCommand, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := runtest.New(t, runtest.Options{Health: health, Services: svc(tt.router)})
			pipelinetest.Deploy(t, e)
			var before string
			if tt.file != "" {
				before = read(t, tt.file)
			}
			stBefore := read(t, server.Layout{Root: e.Roots[0]}.RouterStatePath())
			if err := maintained(t, e, true); !errors.Is(err, tt.want) {
				t.Fatalf("maintenance on: %v, want %v", err, tt.want)
			}
			if tt.file != "" && read(t, tt.file) != before {
				t.Error("the router file changed")
			}
			if read(t, server.Layout{Root: e.Roots[0]}.RouterStatePath()) != stBefore {
				t.Error("the slots' state changed")
			}
		})
	}
	t.Run("no slots", func(t *testing.T) {
		e := runtest.New(t, runtest.Options{})
		pipelinetest.Deploy(t, e)
		err := maintained(t, e, true)
		if !errors.Is(err, slots.ErrNoRouter) || exitcode.Of(err) != exitcode.BadConfig {
			t.Fatalf("maintenance without slots: %v (exit %d), want ErrNoRouter, exit %d", err, exitcode.Of(err), exitcode.BadConfig)
		}
	})
}

// TestMaintenanceCommandRouter: a command router's maintenance commands
// run with the live slot's port, on and off, and again after a deploy's
// switch while maintenance is on.
func TestMaintenanceCommandRouter(t *testing.T) {
	blue, green := freePort(t), freePort(t)
	e := runtest.New(t, runtest.Options{
		Health: "      - command: test \"$(cat ../../shared/slot-{port})\" = \"$STAGECOACH_RELEASE\"\n",
		Services: fmt.Sprintf(`    services:
      manager: command
      restart: ['echo "$STAGECOACH_RELEASE" > ../../shared/slot-{port}']
      stop: ['rm -f ../../shared/slot-{port}']
      slots: {ports: [%d, %d]}
      router:
        command: 'echo "switch {port}" >> ../../shared/router.log'
        maintenance: {on: 'echo "on {port} $PORT" >> ../../shared/router.log', off: 'echo "off {port}" >> ../../shared/router.log'}
      drain: 100ms
`, blue, green)})
	pipelinetest.Deploy(t, e)
	log := filepath.Join(e.Roots[0], "shared", "router.log")
	if err := maintained(t, e, true); err != nil {
		t.Fatalf("maintenance on: %v\n%s", err, e.Log)
	}
	e.Write(t, "app/main.txt", "v2\n")
	e.Commit(t, "v2")
	pipelinetest.Deploy(t, e)
	if err := maintained(t, e, false); err != nil {
		t.Fatalf("maintenance off: %v", err)
	}
	want := fmt.Sprintf("switch %d\non %d %d\nswitch %d\non %d %d\noff %d\n", blue, blue, blue, green, green, green, green)
	if got := read(t, log); got != want {
		t.Errorf("router commands:\n%s\nwant:\n%s", got, want)
	}
}
