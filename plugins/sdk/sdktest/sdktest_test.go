package sdktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/plugins/sdk"
	"github.com/stagecoach/stagecoach/plugins/sdk/sdktest"
)

func TestNewRequestCarriesTheConfig(t *testing.T) {
	type cfg struct {
		Message string `json:"message"`
		N       int    `json:"n"`
	}
	for name, in := range map[string]any{
		"struct": cfg{Message: "hi", N: 2},
		"map":    map[string]any{"message": "hi", "n": 2},
		"bytes":  []byte(`{"message":"hi","n":2}`),
		"raw":    json.RawMessage(`{"message":"hi","n":2}`),
	} {
		req := sdktest.NewRequest(in)
		var got cfg
		if err := req.Config(&got); err != nil || got != (cfg{"hi", 2}) {
			t.Errorf("%s: Config = %+v, %v", name, got, err)
		}
		if req.Hook != "after-swap" || req.Root != "/srv/app" || !strings.HasPrefix(req.ReleasePath, req.Root+"/releases/"+req.Release) {
			t.Errorf("%s: request %+v", name, req)
		}
	}
	got := cfg{Message: "default"}
	if err := sdktest.NewRequest(nil).Config(&got); err != nil || got.Message != "default" {
		t.Errorf("no config: Config = %+v, %v; want the defaults kept", got, err)
	}
}

func TestNewRequestPanicsOnConfigThatIsNotJSON(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "encode config") {
			t.Errorf("recovered %v", r)
		}
	}()
	sdktest.NewRequest(map[string]any{"f": func() {}})
}

func TestHostAnswersNewestMatchFirstAndRecords(t *testing.T) {
	ctx := context.Background()
	h := sdktest.NewHost().
		OnExec("", sdk.ExecResult{Stdout: []byte("any")}, nil).
		OnExec("systemctl", sdk.ExecResult{ExitCode: 3, Stderr: []byte("inactive")}, nil).
		OnExecFunc("echo", func(c sdktest.ExecCall) (sdk.ExecResult, error) {
			return sdk.ExecResult{Stdout: append([]byte("got "), c.Stdin...)}, nil
		}).
		AddFile("/srv/app/VERSION", []byte("1.0\n"))

	if res, err := h.Exec(ctx, "uptime"); err != nil || string(res.Stdout) != "any" {
		t.Errorf("catch-all: %+v, %v", res, err)
	}
	if res, err := h.Exec(ctx, "systemctl is-active app"); err != nil || res.ExitCode != 3 || res.Err() == nil {
		t.Errorf("specific: %+v, %v", res, err)
	}
	if res, err := h.ExecInput(ctx, "echo", []byte("input")); err != nil || string(res.Stdout) != "got input" {
		t.Errorf("func: %+v, %v", res, err)
	}
	if _, err := h.ExecInput(ctx, "cat", nil); err != nil {
		t.Fatal(err)
	}
	execs := h.Execs()
	if len(execs) != 4 || execs[0].Stdin != nil || string(execs[2].Stdin) != "input" || execs[3].Stdin == nil {
		t.Errorf("recorded %+v; want Exec's stdin nil, ExecInput's never", execs)
	}

	if data, err := h.ReadFile(ctx, "/srv/app/VERSION"); err != nil || string(data) != "1.0\n" {
		t.Errorf("ReadFile = %q, %v", data, err)
	}
	if _, err := h.ReadFile(ctx, "/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if got := h.Reads(); len(got) != 2 || got[1] != "/nope" {
		t.Errorf("reads %q", got)
	}

	h.Logf("info %d", 1)
	h.Debugf("debug")
	h.Warnf("warn")
	h.Errorf("error")
	if logs := h.Logs(); len(logs) != 4 || logs[0] != (sdktest.LogLine{Level: sdk.LevelInfo, Message: "info 1"}) {
		t.Errorf("logs %+v", logs)
	}
	for level, want := range map[string]string{sdk.LevelDebug: "debug", sdk.LevelWarn: "warn", sdk.LevelError: "error"} {
		if got := h.Messages(level); len(got) != 1 || got[0] != want {
			t.Errorf("%s messages %q", level, got)
		}
	}
}

func TestHostWithoutTargetAndCancelled(t *testing.T) {
	h := sdktest.NewHost().NoTarget("on-failure").AddFile("/f", nil)
	if _, err := h.Exec(context.Background(), "true"); err == nil || !strings.Contains(err.Error(), "no deploy target at on-failure") {
		t.Errorf("Exec: %v", err)
	}
	if _, err := h.ReadFile(context.Background(), "/f"); err == nil || !strings.Contains(err.Error(), "no deploy target at on-failure") {
		t.Errorf("ReadFile: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h = sdktest.NewHost()
	if _, err := h.Exec(ctx, "true"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Exec: %v", err)
	}
	if _, err := h.ReadFile(ctx, "/f"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ReadFile: %v", err)
	}
	if len(h.Execs()) != 1 {
		t.Errorf("a cancelled call is still recorded: %+v", h.Execs())
	}
}
