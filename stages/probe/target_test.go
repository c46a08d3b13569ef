package probe

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

const token = "s3cret-health-token"

// TestHealthHeaders: an HTTP check sends its headers, ${NAME} resolved
// from the environment's values, and the resolved secret never shows in
// the results, even when the server echoes it back in a failure.
func TestHealthHeaders(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Region") != "eu" || r.Host != "app.example" {
			http.Error(w, "forbidden: got "+r.Header.Get("Authorization")+" for "+r.Host, http.StatusForbidden)
			return
		}
		if r.URL.Path == "/echo" {
			http.Error(w, "not ready; you sent "+r.Header.Get("Authorization"), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	values := map[string]string{"HEALTH_TOKEN": token, "REGION": "eu"}
	headers := map[string]string{"Authorization": "Bearer ${HEALTH_TOKEN}", "x-region": "${REGION}", "Host": "app.example"}
	wait := config.Wait{Deadline: 100 * time.Millisecond, Interval: 20 * time.Millisecond}
	target := Target{Host: "local", Values: values}

	ok := config.HealthCheck{HTTP: srv.URL + "/ok", Expect: 200, Timeout: time.Second, Headers: headers}
	if results, err := Run(context.Background(), []config.HealthCheck{ok}, wait, target); err != nil {
		t.Fatalf("the check with its headers failed: %v (%+v)", err, results)
	}

	echo := ok
	echo.HTTP = srv.URL + "/echo"
	results, err := Run(context.Background(), []config.HealthCheck{echo}, wait, target)
	if err == nil {
		t.Fatal("a failing check passed")
	}
	var log strings.Builder
	l := ui.New(&log, true)
	_, secrets := echo.ResolveHeaders(values)
	for _, s := range secrets {
		l.AddSecret(s)
	}
	for _, res := range results {
		l.Debugf("%s: %s after %d attempts", res.Check, res.Detail, res.Attempts)
	}
	l.Errorf("%v", err)
	js, _ := json.Marshal(results)
	for what, text := range map[string]string{"error": err.Error(), "results": string(js), "log": log.String()} {
		if strings.Contains(text, token) {
			t.Errorf("the %s shows the secret: %s", what, text)
		}
		if !strings.Contains(text, "not ready; you sent Bearer ***") {
			t.Errorf("the %s lacks the masked body: %s", what, text)
		}
	}
}

// TestCommandCheckInRelease: a command check runs in the release's
// directory, sees shared/.env and the STAGECOACH_* variables.
func TestCommandCheckInRelease(t *testing.T) {
	l := server.Layout{Root: filepath.Join(t.TempDir(), "srv root")}
	local := remote.NewLocal()
	if _, err := local.Run(context.Background(), server.Prepare(l).Cmd); err != nil {
		t.Fatal(err)
	}
	const id = "20261128T122605Z-b609e69"
	if err := os.MkdirAll(l.ReleaseDir(id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.EnvPath(), []byte("APP_PORT=8080\nGREETING='hello there'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "seen")
	check := config.HealthCheck{Timeout: 5 * time.Second, Command: `printf '%s|%s|%s|%s|%s|%s' "$PWD" "$APP_PORT" "$GREETING" "$STAGECOACH_RELEASE" "$STAGECOACH_ROOT" "$STAGECOACH_HOST" > "` + out + `"`}
	wait := config.Wait{Deadline: 100 * time.Millisecond, Interval: 20 * time.Millisecond}
	target := Target{Host: "local", Runner: local, Layout: l, Release: id}
	if _, err := Run(context.Background(), []config.HealthCheck{check}, wait, target); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{l.ReleaseDir(id), "8080", "hello there", id, l.Root, "local"}, "|")
	if string(got) != want {
		t.Errorf("the check saw\n%s\nwant\n%s", got, want)
	}

	// A check that tests the release's own files, relative to it.
	if err := os.WriteFile(filepath.Join(l.ReleaseDir(id), "VERSION"), []byte(id), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := config.HealthCheck{Timeout: 5 * time.Second, Command: `test "$(cat VERSION)" = "$STAGECOACH_RELEASE"`}
	if _, err := Run(context.Background(), []config.HealthCheck{rel}, wait, target); err != nil {
		t.Errorf("a check relative to the release failed: %v", err)
	}
	bad := config.HealthCheck{Timeout: 5 * time.Second, Command: "echo port $APP_PORT down >&2; exit 3"}
	if _, err := Run(context.Background(), []config.HealthCheck{bad}, wait, target); err == nil || !strings.Contains(err.Error(), "exit status 3: port 8080 down") {
		t.Errorf("error %v, want the exit status and stderr", err)
	}
}
