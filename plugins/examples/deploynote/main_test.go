package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stagecoach/stagecoach/plugins/sdk"
	"github.com/stagecoach/stagecoach/plugins/sdk/sdktest"
)

func TestDeploynoteWritesTheNoteThroughARename(t *testing.T) {
	host := sdktest.NewHost()
	req := sdktest.NewRequest(map[string]any{"message": "Deployed by CI"})
	msg, err := deploynote{}.Run(context.Background(), req, host)
	if err != nil || msg != "note written to /srv/app/shared/DEPLOY_NOTE" {
		t.Fatalf("Run = %q, %v", msg, err)
	}
	execs := host.Execs()
	if len(execs) != 1 {
		t.Fatalf("ran %d commands, want 1: %+v", len(execs), execs)
	}
	want := "mkdir -p '/srv/app/shared' && cat > '/srv/app/shared/DEPLOY_NOTE.tmp' && mv -f '/srv/app/shared/DEPLOY_NOTE.tmp' '/srv/app/shared/DEPLOY_NOTE'"
	if execs[0].Cmd != want {
		t.Errorf("command\n%s\nwant\n%s", execs[0].Cmd, want)
	}
	note := string(execs[0].Stdin)
	for _, line := range []string{"release: 20240102T030405Z-abc1234\n", "revision: abc1234def5678\n", "previous: 0123456789abcd\n",
		"changed: backend, frontend\n", "environment: production\n", "message: Deployed by CI\n", "time: "} {
		if !strings.Contains(note, line) {
			t.Errorf("note lacks %q:\n%s", line, note)
		}
	}
	if got := host.Messages(sdk.LevelInfo); len(got) != 1 || got[0] != "wrote /srv/app/shared/DEPLOY_NOTE for release 20240102T030405Z-abc1234" {
		t.Errorf("logged %q", got)
	}
}

func TestDeploynoteFileAndNothingChanged(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"notes/NOTE", "/srv/app/notes/NOTE"},
		{"/var/tmp/NOTE", "/var/tmp/NOTE"},
	} {
		host := sdktest.NewHost()
		req := sdktest.NewRequest(map[string]any{"file": tc.file})
		req.Changed = nil
		msg, err := deploynote{}.Run(context.Background(), req, host)
		if err != nil || msg != "note written to "+tc.want {
			t.Errorf("file %q: Run = %q, %v", tc.file, msg, err)
			continue
		}
		if e := host.Execs()[0]; !strings.Contains(e.Cmd, "'"+tc.want+"'") || !strings.Contains(string(e.Stdin), "changed: nothing\n") {
			t.Errorf("file %q: ran %q with\n%s", tc.file, e.Cmd, e.Stdin)
		}
	}
}

func TestDeploynoteFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		host *sdktest.Host
		cfg  any
		want string
	}{
		{"command fails", sdktest.NewHost().OnExec("cat > ", sdk.ExecResult{ExitCode: 1, Stderr: []byte("Permission denied")}, nil), nil,
			"write /srv/app/shared/DEPLOY_NOTE: "},
		{"connection lost", sdktest.NewHost().OnExec("", sdk.ExecResult{}, errors.New("connection lost")), nil, "connection lost"},
		{"bad config", sdktest.NewHost(), []byte(`{"message": 3}`), "message"},
		{"no target", sdktest.NewHost().NoTarget("on-success"), nil, "no deploy target"},
	} {
		_, err := deploynote{}.Run(context.Background(), sdktest.NewRequest(tc.cfg), tc.host)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestDeploynoteDescribe(t *testing.T) {
	info := deploynote{}.Describe()
	if info.Name != "deploynote" || strings.Join(info.Hooks, ",") != "after-swap,after-health,after-cleanup" {
		t.Errorf("Describe = %+v", info)
	}
}
