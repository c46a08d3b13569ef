package targets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/ui"
)

var errFakeOpen = errors.New("fake open")

// fakeRun resets the shared run and makes opening it record its options
// and fail with errFakeOpen.
func fakeRun(t *testing.T) *[]pipeline.Options {
	t.Helper()
	var got []pipeline.Options
	reset := func() {
		runOnce = sync.Once{}
		shared, sharedErr, opened, called = nil, nil, nil, flags{}
	}
	reset()
	orig := open
	open = func(opts pipeline.Options, _ *ui.Logger) (*pipeline.Run, error) {
		got = append(got, opts)
		return nil, errFakeOpen
	}
	t.Cleanup(func() { reset(); open = orig })
	return &got
}

func str(s string) *string               { return &s }
func yes(b bool) *bool                   { return &b }
func dur(d time.Duration) *time.Duration { return &d }

// TestFlagsOverlayEnv: a flag given wins over its variable, one not given
// keeps what the variable set.
func TestFlagsOverlayEnv(t *testing.T) {
	t.Setenv("STAGECOACH_ENV", "staging")
	t.Setenv("STAGECOACH_CONFIG", "ci.yml")
	t.Setenv("STAGECOACH_ALLOW_DIRTY", "1")
	t.Setenv("STAGECOACH_FORCE", "1")
	t.Setenv("STAGECOACH_BREAK_LOCK", "")
	t.Setenv("STAGECOACH_LOCK_WAIT", "30s")
	t.Setenv("STAGECOACH_RELEASE", "20240101-000000")
	t.Setenv("STAGECOACH_RESTORE_DB", "")
	t.Setenv("STAGECOACH_REPORT", "env.json")
	t.Setenv("STAGECOACH_PREVIOUS", "abc123")
	env, err := optionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}

	if got, err := (flags{}).apply(env); err != nil || got != env {
		t.Errorf("no flags: %+v, %v; want the variables' %+v", got, err, env)
	}

	got, err := flags{
		Env:        str("production"),
		AllowDirty: yes(false), // an explicit false wins over STAGECOACH_ALLOW_DIRTY=1
		BreakLock:  yes(true),
		LockWait:   dur(2 * time.Minute),
		Release:    str("20250101-000000"),
		RestoreDB:  yes(true),
		Report:     str("flag.json"),
	}.apply(env)
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.Options{
		ConfigPath:  "ci.yml", // no -config: the variable
		Environment: "production",
		AllowDirty:  false,
		Force:       true, // no -force: the variable
		Previous:    "abc123",
		BreakLock:   true,
		LockWait:    2 * time.Minute,
		Release:     "20250101-000000",
		RestoreDB:   true,
		ReportPath:  "flag.json",
	}
	if got != want {
		t.Errorf("flags over variables:\n got %+v\nwant %+v", got, want)
	}

	if _, err := (flags{LockWait: dur(-time.Second)}).apply(env); exitcode.Of(err) != exitcode.BadConfig {
		t.Errorf("-lockWait=-1s: %v (exit %d), want exit %d", err, exitcode.Of(err), exitcode.BadConfig)
	}
}

// TestCalledTargetOptionsReachTheChain: `mage build -env=production
// -allowDirty` runs detect first through mg.CtxDeps; the run detect opens
// has build's flags over the variables.
func TestCalledTargetOptionsReachTheChain(t *testing.T) {
	t.Setenv("STAGECOACH_ENV", "staging")
	t.Setenv("STAGECOACH_CONFIG", "ci.yml")
	t.Setenv("STAGECOACH_ALLOW_DIRTY", "")
	t.Setenv("STAGECOACH_LOCK_WAIT", "")
	got := fakeRun(t)

	func() {
		defer func() {
			r := recover()
			if r == nil || !strings.Contains(fmt.Sprint(r), errFakeOpen.Error()) {
				t.Errorf("Build: recovered %v, want the failing dependency's fake open error", r)
			}
		}()
		err := Build(context.Background(), str("production"), nil, nil, yes(true), nil)
		t.Errorf("Build returned %v; want mg.CtxDeps to stop it on detect's error", err)
	}()
	if len(*got) != 1 {
		t.Fatalf("the run was opened %d times, want once (by detect)", len(*got))
	}
	o := (*got)[0]
	if o.Environment != "production" || !o.AllowDirty || o.ConfigPath != "ci.yml" {
		t.Errorf("detect's run opened with %+v; want build's -env=production -allowDirty over STAGECOACH_CONFIG=ci.yml", o)
	}
}

// TestLaterTargetFlags: a second target on the command line finds the run
// open; flags repeating its options pass, flags changing them are refused.
func TestLaterTargetFlags(t *testing.T) {
	t.Setenv("STAGECOACH_ENV", "")
	t.Setenv("STAGECOACH_LOCK_WAIT", "")
	fakeRun(t)
	if err := use(flags{Env: str("production")}); err != nil {
		t.Fatal(err)
	}
	if _, err := current(); !errors.Is(err, errFakeOpen) {
		t.Fatalf("current: %v", err)
	}
	// The fake open failed, so later targets see that error, not a flag error.
	if err := use(flags{Env: str("staging")}); err != nil {
		t.Errorf("after a failed open: %v, want nil (the open error follows)", err)
	}

	sharedErr, opened = nil, &pipeline.Options{Environment: "production"} // as if it had opened
	if err := use(flags{Env: str("production"), JSON: str("out.json")}); err != nil {
		t.Errorf("same -env: %v", err)
	}
	if checkJSON() != "out.json" {
		t.Errorf("checkJSON = %q, want the later check's -json", checkJSON())
	}
	if err := use(flags{}); err != nil {
		t.Errorf("no flags: %v", err)
	}
	err := use(flags{Env: str("staging")})
	if exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), "first target") {
		t.Errorf("other -env: %v (exit %d), want exit %d", err, exitcode.Of(err), exitcode.BadConfig)
	}
}

// TestCheckJSONFlag: -json wins over STAGECOACH_JSON, which stays when no
// -json is given.
func TestCheckJSONFlag(t *testing.T) {
	fakeRun(t)
	t.Setenv("STAGECOACH_JSON", "1")
	if got := checkJSON(); got != "1" {
		t.Errorf("no -json: %q, want STAGECOACH_JSON's 1", got)
	}
	if err := use(flags{JSON: str("/tmp/c.json")}); err != nil {
		t.Fatal(err)
	}
	if got := checkJSON(); got != "/tmp/c.json" {
		t.Errorf("-json=/tmp/c.json: %q", got)
	}
}
