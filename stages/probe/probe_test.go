package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

func TestHealthHTTP(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(`{"status":"ok"}`))
		case "/eventually":
			if n < 3 {
				http.Error(w, "starting", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte(`{"status":"ok"}`))
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/down":
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	wait := config.Wait{Deadline: 1 * time.Second, Interval: 20 * time.Millisecond}
	tests := []struct {
		name, path, body string
		timeout          time.Duration
		wantErr          string
	}{
		{name: "ok", path: "/ok", body: `"status":"ok"`},
		{name: "retried until healthy", path: "/eventually"},
		{name: "wrong status", path: "/down", wantErr: "status 503, expected 200: database unreachable"},
		{name: "body lacks text", path: "/ok", body: "version", wantErr: `body lacks "version"`},
		{name: "slow past timeout", path: "/slow", timeout: 50 * time.Millisecond, wantErr: "no answer within 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = time.Second
			}
			check := config.HealthCheck{HTTP: strings.Replace(srv.URL, "127.0.0.1", "{host}", 1) + tt.path, Expect: 200, Body: tt.body, Timeout: timeout}
			results, err := Run(context.Background(), []config.HealthCheck{check}, wait, Target{Host: "deploy@127.0.0.1:22"})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !results[0].OK {
					t.Fatalf("result not ok: %+v", results[0])
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if results[0].Attempts < 2 {
				t.Errorf("a failing check should be retried until the deadline, got %d attempts", results[0].Attempts)
			}
		})
	}
}

func TestHealthCommand(t *testing.T) {
	local := remote.NewLocal()
	wait := config.Wait{Deadline: 300 * time.Millisecond, Interval: 20 * time.Millisecond}
	ok := config.HealthCheck{Command: "test -d /", Timeout: time.Second}
	bad := config.HealthCheck{Command: "echo service down >&2; exit 3", Timeout: time.Second}
	if _, err := Run(context.Background(), []config.HealthCheck{ok}, wait, Target{Host: "local", Runner: local}); err != nil {
		t.Fatalf("passing command check failed: %v", err)
	}
	_, err := Run(context.Background(), []config.HealthCheck{ok, bad}, wait, Target{Host: "local", Runner: local})
	if err == nil || !strings.Contains(err.Error(), "exit status 3: service down") {
		t.Fatalf("error %v, want exit status and stderr", err)
	}
}

// TestCheckNames: a check is named by its position and kind, with the URL
// of an HTTP check, never by a command's script.
func TestCheckNames(t *testing.T) {
	script := "curl -fsS localhost:8080/healthz \\\n  | grep -q ok"
	for _, tc := range []struct {
		check config.HealthCheck
		i     int
		want  string
	}{
		{config.HealthCheck{HTTP: "http://{host}:8080/healthz"}, 0, "health[0] GET http://web1:8080/healthz"},
		{config.HealthCheck{Command: script}, 1, "health[1] command"},
		{config.HealthCheck{Command: "true"}, 0, "health[0] command"},
	} {
		if got := describeCheck(tc.check, tc.i, "deploy@web1:22"); got != tc.want {
			t.Errorf("describeCheck(%+v, %d) = %q, want %q", tc.check, tc.i, got, tc.want)
		}
	}
}

// TestFailingCommandCheckNamesItsScriptOnce: the error of a failing
// multi-line command check does not repeat the script.
func TestFailingCommandCheckNamesItsScriptOnce(t *testing.T) {
	script := "echo checking\necho queue down >&2\nexit 3"
	wait := config.Wait{Deadline: 50 * time.Millisecond, Interval: 20 * time.Millisecond}
	results, err := Run(context.Background(), []config.HealthCheck{{Command: script, Timeout: time.Second}}, wait, Target{Host: "local", Runner: remote.NewLocal()})
	if err == nil {
		t.Fatal("a failing check passed")
	}
	msg := err.Error()
	if !strings.Contains(msg, "health[0] command") || !strings.Contains(msg, "queue down") {
		t.Errorf("error %q lacks the check's name or its stderr", msg)
	}
	if strings.Contains(msg, "exit 3") {
		t.Errorf("error %q holds the script", msg)
	}
	if len(results) != 1 || results[0].Script != script {
		t.Errorf("results %+v, want the script kept for debug lines", results)
	}
}
