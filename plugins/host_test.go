package plugins_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/ui"
)

func TestRunPluginErrors(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plugins", "bin", "plain")
	os.MkdirAll(filepath.Dir(notExec), 0o755)
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	suicide := filepath.Join(dir, "suicide")
	os.WriteFile(suicide, []byte("#!/bin/sh\nkill -9 $$\n"), 0o755)
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("#!/bin/sh\necho 'hello, I am not a plugin'\nsleep 1\n"), 0o755)

	tests := []struct {
		name  string
		spec  config.Plugin
		wants []string
	}{
		{"missing", config.Plugin{Name: "warm-cache", Path: "plugins/bin/warm-cache", At: "after-swap", Timeout: 30 * time.Second},
			[]string{"plugin warm-cache: path plugins/bin/warm-cache does not exist; build it with `mage plugins`"}},
		{"not executable", config.Plugin{Name: "plain", Path: "plugins/bin/plain", At: "after-swap", Timeout: 30 * time.Second},
			[]string{"plugin plain: plugins/bin/plain is not executable (mode -rw-r--r--)"}},
		{"exits at once", config.Plugin{Name: "true", Path: "/bin/true", At: "after-swap", Timeout: 30 * time.Second},
			[]string{"plugin true: /bin/true is not a Stagecoach plugin (handshake failed): "}},
		{"killed during start-up", config.Plugin{Name: "oom", Path: suicide, At: "after-swap", Timeout: 30 * time.Second},
			[]string{"plugin oom: " + suicide + " crashed during start-up (signal: killed)"}},
		{"prints garbage", config.Plugin{Name: "garbage", Path: garbage, At: "after-swap", Timeout: 30 * time.Second},
			[]string{"plugin garbage: " + garbage + ` printed "hello, I am not a plugin" on stdout before the handshake`}},
		{"hook not supported", config.Plugin{Name: "t", Path: bin(t, "testplugin"), At: "after-cleanup", Timeout: 30 * time.Second},
			[]string{"plugin t: configured at after-cleanup, but it supports only before-swap, after-swap"}},
		{"plugin error", spec(t, "t", map[string]any{"mode": "fail", "message": "the CDN said no"}),
			[]string{"plugin t at after-swap: the CDN said no"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc := deployContext(t)
			dc.Dir = dir
			res, err := plugins.Run(context.Background(), tt.spec, dc, remote.NewLocal(), ui.Discard())
			mustContain(t, err, tt.wants...)
			if res.Plugin != tt.spec.Name || res.Hook != tt.spec.At {
				t.Errorf("result names %s at %s", res.Plugin, res.Hook)
			}
		})
	}
}

// TestStdoutBeforeServe: a plugin that prints to stdout before sdk.Serve
// is told so, not that it may be built for another architecture.
func TestStdoutBeforeServe(t *testing.T) {
	s := config.Plugin{Name: "early", Path: bin(t, "printsfirst"), At: "after-swap", Timeout: 30 * time.Second}
	_, err := plugins.Run(context.Background(), s, deployContext(t), remote.NewLocal(), ui.Discard())
	mustContain(t, err, "plugin early: "+s.Path+" printed", `"printsfirst starting up"`,
		"must not write to stdout before sdk.Serve", "handshake")
	for _, hint := range []string{"architecture", "dynamic-link", "shebang"} {
		if strings.Contains(err.Error(), hint) {
			t.Errorf("error %q gives go-plugin's hint about %s", err, hint)
		}
	}
}

func TestChecksum(t *testing.T) {
	actual, err := fileSum(bin(t, "testplugin"))
	if err != nil {
		t.Fatal(err)
	}
	wrong := strings.Repeat("0", 64)

	s := spec(t, "pinned", nil)
	s.SHA256 = wrong
	_, err = plugins.Run(context.Background(), s, deployContext(t), remote.NewLocal(), ui.Discard())
	mustContain(t, err, "plugin pinned: checksum mismatch", "config pins sha256 "+wrong, "the file has "+actual)

	s.SHA256 = strings.ToUpper(actual)
	res, err := plugins.Run(context.Background(), s, deployContext(t), remote.NewLocal(), ui.Discard())
	if err != nil || res.Message != "ok" {
		t.Fatalf("pinned to the right sum: %q, %v", res.Message, err)
	}
}

func TestCrashMidRun(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	_, err := plugins.Run(context.Background(), spec(t, "crasher", map[string]any{"mode": "crash", "pidfile": pidfile}),
		deployContext(t), remote.NewLocal(), ui.Discard())
	mustContain(t, err, "plugin crasher at after-swap: crashed during Run (exit status 2)", "crashing on purpose")
	assertGone(t, pidfile)
}

func TestHangKilledAtTimeout(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	s := spec(t, "warm-cache", map[string]any{"mode": "hang", "pidfile": pidfile})
	s.Timeout = 2 * time.Second
	res, err := plugins.Run(context.Background(), s, deployContext(t), remote.NewLocal(), ui.Discard())
	mustContain(t, err, "plugin warm-cache at after-swap: timed out after 2s; killed")
	assertGone(t, pidfile)
	if res.Duration < s.Timeout {
		t.Errorf("returned after %s, before the timeout", res.Duration)
	}
}

