package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/plugins/sdk"
	"github.com/stagecoach/stagecoach/plugins/sdk/sdktest"
)

func failed(cfg map[string]any) sdk.Request {
	req := sdktest.NewRequest(cfg)
	req.Hook, req.Host, req.ReleasePath = "on-failure", "", ""
	req.Outcome = &sdk.Outcome{Result: "rolled-back", Stage: "health", Cause: "health failed: GET /healthz: 500", Duration: 2 * time.Second,
		Hosts: []sdk.HostOutcome{{Host: "deploy@web1:22", Before: "r1", After: "r1", Switched: true}}}
	return req
}

func TestWebhookJSONAndSlack(t *testing.T) {
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		bodies = append(bodies, string(b))
	}))
	defer srv.Close()
	w := webhook{getenv: envMap{"HOOK_URL": srv.URL + "/secret-token"}.get, client: srv.Client()}

	host := sdktest.NewHost().NoTarget("on-failure")
	msg, err := w.Run(context.Background(), failed(map[string]any{"url_env": "HOOK_URL"}), host)
	if err != nil || msg != "on-failure notification sent (json, status 200)" {
		t.Fatalf("Run = %q, %v", msg, err)
	}
	var p Payload
	if err := json.Unmarshal([]byte(bodies[0]), &p); err != nil {
		t.Fatal(err)
	}
	if p.Result != "rolled-back" || p.Stage != "health" || p.Cause == "" || p.Release != "20240102T030405Z-abc1234" ||
		len(p.Hosts) != 1 || !p.Hosts[0].Switched || p.DurationMS != 2000 || p.Environment != "production" {
		t.Errorf("payload %+v", p)
	}
	if len(host.Execs()) != 0 {
		t.Errorf("ran commands: %v", host.Execs())
	}
	if got := host.Messages(sdk.LevelDebug); len(got) != 1 || strings.Contains(got[0], "secret-token") {
		t.Errorf("debug lines %q", got)
	}

	for _, format := range []string{"slack", "mattermost"} {
		if _, err := w.Run(context.Background(), failed(map[string]any{"url_env": "HOOK_URL", "format": format}), host); err != nil {
			t.Fatal(err)
		}
		var text map[string]string
		if err := json.Unmarshal([]byte(bodies[len(bodies)-1]), &text); err != nil || len(text) != 1 {
			t.Fatalf("%s body %s: %v", format, bodies[len(bodies)-1], err)
		}
		for _, want := range []string{"Deploy of abc1234 to production: rolled-back at health", "deploy@web1:22: r1 → r1", "GET /healthz: 500"} {
			if !strings.Contains(text["text"], want) {
				t.Errorf("%s text %q lacks %q", format, text["text"], want)
			}
		}
	}
}

func TestWebhookFailuresHideTheURL(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL + "/secret-token"
	down.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "invalid_token", http.StatusForbidden)
	}))
	defer refusing.Close()
	env := envMap{"DOWN": url, "REFUSING": refusing.URL + "/secret-token"}
	w := webhook{getenv: env.get, client: &http.Client{}}
	for _, tc := range []struct {
		cfg  map[string]any
		want string
	}{
		{map[string]any{"url_env": "DOWN"}, "POST to the URL in DOWN: dial tcp"},
		{map[string]any{"url_env": "REFUSING"}, "POST to the URL in REFUSING: status 403: invalid_token"},
		{map[string]any{"url_env": "UNSET"}, "environment variable UNSET (config url_env) is not set"},
		{map[string]any{}, "config url_env is required"},
		{map[string]any{"url_env": "DOWN", "format": "teams"}, `config format "teams": expected json, slack or mattermost`},
	} {
		_, err := w.Run(context.Background(), failed(tc.cfg), sdktest.NewHost())
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "secret-token") {
			t.Errorf("%v: error %v; want %q without the URL", tc.cfg, err, tc.want)
		}
	}
	req := sdktest.NewRequest(map[string]any{"url_env": "DOWN"})
	if _, err := w.Run(context.Background(), req, sdktest.NewHost()); err == nil || !strings.Contains(err.Error(), "no deploy outcome at after-swap") {
		t.Errorf("at after-swap: %v", err)
	}
}

type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }
