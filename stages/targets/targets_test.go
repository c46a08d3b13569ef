package targets

import (
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
)

// TestLockWaitFromEnv: STAGECOACH_LOCK_WAIT is a duration; anything else
// stops the run with BadConfig, naming the variable.
func TestLockWaitFromEnv(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		bad   bool
	}{
		{value: "", want: 0},
		{value: "2m", want: 2 * time.Minute},
		{value: " 90s ", want: 90 * time.Second},
		{value: "0", want: 0},
		{value: "120", bad: true},
		{value: "soon", bad: true},
		{value: "-1m", bad: true},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv("STAGECOACH_LOCK_WAIT", tc.value)
			t.Setenv("STAGECOACH_BREAK_LOCK", "1")
			opts, err := optionsFromEnv()
			if tc.bad {
				if exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), "STAGECOACH_LOCK_WAIT=") ||
					!strings.Contains(err.Error(), "not a duration such as 2m") {
					t.Fatalf("optionsFromEnv = %v (exit %d), want exit %d naming the variable", err, exitcode.Of(err), exitcode.BadConfig)
				}
				return
			}
			if err != nil || opts.LockWait != tc.want || !opts.BreakLock {
				t.Errorf("optionsFromEnv = %+v, %v; want LockWait %v", opts, err, tc.want)
			}
		})
	}
}

// TestMaintenanceState: mage maintenance takes on or off; anything else
// is BadConfig, saying what it takes.
func TestMaintenanceState(t *testing.T) {
	for arg, want := range map[string]bool{"on": true, "off": false, "ON": true, " off ": false} {
		if on, err := maintenanceState(arg); err != nil || on != want {
			t.Errorf("maintenanceState(%q) = %v, %v; want %v", arg, on, err, want)
		}
	}
	for _, arg := range []string{"", "yes", "1", "true"} {
		_, err := maintenanceState(arg)
		if exitcode.Of(err) != exitcode.BadConfig || !strings.Contains(err.Error(), "want on or off") {
			t.Errorf("maintenanceState(%q) = %v (exit %d), want BadConfig", arg, err, exitcode.Of(err))
		}
	}
}