func TestCancelKills(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the plugin is running, as Ctrl-C would.
		for {
			if _, err := os.Stat(pidfile); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	_, err := plugins.Run(ctx, spec(t, "stuck", map[string]any{"mode": "hang", "pidfile": pidfile}),
		deployContext(t), remote.NewLocal(), ui.Discard())
	mustContain(t, err, "plugin stuck at after-swap: context canceled; killed")
	assertGone(t, pidfile)
}

func TestSuccessLeavesNoProcess(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	res, err := plugins.Run(context.Background(), spec(t, "noop", map[string]any{"pidfile": pidfile}),
		deployContext(t), remote.NewLocal(), ui.Discard())
	if err != nil || res.Message != "ok" {
		t.Fatalf("Run: %q, %v", res.Message, err)
	}
	assertGone(t, pidfile)
}

// TestRunHookOverSSH runs plugins whose host calls go over a real SSH
// connection: each appends a line to a file on the target through
// Host.Exec and reads it back through Host.ReadFile.
func TestRunHookOverSSH(t *testing.T) {
	r := target(t)
	log, out := newLog(false)
	dc := deployContext(t)
	file := filepath.Join(dc.Root, "order.txt")
	appendSpec := func(name, at string) config.Plugin {
		s := spec(t, name, map[string]any{"mode": "append", "file": file, "line": name})
		s.At = at
		return s
	}
	specs := []config.Plugin{
		appendSpec("first", "after-swap"),
		appendSpec("elsewhere", "before-swap"),
		appendSpec("second", "after-swap"),
		appendSpec("third", "after-swap"),
	}
	before := r.Stats()
	results, err := plugins.RunHook(context.Background(), specs, "after-swap", dc, r, log)
	if err != nil {
		t.Fatalf("RunHook: %v\nlog:\n%s", err, out)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "first\nsecond\nthird\n" {
		t.Errorf("file on the target = %q, want the after-swap plugins in config order", got)
	}
	// Every plugin works through the host's own connection: no new one,
	// and an exec and a read per plugin (round trips besides opening
	// sessions, which the runner counts as round trips too).
	after := r.Stats()
	requests := (after.RoundTrips - before.RoundTrips) - (after.Sessions - before.Sessions)
	if after.Connections != before.Connections || requests != 6 {
		t.Errorf("%d new connections and %d requests, want 0 and 6 (an exec and a read per plugin)",
			after.Connections-before.Connections, requests)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(results), results)
	}
	for i, name := range []string{"first", "second", "third"} {
		res := results[i]
		if res.Plugin != name || res.Hook != "after-swap" || res.Message != file+" has "+string(rune('1'+i))+" lines" {
			t.Errorf("result %d = %+v", i, res)
		}
		wantLog := "appended " + name + " to " + file
		if len(res.Logs) != 1 || !strings.HasPrefix(res.Logs[0], wantLog) {
			t.Errorf("result %d logs = %q, want %q...", i, res.Logs, wantLog)
		}
		if !strings.Contains(out.String(), "plugin "+name+": "+wantLog) {
			t.Errorf("host log lacks %q:\n%s", wantLog, out)
		}
	}
}

func TestRunHookStopsAtFirstFailure(t *testing.T) {
	dc := deployContext(t)
	file := filepath.Join(dc.Root, "order.txt")
	specs := []config.Plugin{
		spec(t, "a", map[string]any{"mode": "append", "file": file, "line": "a"}),
		spec(t, "b", map[string]any{"mode": "fail", "message": "smoke test failed"}),
		spec(t, "c", map[string]any{"mode": "append", "file": file, "line": "c"}),
	}
	results, err := plugins.RunHook(context.Background(), specs, "after-swap", dc, remote.NewLocal(), ui.Discard())
	mustContain(t, err, "plugin b at after-swap: smoke test failed")
	if len(results) != 2 || results[1].Plugin != "b" {
		t.Errorf("results = %+v, want a and the failed b", results)
	}
	if got, _ := os.ReadFile(file); string(got) != "a\n" {
		t.Errorf("file = %q: a plugin after the failure ran", got)
	}
}

func TestLogTimestampedAndDebug(t *testing.T) {
	log, out := newLog(true)
	dc := deployContext(t)
	file := filepath.Join(dc.Root, "f")
	_, err := plugins.Run(context.Background(), spec(t, "chatty", map[string]any{"mode": "append", "file": file, "line": "x"}),
		dc, remote.NewLocal(), log)
	if err != nil {
		t.Fatal(err)
	}
	text := out.String()
	// The plugin's line, stamped like every other host line, and go-plugin's
	// own chatter at debug level under the plugin's name.
	for _, want := range []string{"] plugin chatty: appended x to " + file, "] plugin chatty: exec on local: cat >> ", "plugin chatty: [DEBUG] go-plugin"} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
}

// TestSilentAtStartKilledAtTimeout covers a program that never completes
// the handshake: the timeout covers start-up too.
func TestSilentAtStartKilledAtTimeout(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	script := filepath.Join(dir, "silent")
	os.WriteFile(script, []byte("#!/bin/sh\necho $$ > "+pidfile+"\nexec sleep 300\n"), 0o755)
	s := config.Plugin{Name: "silent", Path: script, At: "before-swap", Timeout: time.Second}
	_, err := plugins.Run(context.Background(), s, deployContext(t), remote.NewLocal(), ui.Discard())
	mustContain(t, err, "plugin silent at before-swap: timed out after 1s; killed")
	assertGone(t, pidfile)
}
