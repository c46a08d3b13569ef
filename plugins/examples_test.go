package plugins_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/ui"
)

func TestDeployNoteOverSSH(t *testing.T) {
	r := target(t)
	dc := deployContext(t)
	s := config.Plugin{Name: "deploynote", Path: bin(t, "deploynote"), At: "after-swap", Timeout: 30 * time.Second,
		Config: map[string]any{"message": "Deployed by CI"}}
	res, err := plugins.Run(context.Background(), s, dc, r, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dc.Root, "shared", "DEPLOY_NOTE")
	if res.Message != "note written to "+file {
		t.Errorf("message = %q", res.Message)
	}
	note, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("note on the target: %v", err)
	}
	for _, want := range []string{"release: " + dc.Release + "\n", "revision: abc1234def\n", "previous: 0123456789\n",
		"changed: backend, frontend\n", "environment: test\n", "message: Deployed by CI\n"} {
		if !strings.Contains(string(note), want) {
			t.Errorf("note lacks %q:\n%s", want, note)
		}
	}
}

func TestSmokeTestOverSSH(t *testing.T) {
	r := target(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/healthz" {
			http.Error(w, "no such page", http.StatusNotFound)
		}
	}))
	defer web.Close()
	dc := deployContext(t)
	server := filepath.Join(dc.ReleasePath, "backend", "server")
	os.MkdirAll(filepath.Dir(server), 0o755)
	os.WriteFile(server, []byte("#!/bin/sh\necho \"restaurant 1.2.3 $1\"\n"), 0o755)

	smoke := func(cfg map[string]any) config.Plugin {
		return config.Plugin{Name: "smoketest", Path: bin(t, "smoketest"), At: "before-swap", Timeout: 30 * time.Second, Config: cfg}
	}
	res, err := plugins.Run(context.Background(), smoke(map[string]any{"expect": "restaurant 1.2.3 version", "url": web.URL + "/healthz"}), dc, r, ui.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if want := "release " + dc.Release + ": command ok, GET 200"; res.Message != want {
		t.Errorf("message = %q, want %q", res.Message, want)
	}

	_, err = plugins.Run(context.Background(), smoke(map[string]any{"url": web.URL + "/missing"}), dc, r, ui.Discard())
	mustContain(t, err, "plugin smoketest at before-swap: GET "+web.URL+"/missing: status 404, expected 200: no such page")

	os.Remove(server)
	_, err = plugins.Run(context.Background(), smoke(nil), dc, r, ui.Discard())
	mustContain(t, err, "plugin smoketest at before-swap: test -x backend/server && ./backend/server version in release "+dc.Release+": exit status 1")
}
