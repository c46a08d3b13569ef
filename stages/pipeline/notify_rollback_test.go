package pipeline

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/run/runtest"
)

// webhookPayload is what plugins/examples/webhook POSTs as JSON.
type webhookPayload struct {
	Hook, Result, Stage, Cause, Release string
	Hosts                               []struct {
		Host     string
		Before   string `json:"release_before"`
		After    string `json:"release_after"`
		Switched bool
	}
}

// TestRollbackByHandNotifiesAfterRollback: mage rollback runs the
// after-rollback hook point, with the releases before and after, and
// rollback-failed with the cause when the rollback fails.
func TestRollbackByHandNotifiesAfterRollback(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "webhook")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/examples/webhook").CombinedOutput(); err != nil {
		t.Fatalf("build the webhook plugin: %v\n%s", err, out)
	}
	got := make(chan webhookPayload, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p webhookPayload
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &p); err != nil {
			t.Errorf("payload %s: %v", b, err)
		}
		got <- p
	}))
	defer srv.Close()
	t.Setenv("ROLLBACK_HOOK_URL", srv.URL)

	e, v1 := deployed(t, runtest.Options{}, false)
	v2 := mustDeploy(t, e)
	withHook := func(rc *run.Context) {
		rc.Cfg.Plugins = append(rc.Cfg.Plugins, config.Plugin{Name: "notify", Path: bin, At: "after-rollback",
			Timeout: 30 * time.Second, Config: map[string]any{"url_env": "ROLLBACK_HOOK_URL"}})
	}
	rollBack := func(opts run.Options) error {
		r := open(t, e, opts, withHook)
		release, err := r.Hold(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		return r.Rollback(context.Background())
	}

	if err := rollBack(run.Options{}); err != nil {
		t.Fatalf("rollback: %v\n%s", err, e.Log)
	}
	p := <-got
	if p.Hook != "after-rollback" || p.Result != "rollback" || p.Release != v1 || p.Cause != "" ||
		len(p.Hosts) != 1 || p.Hosts[0].Before != v2 || p.Hosts[0].After != v1 || !p.Hosts[0].Switched {
		t.Errorf("after rollback to %s from %s: payload %+v", v1, v2, p)
	}

	if err := rollBack(run.Options{Release: v1}); err == nil {
		t.Fatal("a rollback to the live release succeeded")
	}
	p = <-got
	if p.Result != "rollback-failed" || p.Stage != "rollback" || p.Cause == "" ||
		len(p.Hosts) != 1 || p.Hosts[0].Before != v1 || p.Hosts[0].After != v1 || p.Hosts[0].Switched {
		t.Errorf("after a failed rollback: payload %+v", p)
	}
}
