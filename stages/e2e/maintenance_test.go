package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// maintenance runs mage maintenance's body: under the deploy lock.
func (s *slotSite) maintenance(t *testing.T, ctx context.Context, on bool) (string, error) {
	t.Helper()
	r, out := openRun(t, s.p, pipeline.Options{})
	defer r.Close()
	release, err := r.Hold(ctx)
	if err != nil {
		return out.String(), err
	}
	defer release()
	return out.String(), r.Maintenance(ctx, on)
}

// wantMaintenance asks nginx for pages of the whole site, the frontend's
// as well as the backend's: each must be a 503 with Retry-After and the
// maintenance page.
func (s *slotSite) wantMaintenance(t *testing.T, page string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	for _, path := range []string{"/", "/index.html", "/healthz", "/api/menu", "/assets/app.js", "/no/such/page"} {
		resp, err := client.Get(s.web.URL + path)
		if err != nil {
			t.Errorf("GET %s in maintenance: %v", path, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "90" || string(body) != page ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET %s in maintenance: %d, Retry-After %q, Content-Type %q, body %.120q; want 503, Retry-After 90, the page",
				path, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), body)
		}
	}
}

// TestSlotsMaintenance: against the real nginx and sshd, under a load,
// maintenance on makes every request of the site a 503 with Retry-After
// and the page, check reports it (exit 0) and the state records who and
// when; a deploy during it goes live behind the maintenance page; off
// brings the traffic back, and no request fails on the way (an answer is
// the app's or the whole page); mage rollback during it keeps it on too;
// nginx -t refusing while turning it on changes nothing.
func TestSlotsMaintenance(t *testing.T) {
	s := newSiteSlotSite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	first, err := s.deploy(t, ctx, 0)
	if err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	s.wantLive(t, first, server.SlotBlue)
	page := server.DefaultMaintenancePage

	load := testenv.StartLoad(ctx, testenv.LoadConfig{
		BaseURL: s.web.URL,
		Workers: 4,
		Paths: func() []string {
			time.Sleep(2 * time.Millisecond)
			return []string{"/healthz", "/api/menu"}
		},
		Check: func(path string, status int, body []byte) error {
			if status == http.StatusServiceUnavailable && string(body) == page {
				return nil
			}
			return s.check(path, status, body)
		},
		Version: func(path string, body []byte) string {
			if string(body) == page {
				return "maintenance"
			}
			return healthzVersion(path, body)
		},
		MaxRequests: 10_000_000,
		MaxDuration: 15 * time.Minute,
	})
	defer load.Stop()
	waitRequests(t, load, 100)

	log, err := s.maintenance(t, ctx, true)
	if err != nil {
		t.Fatalf("maintenance on: %v\n%s", err, log)
	}
	s.wantMaintenance(t, page)
	if got := readFile(t, filepath.Join(s.root, "shared", "maintenance.html")); got != page {
		t.Errorf("shared/maintenance.html: %q", got)
	}
	st, port := s.routed(t)
	if st.Maintenance == nil || st.Maintenance.By != fleet.WhoAmI() || time.Since(st.Maintenance.Since) > 10*time.Minute || port != s.blue {
		t.Errorf("state in maintenance: %+v, router file on port %d", st.Maintenance, port)
	}

	r, out := openRun(t, s.p, pipeline.Options{})
	rep, err := r.Check(ctx)
	r.Close()
	if exitcode.Of(err) != exitcode.OK {
		t.Errorf("check in maintenance: exit %d: %v\n%s", exitcode.Of(err), err, out)
	}
	for _, c := range rep.Checks {
		if c.Check == check.KindRouter && (c.Status != check.StatusWarn || !strings.Contains(c.Message, "maintenance is on since") || !strings.Contains(c.Message, "answers")) {
			t.Errorf("router check in maintenance: %s %q", c.Status, c.Message)
		}
	}

	// A deploy during maintenance: health-gated on its slot, the public
	// check through nginx (a 503 now) skipped, maintenance kept.
	second, err := s.deploy(t, ctx, 1)
	if err != nil {
		t.Fatalf("deploy during maintenance: %v", err)
	}
	if !strings.Contains(s.lastLog, "the public checks through the router cannot pass and are skipped") {
		t.Errorf("the deploy's log does not say why the public checks were skipped:\n%s", s.lastLog)
	}
	st, port = s.routed(t)
	if st.Maintenance == nil || st.Live == nil || st.Live.Release != second || st.Live.Name != server.SlotGreen || port != s.green {
		t.Errorf("after a deploy in maintenance: live %+v, maintenance %+v, router file on port %d", st.Live, st.Maintenance, port)
	}
	s.wantMaintenance(t, page)

	// mage rollback during maintenance: the first release starts in blue
	// again, gated there, and maintenance stays on.
	rr, rout := openRun(t, s.p, pipeline.Options{})
	release, err := rr.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = rr.Rollback(ctx)
	release()
	rr.Close()
	if err != nil {
		t.Fatalf("rollback during maintenance: %v\n%s", err, rout)
	}
	st, port = s.routed(t)
	if st.Maintenance == nil || st.Live == nil || st.Live.Release != first || st.Live.Name != server.SlotBlue || port != s.blue {
		t.Errorf("after a rollback in maintenance: live %+v, maintenance %+v, router file on port %d", st.Live, st.Maintenance, port)
	}
	s.wantMaintenance(t, page)

	if log, err := s.maintenance(t, ctx, false); err != nil {
		t.Fatalf("maintenance off: %v\n%s", err, log)
	}
	s.wantLive(t, first, server.SlotBlue)
	if st, _ := s.routed(t); st.Maintenance != nil {
		t.Errorf("state after maintenance off: %+v", st.Maintenance)
	}
	s.wantServing(t, "after maintenance off")

	// nginx -t refusing while maintenance turns on: nothing changes.
	before, stBefore := readFile(t, s.upstream), readFile(t, server.Layout{Root: s.root}.RouterStatePath())
	conf := readFile(t, s.web.ConfigFile)
	if err := os.WriteFile(s.web.ConfigFile, []byte(conf+"\nthis_is_no_directive;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = s.maintenance(t, ctx, true)
	if werr := os.WriteFile(s.web.ConfigFile, []byte(conf), 0o644); werr != nil {
		t.Fatal(werr)
	}
	var refused *server.NginxTestError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "this_is_no_directive") {
		t.Fatalf("maintenance on with a broken nginx config: %v", err)
	}
	if got := readFile(t, s.upstream); got != before {
		t.Errorf("site file changed by a refused maintenance:\n%s", got)
	}
	if got := readFile(t, server.Layout{Root: s.root}.RouterStatePath()); got != stBefore {
		t.Errorf("state changed by a refused maintenance:\n%s", got)
	}
	s.wantServing(t, "after the refused maintenance")

	after, _ := load.Progress()
	waitRequests(t, load, after+100)
	lrep := load.Stop()
	t.Logf("load: %s", lrep)
	if lrep.Failures != 0 {
		t.Errorf("%d failed requests around maintenance:\n%s", lrep.Failures, strings.Join(lrep.FailureSamples, "\n"))
	}
	if lrep.ByVersion["maintenance"] == 0 || lrep.ByVersion[first] == 0 {
		t.Errorf("answers by version: %v; want the maintenance page and the first release", lrep.ByVersion)
	}
	if n := lrep.ByVersion[second]; n != 0 {
		t.Errorf("the release deployed and rolled back during maintenance answered %d requests through nginx", n)
	}
	for v, n := range lrep.ByVersion {
		if v != "maintenance" && v != "" && v != first && v != second {
			t.Errorf("%d answers from version %q, which is no release deployed", n, v)
		}
	}
}

// wantServing checks that nginx sends /healthz to the app again.
func (s *slotSite) wantServing(t *testing.T, when string) {
	t.Helper()
	resp := get(t, s.web.URL+"/healthz", nil)
	if err := s.check("/healthz", resp.status, []byte(resp.body)); err != nil {
		t.Errorf("%s: %v", when, err)
	}
}
