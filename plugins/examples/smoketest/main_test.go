package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/plugins/sdk"
	"github.com/stagecoach/stagecoach/plugins/sdk/sdktest"
)

func TestSmoketestCommandRunsInTheRelease(t *testing.T) {
	host := sdktest.NewHost().OnExec("./backend/server version", sdk.ExecResult{Stdout: []byte("restaurant 1.2.3\nbuilt today\n")}, nil)
	req := sdktest.NewRequest(map[string]any{"expect": "restaurant"})
	msg, err := smoketest{}.Run(context.Background(), req, host)
	if err != nil || msg != "release 20240102T030405Z-abc1234: command ok" {
		t.Fatalf("Run = %q, %v", msg, err)
	}
	execs := host.Execs()
	want := "cd '/srv/app/releases/20240102T030405Z-abc1234' && test -x backend/server && ./backend/server version"
	if len(execs) != 1 || execs[0].Cmd != want {
		t.Errorf("ran %+v, want %q", execs, want)
	}
	if got := host.Messages(sdk.LevelInfo); len(got) != 1 || got[0] != "test -x backend/server && ./backend/server version: restaurant 1.2.3" {
		t.Errorf("logged %q", got)
	}
}

func TestSmoketestURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprint(w, "ok")
			return
		}
		http.Error(w, "no such page", http.StatusNotFound)
	}))
	defer srv.Close()

	host := sdktest.NewHost()
	msg, err := smoketest{}.Run(context.Background(), sdktest.NewRequest(map[string]any{"command": "", "url": srv.URL + "/healthz"}), host)
	if err != nil || msg != "release 20240102T030405Z-abc1234: GET 200" || len(host.Execs()) != 0 {
		t.Errorf("Run = %q, %v; ran %+v", msg, err, host.Execs())
	}
	msg, err = smoketest{}.Run(context.Background(), sdktest.NewRequest(map[string]any{"command": "", "url": srv.URL + "/gone", "status": 404}), host)
	if err != nil || msg != "release 20240102T030405Z-abc1234: GET 404" {
		t.Errorf("expecting 404: Run = %q, %v", msg, err)
	}
	_, err = smoketest{}.Run(context.Background(), sdktest.NewRequest(map[string]any{"command": "true", "url": srv.URL + "/gone"}), host)
	if err == nil || !strings.Contains(err.Error(), "/gone: status 404, expected 200: no such page") {
		t.Errorf("error %v", err)
	}
}

func TestSmoketestFailures(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	for _, tc := range []struct {
		name string
		host *sdktest.Host
		cfg  map[string]any
		want string
	}{
		{"command fails", sdktest.NewHost().OnExec("", sdk.ExecResult{ExitCode: 2, Stderr: []byte("server: not found")}, nil), nil,
			"in release 20240102T030405Z-abc1234: exit status 2: server: not found"},
		{"unexpected output", sdktest.NewHost().OnExec("", sdk.ExecResult{Stdout: []byte("bakery 1.0")}, nil), map[string]any{"expect": "restaurant"},
			`printed "bakery 1.0", expected it to contain "restaurant"`},
		{"url down", sdktest.NewHost(), map[string]any{"command": "", "url": downURL}, "GET " + downURL + ": "},
		{"no target", sdktest.NewHost().NoTarget("on-failure"), nil, "no deploy target at on-failure"},
	} {
		_, err := smoketest{}.Run(context.Background(), sdktest.NewRequest(tc.cfg), tc.host)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}
