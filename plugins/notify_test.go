package plugins_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/config"
)

func TestNotifyWebhook(t *testing.T) {
	got := make(chan map[string]any, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &body)
		got <- body
	}))
	defer srv.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL + "/down-token"
	down.Close()
	t.Setenv("NOTIFY_URL", srv.URL+"/hook-token")
	t.Setenv("DOWN_URL", downURL)

	hook := func(name, at, env string) config.Plugin {
		return config.Plugin{Name: name, Path: bin(t, "webhook"), At: at, Timeout: 30 * time.Second,
			Config: map[string]any{"url_env": env, "format": "slack"}}
	}
	specs := []config.Plugin{hook("down", "on-failure", "DOWN_URL"), hook("slack", "on-failure", "NOTIFY_URL"), hook("ok", "on-success", "NOTIFY_URL")}
	dc := deployContext(t)
	dc.Outcome = &plugins.Outcome{Result: "failed", Stage: "build", Cause: "npm ci: token s3cr3t rejected",
		Hosts: []plugins.HostOutcome{{Host: "web1", Before: "r1", After: "r1"}}}
	log, out := newLog(false)
	log.AddSecret("s3cr3t")
	// A cancelled deploy is notified too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	results, errs := plugins.Notify(ctx, specs, "on-failure", dc, log)
	if len(results) != 2 || len(errs) != 1 {
		t.Fatalf("results %+v, errs %v", results, errs)
	}
	mustContain(t, errs[0], "plugin down at on-failure: POST to the URL in DOWN_URL:", "the deploy's outcome stands")
	if strings.Contains(out.String(), "down-token") || !strings.Contains(out.String(), "WARN plugin down at on-failure") {
		t.Errorf("log:\n%s", out)
	}
	if results[1].Message != "on-failure notification sent (slack, status 200)" {
		t.Errorf("message %q", results[1].Message)
	}
	body := <-got
	text, _ := body["text"].(string)
	for _, want := range []string{"failed at build", "web1: r1 → r1", "token *** rejected"} {
		if !strings.Contains(text, want) {
			t.Errorf("text %q lacks %q", text, want)
		}
	}
	if strings.Contains(text, "s3cr3t") {
		t.Errorf("secret in %q", text)
	}
	if len(got) != 0 {
		t.Errorf("on-success plugin ran at on-failure")
	}
}
